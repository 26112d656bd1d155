//! The input gradient of RMSNorm (ops/norm.rs): with `r = 1/sqrt(mean(x²) + eps)`
//! and `y = x·r·w`, `dx_i = r·w_i·dy_i − x_i·r³/n·Σ_j w_j·dy_j·x_j`.
//!
//! Inputs `x [.., d]`, optional `w [d]` (frozen: its gradient is not
//! computed), `dy [.., d]`, all f32. Kernel: `shaders/norm_back.wgsl`, one
//! workgroup per row.

use super::{Dispatch, Op, PlanCtx, arity, f, grid, put_f32, require_dtype, shape_err, u};
use crate::dtype::DType;
use crate::error::Result;
use crate::graph::{Graph, TensorId, TensorInfo};
use crate::host::HostTensor;
use crate::ops::Bind;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RmsNormBack {
    pub eps: f32,
}

impl Op for RmsNormBack {
    fn name(&self) -> &'static str {
        "rms_norm_back"
    }

    fn infer(&self, inputs: &[&TensorInfo]) -> Result<(Vec<usize>, DType)> {
        arity(self.name(), inputs, &[2, 3])?;
        for t in inputs {
            require_dtype(self.name(), "x/w/dy", t, &[DType::F32])?;
        }
        let (x, dy) = (inputs[0], inputs[inputs.len() - 1]);
        let d = x.cols();
        if dy.shape != x.shape || (inputs.len() == 3 && inputs[1].shape != [d]) {
            return Err(shape_err(
                self.name(),
                format!(
                    "x {:?}, w and dy must be [.., {d}], [{d}], x's shape",
                    x.shape
                ),
            ));
        }
        Ok((x.shape.clone(), DType::F32))
    }

    fn cpu(&self, inputs: &[&HostTensor], out: &mut HostTensor, _syms: &[u32]) -> Result<()> {
        let x = inputs[0].to_f32()?;
        let dy = inputs[inputs.len() - 1].to_f32()?;
        let w = (inputs.len() == 3)
            .then(|| inputs[1].to_f32())
            .transpose()?;
        let d = *inputs[0].shape.last().unwrap_or(&1);
        let mut dx = Vec::with_capacity(x.len());
        for (xr, gr) in x.chunks(d).zip(dy.chunks(d)) {
            let wd = |i: usize| gr[i] as f64 * w.as_ref().map_or(1.0, |w| w[i] as f64);
            let ss: f64 = xr.iter().map(|v| (*v as f64).powi(2)).sum();
            let r = 1.0 / (ss / d as f64 + self.eps as f64).sqrt();
            let sd: f64 = (0..d).map(|i| wd(i) * xr[i] as f64).sum();
            let c = sd * r * r * r / d as f64;
            dx.extend((0..d).map(|i| (r * wd(i) - xr[i] as f64 * c) as f32));
        }
        put_f32(out, &dx);
        Ok(())
    }

    fn wgsl(&self, ctx: &PlanCtx) -> Result<Vec<Dispatch>> {
        let x = ctx.inputs[0];
        let last = ctx.inputs.len() - 1;
        Ok(vec![Dispatch {
            shader: "norm_back.wgsl",
            entry: "main",
            defines: vec![],
            bindings: vec![
                Bind::Input(0, 0),
                Bind::Input(if last == 2 { 1 } else { 0 }, 0),
                Bind::Input(last, 0),
                Bind::Output,
            ],
            params: vec![u(x.cols())?, u(x.rows())?, f(self.eps), (last == 2) as u32],
            groups: grid(x.rows(), ctx.caps)?,
        }])
    }
}

impl Graph {
    /// The gradient of `rms_norm(x, w, eps)` with respect to `x`.
    pub fn rms_norm_back(
        &mut self,
        x: TensorId,
        w: Option<TensorId>,
        dy: TensorId,
        eps: f32,
    ) -> Result<TensorId> {
        match w {
            Some(w) => self.push(RmsNormBack { eps }, &[x, w, dy]),
            None => self.push(RmsNormBack { eps }, &[x, dy]),
        }
    }
}
