//! Element-wise binary ops ([`Binary`]: add, mul with `b` broadcast over
//! one run of `a`'s dimensions, SwiGLU) in f32 over chunks in parallel: a
//! training step runs hundreds of them (residual adds, gradient sums). And
//! diffusers' packed GEGLU ([`Geglu`]), rows in parallel, with the f32 erf
//! of `shaders/common/erf.wgsl` (the reference's f64 series is ~100× slower:
//! 6% of a tiny SD UNet call on this backend).
//!
//! Add and mul of two f32 values rounded once equal the reference's f64
//! result rounded to f32 (no double-rounding error for one operation at
//! 53 bits); SwiGLU uses f32 `exp` (within the case tolerance).
//!
//! [`Binary`]: crate::ops::binary::Binary

use super::Ctx;
use super::kernels::{Kernel, f32s, f32s_mut};
use super::par::Shared;
use super::simd::exp_f32;
use crate::backend::BackendError;
use crate::host::HostTensor;
use crate::ops::binary::{Binary, Geglu, broadcast};
use crate::ops::glu_back::GluBack;

pub(crate) struct BinaryKernel(pub Binary);

/// Values per task.
const CHUNK: usize = 1 << 14;

impl Kernel for BinaryKernel {
    fn label(&self) -> String {
        use crate::ops::Op;
        self.0.name().to_string()
    }

    fn run(
        &self,
        inputs: &[&HostTensor],
        out: &mut HostTensor,
        _syms: &[u32],
        ctx: &mut Ctx,
    ) -> Result<(), BackendError> {
        let (a, b) = (f32s(inputs[0])?, f32s(inputs[1])?);
        let (inner, rep) = broadcast(&inputs[0].shape, &inputs[1].shape).unwrap_or((a.len(), 1));
        let y = f32s_mut(out)?;
        let period = rep * inner;
        if y.len() != a.len()
            || inner == 0
            || (!a.is_empty() && (a.len() % period != 0 || b.len() != a.len() / period * inner))
        {
            return Err(BackendError::Validation(format!(
                "{:?}: a {:?}, b {:?}",
                self.0, inputs[0].shape, inputs[1].shape
            )));
        }
        let op = self.0;
        let y = Shared::new(y);
        ctx.par.ranges(a.len().div_ceil(CHUNK), 1, |r| {
            for c in r {
                let (s, e) = (c * CHUNK, ((c + 1) * CHUNK).min(a.len()));
                // SAFETY: this task alone owns y[s..e].
                let ys = unsafe { y.slice(s, e - s) };
                let mut i = s;
                // Runs of `inner` values that meet one contiguous run of b.
                while i < e {
                    let run = (inner - i % inner).min(e - i);
                    let bi = (i / period) * inner + i % inner;
                    let (ar, br) = (&a[i..i + run], &b[bi..bi + run]);
                    let yr = &mut ys[i - s..i - s + run];
                    match op {
                        Binary::Add => {
                            for ((y, a), b) in yr.iter_mut().zip(ar).zip(br) {
                                *y = a + b;
                            }
                        }
                        Binary::Mul => {
                            for ((y, a), b) in yr.iter_mut().zip(ar).zip(br) {
                                *y = a * b;
                            }
                        }
                        Binary::SwiGlu => {
                            for ((y, a), b) in yr.iter_mut().zip(ar).zip(br) {
                                *y = a / (1.0 + (-a).exp()) * b;
                            }
                        }
                    }
                    i += run;
                }
            }
        })
    }
}

/// erf in f32 as `shaders/common/erf.wgsl` computes it: the Maclaurin series
/// to x¹⁵ below 1 (error < 3e-8), Abramowitz–Stegun 7.1.26 above (< 1.5e-7).
pub(super) fn erf_approx(v: f32) -> f32 {
    let a = v.abs();
    if a < 1.0 {
        let x2 = v * v;
        let (mut term, mut sum) = (v, v);
        for n in 1..12u32 {
            term = term * -x2 / n as f32;
            sum += term / (2 * n + 1) as f32;
        }
        return std::f32::consts::FRAC_2_SQRT_PI * sum;
    }
    let t = 1.0 / (1.0 + 0.327_591_1 * a);
    let poly = t
        * (0.254_829_6
            + t * (-0.284_496_74 + t * (1.421_413_7 + t * (-1.453_152 + t * 1.061_405_4))));
    (1.0 - poly * (-a * a).exp()).copysign(v)
}

/// `a [.., 2n]` → `y [.., n]`, `y = a[.., :n] · gelu_erf(a[.., n:])`.
pub(crate) struct GegluKernel(pub Geglu);

impl Kernel for GegluKernel {
    fn label(&self) -> String {
        "geglu".into()
    }

    fn run(
        &self,
        inputs: &[&HostTensor],
        out: &mut HostTensor,
        _syms: &[u32],
        ctx: &mut Ctx,
    ) -> Result<(), BackendError> {
        let a = f32s(inputs[0])?;
        let n = inputs[0].shape.last().copied().unwrap_or(0) / 2;
        let y = f32s_mut(out)?;
        if n == 0 || y.len() * 2 != a.len() || y.len() % n != 0 {
            return Err(BackendError::Validation(format!(
                "geglu: a {:?}, y of {} values",
                inputs[0].shape,
                y.len()
            )));
        }
        let rows = y.len() / n;
        let per = (CHUNK / n).max(1);
        let y = Shared::new(y);
        ctx.par.ranges(rows.div_ceil(per), 1, |r| {
            for c in r {
                let (r0, r1) = (c * per, ((c + 1) * per).min(rows));
                // SAFETY: this task alone owns rows r0..r1 of y.
                let ys = unsafe { y.slice(r0 * n, (r1 - r0) * n) };
                for (i, yr) in ys.chunks_mut(n).enumerate() {
                    let ar = &a[(r0 + i) * 2 * n..(r0 + i + 1) * 2 * n];
                    let (h, g) = ar.split_at(n);
                    for ((y, h), g) in yr.iter_mut().zip(h).zip(g) {
                        *y =
                            h * (0.5 * g * (1.0 + erf_approx(g * std::f32::consts::FRAC_1_SQRT_2)));
                    }
                }
            }
        })
    }
}

/// The gradients of SwiGLU ([`GluBack`]): `dg = dy·u·σ(g)·(1 + g·(1 − σ(g)))`
/// or `du = dy·silu(g)`, in f32 over chunks in parallel (σ through the f32
/// `exp` of `simd.rs`; the reference's f64 is within the case tolerance).
///
/// [`GluBack`]: crate::ops::glu_back::GluBack
pub(crate) struct GluBackKernel(pub GluBack);

impl Kernel for GluBackKernel {
    fn label(&self) -> String {
        use crate::ops::Op;
        self.0.name().to_string()
    }

    fn run(
        &self,
        inputs: &[&HostTensor],
        out: &mut HostTensor,
        _syms: &[u32],
        ctx: &mut Ctx,
    ) -> Result<(), BackendError> {
        let (g, u, dy) = (f32s(inputs[0])?, f32s(inputs[1])?, f32s(inputs[2])?);
        let y = f32s_mut(out)?;
        if g.len() != y.len() || u.len() != y.len() || dy.len() != y.len() {
            return Err(BackendError::Validation(format!(
                "{:?}: g {}, u {}, dy {}, y {}",
                self.0,
                g.len(),
                u.len(),
                dy.len(),
                y.len()
            )));
        }
        let gate = self.0 == GluBack::Gate;
        each_chunk(ctx, y, |ys, r| {
            let parts = ys
                .iter_mut()
                .zip(&g[r.clone()])
                .zip(&u[r.clone()])
                .zip(&dy[r]);
            for (((y, g), u), d) in parts {
                let sg = 1.0 / (1.0 + exp_f32(-g));
                *y = if gate {
                    d * u * sg * (1.0 + g * (1.0 - sg))
                } else {
                    d * g * sg
                };
            }
        })
    }
}

/// `f(y[s..e], s..e)` over `y` in chunks of `CHUNK` values, in parallel.
pub(super) fn each_chunk(
    ctx: &mut Ctx,
    y: &mut [f32],
    f: impl Fn(&mut [f32], std::ops::Range<usize>) + Sync,
) -> Result<(), BackendError> {
    let n = y.len();
    let y = Shared::new(y);
    ctx.par.ranges(n.div_ceil(CHUNK), 1, |r| {
        for c in r {
            let (s, e) = (c * CHUNK, ((c + 1) * CHUNK).min(n));
            // SAFETY: this task alone owns y[s..e].
            f(unsafe { y.slice(s, e - s) }, s..e);
        }
    })
}
