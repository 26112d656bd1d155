//! Softmax cross-entropy over rows of logits, and its gradient — the
//! training loss of a language model. The trainer feeds it one chunk of
//! token rows at a time (`logits [rows, vocab]` of that chunk only), so the
//! whole batch's `[tokens, vocab]` logits never exist at once.
//!
//! * [`CrossEntropy::Loss`]: `(logits [r, V], labels [r] u32)` →
//!   `loss [r]`, `logsumexp(z) − z[label]`, 0 for a masked row.
//! * [`CrossEntropy::Grad`]: `(logits, labels, scale [1] f32)` →
//!   `dlogits [r, V] = scale·(softmax(z) − onehot(label))`, 0 for a masked
//!   row. `scale` is a tensor (1 / the batch's target count changes per step).
//!
//! A label of [`MASKED`] masks its row; any other label must be < V (a typed
//! error when written). Kernel: `shaders/cross_entropy.wgsl`, one workgroup
//! per row.

use super::{Dispatch, Op, PlanCtx, arity, grid, put_f32, require_dtype, shape_err, u};
use crate::dtype::DType;
use crate::error::{KilnError, Result};
use crate::graph::{Graph, TensorId, TensorInfo};
use crate::host::HostTensor;
use crate::ops::Bind;

/// The label of a row that is not trained.
pub const MASKED: u32 = u32::MAX;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrossEntropy {
    Loss,
    Grad,
}

impl Op for CrossEntropy {
    fn name(&self) -> &'static str {
        match self {
            CrossEntropy::Loss => "cross_entropy",
            CrossEntropy::Grad => "cross_entropy_grad",
        }
    }

    fn infer(&self, inputs: &[&TensorInfo]) -> Result<(Vec<usize>, DType)> {
        let n = match self {
            CrossEntropy::Loss => 2,
            CrossEntropy::Grad => 3,
        };
        arity(self.name(), inputs, &[n])?;
        let (z, labels) = (inputs[0], inputs[1]);
        require_dtype(self.name(), "logits", z, &[DType::F32])?;
        require_dtype(self.name(), "labels", labels, &[DType::U32])?;
        if z.shape.len() != 2 || labels.shape != [z.shape[0]] {
            return Err(shape_err(
                self.name(),
                format!(
                    "logits {:?} must be [r, V] and labels {:?} [r]",
                    z.shape, labels.shape
                ),
            ));
        }
        if let Some(s) = inputs.get(2) {
            require_dtype(self.name(), "scale", s, &[DType::F32])?;
            if s.shape != [1] {
                return Err(shape_err(
                    self.name(),
                    format!("scale {:?} must be [1]", s.shape),
                ));
            }
        }
        Ok(match self {
            CrossEntropy::Loss => (vec![z.shape[0]], DType::F32),
            CrossEntropy::Grad => (z.shape.clone(), DType::F32),
        })
    }

    fn check_input_data(
        &self,
        idx: usize,
        data: &HostTensor,
        inputs: &[&TensorInfo],
    ) -> Result<()> {
        if idx == 1 {
            let rows = inputs[0].shape[1];
            let bad = data
                .to_u32()?
                .into_iter()
                .find(|l| *l != MASKED && *l as usize >= rows);
            if let Some(id) = bad {
                return Err(KilnError::IndexOutOfRange { id, rows });
            }
        }
        Ok(())
    }

    fn cpu(&self, inputs: &[&HostTensor], out: &mut HostTensor, _syms: &[u32]) -> Result<()> {
        let z = inputs[0].to_f32()?;
        let labels = inputs[1].to_u32()?;
        let v = inputs[0].shape[1];
        let scale = match inputs.get(2) {
            Some(s) => s.to_f32()?.first().copied().unwrap_or(0.0) as f64,
            None => 1.0,
        };
        let mut y = Vec::new();
        for (zr, &label) in z.chunks(v).zip(&labels) {
            let masked = label as usize >= v;
            let mx = zr.iter().fold(f64::NEG_INFINITY, |m, x| m.max(*x as f64));
            let s: f64 = zr.iter().map(|x| (*x as f64 - mx).exp()).sum();
            match self {
                CrossEntropy::Loss if masked => y.push(0.0),
                CrossEntropy::Loss => y.push((s.ln() + mx - zr[label as usize] as f64) as f32),
                CrossEntropy::Grad if masked => y.extend(std::iter::repeat_n(0.0, v)),
                CrossEntropy::Grad => y.extend(zr.iter().enumerate().map(|(i, x)| {
                    let p = (*x as f64 - mx).exp() / s - (i == label as usize) as u8 as f64;
                    (scale * p) as f32
                })),
            }
        }
        put_f32(out, &y);
        Ok(())
    }

    fn wgsl(&self, ctx: &PlanCtx) -> Result<Vec<Dispatch>> {
        let z = ctx.inputs[0];
        Ok(vec![Dispatch {
            shader: "cross_entropy.wgsl",
            entry: "main",
            defines: match self {
                CrossEntropy::Loss => vec!["LOSS"],
                CrossEntropy::Grad => vec![],
            },
            bindings: vec![
                Bind::Input(0, 0),
                Bind::Input(1, 0),
                Bind::Input(if ctx.inputs.len() == 3 { 2 } else { 0 }, 0),
                Bind::Output,
            ],
            params: vec![u(z.shape[0])?, u(z.shape[1])?],
            groups: grid(z.shape[0], ctx.caps)?,
        }])
    }
}

impl Graph {
    /// Per-row cross-entropy losses `[r]` of `logits [r, V]` against `labels [r]`.
    pub fn cross_entropy(&mut self, logits: TensorId, labels: TensorId) -> Result<TensorId> {
        self.push(CrossEntropy::Loss, &[logits, labels])
    }

    /// `scale·(softmax − onehot)`: the gradient of `scale·Σ losses`.
    pub fn cross_entropy_grad(
        &mut self,
        logits: TensorId,
        labels: TensorId,
        scale: TensorId,
    ) -> Result<TensorId> {
        self.push(CrossEntropy::Grad, &[logits, labels, scale])
    }
}
