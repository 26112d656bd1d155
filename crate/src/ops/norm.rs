//! RMSNorm and LayerNorm over the last dimension, with an optional per-column
//! weight (and, for LayerNorm, bias).
//!
//! * RMSNorm: `y = x / sqrt(mean(x²) + eps) · w`
//! * LayerNorm: `y = (x − mean) / sqrt(var + eps) · w + b` (biased variance)
//!
//! Inputs: `x [.., d]` f32, then optional `w [d]`, optional `b [d]` (LayerNorm).
//! Kernel: `shaders/norm.wgsl`, one workgroup per row.

use super::{
    Backward, Dispatch, Op, PlanCtx, arity, f, grid, put_f32, require_dtype, shape_err, u,
};
use crate::dtype::DType;
use crate::error::Result;
use crate::graph::{Graph, TensorId, TensorInfo};
use crate::host::HostTensor;
use crate::ops::Bind;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Norm {
    Rms { eps: f32 },
    Layer { eps: f32 },
}

impl Norm {
    fn default_backward(op: &'static str) -> Result<Vec<Option<TensorId>>> {
        Err(crate::error::KilnError::BadParam {
            op,
            detail: "has no backward (not differentiable here)".into(),
        })
    }
}

impl Op for Norm {
    /// RMSNorm: `dx` by [`crate::ops::norm_back`]; the weight is frozen.
    fn backward(&self, g: &mut Graph, b: &Backward) -> Result<Vec<Option<TensorId>>> {
        let Norm::Rms { eps } = *self else {
            return Norm::default_backward(self.name());
        };
        b.frozen(self.name(), 1, "weight")?;
        let w = b.inputs.get(1).copied();
        Ok(vec![
            b.grad(0, || g.rms_norm_back(b.inputs[0], w, b.dy, eps))?,
            None,
        ][..b.inputs.len()]
            .to_vec())
    }

    fn name(&self) -> &'static str {
        match self {
            Norm::Rms { .. } => "rms_norm",
            Norm::Layer { .. } => "layer_norm",
        }
    }

    fn infer(&self, inputs: &[&TensorInfo]) -> Result<(Vec<usize>, DType)> {
        let allowed: &[usize] = match self {
            Norm::Rms { .. } => &[1, 2],
            Norm::Layer { .. } => &[1, 2, 3],
        };
        arity(self.name(), inputs, allowed)?;
        for t in inputs {
            require_dtype(self.name(), "x/w/b", t, &[DType::F32])?;
        }
        let d = inputs[0].cols();
        for t in &inputs[1..] {
            if t.shape != [d] {
                return Err(shape_err(
                    self.name(),
                    format!(
                        "weight/bias {:?} must be [{d}] for x {:?}",
                        t.shape, inputs[0].shape
                    ),
                ));
            }
        }
        Ok((inputs[0].shape.clone(), DType::F32))
    }

    fn cpu(&self, inputs: &[&HostTensor], out: &mut HostTensor, _syms: &[u32]) -> Result<()> {
        let x = inputs[0].to_f32()?;
        let w = inputs.get(1).map(|t| t.to_f32()).transpose()?;
        let b = inputs.get(2).map(|t| t.to_f32()).transpose()?;
        let d = *inputs[0].shape.last().unwrap_or(&1);
        let mut y = Vec::with_capacity(x.len());
        for row in x.chunks(d) {
            let n = d as f64;
            let (mean, eps) = match self {
                Norm::Rms { eps } => (0.0, *eps),
                Norm::Layer { eps } => (row.iter().map(|v| *v as f64).sum::<f64>() / n, *eps),
            };
            let var = row.iter().map(|v| (*v as f64 - mean).powi(2)).sum::<f64>() / n;
            let inv = 1.0 / (var + eps as f64).sqrt();
            for (i, v) in row.iter().enumerate() {
                let mut r = (*v as f64 - mean) * inv;
                if let Some(w) = &w {
                    r *= w[i] as f64;
                }
                if let Some(b) = &b {
                    r += b[i] as f64;
                }
                y.push(r as f32);
            }
        }
        put_f32(out, &y);
        Ok(())
    }

    fn wgsl(&self, ctx: &PlanCtx) -> Result<Vec<Dispatch>> {
        let x = ctx.inputs[0];
        let (kind, eps) = match self {
            Norm::Rms { eps } => (0, *eps),
            Norm::Layer { eps } => (1, *eps),
        };
        let n_in = ctx.inputs.len();
        let w = if n_in > 1 {
            Bind::Input(1, 0)
        } else {
            Bind::Input(0, 0)
        };
        let b = if n_in > 2 {
            Bind::Input(2, 0)
        } else {
            Bind::Input(0, 0)
        };
        Ok(vec![Dispatch {
            shader: "norm.wgsl",
            entry: "main",
            defines: vec![],
            bindings: vec![Bind::Input(0, 0), w, b, Bind::Output],
            params: vec![
                u(x.cols())?,
                u(x.rows())?,
                f(eps),
                kind,
                (n_in > 1) as u32,
                (n_in > 2) as u32,
            ],
            groups: grid(x.rows(), ctx.caps)?,
        }])
    }
}

impl Graph {
    /// RMSNorm of `x` times `w` (pass `None` for no weight).
    pub fn rms_norm(&mut self, x: TensorId, w: Option<TensorId>, eps: f32) -> Result<TensorId> {
        let inputs: Vec<TensorId> = std::iter::once(x).chain(w).collect();
        self.push(Norm::Rms { eps }, &inputs)
    }
    pub fn layer_norm(
        &mut self,
        x: TensorId,
        w: Option<TensorId>,
        b: Option<TensorId>,
        eps: f32,
    ) -> Result<TensorId> {
        if b.is_some() && w.is_none() {
            return Err(shape_err("layer_norm", "a bias needs a weight".into()));
        }
        let inputs: Vec<TensorId> = std::iter::once(x).chain(w).chain(b).collect();
        self.push(Norm::Layer { eps }, &inputs)
    }
}
