//! diffusers' `UNet2DConditionModel` on Kiln's graph: the time embedding,
//! `conv_in`, down blocks (ResNets, `Transformer2DModel`s for the
//! cross-attention blocks, a stride-2 conv), the cross-attention mid block,
//! up blocks over the skip connections (ResNets, transformers, nearest 2× +
//! conv), `conv_norm_out`, SiLU, `conv_out`. Parameter names are diffusers'.
//!
//! A `BasicTransformerBlock` is LayerNorm → self-attention (stacked
//! `to_q|to_k|to_v`, one `spatial_attention`) → LayerNorm → cross-attention
//! over the text (`to_q` of the image, stacked `to_k|to_v` of the text, one
//! `cross_attention`) → LayerNorm → GEGLU feed-forward, each with a residual.
//! `upcast_attention` changes nothing here: attention runs in f32.

use super::{Builder, SdGraph, SdOptions, Unet2dConfig};
use crate::dtype::DType;
use crate::error::{KilnError, Result};
use crate::graph::TensorId;
use crate::ops::timestep::TimestepEmbed;

/// The UNet's graph for a fixed batch, latent size and text length.
pub struct UnetGraph {
    pub net: SdGraph,
    /// `[B, H, W, C]` latents (NHWC).
    pub sample: TensorId,
    /// `[B]` timesteps.
    pub timestep: TensorId,
    /// `[B·T, D]` text hidden states (`encoder_hidden_states`).
    pub context: TensorId,
    /// `[B, H, W, C]` model output (noise, v or x0 per the scheduler).
    pub output: TensorId,
    pub batch: usize,
    pub size: (usize, usize),
    pub text_tokens: usize,
}

struct Unet<'a, 'b> {
    b: Builder<'b>,
    cfg: &'a Unet2dConfig,
    emb: TensorId,
    context: TensorId,
    batch: usize,
    text_tokens: usize,
}

impl Unet<'_, '_> {
    fn resnet(&mut self, x: TensorId, name: &str, cin: usize, cout: usize) -> Result<TensorId> {
        let temb = Some((self.emb, self.cfg.time_embed_dim));
        let (g, e) = (self.cfg.groups, self.cfg.eps);
        self.b.resnet(x, temb, name, cin, cout, g, e)
    }

    /// `Transformer2DModel` (continuous input) with `depth` blocks.
    fn transformer(
        &mut self,
        x: TensorId,
        name: &str,
        c: usize,
        heads: usize,
        depth: usize,
    ) -> Result<TensorId> {
        let [bsz, h, w, _] = self.b.shape(x)?[..] else {
            return Err(KilnError::BadInput {
                name: name.into(),
                detail: "transformer input must be 4-D".into(),
            });
        };
        let tokens = h * w;
        let rows = bsz * tokens;
        let b = &mut self.b;
        let n = b.group_norm(x, &format!("{name}.norm"), c, self.cfg.groups, 1e-6, false)?;
        let mut t = if self.cfg.use_linear_projection {
            let n = b.g.reshape(n, &[rows, c])?;
            b.linear(n, &format!("{name}.proj_in"), c, c, true)?
        } else {
            let p = b.conv(n, &format!("{name}.proj_in"), c, c, 1, 1, None)?;
            b.g.reshape(p, &[rows, c])?
        };
        let dctx = self.cfg.cross_attention_dim;
        for k in 0..depth {
            let blk = format!("{name}.transformer_blocks.{k}");
            // Self-attention.
            let a = b.layer_norm(t, &format!("{blk}.norm1"), c, 1e-5)?;
            let qkv: Vec<String> = ["to_q", "to_k", "to_v"]
                .iter()
                .map(|p| format!("{blk}.attn1.{p}"))
                .collect();
            let qkv = b.linear_of(a, &qkv, c, 3 * c, false)?;
            let qkv = b.g.reshape(qkv, &[bsz, tokens, 3 * c])?;
            let op = crate::ops::spatial_attention::SpatialAttention {
                heads,
                legacy: false,
            };
            let o = b.g.spatial_attention(qkv, op)?;
            let o = b.g.reshape(o, &[rows, c])?;
            let o = b.linear(o, &format!("{blk}.attn1.to_out.0"), c, c, true)?;
            t = b.g.add(t, o)?;
            // Cross-attention over the text.
            let a = b.layer_norm(t, &format!("{blk}.norm2"), c, 1e-5)?;
            let q = b.linear(a, &format!("{blk}.attn2.to_q"), c, c, false)?;
            let q = b.g.reshape(q, &[bsz, tokens, c])?;
            let kv: Vec<String> = ["to_k", "to_v"]
                .iter()
                .map(|p| format!("{blk}.attn2.{p}"))
                .collect();
            let kv = b.linear_of(self.context, &kv, dctx, 2 * c, false)?;
            let kv = b.g.reshape(kv, &[bsz, self.text_tokens, 2 * c])?;
            let o = b.g.cross_attention(q, kv, heads)?;
            let o = b.g.reshape(o, &[rows, c])?;
            let o = b.linear(o, &format!("{blk}.attn2.to_out.0"), c, c, true)?;
            t = b.g.add(t, o)?;
            // GEGLU feed-forward (inner 4C).
            let a = b.layer_norm(t, &format!("{blk}.norm3"), c, 1e-5)?;
            let f = b.linear(a, &format!("{blk}.ff.net.0.proj"), c, 8 * c, true)?;
            let f = b.g.geglu(f)?;
            let f = b.linear(f, &format!("{blk}.ff.net.2"), 4 * c, c, true)?;
            t = b.g.add(t, f)?;
        }
        if self.cfg.use_linear_projection {
            let o = b.linear(t, &format!("{name}.proj_out"), c, c, true)?;
            let o = b.g.reshape(o, &[bsz, h, w, c])?;
            b.g.add(o, x)
        } else {
            let t = b.g.reshape(t, &[bsz, h, w, c])?;
            b.conv(t, &format!("{name}.proj_out"), c, c, 1, 1, Some(x))
        }
    }
}

/// Builds the UNet for `batch` latents of `h × w` (multiples of
/// [`Unet2dConfig::size_multiple`]) conditioned on `text_tokens` tokens.
pub fn build(
    cfg: &Unet2dConfig,
    batch: usize,
    h: usize,
    w: usize,
    text_tokens: usize,
    opts: &SdOptions,
) -> Result<UnetGraph> {
    let m = cfg.size_multiple();
    if batch == 0
        || text_tokens == 0
        || h == 0
        || w == 0
        || !h.is_multiple_of(m)
        || !w.is_multiple_of(m)
    {
        return Err(KilnError::BadInput {
            name: "unet".into(),
            detail: format!("latents {h}×{w} (batch {batch}) must be non-empty multiples of {m}"),
        });
    }
    let mut b = Builder::new(opts);
    let c0 = cfg.down[0].channels;
    let ted = cfg.time_embed_dim;
    let sample =
        b.g.input("sample", &[batch, h, w, cfg.in_channels], DType::F32)?;
    let timestep = b.g.input("timestep", &[batch], DType::F32)?;
    let context = b.g.input(
        "context",
        &[batch * text_tokens, cfg.cross_attention_dim],
        DType::F32,
    )?;
    let ts = b.g.timestep_embed(
        timestep,
        TimestepEmbed {
            dim: c0,
            max_period: 10000.0,
            freq_shift: cfg.freq_shift,
            sin_first: !cfg.flip_sin_to_cos,
        },
    )?;
    let e = b.linear(ts, "time_embedding.linear_1", c0, ted, true)?;
    let e = b.g.silu(e)?;
    let e = b.linear(e, "time_embedding.linear_2", ted, ted, true)?;
    b.probe("time_embedding", e)?;
    // Every ResNet applies SiLU before its projection: once here.
    let emb = b.g.silu(e)?;
    let mut u = Unet {
        b,
        cfg,
        emb,
        context,
        batch,
        text_tokens,
    };
    let mut x =
        u.b.conv(sample, "conv_in", cfg.in_channels, c0, 3, 1, None)?;
    u.b.probe("conv_in", x)?;
    let mut skips = vec![(x, c0)];
    let mut ch = c0;
    let n = cfg.down.len();
    for (i, blk) in cfg.down.iter().enumerate() {
        for j in 0..cfg.layers_per_block {
            let name = format!("down_blocks.{i}");
            x = u.resnet(x, &format!("{name}.resnets.{j}"), ch, blk.channels)?;
            ch = blk.channels;
            if blk.cross_attention {
                x = u.transformer(
                    x,
                    &format!("{name}.attentions.{j}"),
                    ch,
                    blk.heads,
                    blk.depth,
                )?;
            }
            skips.push((x, ch));
        }
        if i + 1 < n {
            let name = format!("down_blocks.{i}.downsamplers.0.conv");
            x = u.b.conv(x, &name, ch, ch, 3, 2, None)?;
            skips.push((x, ch));
        }
        u.b.probe(&format!("down_blocks.{i}"), x)?;
    }
    if cfg.mid_block {
        x = u.resnet(x, "mid_block.resnets.0", ch, ch)?;
        x = u.transformer(
            x,
            "mid_block.attentions.0",
            ch,
            cfg.mid_heads,
            cfg.mid_depth,
        )?;
        x = u.resnet(x, "mid_block.resnets.1", ch, ch)?;
        u.b.probe("mid_block", x)?;
    }
    for (i, blk) in cfg.up.iter().enumerate() {
        let name = format!("up_blocks.{i}");
        for j in 0..=cfg.layers_per_block {
            let (skip, sc) = skips.pop().ok_or_else(|| KilnError::BadInput {
                name: "unet".into(),
                detail: "skip stack underflow".into(),
            })?;
            let cat = u.b.g.concat(x, skip, 3)?;
            x = u.resnet(cat, &format!("{name}.resnets.{j}"), ch + sc, blk.channels)?;
            ch = blk.channels;
            if blk.cross_attention {
                x = u.transformer(
                    x,
                    &format!("{name}.attentions.{j}"),
                    ch,
                    blk.heads,
                    blk.depth,
                )?;
            }
        }
        if i + 1 < n {
            x = u.b.upsample(x, &format!("{name}.upsamplers.0"), ch)?;
        }
        u.b.probe(&name, x)?;
    }
    let mut b = u.b;
    let o = b.group_norm(x, "conv_norm_out", ch, cfg.groups, cfg.eps, true)?;
    let output = b.conv(o, "conv_out", ch, cfg.out_channels, 3, 1, None)?;
    b.g.mark_output(output)?;
    Ok(UnetGraph {
        net: b.finish(),
        sample,
        timestep,
        context,
        output,
        batch: u.batch,
        size: (h, w),
        text_tokens,
    })
}
