//! Row reductions over the last dimension.
//!
//! * `softmax(x, scale)`: `y = exp(s·x − max) / Σ exp(s·x − max)` per row, f32.
//! * `argmax(x)`: index of the largest value per row as u32 (first one on
//!   ties, as PyTorch and llama.cpp); output shape drops the last dimension
//!   (`[n, v] → [n]`, `[v] → [1]`).
//!
//! Kernel: `shaders/reduce.wgsl`, one workgroup of 256 per row.

use super::{Dispatch, Op, PlanCtx, arity, f, grid, put_f32, require_dtype, u};
use crate::dtype::DType;
use crate::error::Result;
use crate::graph::{Graph, TensorId, TensorInfo};
use crate::host::HostTensor;
use crate::ops::Bind;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Softmax {
    pub scale: f32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Argmax;

impl Op for Softmax {
    fn name(&self) -> &'static str {
        "softmax"
    }

    fn infer(&self, inputs: &[&TensorInfo]) -> Result<(Vec<usize>, DType)> {
        arity(self.name(), inputs, &[1])?;
        require_dtype(self.name(), "x", inputs[0], &[DType::F32])?;
        Ok((inputs[0].shape.clone(), DType::F32))
    }

    fn cpu(&self, inputs: &[&HostTensor], out: &mut HostTensor, _syms: &[u32]) -> Result<()> {
        let x = inputs[0].to_f32()?;
        let d = *inputs[0].shape.last().unwrap_or(&1);
        let mut y = Vec::with_capacity(x.len());
        for row in x.chunks(d) {
            let s: Vec<f64> = row.iter().map(|v| *v as f64 * self.scale as f64).collect();
            let m = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let e: Vec<f64> = s.iter().map(|v| (v - m).exp()).collect();
            let sum: f64 = e.iter().sum();
            y.extend(e.iter().map(|v| (v / sum) as f32));
        }
        put_f32(out, &y);
        Ok(())
    }

    fn wgsl(&self, ctx: &PlanCtx) -> Result<Vec<Dispatch>> {
        let x = ctx.inputs[0];
        Ok(vec![Dispatch {
            shader: "reduce.wgsl",
            entry: "softmax",
            defines: vec![],
            bindings: vec![Bind::Input(0, 0), Bind::Output],
            params: vec![u(x.cols())?, u(x.rows())?, f(self.scale)],
            groups: grid(x.rows(), ctx.caps)?,
        }])
    }
}

impl Op for Argmax {
    fn name(&self) -> &'static str {
        "argmax"
    }

    fn infer(&self, inputs: &[&TensorInfo]) -> Result<(Vec<usize>, DType)> {
        arity(self.name(), inputs, &[1])?;
        require_dtype(self.name(), "x", inputs[0], &[DType::F32])?;
        let s = &inputs[0].shape;
        let shape = if s.len() > 1 {
            s[..s.len() - 1].to_vec()
        } else {
            vec![1]
        };
        Ok((shape, DType::U32))
    }

    fn cpu(&self, inputs: &[&HostTensor], out: &mut HostTensor, _syms: &[u32]) -> Result<()> {
        let x = inputs[0].to_f32()?;
        let d = *inputs[0].shape.last().unwrap_or(&1);
        let idx: Vec<u32> = x
            .chunks(d)
            .map(|row| {
                let mut best = 0usize;
                for (i, v) in row.iter().enumerate() {
                    if *v > row[best] {
                        best = i;
                    }
                }
                best as u32
            })
            .collect();
        out.data = idx.iter().flat_map(|v| v.to_le_bytes()).collect();
        Ok(())
    }

    fn wgsl(&self, ctx: &PlanCtx) -> Result<Vec<Dispatch>> {
        let x = ctx.inputs[0];
        Ok(vec![Dispatch {
            shader: "reduce.wgsl",
            entry: "argmax",
            defines: vec!["ARGMAX"],
            bindings: vec![Bind::Input(0, 0), Bind::Output],
            params: vec![u(x.cols())?, u(x.rows())?, 0],
            groups: grid(x.rows(), ctx.caps)?,
        }])
    }
}

impl Graph {
    pub fn softmax(&mut self, x: TensorId, scale: f32) -> Result<TensorId> {
        self.push(Softmax { scale }, &[x])
    }
    pub fn argmax(&mut self, x: TensorId) -> Result<TensorId> {
        self.push(Argmax, &[x])
    }
}
