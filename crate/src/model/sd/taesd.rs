//! TAESD, diffusers' `AutoencoderTiny` decoder: the fast decoder for step
//! previews (and SDXS's VAE). `tanh(z/3)·3`, a 3×3 conv + ReLU, then per
//! level: `AutoencoderTinyBlock`s (three 3×3 convs with ReLUs between, a
//! skip, ReLU of the sum), nearest 2× and a bias-free 3×3 conv between
//! levels, a final 3×3 conv to RGB; the output `·2 − 1` (then the usual
//! `/2 + 0.5`). Parameters are `decoder.layers.{i}…` as `nn.Sequential`
//! numbers them.

use serde_json::Value;

use super::{Builder, SdGraph, SdOptions};
use crate::dtype::DType;
use crate::error::{KilnError, Result};
use crate::graph::TensorId;
use crate::loader::LoadError;

/// `AutoencoderTiny`'s decoder hyper-parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct TaesdConfig {
    pub latent_channels: usize,
    pub out_channels: usize,
    pub channels: Vec<usize>,
    pub blocks: Vec<usize>,
    pub scaling_factor: f32,
}

impl TaesdConfig {
    pub fn from_json(v: &Value) -> std::result::Result<TaesdConfig, LoadError> {
        let bad = |d: String| LoadError::UnsupportedModel(format!("taesd: {d}"));
        let list = |k: &str| -> std::result::Result<Vec<usize>, LoadError> {
            v.get(k)
                .and_then(Value::as_array)
                .and_then(|a| a.iter().map(|x| x.as_u64().map(|n| n as usize)).collect())
                .ok_or_else(|| LoadError::MissingKey(format!("taesd config.json: {k}")))
        };
        let s = |k: &str, d: &str| v.get(k).and_then(Value::as_str).unwrap_or(d).to_string();
        if s("act_fn", "relu") != "relu" || s("upsample_fn", "nearest") != "nearest" {
            return Err(bad(format!(
                "act_fn {} / upsample_fn {}",
                s("act_fn", "relu"),
                s("upsample_fn", "nearest")
            )));
        }
        if v.get("upsampling_scaling_factor")
            .and_then(Value::as_u64)
            .unwrap_or(2)
            != 2
        {
            return Err(bad("upsampling_scaling_factor must be 2".into()));
        }
        let channels = list("decoder_block_out_channels")?;
        let blocks = list("num_decoder_blocks")?;
        if channels.is_empty() || channels.len() != blocks.len() {
            return Err(bad(
                "decoder_block_out_channels and num_decoder_blocks differ".into(),
            ));
        }
        let u = |k: &str, d: u64| v.get(k).and_then(Value::as_u64).unwrap_or(d) as usize;
        use super::config::{limits, within};
        within(
            "taesd",
            "decoder_block_out_channels (blocks)",
            channels.len(),
            limits::BLOCKS,
        )?;
        for (&c, &b) in channels.iter().zip(&blocks) {
            within("taesd", "decoder_block_out_channels", c, limits::DIM)?;
            within("taesd", "num_decoder_blocks", b, limits::LAYERS_PER_BLOCK)?;
        }
        within(
            "taesd",
            "latent_channels",
            u("latent_channels", 4),
            limits::DIM,
        )?;
        within("taesd", "out_channels", u("out_channels", 3), limits::DIM)?;
        Ok(TaesdConfig {
            latent_channels: u("latent_channels", 4),
            out_channels: u("out_channels", 3),
            channels,
            blocks,
            scaling_factor: v
                .get("scaling_factor")
                .and_then(Value::as_f64)
                .unwrap_or(1.0) as f32,
        })
    }

    /// Image pixels per latent pixel.
    pub fn scale(&self) -> usize {
        1 << (self.channels.len() - 1)
    }
}

/// The decoder's graph for `batch` latents of `h × w`.
pub struct TaesdGraph {
    pub net: SdGraph,
    pub latents: TensorId,
    /// `[B, h·s, w·s, out]` NHWC: the image in about [0, 1] (before the
    /// `·2 − 1` of diffusers' `decode`).
    pub image: TensorId,
    pub batch: usize,
    pub size: (usize, usize),
}

pub fn build(
    cfg: &TaesdConfig,
    batch: usize,
    h: usize,
    w: usize,
    opts: &SdOptions,
) -> Result<TaesdGraph> {
    if batch == 0 || h == 0 || w == 0 {
        return Err(KilnError::BadInput {
            name: "taesd".into(),
            detail: format!("latents {h}×{w} (batch {batch}) must be non-empty"),
        });
    }
    let mut b = Builder::new(opts);
    let lc = cfg.latent_channels;
    let latents = b.g.input("latents", &[batch, h, w, lc], DType::F32)?;
    let x = b.g.scale(latents, 1.0 / 3.0)?;
    let x = b.g.tanh(x)?;
    let x = b.g.scale(x, 3.0)?;
    let mut ch = cfg.channels[0];
    let x = b.conv(x, "decoder.layers.0", lc, ch, 3, 1, None)?;
    let mut x = b.g.relu(x)?;
    let mut i = 2; // layers.1 is the ReLU
    let n = cfg.channels.len();
    for (level, (&c, &nb)) in cfg.channels.iter().zip(&cfg.blocks).enumerate() {
        for _ in 0..nb {
            let name = format!("decoder.layers.{i}");
            let mut h = x;
            for (k, last) in [(0, false), (2, false), (4, true)] {
                let cin = if k == 0 { ch } else { c };
                h = if last {
                    let skip = if ch == c {
                        x
                    } else {
                        b.conv_nobias(x, &format!("{name}.skip"), ch, c, 1)?
                    };
                    b.conv(h, &format!("{name}.conv.{k}"), cin, c, 3, 1, Some(skip))?
                } else {
                    let y = b.conv(h, &format!("{name}.conv.{k}"), cin, c, 3, 1, None)?;
                    b.g.relu(y)?
                };
            }
            x = b.g.relu(h)?;
            ch = c;
            i += 1;
        }
        if level + 1 < n {
            x = b.g.upsample_nearest_2x(x)?;
            x = b.conv_nobias(x, &format!("decoder.layers.{}", i + 1), ch, ch, 3)?;
            i += 2;
        } else {
            x = b.conv(
                x,
                &format!("decoder.layers.{i}"),
                ch,
                cfg.out_channels,
                3,
                1,
                None,
            )?;
        }
        b.probe(&format!("level.{level}"), x)?;
    }
    // diffusers returns 2y − 1 and pipelines map it back to y: the graph
    // stops at y (`TaesdDecoder::decode_raw` gives 2y − 1).
    let image = x;
    b.g.mark_output(image)?;
    Ok(TaesdGraph {
        net: b.finish(),
        latents,
        image,
        batch,
        size: (h, w),
    })
}
