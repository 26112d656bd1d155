//! Element-wise binary ops ([`Binary`]: add, mul with `b` broadcast over
//! one run of `a`'s dimensions, SwiGLU) in f32 over chunks in parallel: a
//! training step runs hundreds of them (residual adds, gradient sums).
//!
//! Add and mul of two f32 values rounded once equal the reference's f64
//! result rounded to f32 (no double-rounding error for one operation at
//! 53 bits); SwiGLU uses f32 `exp` (within the case tolerance).
//!
//! [`Binary`]: crate::ops::binary::Binary

use super::Ctx;
use super::kernels::{Kernel, f32s, f32s_mut};
use super::par::Shared;
use crate::backend::BackendError;
use crate::host::HostTensor;
use crate::ops::binary::{Binary, broadcast};

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
