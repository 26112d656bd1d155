//! The encoder of diffusers' `AutoencoderKL` (img2img): `conv_in`, down
//! blocks of ResNets with a stride-2 conv between them (after one more zero
//! row and column at the bottom and right: `F.pad(x, (0, 1, 0, 1))`), the mid
//! block (ResNet, single-head self-attention, ResNet), `conv_norm_out`,
//! SiLU, `conv_out` to the posterior's mean and log-variance, `quant_conv`.

use super::vae::{EPS, attention};
use super::{Builder, SdGraph, SdOptions, VaeConfig};
use crate::dtype::DType;
use crate::error::{KilnError, Result};
use crate::graph::TensorId;
use crate::ops::conv2d::Conv2d;

/// The encoder's graph for `batch` images of `h × w` pixels.
pub struct VaeEncoderGraph {
    pub net: SdGraph,
    /// `[B, H, W, in_channels]` (NHWC) in [-1, 1].
    pub image: TensorId,
    /// `[B, H/s, W/s, 2·latent_channels]` (NHWC): mean, then log-variance.
    pub moments: TensorId,
    pub batch: usize,
    pub size: (usize, usize),
}

pub fn build(
    cfg: &VaeConfig,
    batch: usize,
    h: usize,
    w: usize,
    opts: &SdOptions,
) -> Result<VaeEncoderGraph> {
    let s = cfg.scale();
    if batch == 0 || h == 0 || w == 0 || !h.is_multiple_of(s) || !w.is_multiple_of(s) {
        return Err(KilnError::BadInput {
            name: "vae encoder".into(),
            detail: format!(
                "images {h}×{w} (batch {batch}) must be non-empty multiples of {s} pixels"
            ),
        });
    }
    if cfg.down_block_types.len() != cfg.channels.len()
        || cfg
            .down_block_types
            .iter()
            .any(|t| t != "DownEncoderBlock2D")
    {
        return Err(KilnError::BadInput {
            name: "vae encoder".into(),
            detail: format!(
                "down_block_types {:?}: only DownEncoderBlock2D, one per block_out_channels entry",
                cfg.down_block_types
            ),
        });
    }
    let mut b = Builder::new(opts);
    let g = cfg.groups;
    let lc = cfg.latent_channels;
    let image =
        b.g.input("image", &[batch, h, w, cfg.in_channels], DType::F32)?;
    let mut ch = cfg.channels[0];
    let mut x = b.conv(image, "encoder.conv_in", cfg.in_channels, ch, 3, 1, None)?;
    let down = Conv2d {
        kh: 3,
        kw: 3,
        stride: 2,
        pad: 0,
        pad_extra: 1,
    };
    for (i, &out) in cfg.channels.iter().enumerate() {
        let name = format!("encoder.down_blocks.{i}");
        for j in 0..cfg.layers_per_block {
            x = b.resnet(x, None, &format!("{name}.resnets.{j}"), ch, out, g, EPS)?;
            ch = out;
        }
        if i + 1 < cfg.channels.len() {
            x = b.conv_with(x, &format!("{name}.downsamplers.0.conv"), (ch, ch), down)?;
        }
        b.probe(&name, x)?;
    }
    x = b.resnet(x, None, "encoder.mid_block.resnets.0", ch, ch, g, EPS)?;
    if cfg.mid_attention {
        x = attention(&mut b, x, "encoder.mid_block.attentions.0", ch, g)?;
    }
    x = b.resnet(x, None, "encoder.mid_block.resnets.1", ch, ch, g, EPS)?;
    b.probe("encoder.mid_block", x)?;
    let o = b.group_norm(x, "encoder.conv_norm_out", ch, g, EPS, true)?;
    let mut moments = b.conv(o, "encoder.conv_out", ch, 2 * lc, 3, 1, None)?;
    if cfg.quant_conv {
        moments = b.conv(moments, "quant_conv", 2 * lc, 2 * lc, 1, 1, None)?;
    }
    b.g.mark_output(moments)?;
    Ok(VaeEncoderGraph {
        net: b.finish(),
        image,
        moments,
        batch,
        size: (h, w),
    })
}
