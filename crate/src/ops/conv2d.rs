//! 2-D convolution of NHWC activations as an implicit GEMM, with the bias
//! and an optional residual fused into the epilogue.
//!
//! `x [B, H, W, Cin]` f32, `w [Cout, kh·kw·Cin]` in any [`DType::WEIGHTS`]
//! type (rows ordered `(ky, kx, ci)`: PyTorch's `[Cout, Cin, kh, kw]`
//! permuted once at load by [`oihw_to_ohwi`], so a weight row is one GEMM
//! row and quantized blocks run along it), `bias [Cout]` f32, optional
//! `res [B, OH, OW, Cout]`:
//!
//! `y[b, oy, ox, co] = bias[co] + Σ_{ky,kx,ci} x[b, oy·s − p + ky, ox·s − p + kx, ci]
//!  · w[co, (ky·kw + kx)·Cin + ci] (+ res)`, zero padding,
//! `OH = (H + 2p − kh)/s + 1`. Groups = 1; dilation 1.
//!
//! NHWC because the channel axis is then contiguous: the GEMM's K runs along
//! memory for both operands, a 1×1 convolution is exactly `mul_mat`, and the
//! UNet's attention reads tokens `[B, H·W, C]` without a transpose.
//! Kernel: `shaders/conv2d.wgsl`, the tiled GEMM of `mul_mat.wgsl` (32×32
//! output tile, K staged 32 at a time) whose x-tile loader gathers the
//! im2col column on the fly (the im2col matrix is never stored); on CPU
//! adapters barrier-free kernels of 4 pixels × 8 channels per invocation
//! (`lanes`: named accumulators, subgroup-broadcast weights; `direct` for
//! block-quantized weights).

use super::matmul::weight_define;
use super::{Bind, Dispatch, Op, PlanCtx, arity, require_dtype, require_residual, shape_err, u};
use crate::dtype::DType;
use crate::error::{KilnError, Result};
use crate::graph::{Graph, TensorId, TensorInfo};
use crate::host::HostTensor;
use crate::quant;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2d {
    pub kh: usize,
    pub kw: usize,
    pub stride: usize,
    /// Zero rows/columns before and after the image.
    pub pad: usize,
    /// More zero rows/columns after the image only (bottom and right):
    /// PyTorch's `F.pad(x, (0, e, 0, e))` before an unpadded conv, as the
    /// VAE encoder's downsamplers do. The kernels only offset by `pad` and
    /// skip taps outside the image; this changes the output size.
    pub pad_extra: usize,
}

impl Conv2d {
    /// A k×k convolution with "same" padding for odd k at stride 1.
    pub fn same(k: usize, stride: usize) -> Conv2d {
        Conv2d {
            kh: k,
            kw: k,
            stride,
            pad: k / 2,
            pad_extra: 0,
        }
    }

    /// Output height and width for an input of `h × w`.
    pub fn out_hw(&self, h: usize, w: usize) -> Option<(usize, usize)> {
        let e = 2 * self.pad + self.pad_extra;
        let oh = (h + e).checked_sub(self.kh)? / self.stride + 1;
        let ow = (w + e).checked_sub(self.kw)? / self.stride + 1;
        Some((oh, ow))
    }
}

/// Reorders PyTorch/ONNX conv weights `[Cout, Cin, kh, kw]` (f32 values) into
/// Kiln's `[Cout, kh·kw·Cin]` rows.
pub fn oihw_to_ohwi(w: &[f32], cout: usize, cin: usize, kh: usize, kw: usize) -> Result<Vec<f32>> {
    if w.len() != cout * cin * kh * kw {
        return Err(KilnError::BadInput {
            name: "conv weight".into(),
            detail: format!("{} values for [{cout}, {cin}, {kh}, {kw}]", w.len()),
        });
    }
    let mut out = vec![0f32; w.len()];
    for o in 0..cout {
        for i in 0..cin {
            for y in 0..kh {
                for x in 0..kw {
                    out[((o * kh + y) * kw + x) * cin + i] = w[((o * cin + i) * kh + y) * kw + x];
                }
            }
        }
    }
    Ok(out)
}

impl Op for Conv2d {
    fn name(&self) -> &'static str {
        "conv2d"
    }

    fn infer(&self, inputs: &[&TensorInfo]) -> Result<(Vec<usize>, DType)> {
        arity(self.name(), inputs, &[3, 4])?;
        let (x, w, bias) = (inputs[0], inputs[1], inputs[2]);
        require_dtype(self.name(), "x", x, &[DType::F32])?;
        require_dtype(self.name(), "w", w, &DType::WEIGHTS)?;
        require_dtype(self.name(), "bias", bias, &[DType::F32])?;
        let [b, h, wd, cin] = x.shape[..] else {
            return Err(shape_err(
                self.name(),
                format!("x {:?} must be [B, H, W, Cin]", x.shape),
            ));
        };
        if self.kh == 0 || self.kw == 0 || self.stride == 0 {
            return Err(shape_err(
                self.name(),
                "kernel and stride must be ≥ 1".into(),
            ));
        }
        let k = self.kh * self.kw * cin;
        if w.shape.len() != 2 || w.shape[1] != k {
            return Err(shape_err(
                self.name(),
                format!("w {:?} must be [Cout, {k}] (kh·kw·Cin)", w.shape),
            ));
        }
        let cout = w.shape[0];
        if bias.shape != [cout] {
            return Err(shape_err(
                self.name(),
                format!("bias {:?} must be [{cout}]", bias.shape),
            ));
        }
        let Some((oh, ow)) = self.out_hw(h, wd) else {
            return Err(shape_err(
                self.name(),
                format!(
                    "a {}×{} kernel does not fit {h}×{wd} with padding {}",
                    self.kh, self.kw, self.pad
                ),
            ));
        };
        let shape = vec![b, oh, ow, cout];
        if let Some(r) = inputs.get(3) {
            require_residual(self.name(), r, &shape)?;
        }
        Ok((shape, DType::F32))
    }

    fn splittable_input(&self) -> Option<usize> {
        Some(1)
    }

    fn cpu(&self, inputs: &[&HostTensor], out: &mut HostTensor, _syms: &[u32]) -> Result<()> {
        let x = inputs[0].to_f32()?;
        let w = inputs[1];
        let bias = inputs[2].to_f32()?;
        let res = inputs.get(3).map(|t| t.to_f32()).transpose()?;
        let [b, h, wd, cin] = inputs[0].shape[..] else {
            return Err(shape_err(self.name(), "x must be 4-D".into()));
        };
        let [_, oh, ow, cout] = out.shape[..] else {
            return Err(shape_err(self.name(), "y must be 4-D".into()));
        };
        let k = w.shape[1];
        let row_bytes = w.dtype.row_bytes(k)?;
        let mut wr = vec![0f32; k];
        let mut y = vec![0f32; b * oh * ow * cout];
        let mut col = vec![0f64; k];
        // Decode every weight row once.
        let mut wf = vec![0f64; cout * k];
        for co in 0..cout {
            quant::dequantize_into(
                w.dtype,
                &w.data[co * row_bytes..(co + 1) * row_bytes],
                &mut wr,
            )?;
            for (d, s) in wf[co * k..(co + 1) * k].iter_mut().zip(&wr) {
                *d = *s as f64;
            }
        }
        for n in 0..b {
            for oy in 0..oh {
                for ox in 0..ow {
                    // The im2col column of this output pixel.
                    for ky in 0..self.kh {
                        for kx in 0..self.kw {
                            let iy = (oy * self.stride + ky) as isize - self.pad as isize;
                            let ix = (ox * self.stride + kx) as isize - self.pad as isize;
                            let inside =
                                iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < wd;
                            for ci in 0..cin {
                                col[(ky * self.kw + kx) * cin + ci] = if inside {
                                    x[((n * h + iy as usize) * wd + ix as usize) * cin + ci] as f64
                                } else {
                                    0.0
                                };
                            }
                        }
                    }
                    let o = ((n * oh + oy) * ow + ox) * cout;
                    for co in 0..cout {
                        let s: f64 = col
                            .iter()
                            .zip(&wf[co * k..(co + 1) * k])
                            .map(|(a, b)| a * b)
                            .sum();
                        let r = res.as_ref().map_or(0.0, |r| r[o + co] as f64);
                        y[o + co] = (s + bias[co] as f64 + r) as f32;
                    }
                }
            }
        }
        super::put_f32(out, &y);
        Ok(())
    }

    fn wgsl(&self, ctx: &PlanCtx) -> Result<Vec<Dispatch>> {
        let (x, w) = (ctx.inputs[0], ctx.inputs[1]);
        let [b, h, wd, cin] = x.shape[..] else {
            return Err(shape_err(self.name(), "x must be 4-D".into()));
        };
        let [_, oh, ow, cout] = ctx.output.shape[..] else {
            return Err(shape_err(self.name(), "y must be 4-D".into()));
        };
        let (m, k) = (b * oh * ow, w.shape[1]);
        let has_res = ctx.inputs.len() > 3;
        let max = ctx.caps.max_workgroups_per_dim as usize;
        if m.div_ceil(if ctx.caps.cpu { 256 } else { 32 }) > max {
            return Err(shape_err(
                self.name(),
                format!("{m} output pixels exceed the device's grid ({max} × 32)"),
            ));
        }
        // Split-K: every chunk's partial sums share one scratch (dispatches
        // run in order), sized for the largest chunk.
        let plans: Vec<Option<BigPlan>> = ctx.chunks[1]
            .iter()
            .map(|ch| big_plan(ctx, m, cin, ch.rows, k))
            .collect();
        let scratch = plans
            .iter()
            .zip(&ctx.chunks[1])
            .filter_map(|(pl, ch)| {
                pl.filter(|pl| pl.splits > 1)
                    .map(|pl| pl.splits * m * ch.rows * 4)
            })
            .max();
        let mut out = Vec::new();
        for ((c, ch), plan) in ctx.chunks[1].iter().enumerate().zip(plans) {
            let mut defines = vec![weight_define(w.dtype)];
            let (splits, kslab) = plan.map_or((1, k), |pl| (pl.splits, pl.kslab));
            // CPU adapters: `lanes` for weights of one element per slot and
            // K well inside lavapipe's loop guard (group norm's three passes
            // of 16,384 steps tripped it); `direct` otherwise
            // (KILN_CONV=direct forces it natively).
            let lanes = ctx.caps.cpu
                && matches!(w.dtype, DType::F32 | DType::F16 | DType::BF16)
                && k <= 16_384
                && std::env::var("KILN_CONV").map_or(true, |v| v != "direct");
            let (entry, groups) = if lanes {
                defines.push("LANES");
                let npg = lanes_groups(m, ctx.caps);
                (
                    "lanes",
                    super::grid((npg * ch.rows.div_ceil(8)).div_ceil(64), ctx.caps)?,
                )
            } else if ctx.caps.cpu {
                // 4 pixels × 8 channels per invocation, no barriers.
                ("direct", [u(ch.rows.div_ceil(8))?, u(m.div_ceil(256))?, 1])
            } else if let Some(pl) = plan {
                defines.push("BIG");
                if pl.bn == 64 {
                    defines.push("BN64");
                } else if pl.bm == 128 {
                    defines.push("BM128");
                }
                if splits > 1 {
                    defines.push("SPLITK");
                }
                (
                    "big",
                    [
                        u(ch.rows.div_ceil(pl.bn))?,
                        u(m.div_ceil(pl.bm))?,
                        u(splits)?,
                    ],
                )
            } else if super::matmul::tile64_pays(m, ch.rows) {
                defines.push("TILE64");
                ("main", [u(ch.rows.div_ceil(64))?, u(m.div_ceil(64))?, 1])
            } else {
                ("main", [u(ch.rows.div_ceil(32))?, u(m.div_ceil(32))?, 1])
            };
            let mut bindings = vec![
                Bind::Input(1, c),
                Bind::Input(0, 0),
                Bind::Output,
                Bind::Input(2, 0),
                Bind::Input(if has_res { 3 } else { 0 }, 0),
            ];
            if let (true, Some(bytes)) = (splits > 1, scratch) {
                bindings.push(Bind::Scratch(0, bytes as u64));
            }
            let d = Dispatch {
                shader: "conv2d.wgsl",
                entry,
                defines,
                bindings,
                params: vec![
                    u(m)?,
                    u(cout)?,
                    u(k)?,
                    u(ch.row0)?,
                    u(ch.rows)?,
                    has_res as u32,
                    u(h)?,
                    u(wd)?,
                    u(cin)?,
                    u(oh)?,
                    u(ow)?,
                    u(self.kh)?,
                    u(self.kw)?,
                    u(self.stride)?,
                    u(self.pad)?,
                    u(splits)?,
                    u(kslab)?,
                    u(lanes_groups(m, ctx.caps))?,
                ],
                groups,
            };
            if splits > 1 {
                // The partial sums' reduction (+ bias, residual): a thread per output.
                let sum = Dispatch {
                    entry: "splitk_sum",
                    groups: super::grid((m * ch.rows).div_ceil(256), ctx.caps)?,
                    ..d.clone()
                };
                out.push(d);
                out.push(sum);
            } else {
                out.push(d);
            }
        }
        Ok(out)
    }
}

/// The `lanes` kernel's pixel groups (4 pixels each) per channel block,
/// rounded up so that no subgroup spans two blocks (its lanes share the
/// weights by broadcast): to 16 where the adapter's subgroups are known to be
/// at most 16 wide (CPU adapters: 4 or 8), else to the workgroup (64).
fn lanes_groups(m: usize, caps: &super::GpuCaps) -> usize {
    let unit = if (1..=16).contains(&caps.subgroup_size) {
        16
    } else {
        64
    };
    m.div_ceil(4).next_multiple_of(unit)
}

/// How the `big` kernel runs a convolution: its (pixels, channels) tile and
/// the K split (`splits` slabs of `kslab`, summed by `splitk_sum`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct BigPlan {
    pub bm: usize,
    pub bn: usize,
    pub splits: usize,
    pub kslab: usize,
}

/// Output tiles that fill the H200 (at 48 it measured the same total conv
/// time at batch 1 and 64: docs/bench/2026-12-02-h200-terrain-2).
const FILL_TILES: usize = 128;
/// The least K a split-K slab takes (shorter slabs spend more on the sum).
const MIN_SLAB: usize = 256;

/// The `big` kernel's plan when it applies: a GPU with 18 KiB of workgroup
/// memory and 256 invocations, Cin a multiple of 4 (one tap's 4 channels
/// are one vector load). 128×64 when the rows divide into 64s and that
/// makes 128 tiles, else 256×32, else 128×32 (128 invocations) when only the
/// smaller tile makes 128 of them. Too few tiles even so (the low-resolution
/// levels of a UNet: 256 pixels × 1280 channels, K = 11,520): split K into
/// slabs of at least MIN_SLAB until the tiles × slabs reach FILL_TILES (at
/// most 16 slabs, at most 64 MiB of partial sums).
pub(crate) fn big_plan(
    ctx: &PlanCtx,
    m: usize,
    cin: usize,
    rows: usize,
    k: usize,
) -> Option<BigPlan> {
    let c = &ctx.caps;
    if c.cpu
        || !cin.is_multiple_of(4)
        || c.max_workgroup_storage < 18 * 1024
        || c.max_invocations < 256
    {
        return None;
    }
    let tiles = |bm: usize, bn: usize| m.div_ceil(bm) * rows.div_ceil(bn);
    let fits = |bm: usize| m.div_ceil(bm) <= c.max_workgroups_per_dim as usize;
    let shapes = [(128, 64), (256, 32), (128, 32)]
        .into_iter()
        .filter(|(_, bn)| *bn == 32 || rows.is_multiple_of(64));
    // The first shape that makes FILL_TILES tiles (SD's 32² level, 1024
    // pixels × 640 channels, makes 80 of 128×64 but 160 of 128×32).
    let mut shapes2 = shapes.clone();
    if let Some((bm, bn)) = shapes2.find(|(bm, bn)| tiles(*bm, *bn) >= FILL_TILES && fits(*bm)) {
        return Some(BigPlan {
            bm,
            bn,
            splits: 1,
            kslab: k,
        });
    }
    // Split K with the larger tile (more work per workgroup).
    let (bm, bn) = shapes
        .filter(|(bm, _)| *bm == 128)
        .find(|(bm, _)| fits(*bm))?;
    let t = tiles(bm, bn);
    let want = FILL_TILES.div_ceil(t).min(16).min(k / MIN_SLAB);
    let max_bytes = (64usize << 20).min(c.max_binding_bytes as usize);
    let want = want.min(max_bytes / (m * rows * 4).max(1));
    if want < 2 {
        return None;
    }
    // Slabs are whole 16-K slices of both kernels (8 and 16 K per slice).
    let kslab = k.div_ceil(want).next_multiple_of(16);
    Some(BigPlan {
        bm,
        bn,
        splits: k.div_ceil(kslab),
        kslab,
    })
}

impl Graph {
    /// `conv2d(x, w) + bias (+ res)` of NHWC `x`; `w` is `[Cout, kh·kw·Cin]`.
    pub fn conv2d(
        &mut self,
        x: TensorId,
        w: TensorId,
        bias: TensorId,
        res: Option<TensorId>,
        op: Conv2d,
    ) -> Result<TensorId> {
        let inputs: Vec<TensorId> = [x, w, bias].into_iter().chain(res).collect();
        self.push(op, &inputs)
    }
}
