//! Optimizer ops: gradient accumulation, global-norm clipping and AdamW,
//! in place on trainable `State` tensors (parameters, gradient accumulators,
//! moments), following PyTorch's single-tensor AdamW (`foreach=False`) and
//! `clip_grad_norm_` operation by operation.
//!
//! * [`Optim::Accumulate`] `(G, g)`: `G += g` (in place on `G`).
//! * [`Optim::Zero`] `(G)`: `G = 0`.
//! * [`Optim::SqNorm`] `(norms [n], g)`: `norms[slot] = ‖g‖₂`.
//! * [`Optim::Clip`] `(norms)` → `[2]`: total `‖norms‖₂` and the clip
//!   coefficient `min(1, max_norm / (total + 1e-6))` (1 when `max_norm ≤ 0`).
//! * [`Optim::Moments`] `(mv [2, n], G, clip [2], hyper [7])`: with
//!   `g = G·coef`, `m += (g − m)·(1 − β1)`, `v = v·β2 + (1 − β2)·g²`.
//! * [`Optim::Param`] `(p, mv, hyper)`: `p = p·(1 − lr·wd) − step·m /
//!   (sqrt(v)/sqrt(1 − β2ᵗ) + eps)` with `step = lr / (1 − β1ᵗ)`.
//!
//! `hyper` = `[1 − lr·wd, step, sqrt(1 − β2ᵗ), eps, 1 − β1, β2, 1 − β2]`
//! (f32, computed in f64 by the host each step). Kernel: `shaders/optim.wgsl`.

use super::{Dispatch, Op, PlanCtx, arity, f, grid, put_f32, require_dtype, shape_err, u};
use crate::dtype::DType;
use crate::error::Result;
use crate::graph::{Graph, TensorId, TensorInfo};
use crate::host::HostTensor;
use crate::ops::Bind;

/// Length of the `hyper` input of [`Optim::Moments`] / [`Optim::Param`].
pub const HYPER_LEN: usize = 7;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Optim {
    Accumulate,
    Zero,
    SqNorm { slot: usize },
    Clip { max_norm: f32 },
    Moments,
    Param,
}

impl Op for Optim {
    fn name(&self) -> &'static str {
        match self {
            Optim::Accumulate => "grad_accumulate",
            Optim::Zero => "zero",
            Optim::SqNorm { .. } => "grad_norm",
            Optim::Clip { .. } => "clip_coef",
            Optim::Moments => "adamw_moments",
            Optim::Param => "adamw_param",
        }
    }

    fn infer(&self, inputs: &[&TensorInfo]) -> Result<(Vec<usize>, DType)> {
        let n = match self {
            Optim::Zero | Optim::Clip { .. } => 1,
            Optim::Accumulate | Optim::SqNorm { .. } => 2,
            Optim::Param => 3,
            Optim::Moments => 4,
        };
        arity(self.name(), inputs, &[n])?;
        for t in inputs {
            require_dtype(self.name(), "inputs", t, &[DType::F32])?;
        }
        let bad = |d: String| Err(shape_err(self.name(), d));
        let dst = inputs[0];
        match self {
            Optim::Accumulate if inputs[1].numel() != dst.numel() => bad(format!(
                "g {:?} must match {:?}",
                inputs[1].shape, dst.shape
            )),
            Optim::SqNorm { slot } if *slot >= dst.numel() => {
                bad(format!("slot {slot} outside norms {:?}", dst.shape))
            }
            Optim::Clip { .. } => Ok((vec![2], DType::F32)),
            Optim::Moments
                if dst.numel() != 2 * inputs[1].numel()
                    || inputs[2].shape != [2]
                    || inputs[3].shape != [HYPER_LEN] =>
            {
                bad(format!(
                    "mv {:?} must be [2, n] for g {:?}, clip [2], hyper [{HYPER_LEN}]",
                    dst.shape, inputs[1].shape
                ))
            }
            Optim::Param
                if inputs[1].numel() != 2 * dst.numel() || inputs[2].shape != [HYPER_LEN] =>
            {
                bad(format!(
                    "mv {:?} must be [2, n] for p {:?}, hyper [{HYPER_LEN}]",
                    inputs[1].shape, dst.shape
                ))
            }
            _ => Ok((dst.shape.clone(), DType::F32)),
        }
    }

    fn in_place(&self) -> Option<usize> {
        match self {
            Optim::Clip { .. } => None,
            _ => Some(0),
        }
    }

    fn cpu(&self, inputs: &[&HostTensor], out: &mut HostTensor, _syms: &[u32]) -> Result<()> {
        let norm = |v: &[f32]| v.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
        let y: Vec<f32> = match self {
            Optim::Clip { max_norm } => {
                let total = norm(&inputs[0].to_f32()?) as f32;
                let coef = if *max_norm > 0.0 {
                    (max_norm / (total + 1e-6)).min(1.0)
                } else {
                    1.0
                };
                vec![total, coef]
            }
            _ => {
                let mut y = out.to_f32()?;
                match self {
                    Optim::Accumulate => {
                        for (a, b) in y.iter_mut().zip(inputs[1].to_f32()?) {
                            *a += b;
                        }
                    }
                    Optim::Zero => y.fill(0.0),
                    Optim::SqNorm { slot } => y[*slot] = norm(&inputs[1].to_f32()?) as f32,
                    Optim::Moments => {
                        let (g, clip, h) = (
                            inputs[1].to_f32()?,
                            inputs[2].to_f32()?,
                            inputs[3].to_f32()?,
                        );
                        let n = g.len();
                        for i in 0..n {
                            let gv = g[i] * clip[1];
                            y[i] += (gv - y[i]) * h[4];
                            y[n + i] = y[n + i] * h[5] + h[6] * gv * gv;
                        }
                    }
                    Optim::Param => {
                        let (mv, h) = (inputs[1].to_f32()?, inputs[2].to_f32()?);
                        let n = y.len();
                        for i in 0..n {
                            let denom = mv[n + i].sqrt() / h[2] + h[3];
                            y[i] = y[i] * h[0] - h[1] * (mv[i] / denom);
                        }
                    }
                    Optim::Clip { .. } => {}
                }
                y
            }
        };
        put_f32(out, &y);
        Ok(())
    }

    fn wgsl(&self, ctx: &PlanCtx) -> Result<Vec<Dispatch>> {
        let dst = ctx.inputs[0];
        let (define, n, max_norm, slot) = match self {
            Optim::Accumulate => ("ACCUMULATE", dst.numel(), 0.0, 0),
            Optim::Zero => ("ZERO", dst.numel(), 0.0, 0),
            Optim::SqNorm { slot } => ("SQ_NORM", ctx.inputs[1].numel(), 0.0, *slot),
            Optim::Clip { max_norm } => ("CLIP", dst.numel(), *max_norm, 0),
            Optim::Moments => ("MOMENTS", ctx.inputs[1].numel(), 0.0, 0),
            Optim::Param => ("PARAM", dst.numel(), 0.0, 0),
        };
        let single = matches!(self, Optim::SqNorm { .. } | Optim::Clip { .. });
        let mut bindings = vec![Bind::Output];
        let first = if matches!(self, Optim::Clip { .. }) {
            0
        } else {
            1
        };
        bindings.extend((first..ctx.inputs.len()).map(|i| Bind::Input(i, 0)));
        Ok(vec![Dispatch {
            shader: "optim.wgsl",
            entry: "main",
            defines: vec![define],
            bindings,
            params: vec![u(n)?, u(slot)?, f(max_norm)],
            groups: if single {
                [1, 1, 1]
            } else {
                grid(n.div_ceil(256), ctx.caps)?
            },
        }])
    }
}

impl Graph {
    /// `acc += g` in place (`acc` a state tensor).
    pub fn accumulate(&mut self, acc: TensorId, g: TensorId) -> Result<TensorId> {
        self.push(Optim::Accumulate, &[acc, g])
    }

    /// Sets a state tensor to zero.
    pub fn zero(&mut self, t: TensorId) -> Result<TensorId> {
        self.push(Optim::Zero, &[t])
    }
}
