//! A loaded language model on a backend: weights streamed from the file into
//! device buffers one tensor at a time, a KV cache, and the prefill/decode
//! steps. Sampling and text live in [`crate::generate`].

use std::io::{Read, Seek};

use crate::backend::{Backend, Executable};
use crate::graph::TensorId;
use crate::host::HostTensor;
use crate::loader::LoadError;
use crate::loader::WeightSource;
use crate::loader::gguf::{GgufFile, GgufSource};
use crate::model::LlamaConfig;
use crate::model::llama::{self, LlamaGraph, LlamaOptions, StepIo};

pub struct Llm {
    pub model: LlamaGraph,
    pub exe: Box<dyn Executable>,
    /// Tokens currently in the KV cache.
    pub tokens: Vec<u32>,
    last: Option<StepIo>,
}

/// Reads a weight; `a+b` names (fused weights) are read part by part and
/// concatenated by rows (the builder checked they share dtype and width).
pub(crate) fn read_weight(
    source: &mut dyn WeightSource,
    name: &str,
) -> Result<HostTensor, LoadError> {
    if !name.contains(llama::CONCAT) {
        return source.read(name);
    }
    let mut parts = name.split(llama::CONCAT).map(|p| source.read(p));
    let first = parts
        .next()
        .ok_or_else(|| LoadError::MissingTensor(name.into()))??;
    let (mut shape, dtype, mut data) = (first.shape, first.dtype, first.data);
    for part in parts {
        let part = part?;
        if part.dtype != dtype || part.shape[1..] != shape[1..] {
            return Err(LoadError::Corrupt(format!(
                "cannot concatenate the parts of {name}"
            )));
        }
        shape[0] += part.shape[0];
        data.extend(part.data);
    }
    Ok(HostTensor::from_bytes(&shape, dtype, data)?)
}

/// Load progress: bytes of weights uploaded so far and in total.
pub type Progress<'a> = &'a mut dyn FnMut(u64, u64) -> bool;

impl Llm {
    /// Builds the model graph for `config`, compiles it on `backend` and
    /// streams every weight from `source` to the device, one tensor at a
    /// time. `progress` may return false to cancel.
    pub fn load(
        config: &LlamaConfig,
        source: &mut dyn WeightSource,
        backend: &dyn Backend,
        opts: &LlamaOptions,
        progress: Progress,
    ) -> Result<Llm, LoadError> {
        let mut llm = Llm::compile(config, &|name| source.info(name), backend, opts)?;
        let total = llm.model.weight_bytes();
        let mut done = 0;
        for (name, id) in llm.model.weights.clone() {
            let data = read_weight(source, &name)?;
            llm.exe.write(id, &data)?;
            done += data.data.len() as u64;
            if !progress(done, total) {
                return Err(LoadError::Cancelled);
            }
        }
        Ok(llm)
    }

    /// Builds and compiles the model with its weights not yet written (for
    /// loaders that stream weights in file order; see
    /// [`crate::loader::stream`]). `info` gives each file tensor's shape and
    /// dtype.
    pub fn compile(
        config: &LlamaConfig,
        info: llama::WeightLookup,
        backend: &dyn Backend,
        opts: &LlamaOptions,
    ) -> Result<Llm, LoadError> {
        let model = llama::build(config, opts, info)?;
        let mut exe = backend.compile(&model.graph)?;
        model.clear_cache(exe.as_mut())?;
        for &(_, _, a, b) in &model.lora {
            exe.fill(a, 0)?;
            exe.fill(b, 0)?;
        }
        Ok(Llm {
            model,
            exe,
            tokens: Vec::new(),
            last: None,
        })
    }

    /// Loads a model from a parsed GGUF header and its open file.
    pub fn from_gguf<R: Read + Seek>(
        gguf: &GgufFile,
        file: &mut R,
        backend: &dyn Backend,
        opts: &LlamaOptions,
        progress: Progress,
    ) -> Result<Llm, LoadError> {
        let config = LlamaConfig::from_gguf(gguf)?;
        let mut source = GgufSource {
            file: gguf,
            reader: file,
        };
        Llm::load(&config, &mut source, backend, opts, progress)
    }

    /// Opens a GGUF file and loads it (native only).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn open(
        path: &std::path::Path,
        backend: &dyn Backend,
        opts: &LlamaOptions,
        progress: Progress,
    ) -> Result<(Llm, GgufFile), LoadError> {
        let (gguf, mut f) = GgufFile::open(path)?;
        let llm = Llm::from_gguf(&gguf, &mut f, backend, opts, progress)?;
        Ok((llm, gguf))
    }

    pub fn max_ctx(&self) -> usize {
        self.model.opts.max_ctx
    }

    /// Forgets the conversation (the cache is simply overwritten later).
    pub fn reset(&mut self) {
        self.truncate(0);
    }

    /// Keeps only the first `n` tokens of the sequence (KV-cache prefix reuse).
    pub fn truncate(&mut self, n: usize) {
        self.tokens.truncate(n);
        self.last = None;
    }

    /// Appends `tokens` to the sequence: full prefill chunks, then the rest
    /// as one padded chunk (or a decode step for a single token). Afterwards
    /// [`Llm::logits`] and [`Llm::greedy`] refer to the last token.
    pub fn feed(&mut self, tokens: &[u32]) -> Result<(), LoadError> {
        let need = self.tokens.len() + tokens.len();
        if need > self.max_ctx() {
            return Err(LoadError::ContextFull {
                max_ctx: self.max_ctx(),
                need,
            });
        }
        let chunk = self.model.prefill.tokens;
        let mut rest = tokens;
        while !rest.is_empty() {
            let io = if rest.len() == 1 {
                self.model.decode.clone()
            } else {
                self.model.prefill.clone()
            };
            let n = rest.len().min(io.tokens);
            let mut ids = rest[..n].to_vec();
            ids.resize(io.tokens, 0);
            self.exe
                .write(io.ids, &HostTensor::from_u32(&[io.tokens], &ids)?)?;
            if let Some(last) = io.last {
                self.exe
                    .write(last, &HostTensor::from_u32(&[1], &[n as u32 - 1])?)?;
            }
            self.exe
                .run_program(io.program, &[self.tokens.len() as u32])?;
            self.tokens.extend_from_slice(&rest[..n]);
            rest = &rest[n..];
            self.last = Some(io);
            debug_assert!(n <= chunk);
        }
        Ok(())
    }

    fn last(&self) -> Result<&StepIo, LoadError> {
        self.last
            .as_ref()
            .ok_or_else(|| LoadError::Corrupt("no token has been fed yet".into()))
    }

    /// The greedy next token (reads back 4 bytes).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn greedy(&mut self) -> Result<u32, LoadError> {
        pollster::block_on(self.greedy_async())
    }

    /// Greedy decoding with the device feeding each token back to itself:
    /// step N+1 is submitted before step N's token is read, so the device
    /// never waits for the host. `on_token` receives each token (the first is
    /// the one predicted by the last feed) and returns false to stop; at most
    /// `max_new` tokens. Every token handed out except possibly the last is
    /// in the KV cache afterwards (`self.tokens`).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn greedy_pipelined(
        &mut self,
        max_new: usize,
        on_token: &mut dyn FnMut(u32) -> Result<bool, LoadError>,
    ) -> Result<(), LoadError> {
        pollster::block_on(self.greedy_pipelined_async(max_new, on_token))
    }

    /// Reads a tensor without blocking (awaits the device on the web).
    pub async fn read_async(&mut self, t: crate::graph::TensorId) -> Result<HostTensor, LoadError> {
        let ticket = self.exe.read_start(t)?;
        self.finish_async(ticket).await
    }

    async fn finish_async(&mut self, ticket: usize) -> Result<HostTensor, LoadError> {
        self.exe.read_ready(ticket).await;
        Ok(self.exe.read_finish(ticket)?)
    }

    /// [`Llm::greedy_pipelined`] for hosts that must not block (the web).
    pub async fn greedy_pipelined_async(
        &mut self,
        max_new: usize,
        on_token: &mut dyn FnMut(u32) -> Result<bool, LoadError>,
    ) -> Result<(), LoadError> {
        let mut src = self.last()?.next;
        let dec = self.model.decode.clone();
        let mut pending = self.exe.read_start(src)?;
        for produced in 1..=max_new {
            let feed = produced < max_new && self.tokens.len() < self.max_ctx();
            let ahead = if feed {
                self.exe.copy_before_next_run(src, dec.ids)?;
                self.exe
                    .run_program(dec.program, &[self.tokens.len() as u32])?;
                Some(self.exe.read_start(dec.next)?)
            } else {
                None
            };
            let tok = self.finish_async(pending).await?.to_u32()?[0];
            let go_on = on_token(tok)?;
            let Some(ticket) = ahead else { break };
            self.tokens.push(tok);
            self.last = Some(dec.clone());
            if !go_on {
                self.finish_async(ticket).await?;
                break;
            }
            pending = ticket;
            src = dec.next;
        }
        Ok(())
    }

    /// Logits of the last token.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn logits(&mut self) -> Result<Vec<f32>, LoadError> {
        pollster::block_on(self.logits_async())
    }

    /// [`Llm::greedy`] without blocking.
    pub async fn greedy_async(&mut self) -> Result<u32, LoadError> {
        let next = self.last()?.next;
        Ok(self.read_async(next).await?.to_u32()?[0])
    }

    /// [`Llm::logits`] without blocking.
    pub async fn logits_async(&mut self) -> Result<Vec<f32>, LoadError> {
        let logits = self.last()?.logits;
        Ok(self.read_async(logits).await?.to_f32()?)
    }

    /// Puts these adapters (each with its own scale, 1.0 = as trained) in
    /// the graph's LoRA slots, replacing any there; an empty list restores
    /// the base model. The base weights are untouched: switching costs one
    /// write of the factors. Adapters' ranks add up along the slots' rank
    /// (A rows stacked, B columns scaled by `scale·alpha/r` and stacked).
    /// The KV cache is cleared (it was computed with other weights).
    pub fn set_adapters(
        &mut self,
        adapters: &[(&crate::train::lora::Adapter, f32)],
    ) -> Result<(), LoadError> {
        use crate::train::lora::{Factor, Target, hf_to_gguf_rows, peft_name};
        let m = &self.model;
        let Some(slots) = &m.opts.lora else {
            if adapters.is_empty() {
                return Ok(());
            }
            return Err(LoadError::Adapter(
                "the model was loaded without LoRA slots".into(),
            ));
        };
        let total: usize = adapters.iter().map(|(a, _)| a.config.rank).sum();
        if total > slots.rank {
            return Err(LoadError::Adapter(format!(
                "the adapters' ranks add up to {total}; the model was loaded with room for {}",
                slots.rank
            )));
        }
        for (a, _) in adapters {
            a.check(&m.config)?;
            if let Some(t) = a.config.targets.iter().find(|t| !slots.targets.contains(t)) {
                return Err(LoadError::Adapter(format!(
                    "the adapter targets {} but the model was loaded without a slot for it",
                    t.module()
                )));
            }
        }
        let c = &m.config;
        let cap = slots.rank;
        let writes: Vec<(TensorId, HostTensor)> = m
            .lora
            .iter()
            .map(|&(layer, t, at, bt)| {
                let (i, o) = t.dims(c);
                let mut av = vec![0f32; cap * i];
                let mut bv = vec![0f32; o * cap];
                let mut r0 = 0;
                for (a, scale) in adapters {
                    let r = a.config.rank;
                    if !a.config.targets.contains(&t) {
                        continue;
                    }
                    let (_, va) = &a.tensors[&peft_name(layer, t, Factor::A)];
                    let (_, vb) = &a.tensors[&peft_name(layer, t, Factor::B)];
                    av[r0 * i..(r0 + r) * i].copy_from_slice(va);
                    let s = scale * a.config.scaling();
                    let permute = matches!(t, Target::Q | Target::K)
                        && c.rope_mode == crate::ops::rope::RopeMode::Normal;
                    let heads = if t == Target::Q {
                        c.n_heads
                    } else {
                        c.n_kv_heads
                    };
                    let rows: Vec<usize> = if permute {
                        hf_to_gguf_rows(heads, c.head_dim)
                    } else {
                        (0..o).collect()
                    };
                    for (gr, &hr) in rows.iter().enumerate() {
                        for j in 0..r {
                            bv[gr * cap + r0 + j] = s * vb[hr * r + j];
                        }
                    }
                    r0 += r;
                }
                Ok([
                    (at, HostTensor::from_f32(&[cap, i], crate::DType::F32, &av)?),
                    (bt, HostTensor::from_f32(&[o, cap], crate::DType::F32, &bv)?),
                ])
            })
            .collect::<Result<Vec<_>, LoadError>>()?
            .into_iter()
            .flatten()
            .collect();
        for (t, h) in writes {
            self.exe.write(t, &h)?;
        }
        self.reset();
        self.model.clear_cache(self.exe.as_mut())?;
        Ok(())
    }
}
