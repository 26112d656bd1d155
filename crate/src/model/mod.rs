//! Models: configuration from model files and graph builders.
//!
//! Llama-family decoders (Llama 2/3/3.x, Mistral, Qwen2/2.5 with attention
//! biases, SmolLM/SmolLM2, TinyLlama) share one builder ([`llama`]).

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
}

/// Architectures the Llama builder runs, with the RoPE pairing their GGUF
/// weights expect (llama.cpp permutes Llama Q/K for interleaved pairs; Qwen2
/// keeps HF's half-split layout).
const ARCHS: [(&str, RopeMode); 3] = [
    ("llama", RopeMode::Normal),
    ("mistral", RopeMode::Normal),
    ("qwen2", RopeMode::Neox),
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
                other => {
                    return Err(LoadError::Corrupt(format!(
                        "rope scaling '{other}' is not supported yet"
                    )));
                }
            },
        };
        Ok(LlamaConfig {
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
            arch,
        })
    }
}
