//! Models: configuration from model files and graph builders.
//!
//! Llama-family decoders (Llama 2/3/3.x, Mistral with its sliding window,
//! Qwen2/2.5 with attention biases, Qwen3 with QK-norm, Gemma 3 with GeGLU,
//! post-norms, scaled embeddings and interleaved local/global layers,
//! Phi-3/3.5 with fused QKV and gate/up weights and LongRoPE,
//! SmolLM/SmolLM2, TinyLlama) share one builder ([`llama`]); what differs is
//! data in [`LlamaConfig`].

pub mod llama;
pub mod sd;
pub mod terrain;
pub mod terrain_post;
pub mod unet;

use crate::loader::LoadError;
use crate::loader::gguf::GgufFile;
use crate::ops::rope::{Llama3Scaling, RopeMode};

/// Hyper-parameters of a Llama-family decoder.
#[derive(Clone, Debug, PartialEq)]
pub struct LlamaConfig {
    pub arch: String,
    pub n_layers: usize,
    pub d_model: usize,
    pub n_heads: usize,
    pub n_kv_heads: usize,
    pub head_dim: usize,
    pub ffn_dim: usize,
    pub vocab: usize,
    /// The context length the model was trained for.
    pub train_ctx: usize,
    pub rope_base: f32,
    pub rope_mode: RopeMode,
    pub n_rot: usize,
    pub rope_scaling: Option<Llama3Scaling>,
    /// Per-frequency RoPE divisors in a `rope_freqs.weight` tensor (how
    /// llama.cpp's GGUF files carry Llama-3 scaling).
    pub rope_freqs: bool,
    pub rms_eps: f32,
    /// No separate `output.weight`: the LM head is the token embedding.
    pub tied_embeddings: bool,
    /// Q/K/V projections have biases (Qwen2).
    pub qkv_bias: bool,
    /// RMSNorm over each Q and K head before RoPE (Qwen3, Gemma 3):
    /// `attn_q_norm.weight` / `attn_k_norm.weight`, `[head_dim]`.
    pub qk_norm: bool,
    /// RMSNorm on the attention and FFN outputs before the residual adds
    /// (Gemma 3: `post_attention_norm`, `post_ffw_norm`).
    pub post_norms: bool,
    /// The gated FFN's activation on the gate.
    pub ffn_act: FfnAct,
    /// Token embeddings are multiplied by this (Gemma: √d_model).
    pub embd_scale: Option<f32>,
    /// Attention logits scale; `None`: 1/√head_dim.
    pub attn_scale: Option<f32>,
    /// Sliding-window attention: each query sees the last `sliding_window`
    /// keys (0: no window) on the layers [`LlamaConfig::is_local`] names.
    pub sliding_window: usize,
    /// With a window: every `global_every`-th layer (1-based) attends to
    /// all keys (Gemma 3: 6); 0 — every layer slides (Mistral).
    pub global_every: usize,
    /// RoPE base of the sliding-window layers when it differs (Gemma 3:
    /// 10 000 local, 1 000 000 global).
    pub rope_base_local: Option<f32>,
    /// Q, K and V in one `attn_qkv.weight` `[q_dim + 2·kv_dim, d]` (Phi-3).
    pub fused_qkv: bool,
    /// Gate and up in one `ffn_up.weight` `[2·ffn, d]`, gate first (Phi-3).
    pub fused_gate_up: bool,
    /// LongRoPE (Phi-3 128k, Phi-3.5): per-frequency divisors in
    /// `rope_factors_short.weight` / `rope_factors_long.weight`.
    pub long_rope: Option<LongRope>,
}

/// LongRoPE: the short factors for contexts up to `original_ctx`, the long
/// ones beyond — chosen once for a session by its context length, as
/// llama.cpp does (transformers switches per forward pass by the sequence
/// length, which agrees whenever a session fits the original context or a
/// pass is longer than it) — and cos/sin scaled by `attn_factor`, which on
/// fully-rotated heads equals scaling the attention logits by its square.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LongRope {
    pub original_ctx: usize,
    pub attn_factor: f32,
}

impl LongRope {
    /// The divisor tensor for a session of `max_ctx` tokens.
    pub fn factors(&self, max_ctx: usize) -> &'static str {
        if max_ctx > self.original_ctx {
            "rope_factors_long.weight"
        } else {
            "rope_factors_short.weight"
        }
    }
}

/// The activation of the gate in `act(gate) ⊙ up`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FfnAct {
    /// SwiGLU (Llama, Qwen, Mistral).
    #[default]
    Silu,
    /// GeGLU with GELU's tanh approximation (Gemma: `gelu_pytorch_tanh`).
    GeluTanh,
}

impl Default for LlamaConfig {
    fn default() -> Self {
        LlamaConfig {
            arch: "llama".into(),
            n_layers: 0,
            d_model: 0,
            n_heads: 0,
            n_kv_heads: 0,
            head_dim: 0,
            ffn_dim: 0,
            vocab: 0,
            train_ctx: 0,
            rope_base: 10000.0,
            rope_mode: RopeMode::Normal,
            n_rot: 0,
            rope_scaling: None,
            rope_freqs: false,
            rms_eps: 1e-5,
            tied_embeddings: false,
            qkv_bias: false,
            qk_norm: false,
            post_norms: false,
            ffn_act: FfnAct::Silu,
            embd_scale: None,
            attn_scale: None,
            sliding_window: 0,
            global_every: 0,
            rope_base_local: None,
            fused_qkv: false,
            fused_gate_up: false,
            long_rope: None,
        }
    }
}

/// Largest sliding window / layer pattern read from a file.
const MAX_WINDOW: usize = 1 << 24;

impl LlamaConfig {
    /// Does layer `l` attend over the sliding window?
    pub fn is_local(&self, l: usize) -> bool {
        self.sliding_window > 0
            && (self.global_every == 0 || !(l + 1).is_multiple_of(self.global_every))
    }

    /// What the Llama/Mistral/Qwen2 block does not have (LoRA training
    /// builds that block only).
    pub fn extensions(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        if self.qk_norm {
            v.push("QK-norm");
        }
        if self.post_norms {
            v.push("post-norms");
        }
        if self.ffn_act != FfnAct::Silu {
            v.push("GeGLU");
        }
        if self.embd_scale.is_some() {
            v.push("scaled embeddings");
        }
        if self.attn_scale.is_some() {
            v.push("a custom attention scale");
        }
        if self.sliding_window > 0 {
            v.push("sliding-window attention");
        }
        if self.fused_qkv || self.fused_gate_up {
            v.push("fused QKV / gate-up weights");
        }
        if self.long_rope.is_some() {
            v.push("LongRoPE");
        }
        v
    }

    /// Checks the window and LongRoPE fields read from a file.
    pub(crate) fn check_window(&self) -> Result<(), LoadError> {
        if self.sliding_window > MAX_WINDOW || self.global_every > MAX_WINDOW {
            return Err(LoadError::Corrupt(format!(
                "sliding window {} / pattern {} is past Kiln's limit of {MAX_WINDOW}",
                self.sliding_window, self.global_every
            )));
        }
        if let Some(l) = self.long_rope {
            if !(l.attn_factor.is_finite() && l.attn_factor > 0.0) {
                return Err(LoadError::Corrupt(format!(
                    "LongRoPE attention factor {} is not a positive number",
                    l.attn_factor
                )));
            }
            // The factor scales only the rotated dims: folding it into the
            // logits is exact only when every dim rotates.
            if l.attn_factor != 1.0 && self.n_rot != self.head_dim {
                return Err(LoadError::Corrupt(
                    "LongRoPE with an attention factor on partially rotated heads is not supported yet"
                        .into(),
                ));
            }
        }
        Ok(())
    }
}

/// Architectures the Llama builder runs, with the RoPE pairing their GGUF
/// weights expect (llama.cpp permutes Llama Q/K for interleaved pairs; Qwen2
/// keeps HF's half-split layout).
const ARCHS: [(&str, RopeMode); 6] = [
    ("llama", RopeMode::Normal),
    ("mistral", RopeMode::Normal),
    ("qwen2", RopeMode::Neox),
    ("qwen3", RopeMode::Neox),
    ("gemma3", RopeMode::Neox),
    ("phi3", RopeMode::Neox),
];

impl LlamaConfig {
    pub fn from_gguf(g: &GgufFile) -> Result<LlamaConfig, LoadError> {
        let arch = g.get_str("general.architecture")?.to_string();
        let rope_mode = ARCHS
            .iter()
            .find(|(a, _)| *a == arch)
            .map(|(_, m)| *m)
            .ok_or_else(|| LoadError::UnsupportedArchitecture(arch.clone()))?;
        let k = |s: &str| format!("{arch}.{s}");
        let d_model = g.get_u32(&k("embedding_length"))? as usize;
        let n_heads = g.get_u32(&k("attention.head_count"))? as usize;
        let n_kv_heads = match g.get(&k("attention.head_count_kv")) {
            Some(_) => g.get_u32(&k("attention.head_count_kv"))? as usize,
            None => n_heads,
        };
        if n_heads == 0
            || n_kv_heads == 0
            || !d_model.is_multiple_of(n_heads)
            || !n_heads.is_multiple_of(n_kv_heads)
        {
            return Err(LoadError::Corrupt(format!(
                "{n_heads} heads / {n_kv_heads} kv heads do not divide d_model {d_model}"
            )));
        }
        let head_dim = match g.get(&k("attention.key_length")) {
            Some(_) => g.get_u32(&k("attention.key_length"))? as usize,
            None => d_model / n_heads,
        };
        let embd = g.tensor("token_embd.weight")?;
        let vocab = embd.shape[0];
        let opt_f32 = |key: &str, default: f32| -> Result<f32, LoadError> {
            match g.get(key) {
                Some(_) => g.get_f32(key),
                None => Ok(default),
            }
        };
        let rope_scaling = match g.get(&k("rope.scaling.type")) {
            None => None,
            Some(_) => match g.get_str(&k("rope.scaling.type"))? {
                "none" => None,
                // Gemma 3 4B and up: on the global layers (see Layer).
                // A missing or zero factor means none, as llama.cpp reads it.
                "linear" => match opt_f32(&k("rope.scaling.factor"), 0.0)? {
                    0.0 => None,
                    f if f.is_finite() && f > 0.0 => Some(Llama3Scaling::linear(f)),
                    f => {
                        return Err(LoadError::Corrupt(format!(
                            "rope scaling factor {f} must be a positive number"
                        )));
                    }
                },
                other => {
                    return Err(LoadError::Corrupt(format!(
                        "rope scaling '{other}' is not supported yet"
                    )));
                }
            },
        };
        let gemma = arch == "gemma3";
        let phi3 = arch == "phi3";
        let c = LlamaConfig {
            n_layers: g.get_u32(&k("block_count"))? as usize,
            d_model,
            n_heads,
            n_kv_heads,
            head_dim,
            ffn_dim: g.get_u32(&k("feed_forward_length"))? as usize,
            vocab,
            train_ctx: g.get_u32(&k("context_length"))? as usize,
            rope_base: opt_f32(&k("rope.freq_base"), 10000.0)?,
            rope_mode,
            n_rot: match g.get(&k("rope.dimension_count")) {
                Some(_) => g.get_u32(&k("rope.dimension_count"))? as usize,
                None => head_dim,
            },
            rope_scaling,
            rope_freqs: g.tensor("rope_freqs.weight").is_ok(),
            rms_eps: opt_f32(&k("attention.layer_norm_rms_epsilon"), 1e-5)?,
            tied_embeddings: g.tensor("output.weight").is_err(),
            qkv_bias: g.tensor("blk.0.attn_q.bias").is_ok(),
            qk_norm: g.tensor("blk.0.attn_q_norm.weight").is_ok(),
            post_norms: g.tensor("blk.0.post_attention_norm.weight").is_ok(),
            // llama.cpp's Gemma 3 graph: GELU-tanh gate, embeddings × √d,
            // logits scaled by 1/√head_dim, or for the 27B (62 layers, as
            // llama.cpp tells it) by 1/√(d / heads) in integers (its
            // query_pre_attn_scalar, which no key carries), its window with every 6th
            // layer global (a fixed pattern there), local layers on a RoPE
            // base of 10 000 unless the file says. Only Gemma's window is
            // read: llama.cpp's llama and qwen2 graphs ignore a window key.
            ffn_act: if gemma {
                FfnAct::GeluTanh
            } else {
                FfnAct::Silu
            },
            embd_scale: gemma.then(|| (d_model as f32).sqrt()),
            attn_scale: (gemma && g.get_u32(&k("block_count"))? == 62)
                .then(|| 1.0 / ((d_model / n_heads.max(1)) as f32).sqrt()),
            // Phi-3's window is applied as transformers does (llama.cpp
            // turns it off for phi3).
            sliding_window: match g.get(&k("attention.sliding_window")) {
                Some(_) if gemma || phi3 => g.get_u32(&k("attention.sliding_window"))? as usize,
                _ => 0,
            },
            global_every: if gemma { 6 } else { 0 },
            rope_base_local: match g.get(&k("rope.freq_base_swa")) {
                Some(_) if gemma => Some(g.get_f32(&k("rope.freq_base_swa"))?),
                _ => gemma.then_some(10000.0),
            },
            fused_qkv: g.tensor("blk.0.attn_qkv.weight").is_ok(),
            fused_gate_up: phi3 && g.tensor("blk.0.ffn_gate.weight").is_err(),
            long_rope: match g.tensor("rope_factors_short.weight") {
                Err(_) => None,
                Ok(_) => Some(LongRope {
                    original_ctx: match g.get(&k("rope.scaling.original_context_length")) {
                        Some(_) => g.get_u32(&k("rope.scaling.original_context_length"))? as usize,
                        None => g.get_u32(&k("context_length"))? as usize,
                    },
                    attn_factor: opt_f32(&k("rope.scaling.attn_factor"), 1.0)?,
                }),
            },
            arch,
        };
        c.check_window()?;
        Ok(c)
    }
}
