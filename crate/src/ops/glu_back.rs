//! The gradients of SwiGLU `y = silu(g)·u` (ops/binary.rs):
//! `dg = dy·u·σ(g)·(1 + g·(1 − σ(g)))`, `du = dy·silu(g)`.
//!
//! Inputs `g`, `u`, `dy` (f32, one shape). Kernel: `shaders/glu_back.wgsl`.

use super::{Dispatch, Op, PlanCtx, arity, grid, put_f32, require_dtype, shape_err, u};
use crate::dtype::DType;
use crate::error::Result;
use crate::graph::{Graph, TensorId, TensorInfo};
use crate::host::HostTensor;
use crate::ops::Bind;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GluBack {
    /// The gradient of the gate input.
    Gate,
    /// The gradient of the up input.
    Up,
}

impl Op for GluBack {
    fn name(&self) -> &'static str {
        match self {
            GluBack::Gate => "swiglu_back_gate",
            GluBack::Up => "swiglu_back_up",
        }
    }

    fn infer(&self, inputs: &[&TensorInfo]) -> Result<(Vec<usize>, DType)> {
        arity(self.name(), inputs, &[3])?;
        for t in inputs {
            require_dtype(self.name(), "g/u/dy", t, &[DType::F32])?;
        }
        if inputs.iter().any(|t| t.shape != inputs[0].shape) {
            return Err(shape_err(
                self.name(),
                "g, u and dy must have one shape".into(),
            ));
        }
        Ok((inputs[0].shape.clone(), DType::F32))
    }

    fn cpu(&self, inputs: &[&HostTensor], out: &mut HostTensor, _syms: &[u32]) -> Result<()> {
        let (g, up, dy) = (
            inputs[0].to_f32()?,
            inputs[1].to_f32()?,
            inputs[2].to_f32()?,
        );
        let y: Vec<f32> = (0..g.len())
            .map(|i| {
                let (gv, d) = (g[i] as f64, dy[i] as f64);
                let s = 1.0 / (1.0 + (-gv).exp());
                (match self {
                    GluBack::Gate => d * up[i] as f64 * s * (1.0 + gv * (1.0 - s)),
                    GluBack::Up => d * gv * s,
                }) as f32
            })
            .collect();
        put_f32(out, &y);
        Ok(())
    }

    fn wgsl(&self, ctx: &PlanCtx) -> Result<Vec<Dispatch>> {
        let n = ctx.output.numel();
        Ok(vec![Dispatch {
            shader: "glu_back.wgsl",
            entry: "main",
            defines: vec![],
            bindings: vec![
                Bind::Input(0, 0),
                Bind::Input(1, 0),
                Bind::Input(2, 0),
                Bind::Output,
            ],
            params: vec![u(n)?, (*self == GluBack::Up) as u32],
            groups: grid(n.div_ceil(256), ctx.caps)?,
        }])
    }
}

impl Graph {
    /// One gradient of `swiglu(gate, up)` given `dy`.
    pub fn swiglu_back(
        &mut self,
        which: GluBack,
        gate: TensorId,
        up: TensorId,
        dy: TensorId,
    ) -> Result<TensorId> {
        self.push(which, &[gate, up, dy])
    }
}
