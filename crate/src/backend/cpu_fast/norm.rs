//! `group_norm` (optionally with the timestep scale-shift and SiLU) on the
//! CPU, two-pass like the reference: per-channel sums over chunks of pixels
//! (f64, in parallel), the group means, the same for squared deviations,
//! then one pass `y = a[c]·x + b[c]` (then SiLU) in f32 with the per-channel
//! factors folded from the statistics, γ, β and the scale-shift.

use super::kernels::{Kernel, f32s, f32s_mut};
use super::par::Shared;
use super::simd::exp_f32;
use super::{Ctx, Scratch};
use crate::backend::BackendError;
use crate::host::HostTensor;
use crate::ops::group_norm::GroupNorm;
use crate::ops::norm::Norm;
use crate::ops::norm_back::RmsNormBack;

pub(crate) struct GroupNormKernel(pub GroupNorm);

/// Pixels per statistics task.
const CHUNK: usize = 256;

fn bad(what: String) -> BackendError {
    BackendError::Validation(format!("group_norm: {what}"))
}

/// Per (sample, chunk): Σ over the chunk's pixels of `x` per channel, or
/// with `center` (per sample and channel) of `(x − center)²`, into
/// `part[(s·chunks + k)·c + ch]`.
fn channel_sums(
    par: super::par::Par,
    x: &[f32],
    (b, n, c): (usize, usize, usize),
    part: &mut [f64],
    center: Option<&[f64]>,
) -> Result<(), BackendError> {
    let chunks = n.div_ceil(CHUNK);
    let p = Shared::new(part);
    par.ranges(b * chunks, 1, |r| {
        let mut acc = vec![0f64; c];
        for task in r {
            let (s, k) = (task / chunks, task % chunks);
            acc.fill(0.0);
            for px in k * CHUNK..((k + 1) * CHUNK).min(n) {
                let row = &x[(s * n + px) * c..][..c];
                match center {
                    None => {
                        for (a, v) in acc.iter_mut().zip(row) {
                            *a += *v as f64;
                        }
                    }
                    Some(m) => {
                        for ((a, v), m) in acc.iter_mut().zip(row).zip(&m[s * c..]) {
                            let d = *v as f64 - m;
                            *a += d * d;
                        }
                    }
                }
            }
            for (ch, a) in acc.iter().enumerate() {
                p.set(task * c + ch, *a);
            }
        }
    })
}

/// Per (sample, group): the mean of the group's values of `part`.
fn group_means(part: &[f64], (b, n, c): (usize, usize, usize), groups: usize) -> Vec<f64> {
    let (chunks, cg) = (n.div_ceil(CHUNK), c / groups);
    let mut out = vec![0f64; b * groups];
    for s in 0..b {
        for k in 0..chunks {
            for ch in 0..c {
                out[s * groups + ch / cg] += part[(s * chunks + k) * c + ch];
            }
        }
    }
    for v in &mut out {
        *v /= (n * cg) as f64;
    }
    out
}

impl Kernel for GroupNormKernel {
    fn label(&self) -> String {
        let g = self.0;
        format!("group_norm{}", if g.silu { "+silu" } else { "" })
    }

    fn run(
        &self,
        inputs: &[&HostTensor],
        out: &mut HostTensor,
        _syms: &[u32],
        ctx: &mut Ctx,
    ) -> Result<(), BackendError> {
        let g = self.0;
        let x = f32s(inputs[0])?;
        let (gamma, beta) = (f32s(inputs[1])?, f32s(inputs[2])?);
        let ss = inputs.get(3).map(|t| f32s(t)).transpose()?;
        let shape = &inputs[0].shape;
        let b = shape.first().copied().unwrap_or(1);
        let c = shape.last().copied().unwrap_or(1);
        let n = x.len() / (b * c).max(1);
        if g.groups == 0
            || c % g.groups != 0
            || x.len() != b * n * c
            || gamma.len() != c
            || beta.len() != c
            || ss.is_some_and(|s| s.len() != 2 * b * c)
            || out.data.len() != 4 * x.len()
        {
            return Err(bad(format!(
                "shapes x {shape:?}, γ {}, β {}",
                gamma.len(),
                beta.len()
            )));
        }
        let dims = (b, n, c);
        let cg = c / g.groups;
        let par = ctx.par;
        let Scratch { gn_part, gn_ab, .. } = &mut *ctx.scratch;
        gn_part.clear();
        gn_part.resize(b * n.div_ceil(CHUNK) * c, 0.0);
        channel_sums(par, x, dims, gn_part, None)?;
        let mean = group_means(gn_part, dims, g.groups);
        let center: Vec<f64> = (0..b * c)
            .map(|i| mean[(i / c) * g.groups + (i % c) / cg])
            .collect();
        channel_sums(par, x, dims, gn_part, Some(&center))?;
        let var = group_means(gn_part, dims, g.groups);
        // y = a·x + b per (sample, channel): [a (C) | b (C)] per sample.
        gn_ab.resize(2 * b * c, 0.0);
        for s in 0..b {
            for ch in 0..c {
                let i = s * g.groups + ch / cg;
                let inv = 1.0 / (var[i] + g.eps as f64).sqrt();
                let mut a = inv * gamma[ch] as f64;
                let mut o = beta[ch] as f64 - mean[i] * a;
                if let Some(ss) = ss {
                    let sc = 1.0 + ss[s * 2 * c + ch] as f64;
                    a *= sc;
                    o = o * sc + ss[s * 2 * c + c + ch] as f64;
                }
                gn_ab[2 * s * c + ch] = a as f32;
                gn_ab[2 * s * c + c + ch] = o as f32;
            }
        }
        let ab: &[f32] = gn_ab;
        let y = Shared::new(f32s_mut(out)?);
        let chunks = n.div_ceil(CHUNK);
        par.ranges(b * chunks, 1, |r| {
            for task in r {
                let (s, k) = (task / chunks, task % chunks);
                let (fa, fb) = ab[2 * s * c..2 * (s + 1) * c].split_at(c);
                let (p0, p1) = (k * CHUNK, ((k + 1) * CHUNK).min(n));
                let o = (s * n + p0) * c;
                // SAFETY: this task alone owns these pixels of `y`.
                let ys = unsafe { y.slice(o, (p1 - p0) * c) };
                for (yr, xr) in ys.chunks_exact_mut(c).zip(x[o..].chunks_exact(c)) {
                    for (((yv, v), a), o) in yr.iter_mut().zip(xr).zip(fa).zip(fb) {
                        *yv = a * v + o;
                    }
                    if g.silu {
                        for yv in yr.iter_mut() {
                            // Below −64, SiLU is under 1e-26 in magnitude:
                            // 0 here. The formula would give y / 3.4e38
                            // (exp_f32 clamps its argument), tiny normals
                            // whose products with weights are subnormal — a
                            // microcode assist per lane on Intel x86 where
                            // nothing flushes them (wasm has no FTZ): the
                            // terrain UNet, whose activations reach −1e9,
                            // ran 6.6× slower in Chromium on an Intel Xeon.
                            *yv = if *yv < -64.0 {
                                0.0
                            } else {
                                *yv / (1.0 + exp_f32(-*yv))
                            };
                        }
                    }
                }
            }
        })
    }
}

/// RMSNorm / LayerNorm over rows ([`Norm`], optional weight and bias) and
/// RMSNorm's input gradient ([`RmsNormBack`]), rows in parallel with the
/// reference's arithmetic (row statistics and each output in f64): the
/// training graph runs them unfused, ≈ 4% of a SmolLM2 step on the
/// reference kernels.
///
/// [`Norm`]: crate::ops::norm::Norm
/// [`RmsNormBack`]: crate::ops::norm_back::RmsNormBack
pub(crate) enum RowNormKernel {
    Forward(Norm),
    RmsBack(RmsNormBack),
}

/// Rows per task.
const ROWS: usize = 16;

impl Kernel for RowNormKernel {
    fn label(&self) -> String {
        use crate::ops::Op;
        match self {
            RowNormKernel::Forward(n) => n.name().into(),
            RowNormKernel::RmsBack(b) => b.name().into(),
        }
    }

    fn run(
        &self,
        inputs: &[&HostTensor],
        out: &mut HostTensor,
        _syms: &[u32],
        ctx: &mut Ctx,
    ) -> Result<(), BackendError> {
        let x = f32s(inputs[0])?;
        let d = inputs[0].shape.last().copied().unwrap_or(0);
        let (w, extra) = match self {
            // Forward: x, w?, b?; backward: x, w?, dy.
            RowNormKernel::Forward(_) => (inputs.get(1), inputs.get(2)),
            RowNormKernel::RmsBack(_) if inputs.len() == 3 => (inputs.get(1), inputs.get(2)),
            RowNormKernel::RmsBack(_) => (None, inputs.get(1)),
        };
        let w = w.map(|t| f32s(t)).transpose()?;
        let extra = extra.map(|t| f32s(t)).transpose()?;
        let y = f32s_mut(out)?;
        let back = matches!(self, RowNormKernel::RmsBack(_));
        let bad_len = |t: Option<&[f32]>, n: usize| t.is_some_and(|t| t.len() != n);
        if d == 0
            || x.len() % d != 0
            || y.len() != x.len()
            || bad_len(w, d)
            || bad_len(extra, if back { x.len() } else { d })
            || (back && extra.is_none())
        {
            return Err(BackendError::Validation(format!(
                "{}: x {:?}",
                self.label(),
                inputs[0].shape
            )));
        }
        let rows = x.len() / d;
        let y = Shared::new(y);
        let wd = |i: usize| w.map_or(1.0, |w| w[i] as f64);
        ctx.par.ranges(rows, ROWS, |r| {
            for row in r {
                let xr = &x[row * d..(row + 1) * d];
                // SAFETY: this task alone owns row `row` of y.
                let yr = unsafe { y.slice(row * d, d) };
                let n = d as f64;
                match self {
                    RowNormKernel::Forward(norm) => {
                        let (mean, eps) = match *norm {
                            Norm::Rms { eps } => (0.0, eps),
                            Norm::Layer { eps } => {
                                (xr.iter().map(|v| *v as f64).sum::<f64>() / n, eps)
                            }
                        };
                        let var = xr.iter().map(|v| (*v as f64 - mean).powi(2)).sum::<f64>() / n;
                        let inv = 1.0 / (var + eps as f64).sqrt();
                        for (i, (o, v)) in yr.iter_mut().zip(xr).enumerate() {
                            let b = extra.map_or(0.0, |b| b[i] as f64);
                            *o = ((*v as f64 - mean) * inv * wd(i) + b) as f32;
                        }
                    }
                    RowNormKernel::RmsBack(rb) => {
                        let gr = &extra.unwrap_or_default()[row * d..(row + 1) * d];
                        let ss: f64 = xr.iter().map(|v| (*v as f64).powi(2)).sum();
                        let r = 1.0 / (ss / n + rb.eps as f64).sqrt();
                        let sd: f64 = (0..d).map(|i| gr[i] as f64 * wd(i) * xr[i] as f64).sum();
                        let c = sd * r * r * r / n;
                        for (i, o) in yr.iter_mut().enumerate() {
                            *o = (r * gr[i] as f64 * wd(i) - xr[i] as f64 * c) as f32;
                        }
                    }
                }
            }
        })
    }
}
