//! Element-wise binary ops on f32: add, mul (with row broadcast of `b`) and
//! SwiGLU (`silu(a) * b`, the Llama FFN gate).
//!
//! `a` has any shape; `b` has the same shape, or — for add/mul — the shape of
//! `a`'s trailing dimensions (e.g. a bias `[d]` broadcast over rows `[n, d]`).
//! Kernel: `shaders/binary.wgsl`, `b[i % len(b)]`.

use super::{Dispatch, Op, PlanCtx, arity, grid, put_f32, require_dtype, shape_err, u};
use crate::dtype::DType;
use crate::error::Result;
use crate::graph::{Graph, TensorId, TensorInfo};
use crate::host::HostTensor;
use crate::ops::Bind;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Binary {
    Add,
    Mul,
    SwiGlu,
}

impl Binary {
    pub fn eval(self, a: f64, b: f64) -> f64 {
        match self {
            Binary::Add => a + b,
            Binary::Mul => a * b,
            Binary::SwiGlu => a / (1.0 + (-a).exp()) * b,
        }
    }
}

impl Op for Binary {
    fn name(&self) -> &'static str {
        match self {
            Binary::Add => "add",
            Binary::Mul => "mul",
            Binary::SwiGlu => "swiglu",
        }
    }

    fn infer(&self, inputs: &[&TensorInfo]) -> Result<(Vec<usize>, DType)> {
        arity(self.name(), inputs, &[2])?;
        let (a, b) = (inputs[0], inputs[1]);
        require_dtype(self.name(), "a", a, &[DType::F32])?;
        require_dtype(self.name(), "b", b, &[DType::F32])?;
        let broadcast = *self != Binary::SwiGlu
            && b.shape.len() <= a.shape.len()
            && a.shape.ends_with(&b.shape);
        if a.shape != b.shape && !broadcast {
            return Err(shape_err(
                self.name(),
                format!(
                    "a {:?} and b {:?} must match (or b be a's trailing dims)",
                    a.shape, b.shape
                ),
            ));
        }
        Ok((a.shape.clone(), DType::F32))
    }

    fn cpu(&self, inputs: &[&HostTensor], out: &mut HostTensor, _syms: &[u32]) -> Result<()> {
        let a = inputs[0].to_f32()?;
        let b = inputs[1].to_f32()?;
        let y: Vec<f32> = a
            .iter()
            .enumerate()
            .map(|(i, av)| self.eval(*av as f64, b[i % b.len()] as f64) as f32)
            .collect();
        put_f32(out, &y);
        Ok(())
    }

    fn wgsl(&self, ctx: &PlanCtx) -> Result<Vec<Dispatch>> {
        let n = ctx.output.numel();
        Ok(vec![Dispatch {
            shader: "binary.wgsl",
            entry: "main",
            defines: vec![],
            bindings: vec![Bind::Input(0, 0), Bind::Input(1, 0), Bind::Output],
            params: vec![u(n)?, u(ctx.inputs[1].numel())?, *self as u32],
            groups: grid(n.div_ceil(256), ctx.caps)?,
        }])
    }
}

impl Graph {
    pub fn add(&mut self, a: TensorId, b: TensorId) -> Result<TensorId> {
        self.push(Binary::Add, &[a, b])
    }
    pub fn mul(&mut self, a: TensorId, b: TensorId) -> Result<TensorId> {
        self.push(Binary::Mul, &[a, b])
    }
    pub fn swiglu(&mut self, gate: TensorId, up: TensorId) -> Result<TensorId> {
        self.push(Binary::SwiGlu, &[gate, up])
    }
}
