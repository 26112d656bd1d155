//! `kiln-parity model`: one GGUF model on several backends (the CPU
//! reference, wgpu, CUDA), compared layer by layer and token by token.
//!
//! Every backend loads the same file with f32 activations and an f32 KV
//! cache, prefills the prompt in one chunk, then decodes greedily. Compared
//! against the CPU reference: each layer's hidden state at the last prompt
//! position (the first layer beyond tolerance is named), the logits after the
//! prompt and after every decode step, and the greedy tokens. Tolerance:
//! |Δ| ≤ 1e-4 · max|reference| — f32 activations from identical weights,
//! differing only in summation order (measured ~1e-6 relative).

use std::time::Instant;

use kiln::backend::Backend;
use kiln::llm::Llm;
use kiln::loader::LoadError;
use kiln::loader::gguf::GgufFile;
use kiln::model::llama::LlamaOptions;
use kiln::parity::{tokens_agree, vec_diff};
use kiln::tokenizer::Tokenizer;

pub const REL_TOL: f32 = 1e-4;

/// What one backend produced.
pub struct Trace {
    pub backend: String,
    /// Per layer: the hidden state at the last prompt position.
    pub hidden: Vec<Vec<f32>>,
    /// Logits after the prompt, then after each decode step.
    pub logits: Vec<Vec<f32>>,
    pub tokens: Vec<u32>,
    pub prefill_secs: f64,
    pub decode_secs: f64,
}

/// The prompt's token ids with the file's own tokenizer.
pub fn encode(path: &std::path::Path, prompt: &str) -> Result<Vec<u32>, LoadError> {
    let (g, _) = GgufFile::open(path)?;
    let tok = Tokenizer::from_spec(&g.tokenizer_spec()?)
        .map_err(|e| LoadError::Tokenizer(e.to_string()))?;
    tok.encode(prompt, true)
        .map_err(|e| LoadError::Tokenizer(e.to_string()))
}

/// Runs the model on `backend`: prompt, then `steps` greedy tokens, on the
/// plain graph or the fused one (the GPUs' default: fused GEMVs, Q/K/V as
/// one weight).
pub fn trace(
    path: &std::path::Path,
    backend: &dyn Backend,
    prompt: &[u32],
    steps: usize,
    fused: bool,
) -> Result<Trace, LoadError> {
    let opts = LlamaOptions {
        max_ctx: prompt.len() + steps + 1,
        prefill_chunk: prompt.len().max(2),
        kv_dtype: kiln::DType::F32,
        fused,
        debug_layers: true,
        lora: None,
    };
    let (mut llm, _) = Llm::open(path, backend, &opts, &mut |_, _| true)?;
    let t0 = Instant::now();
    llm.feed(prompt)?;
    let io = if prompt.len() == 1 {
        llm.model.decode.clone()
    } else {
        llm.model.prefill.clone()
    };
    let mut logits = vec![llm.logits()?];
    let prefill_secs = t0.elapsed().as_secs_f64();
    let d = llm.model.config.d_model;
    let row = prompt.len() - 1;
    let mut hidden = Vec::new();
    for h in &io.hidden {
        let v = llm.exe.read(*h)?.to_f32()?;
        hidden.push(v[row * d..(row + 1) * d].to_vec());
    }
    let t1 = Instant::now();
    let mut tokens = Vec::new();
    for i in 0..steps {
        let next = llm.greedy()?;
        tokens.push(next);
        if i + 1 < steps {
            llm.feed(&[next])?;
            logits.push(llm.logits()?);
        }
    }
    Ok(Trace {
        backend: backend.name(),
        hidden,
        logits,
        tokens,
        prefill_secs,
        decode_secs: t1.elapsed().as_secs_f64(),
    })
}

/// How a backend's trace compares with the reference trace.
pub struct Comparison {
    pub worst_hidden_rel: f64,
    pub first_bad_layer: Option<usize>,
    pub worst_logit_rel: f64,
    pub first_bad_step: Option<usize>,
    /// Greedy tokens equal to the reference's before the first difference.
    pub tokens_agree: usize,
    /// Why the traces cannot be compared (different lengths, empty).
    pub error: Option<String>,
}

impl Comparison {
    pub fn pass(&self, steps: usize) -> bool {
        self.error.is_none()
            && self.first_bad_layer.is_none()
            && self.first_bad_step.is_none()
            && self.tokens_agree == steps
    }
}

/// Per vector: max |got − want| / max |want| (NaN-aware: ∞ on a NaN or a
/// missing vector; `rel` is never NaN). The index of the first vector past [`REL_TOL`].
fn rel_errors(got: &[Vec<f32>], want: &[Vec<f32>]) -> (Vec<f64>, Option<usize>) {
    let rel: Vec<f64> = (0..got.len().max(want.len()))
        .map(|i| match (got.get(i), want.get(i)) {
            (Some(a), Some(b)) => vec_diff(a, b).map_or(f64::INFINITY, |d| d.rel()),
            _ => f64::INFINITY,
        })
        .collect();
    let first_bad = rel.iter().position(|r| *r > REL_TOL as f64);
    (rel, first_bad)
}

pub fn compare(got: &Trace, want: &Trace) -> Comparison {
    let (hidden, first_bad_layer) = rel_errors(&got.hidden, &want.hidden);
    let (logits, first_bad_step) = rel_errors(&got.logits, &want.logits);
    let mut error = None;
    if want.logits.is_empty() || got.logits.len() != want.logits.len() {
        error = Some(format!(
            "{} logit vectors, the reference has {}",
            got.logits.len(),
            want.logits.len()
        ));
    } else if got.hidden.len() != want.hidden.len() {
        error = Some(format!(
            "{} hidden-state probes, the reference has {}",
            got.hidden.len(),
            want.hidden.len()
        ));
    }
    let worst = |v: &[f64]| v.iter().fold(0f64, |m, r| m.max(*r));
    let tokens_agree = match tokens_agree(&got.tokens, &want.tokens) {
        Ok(n) => n,
        Err(e) => {
            error.get_or_insert(e);
            0
        }
    };
    Comparison {
        worst_hidden_rel: worst(&hidden),
        first_bad_layer,
        worst_logit_rel: worst(&logits),
        first_bad_step,
        tokens_agree,
        error,
    }
}

/// Decode speed on `backend`: the prompt, then `steps` greedy tokens with the
/// device feeding each token back to itself (`Llm::greedy_pipelined`, the
/// path `kiln generate` uses). Returns (prefill tok/s, decode tok/s), best of `reps`.
pub fn bench(
    path: &std::path::Path,
    backend: &dyn Backend,
    prompt: &[u32],
    steps: usize,
    reps: usize,
    fused: bool,
) -> Result<(f64, f64), LoadError> {
    let opts = LlamaOptions {
        max_ctx: prompt.len() + steps + 1,
        prefill_chunk: prompt.len().max(2),
        fused,
        ..Default::default()
    };
    let (mut llm, _) = Llm::open(path, backend, &opts, &mut |_, _| true)?;
    let (mut pre, mut dec) = (0f64, 0f64);
    for _ in 0..reps.max(1) {
        llm.reset();
        let t0 = Instant::now();
        llm.feed(prompt)?;
        let mut first = None;
        let mut n = 0;
        llm.greedy_pipelined(steps, &mut |_| {
            first.get_or_insert_with(Instant::now);
            n += 1;
            Ok(true)
        })?;
        let t_first = first.unwrap_or_else(Instant::now);
        pre = pre.max(prompt.len() as f64 / (t_first - t0).as_secs_f64());
        dec = dec.max((n - 1) as f64 / t_first.elapsed().as_secs_f64().max(1e-9));
    }
    Ok((pre, dec))
}

/// GPU time per kernel of the fused graph's prefill of `prompt` as one
/// chunk (sized like [`bench`]'s): `Executable::profile` on the prefill
/// program ((kernel, seconds, launches), slowest first).
pub fn profile_prefill(
    path: &std::path::Path,
    backend: &dyn Backend,
    prompt: &[u32],
) -> Result<Vec<(String, f64, usize)>, LoadError> {
    let opts = LlamaOptions {
        max_ctx: prompt.len() + 2,
        prefill_chunk: prompt.len().max(2),
        fused: true,
        ..Default::default()
    };
    let (mut llm, _) = Llm::open(path, backend, &opts, &mut |_, _| true)?;
    let io = llm.model.prefill.clone();
    let mut ids = prompt.to_vec();
    ids.resize(io.tokens, 0);
    llm.exe
        .write(io.ids, &kiln::HostTensor::from_u32(&[io.tokens], &ids)?)?;
    if let Some(last) = io.last {
        let n = prompt.len().min(io.tokens).max(1) as u32;
        llm.exe
            .write(last, &kiln::HostTensor::from_u32(&[1], &[n - 1])?)?;
    }
    Ok(llm.exe.profile(io.program, &[0])?)
}

/// GPU time per kernel of one decode step (fused graph) after `prompt`, in a
/// context sized like [`bench`]'s: `Executable::profile` on the decode
/// program ((kernel, seconds, launches), slowest first).
pub fn profile_decode(
    path: &std::path::Path,
    backend: &dyn Backend,
    prompt: &[u32],
    steps: usize,
) -> Result<Vec<(String, f64, usize)>, LoadError> {
    let opts = LlamaOptions {
        max_ctx: prompt.len() + steps + 1,
        prefill_chunk: prompt.len().max(2),
        fused: true,
        ..Default::default()
    };
    let (mut llm, _) = Llm::open(path, backend, &opts, &mut |_, _| true)?;
    llm.feed(prompt)?;
    let pos = llm.tokens.len() as u32;
    Ok(llm.exe.profile(llm.model.decode.program, &[pos])?)
}
