//! The decoder of diffusers' `AutoencoderKL`: `post_quant_conv`, `conv_in`,
//! the mid block (ResNet, single-head self-attention, ResNet), up blocks of
//! ResNets with nearest 2× + conv between them, `conv_norm_out`, SiLU,
//! `conv_out`. GroupNorm eps is 1e-6 throughout (diffusers' VAE blocks).
//! Latents are divided by `scaling_factor` (and shifted) by the caller, as
//! the pipelines do before `vae.decode`.

use super::vae_tiling::VaeTiling;
use super::{Builder, SdGraph, SdOptions, VaeConfig};
use crate::dtype::DType;
use crate::error::{KilnError, Result};
use crate::graph::TensorId;

pub(super) const EPS: f32 = 1e-6;

/// The decoder's graph for `batch` latents of `h × w`.
pub struct VaeGraph {
    pub net: SdGraph,
    /// `[B, h, w, latent_channels]` (NHWC), already scaled (program 0's:
    /// the first tile's when tiled).
    pub latents: TensorId,
    /// `[B, h·s, w·s, out_channels]` (NHWC), about [-1, 1].
    pub image: TensorId,
    pub batch: usize,
    /// The latents decoded (the whole image's, tiled or not).
    pub size: (usize, usize),
    /// Tiled decoding: the geometry and one program per tile size.
    pub tiles: Option<TiledVae>,
}

/// A tiled decoder's programs (see `vae_tiling.rs`).
pub struct TiledVae {
    pub tiling: VaeTiling,
    /// Per distinct tile size: (latent h, w), program, latents, image.
    pub programs: Vec<((usize, usize), usize, TensorId, TensorId)>,
}

/// diffusers' VAE `Attention`: GroupNorm, stacked `to_q|to_k|to_v` (with
/// biases) as one 1×1 projection, one head over all pixels, `to_out.0`,
/// residual.
pub(super) fn attention(
    b: &mut Builder,
    x: TensorId,
    name: &str,
    c: usize,
    groups: usize,
) -> Result<TensorId> {
    let [bsz, h, w, _] = b.shape(x)?[..] else {
        return Err(KilnError::BadInput {
            name: name.into(),
            detail: "attention input must be 4-D".into(),
        });
    };
    let rows = bsz * h * w;
    let n = b.group_norm(x, &format!("{name}.group_norm"), c, groups, EPS, false)?;
    let n = b.g.reshape(n, &[rows, c])?;
    if c > crate::ops::spatial_attention::MAX_HEAD_DIM || b.opts.matmul_attention {
        let o = attention_matmul(b, n, name, c, bsz, h * w)?;
        let o = b.linear(o, &format!("{name}.to_out.0"), c, c, true)?;
        let o = b.g.reshape(o, &[bsz, h, w, c])?;
        return b.g.add(o, x);
    }
    let qkv: Vec<String> = ["to_q", "to_k", "to_v"]
        .iter()
        .map(|p| format!("{name}.{p}"))
        .collect();
    let qkv = b.linear_of(n, &qkv, c, 3 * c, true)?;
    let qkv = b.g.reshape(qkv, &[bsz, h * w, 3 * c])?;
    let op = crate::ops::spatial_attention::SpatialAttention {
        heads: 1,
        legacy: false,
    };
    let o = b.g.spatial_attention(qkv, op)?;
    let o = b.g.reshape(o, &[rows, c])?;
    let o = b.linear(o, &format!("{name}.to_out.0"), c, c, true)?;
    let o = b.g.reshape(o, &[bsz, h, w, c])?;
    b.g.add(o, x)
}

/// Single-head attention over `t` pixels per sample as matmuls: per sample
/// `softmax(q·kᵀ/√c)` (a `[t, t]` score matrix) times `v` — for heads wider
/// than the fused kernel holds. `n [bsz·t, c]` normalized input → `[bsz·t, c]`.
fn attention_matmul(
    b: &mut Builder,
    n: TensorId,
    name: &str,
    c: usize,
    bsz: usize,
    t: usize,
) -> Result<TensorId> {
    let q = b.linear(n, &format!("{name}.to_q"), c, c, true)?;
    let k = b.linear(n, &format!("{name}.to_k"), c, c, true)?;
    let v = b.linear(n, &format!("{name}.to_v"), c, c, true)?;
    let mut out: Option<TensorId> = None;
    for s in 0..bsz {
        let rows = |b: &mut Builder, x: TensorId| {
            if bsz == 1 {
                Ok(x)
            } else {
                b.g.slice_rows(x, s * t, t)
            }
        };
        let (qs, ks, vs) = (rows(b, q)?, rows(b, k)?, rows(b, v)?);
        let scores = b.g.matmul(qs, ks)?;
        let p = b.g.softmax(scores, 1.0 / (c as f32).sqrt())?;
        let vt = b.g.transpose(vs)?;
        let o = b.g.matmul(p, vt)?;
        out = Some(match out {
            None => o,
            Some(prev) => b.g.concat(prev, o, 0)?,
        });
    }
    out.ok_or_else(|| KilnError::BadInput {
        name: name.into(),
        detail: "empty batch".into(),
    })
}

pub fn build(
    cfg: &VaeConfig,
    batch: usize,
    h: usize,
    w: usize,
    opts: &SdOptions,
) -> Result<VaeGraph> {
    let mut b = Builder::new(opts);
    let (latents, image) = decoder(&mut b, cfg, batch, h, w)?;
    Ok(VaeGraph {
        net: b.finish(),
        latents,
        image,
        batch,
        size: (h, w),
        tiles: None,
    })
}

/// The decoder for `h × w` latents in tiles, as diffusers'
/// `enable_tiling()` decodes them: one program per distinct tile size, all
/// sharing the weights (the untiled [`build`] when one tile holds them).
pub fn build_tiled(
    cfg: &VaeConfig,
    batch: usize,
    h: usize,
    w: usize,
    opts: &SdOptions,
) -> Result<VaeGraph> {
    let tiling = VaeTiling::new(cfg.sample_size, cfg.scale())?;
    if !tiling.applies((h, w)) {
        return build(cfg, batch, h, w, opts);
    }
    let mut b = Builder::new(opts);
    let mut programs = Vec::new();
    for (i, (th, tw)) in tiling.shapes((h, w)).into_iter().enumerate() {
        let p = if i == 0 { 0 } else { b.g.begin_program() };
        let (latents, image) = decoder(&mut b, cfg, batch, th, tw)?;
        programs.push(((th, tw), p, latents, image));
    }
    Ok(VaeGraph {
        net: b.finish(),
        latents: programs[0].2,
        image: programs[0].3,
        batch,
        size: (h, w),
        tiles: Some(TiledVae { tiling, programs }),
    })
}

/// The decoder of `batch` latents of `h × w` into the builder's current
/// program: (latents, image).
fn decoder(
    b: &mut Builder,
    cfg: &VaeConfig,
    batch: usize,
    h: usize,
    w: usize,
) -> Result<(TensorId, TensorId)> {
    if batch == 0 || h == 0 || w == 0 {
        return Err(KilnError::BadInput {
            name: "vae".into(),
            detail: format!("latents {h}×{w} (batch {batch}) must be non-empty"),
        });
    }
    let g = cfg.groups;
    let lc = cfg.latent_channels;
    let latents = b.g.input("latents", &[batch, h, w, lc], DType::F32)?;
    let mut x = latents;
    if cfg.post_quant_conv {
        x = b.conv(x, "post_quant_conv", lc, lc, 1, 1, None)?;
    }
    let rev: Vec<usize> = cfg.channels.iter().rev().copied().collect();
    let mut ch = rev[0];
    x = b.conv(x, "decoder.conv_in", lc, ch, 3, 1, None)?;
    x = b.resnet(x, None, "decoder.mid_block.resnets.0", ch, ch, g, EPS)?;
    if cfg.mid_attention {
        x = attention(b, x, "decoder.mid_block.attentions.0", ch, g)?;
    }
    x = b.resnet(x, None, "decoder.mid_block.resnets.1", ch, ch, g, EPS)?;
    b.probe("decoder.mid_block", x)?;
    for (i, &out) in rev.iter().enumerate() {
        let name = format!("decoder.up_blocks.{i}");
        for j in 0..=cfg.layers_per_block {
            x = b.resnet(x, None, &format!("{name}.resnets.{j}"), ch, out, g, EPS)?;
            ch = out;
        }
        if i + 1 < rev.len() {
            x = b.upsample(x, &format!("{name}.upsamplers.0"), ch)?;
        }
        b.probe(&name, x)?;
    }
    let o = b.group_norm(x, "decoder.conv_norm_out", ch, g, EPS, true)?;
    let image = b.conv(o, "decoder.conv_out", ch, cfg.out_channels, 3, 1, None)?;
    b.g.mark_output(image)?;
    Ok((latents, image))
}
