//! Hugging Face model folders: `config.json`, `model.safetensors` or sharded
//! `model.safetensors.index.json`, `tokenizer.json`, `tokenizer_config.json`.
//!
//! Headers are read with the `safetensors` crate (offsets validated against
//! each file's size before anything is allocated); tensor data is read one
//! tensor at a time with a seek, so a model is never held in memory whole.
//! 1-D tensors (norms, biases) become f32; matrices keep f32/f16/bf16, or are
//! quantized on load (Q8_0, Q4_0, Q4_K, …) when asked and their rows are
//! whole blocks.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::{LoadError, WeightSource};
use crate::dtype::DType;
use crate::host::HostTensor;
use crate::model::{FfnAct, LlamaConfig, LongRope};
use crate::ops::rope::{Llama3Scaling, RopeMode};
use crate::quant;

struct Entry {
    file: usize,
    dtype: DType,
    shape: Vec<usize>,
    offset: u64,
    bytes: u64,
}

/// What a Hugging Face model is, without its weight data: `config.json`,
/// `tokenizer_config.json` and every shard's tensor table. Shared by the
/// folder reader below and the streaming loader (the browser).
pub struct HfModel {
    pub config: Value,
    tokenizer_config: Option<Value>,
    tensors: HashMap<String, Entry>,
    quantize: Option<DType>,
    /// Gemma stores RMSNorm weights as `w` for `x̂·(1 + w)`: `true` adds
    /// the 1 on load (as llama.cpp's converter does), so every norm is `x̂·w`.
    gemma: bool,
    /// Phi-3: fused tensor names, and LongRoPE factors from `config.json`
    /// served as the tensors llama.cpp's GGUF has.
    phi3: bool,
}

/// A model folder on disk.
pub struct HfFolder {
    pub dir: PathBuf,
    files: Vec<Box<dyn ReadSeek>>,
    pub model: HfModel,
}

/// A shard's bytes: a file, or memory (a folder handed over by the browser).
pub trait ReadSeek: Read + Seek {}
impl<T: Read + Seek> ReadSeek for T {}

impl std::ops::Deref for HfFolder {
    type Target = HfModel;
    fn deref(&self) -> &HfModel {
        &self.model
    }
}

fn parse_json(what: &str, bytes: &[u8]) -> Result<Value, LoadError> {
    serde_json::from_slice(bytes).map_err(|e| LoadError::Corrupt(format!("{what}: {e}")))
}

/// The shard files named by `model.safetensors.index.json`, sorted.
pub fn index_shards(index: &[u8]) -> Result<Vec<String>, LoadError> {
    let idx = parse_json("model.safetensors.index.json", index)?;
    let map = idx["weight_map"]
        .as_object()
        .ok_or_else(|| LoadError::Corrupt("index has no weight_map".into()))?;
    let mut v: Vec<String> = map
        .values()
        .filter_map(|f| f.as_str().map(String::from))
        .collect();
    v.sort();
    v.dedup();
    Ok(v)
}

/// The safetensors header length from a file's first 8 bytes, checked
/// against the file size.
pub fn header_len(shard: &str, first8: [u8; 8], len: u64) -> Result<u64, LoadError> {
    let n = u64::from_le_bytes(first8);
    if n.saturating_add(8) > len || n > 100 << 20 {
        return Err(LoadError::Truncated {
            what: format!("{shard} header"),
            need: n.saturating_add(8),
            len,
        });
    }
    Ok(n)
}

/// The tensors a safetensors header lists: (name, info, byte offset in
/// the file, bytes). `head` is the JSON after the 8 length bytes; the crate's
/// Metadata validates dtypes, shapes and that the offsets tile the data, and
/// each tensor's end is checked against the file size `len` here (the data
/// is not read).
pub fn header_tensors(
    what: &str,
    head: &[u8],
    len: u64,
) -> Result<Vec<(String, safetensors::tensor::TensorInfo, u64, u64)>, LoadError> {
    let n = head.len() as u64;
    let meta: safetensors::tensor::Metadata =
        serde_json::from_slice(head).map_err(|e| LoadError::Corrupt(format!("{what}: {e}")))?;
    let mut out = Vec::new();
    for (name, info) in meta.tensors() {
        let (a, b) = info.data_offsets;
        let offset = 8 + n + a as u64;
        let bytes = (b - a) as u64;
        if offset + bytes > len {
            return Err(LoadError::Truncated {
                what: format!("tensor '{name}' in {what}"),
                need: offset + bytes,
                len,
            });
        }
        out.push((name, info.clone(), offset, bytes));
    }
    Ok(out)
}

/// The HF name of a GGUF tensor name (`gemma`: Gemma 3's four block norms;
/// `phi3`: its fused projections).
fn hf_name(gguf: &str, gemma: bool, phi3: bool) -> Option<String> {
    let fixed = match gguf {
        "token_embd.weight" => Some("model.embed_tokens.weight"),
        "output_norm.weight" => Some("model.norm.weight"),
        "output.weight" => Some("lm_head.weight"),
        _ => None,
    };
    if let Some(f) = fixed {
        return Some(f.into());
    }
    let rest = gguf.strip_prefix("blk.")?;
    let (layer, part) = rest.split_once('.')?;
    let (module, kind) = part.rsplit_once('.')?;
    let hf = match module {
        "attn_norm" => "input_layernorm",
        "attn_q" => "self_attn.q_proj",
        "attn_k" => "self_attn.k_proj",
        "attn_v" => "self_attn.v_proj",
        "attn_output" => "self_attn.o_proj",
        "attn_qkv" if phi3 => "self_attn.qkv_proj",
        "ffn_up" if phi3 => "mlp.gate_up_proj",
        "attn_q_norm" => "self_attn.q_norm",
        "attn_k_norm" => "self_attn.k_norm",
        "ffn_norm" if gemma => "pre_feedforward_layernorm",
        "post_attention_norm" if gemma => "post_attention_layernorm",
        "post_ffw_norm" if gemma => "post_feedforward_layernorm",
        "ffn_norm" => "post_attention_layernorm",
        "ffn_gate" => "mlp.gate_proj",
        "ffn_up" => "mlp.up_proj",
        "ffn_down" => "mlp.down_proj",
        _ => return None,
    };
    Some(format!("model.layers.{layer}.{hf}.{kind}"))
}

fn st_dtype(name: &str, d: safetensors::Dtype) -> Result<DType, LoadError> {
    match d {
        safetensors::Dtype::F32 => Ok(DType::F32),
        safetensors::Dtype::F16 => Ok(DType::F16),
        safetensors::Dtype::BF16 => Ok(DType::BF16),
        other => Err(LoadError::Corrupt(format!(
            "tensor '{name}' is {other:?}; Kiln reads F32, F16 and BF16 safetensors"
        ))),
    }
}

impl HfFolder {
    /// Opens a model folder; `quantize` re-encodes weight matrices on load.
    pub fn open(dir: &Path, quantize: Option<DType>) -> Result<HfFolder, LoadError> {
        let config = std::fs::read(dir.join("config.json"))
            .map_err(|e| LoadError::Io(format!("{}: {e}", dir.join("config.json").display())))?;
        let tc = std::fs::read(dir.join("tokenizer_config.json")).ok();
        let model = HfModel::new(&config, tc.as_deref(), quantize)?;
        let index = dir.join("model.safetensors.index.json");
        let shards: Vec<String> = if index.exists() {
            index_shards(&std::fs::read(&index)?)?
        } else {
            vec!["model.safetensors".into()]
        };
        let mut files: Vec<(String, Box<dyn ReadSeek>, u64)> = Vec::new();
        for shard in shards {
            let path = dir.join(&shard);
            let f =
                File::open(&path).map_err(|e| LoadError::Io(format!("{}: {e}", path.display())))?;
            let len = f.metadata()?.len();
            files.push((shard, Box::new(f), len));
        }
        let mut folder = HfFolder::from_shards(model, files)?;
        folder.dir = dir.to_path_buf();
        Ok(folder)
    }

    /// A folder already in memory: `config.json`, `tokenizer_config.json`
    /// (if any) and the shards as `(file name, bytes)` in index order.
    pub fn from_memory(
        config: &[u8],
        tokenizer_config: Option<&[u8]>,
        shards: Vec<(String, Vec<u8>)>,
    ) -> Result<HfFolder, LoadError> {
        let model = HfModel::new(config, tokenizer_config, None)?;
        let files = shards
            .into_iter()
            .map(|(name, bytes)| {
                let len = bytes.len() as u64;
                let r: Box<dyn ReadSeek> = Box::new(std::io::Cursor::new(bytes));
                (name, r, len)
            })
            .collect();
        HfFolder::from_shards(model, files)
    }

    fn from_shards(
        mut model: HfModel,
        shards: Vec<(String, Box<dyn ReadSeek>, u64)>,
    ) -> Result<HfFolder, LoadError> {
        let mut files = Vec::new();
        for (i, (shard, mut f, len)) in shards.into_iter().enumerate() {
            let mut first8 = [0u8; 8];
            f.read_exact(&mut first8)
                .map_err(|_| LoadError::Truncated {
                    what: format!("{shard} header length"),
                    need: 8,
                    len,
                })?;
            let n = header_len(&shard, first8, len)?;
            let mut head = vec![0u8; n as usize];
            f.read_exact(&mut head)?;
            model.add_shard(i, &shard, &head, len)?;
            files.push(f);
        }
        Ok(HfFolder {
            dir: PathBuf::new(),
            files,
            model,
        })
    }
}

impl HfModel {
    /// From `config.json` (and `tokenizer_config.json` if there is one);
    /// `quantize` re-encodes weight matrices on load.
    pub fn new(
        config: &[u8],
        tokenizer_config: Option<&[u8]>,
        quantize: Option<DType>,
    ) -> Result<HfModel, LoadError> {
        if let Some(q) = quantize
            && !q.is_quantized()
            && !matches!(q, DType::F16 | DType::BF16 | DType::F32)
        {
            return Err(LoadError::Corrupt(format!(
                "cannot quantize weights to {q}"
            )));
        }
        let config = parse_json("config.json", config)?;
        Ok(HfModel {
            gemma: config["model_type"] == "gemma3_text",
            phi3: config["model_type"] == "phi3",
            config,
            tokenizer_config: tokenizer_config
                .map(|t| parse_json("tokenizer_config.json", t))
                .transpose()?,
            tensors: HashMap::new(),
            quantize,
        })
    }

    /// Adds shard number `file` (its position in the index; headers may
    /// arrive in any order and a shard may hold no tensors): `head` is its
    /// JSON header (after the 8 length bytes), `len` the file size. The
    /// crate's Metadata validates dtypes, shapes and that the offsets tile the
    /// data; the data's end is checked against the file size here (the data
    /// is not read).
    pub fn add_shard(
        &mut self,
        file: usize,
        shard: &str,
        head: &[u8],
        len: u64,
    ) -> Result<(), LoadError> {
        for (name, info, offset, bytes) in header_tensors(shard, head, len)? {
            let entry = Entry {
                file,
                dtype: st_dtype(&name, info.dtype)?,
                shape: info.shape,
                offset,
                bytes,
            };
            if self.tensors.insert(name.clone(), entry).is_some() {
                return Err(LoadError::Corrupt(format!(
                    "tensor '{name}' is in two shards"
                )));
            }
        }
        Ok(())
    }

    /// The HF name of GGUF-named tensor `gguf`, if the folder has it.
    pub fn hf_name_of(&self, gguf: &str) -> Result<String, LoadError> {
        self.entry(gguf).map(|(hf, _)| hf.to_string())
    }

    /// Every tensor's HF name, sorted.
    pub fn tensor_names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.tensors.keys().cloned().collect();
        v.sort();
        v
    }

    /// Where GGUF-named tensor `gguf` lies: (shard index, offset, bytes).
    pub fn location(&self, gguf: &str) -> Result<(usize, u64, u64), LoadError> {
        let (_, e) = self.entry(gguf)?;
        Ok((e.file, e.offset, e.bytes))
    }

    /// Tensors that `config.json` holds rather than a shard: Phi-3's
    /// LongRoPE factors, under the names llama.cpp's GGUF gives them.
    pub fn virtual_tensor(&self, gguf: &str) -> Option<Result<HostTensor, LoadError>> {
        let key = match gguf {
            "rope_factors_short.weight" => "short_factor",
            "rope_factors_long.weight" => "long_factor",
            _ => return None,
        };
        if !self.phi3 {
            return None;
        }
        let c = &self.config;
        let list = [&c["rope_scaling"], &c["rope_parameters"]]
            .into_iter()
            .find_map(|s| s[key].as_array());
        Some(match list {
            None => Err(LoadError::MissingKey(format!(
                "config.json: rope scaling {key}"
            ))),
            Some(v) => v
                .iter()
                .map(|x| x.as_f64().map(|f| f as f32))
                .collect::<Option<Vec<f32>>>()
                .ok_or_else(|| {
                    LoadError::Corrupt(format!("config.json: {key} is not a list of numbers"))
                })
                .and_then(|f| Ok(HostTensor::from_f32(&[f.len()], DType::F32, &f)?)),
        })
    }

    /// Shape and dtype of `gguf` as it will be uploaded.
    pub fn info(&self, gguf: &str) -> Result<(Vec<usize>, DType), LoadError> {
        if let Some(t) = self.virtual_tensor(gguf) {
            let t = t?;
            return Ok((t.shape, t.dtype));
        }
        let (_, e) = self.entry(gguf)?;
        Ok((e.shape.clone(), self.target(e)))
    }

    /// The tensor `gguf` from its raw bytes, converted or quantized as needed.
    pub fn convert(&self, gguf: &str, data: Vec<u8>) -> Result<HostTensor, LoadError> {
        let (hf, e) = self.entry(gguf)?;
        let target = self.target(e);
        let t = HostTensor::from_bytes(&e.shape, e.dtype, data)
            .map_err(|err| LoadError::Corrupt(format!("tensor '{hf}': {err}")))?;
        let shift = self.gemma && hf.ends_with("norm.weight");
        if target == e.dtype && !shift {
            return Ok(t);
        }
        let mut values = t.to_f32()?;
        if shift {
            values.iter_mut().for_each(|v| *v += 1.0);
        }
        let out = quant::quantize_rows(target, &values, *e.shape.last().unwrap_or(&1))?;
        Ok(HostTensor::from_bytes(&e.shape, target, out)?)
    }

    /// The tokenizer from `tokenizer.json`, with BOS/EOS from `config.json`
    /// where it names them.
    pub fn tokenizer(&self, json: &[u8]) -> Result<crate::tokenizer::Tokenizer, LoadError> {
        let tok_err = |e: crate::tokenizer::TokenizerError| LoadError::Tokenizer(e.to_string());
        let tokenizer = crate::tokenizer::Tokenizer::from_hf_json(json).map_err(tok_err)?;
        let bos = self.special_ids("bos_token_id").first().copied();
        let eos = self.special_ids("eos_token_id").first().copied();
        match (bos, eos) {
            (None, None) => Ok(tokenizer),
            (b, e) => {
                let (b, e) = (b.or(tokenizer.bos()), e.or(tokenizer.eos()));
                tokenizer.with_bos_eos(b, e).map_err(tok_err)
            }
        }
    }

    fn entry(&self, gguf: &str) -> Result<(&str, &Entry), LoadError> {
        let hf = hf_name(gguf, self.gemma, self.phi3)
            .ok_or_else(|| LoadError::MissingTensor(gguf.into()))?;
        self.tensors
            .get_key_value(&hf)
            .map(|(k, v)| (k.as_str(), v))
            .ok_or(LoadError::MissingTensor(hf))
    }

    fn target(&self, e: &Entry) -> DType {
        match (e.shape.len(), self.quantize) {
            (1, _) => DType::F32,
            (_, Some(q)) if e.shape.last().is_some_and(|k| k % q.block_size() == 0) => q,
            _ => e.dtype,
        }
    }

    /// The model's hyper-parameters from `config.json`.
    pub fn llama_config(&self) -> Result<LlamaConfig, LoadError> {
        let c = &self.config;
        let model_type = c["model_type"].as_str().unwrap_or("").to_string();
        // GGUF's architecture names.
        let arch = match model_type.as_str() {
            "llama" | "mistral" | "qwen2" | "qwen3" | "phi3" => model_type.clone(),
            "gemma3_text" => "gemma3".into(),
            _ => return Err(LoadError::UnsupportedArchitecture(model_type)),
        };
        let gemma = self.gemma;
        if gemma {
            for k in ["attn_logit_softcapping", "final_logit_softcapping"] {
                if !c[k].is_null() {
                    return Err(LoadError::Corrupt(format!(
                        "config.json: {k} is not supported yet"
                    )));
                }
            }
            let act = c["hidden_activation"]
                .as_str()
                .unwrap_or("gelu_pytorch_tanh");
            if act != "gelu_pytorch_tanh" {
                return Err(LoadError::Corrupt(format!(
                    "config.json: hidden_activation '{act}' is not supported (gelu_pytorch_tanh is)"
                )));
            }
        }
        let num = |k: &str| -> Result<usize, LoadError> {
            c[k].as_u64()
                .map(|v| v as usize)
                .ok_or_else(|| LoadError::MissingKey(format!("config.json: {k}")))
        };
        let d_model = num("hidden_size")?;
        let n_heads = num("num_attention_heads")?;
        let n_kv_heads = num("num_key_value_heads").unwrap_or(n_heads);
        let head_dim = num("head_dim").unwrap_or(d_model / n_heads.max(1));
        // transformers ≥ 5 writes `rope_parameters` (theta and scaling
        // together; Gemma 3 one set per layer type); older configs
        // `rope_theta` and `rope_scaling` (Gemma 3: `rope_local_base_freq`).
        let all = c.get("rope_parameters").filter(|v| v.is_object());
        let (params, local) = match all {
            Some(p) if p.get("full_attention").is_some() => {
                (p.get("full_attention"), p.get("sliding_attention"))
            }
            p => (p, None),
        };
        // Gemma3TextConfig's default local base is 10 000 (so its local
        // layers never take the global base or its scaling).
        let rope_base_local = match local.and_then(|l| l["rope_theta"].as_f64()) {
            Some(t) => Some(t as f32),
            None => c["rope_local_base_freq"]
                .as_f64()
                .map(|t| t as f32)
                .or(self.gemma.then_some(10000.0)),
        };
        let rope_theta = c["rope_theta"]
            .as_f64()
            .or_else(|| params.and_then(|p| p["rope_theta"].as_f64()))
            .unwrap_or(10000.0) as f32;
        let scaling = c.get("rope_scaling").filter(|v| !v.is_null()).or(params);
        let mut long_rope = None;
        let rope_scaling = match scaling {
            None => None,
            Some(s) => match s["rope_type"]
                .as_str()
                .or(s["type"].as_str())
                .unwrap_or("default")
            {
                "default" => None,
                // transformers' _compute_longrope_parameters: the original
                // context from the config (or the scaling entry), the
                // attention factor given or √(1 + ln f / ln orig) with
                // f = max_position_embeddings / orig (1 when f ≤ 1).
                "longrope" => {
                    let orig = c["original_max_position_embeddings"]
                        .as_u64()
                        .or(s["original_max_position_embeddings"].as_u64())
                        .ok_or_else(|| {
                            LoadError::MissingKey(
                                "config.json: original_max_position_embeddings".into(),
                            )
                        })? as usize;
                    let f = num("max_position_embeddings")? as f64 / orig.max(1) as f64;
                    let attn_factor = match s["attention_factor"].as_f64() {
                        Some(a) => a,
                        None if f <= 1.0 => 1.0,
                        None => (1.0 + f.ln() / (orig.max(2) as f64).ln()).sqrt(),
                    };
                    long_rope = Some(LongRope {
                        original_ctx: orig,
                        attn_factor: attn_factor as f32,
                    });
                    None
                }
                "linear" => match s["factor"].as_f64() {
                    Some(f) if f.is_finite() && f > 0.0 => Some(Llama3Scaling::linear(f as f32)),
                    _ => {
                        return Err(LoadError::Corrupt(
                            "config.json: linear rope scaling needs a positive factor".into(),
                        ));
                    }
                },
                "llama3" => {
                    let f = |k: &str| {
                        s[k].as_f64()
                            .map(|v| v as f32)
                            .ok_or_else(|| LoadError::MissingKey(format!("rope scaling: {k}")))
                    };
                    Some(Llama3Scaling {
                        factor: f("factor")?,
                        low_freq_factor: f("low_freq_factor")?,
                        high_freq_factor: f("high_freq_factor")?,
                        original_context: f("original_max_position_embeddings")? as u32,
                    })
                }
                ty => {
                    return Err(LoadError::Corrupt(format!(
                        "rope scaling '{ty}' is not supported yet"
                    )));
                }
            },
        };
        let n_layers = num("num_hidden_layers")?;
        // The window: Mistral's slides on every layer; Gemma 3's on the
        // layers `layer_types` calls sliding, which must repeat with one
        // global layer every `global_every` (llama.cpp's GGUF has no other).
        let sliding_window = c["sliding_window"].as_u64().unwrap_or(0) as usize;
        let global_every = match (gemma, c["layer_types"].as_array()) {
            (false, _) => 0,
            (true, None) => c["sliding_window_pattern"].as_u64().unwrap_or(6) as usize,
            (true, Some(types)) => {
                let every = types
                    .iter()
                    .position(|t| t == "full_attention")
                    .map_or(0, |i| i + 1);
                let fits = types.len() == n_layers
                    && types.iter().enumerate().all(|(l, t)| {
                        let global = every > 0 && (l + 1) % every == 0;
                        *t == if global {
                            "full_attention"
                        } else {
                            "sliding_attention"
                        }
                    });
                if !fits {
                    return Err(LoadError::Corrupt(
                        "config.json: layer_types is not a repeating sliding…full pattern".into(),
                    ));
                }
                every
            }
        };
        let c = LlamaConfig {
            n_layers,
            d_model,
            n_heads,
            n_kv_heads,
            head_dim,
            ffn_dim: num("intermediate_size")?,
            vocab: num("vocab_size")?,
            train_ctx: num("max_position_embeddings").unwrap_or(4096),
            rope_base: rope_theta,
            rope_mode: RopeMode::Neox,
            n_rot: (head_dim as f64
                * c["partial_rotary_factor"]
                    .as_f64()
                    .or_else(|| params.and_then(|p| p["partial_rotary_factor"].as_f64()))
                    .unwrap_or(1.0)) as usize,
            rope_scaling,
            rope_freqs: false,
            rms_eps: c["rms_norm_eps"].as_f64().unwrap_or(1e-6) as f32,
            tied_embeddings: !self.tensors.contains_key("lm_head.weight"),
            qkv_bias: arch == "qwen2" || c["attention_bias"].as_bool().unwrap_or(false),
            qk_norm: self
                .tensors
                .contains_key("model.layers.0.self_attn.q_norm.weight"),
            post_norms: gemma,
            ffn_act: if gemma {
                FfnAct::GeluTanh
            } else {
                FfnAct::Silu
            },
            embd_scale: gemma.then(|| (d_model as f32).sqrt()),
            attn_scale: match c["query_pre_attn_scalar"].as_f64() {
                Some(s) if gemma && s > 0.0 => Some((1.0 / s.sqrt()) as f32),
                _ => None,
            },
            sliding_window: if matches!(arch.as_str(), "mistral" | "gemma3" | "phi3") {
                sliding_window
            } else {
                0
            },
            global_every,
            rope_base_local,
            fused_qkv: self
                .tensors
                .contains_key("model.layers.0.self_attn.qkv_proj.weight"),
            fused_gate_up: self
                .tensors
                .contains_key("model.layers.0.mlp.gate_up_proj.weight"),
            long_rope,
            arch,
        };
        c.check_window()?;
        Ok(c)
    }

    /// `tokenizer_config.json`, if the folder has one.
    pub fn tokenizer_config(&self) -> Option<&Value> {
        self.tokenizer_config.as_ref()
    }

    /// `tokenizer_config.json`'s chat template, if any.
    pub fn chat_template(&self) -> Option<String> {
        let tc = self.tokenizer_config.as_ref()?;
        match &tc["chat_template"] {
            Value::String(s) => Some(s.clone()),
            Value::Array(list) => list
                .iter()
                .find(|t| t["name"] == "default")
                .or(list.first())
                .and_then(|t| t["template"].as_str().map(String::from)),
            _ => None,
        }
    }

    /// Token ids from `config.json` (`bos_token_id`, `eos_token_id` — an id or a list).
    pub fn special_ids(&self, key: &str) -> Vec<u32> {
        match &self.config[key] {
            Value::Number(n) => n.as_u64().map(|v| vec![v as u32]).unwrap_or_default(),
            Value::Array(a) => a
                .iter()
                .filter_map(|v| v.as_u64().map(|v| v as u32))
                .collect(),
            _ => Vec::new(),
        }
    }
}

impl WeightSource for HfFolder {
    fn info(&self, name: &str) -> Result<(Vec<usize>, DType), LoadError> {
        self.model.info(name)
    }

    fn read(&mut self, name: &str) -> Result<HostTensor, LoadError> {
        if let Some(t) = self.model.virtual_tensor(name) {
            return t;
        }
        let (file, offset, bytes) = self.model.location(name)?;
        let f = &mut self.files[file];
        f.seek(SeekFrom::Start(offset))?;
        let mut data = vec![0u8; bytes as usize];
        f.read_exact(&mut data)?;
        self.model.convert(name, data)
    }
}
