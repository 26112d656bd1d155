//! The CLIP text encoder (`CLIPTextModel`, transformers' names under
//! `text_model.`): token + position embeddings, pre-LN transformer layers
//! with causal self-attention and a quick-GELU or GELU MLP, final LayerNorm.
//! The output is `last_hidden_state` `[B, T, D]`, what diffusers' pipelines
//! condition the UNet on (SD 2.x files already hold the penultimate-layer
//! model: their config has one layer fewer).

use super::{Builder, ClipConfig, SdGraph, SdOptions};
use crate::dtype::DType;
use crate::error::{KilnError, Result};
use crate::graph::TensorId;
use crate::model::unet::WeightKind;

/// The encoder's graph for `batch` prompts of `tokens` ids each.
pub struct ClipGraph {
    pub net: SdGraph,
    /// `[batch·tokens]` u32 token ids.
    pub ids: TensorId,
    /// `[batch·tokens, hidden]` (row-major `[batch, tokens, hidden]`).
    pub hidden: TensorId,
    pub batch: usize,
    pub tokens: usize,
}

pub fn build(cfg: &ClipConfig, batch: usize, tokens: usize, opts: &SdOptions) -> Result<ClipGraph> {
    if batch == 0 || tokens == 0 || tokens > cfg.max_positions {
        return Err(KilnError::BadInput {
            name: "text_encoder".into(),
            detail: format!(
                "{batch} prompts of {tokens} tokens (1 to {} tokens)",
                cfg.max_positions
            ),
        });
    }
    let mut b = Builder::new(opts);
    let (d, h) = (cfg.hidden, cfg.heads);
    let hd = d / h;
    let rows = batch * tokens;
    let ids = b.g.input("ids", &[rows], DType::U32)?;
    let p = "text_model";
    // Embeddings stay f32 (a gather per token).
    let tok = b.weight(
        &format!("{p}.embeddings.token_embedding.weight"),
        &[cfg.vocab, d],
        WeightKind::Vector,
    )?;
    let pos = b.weight(
        &format!("{p}.embeddings.position_embedding.weight"),
        &[cfg.max_positions, d],
        WeightKind::Vector,
    )?;
    let pos = if tokens < cfg.max_positions {
        b.g.slice_rows(pos, 0, tokens)?
    } else {
        pos
    };
    let x = b.g.get_rows(tok, ids)?;
    let x = b.g.reshape(x, &[batch, tokens, d])?;
    let x = b.g.add(x, pos)?;
    let mut x = b.g.reshape(x, &[rows, d])?;
    b.probe("embeddings", x)?;
    for l in 0..cfg.layers {
        let n = format!("{p}.encoder.layers.{l}");
        let a = b.layer_norm(x, &format!("{n}.layer_norm1"), d, cfg.eps)?;
        let mut qkv = Vec::new();
        for proj in ["q_proj", "k_proj", "v_proj"] {
            let y = b.linear(a, &format!("{n}.self_attn.{proj}"), d, d, true)?;
            qkv.push(b.g.reshape(y, &[rows, h, hd])?);
        }
        let o =
            b.g.causal_attention(qkv[0], qkv[1], qkv[2], tokens, 1.0 / (hd as f32).sqrt())?;
        let o = b.g.reshape(o, &[rows, d])?;
        let o = b.linear(o, &format!("{n}.self_attn.out_proj"), d, d, true)?;
        x = b.g.add(x, o)?;
        let m = b.layer_norm(x, &format!("{n}.layer_norm2"), d, cfg.eps)?;
        let m = b.linear(m, &format!("{n}.mlp.fc1"), d, cfg.intermediate, true)?;
        let m = if cfg.quick_gelu {
            b.g.quick_gelu(m)?
        } else {
            b.g.gelu_erf(m)?
        };
        let m = b.linear(m, &format!("{n}.mlp.fc2"), cfg.intermediate, d, true)?;
        x = b.g.add(x, m)?;
        b.probe(&format!("layers.{l}"), x)?;
    }
    let hidden = b.layer_norm(x, &format!("{p}.final_layer_norm"), d, cfg.eps)?;
    b.g.mark_output(hidden)?;
    Ok(ClipGraph {
        net: b.finish(),
        ids,
        hidden,
        batch,
        tokens,
    })
}
