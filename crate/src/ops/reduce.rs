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

    /// One workgroup per row; on GPUs a long row (an LM head's 50–262k
    /// logits: one workgroup streamed 128k of them in 94 µs on the H100,
    /// docs/bench/2026-12-06-h100-cuda-decode) splits over
    /// [`Argmax::splits`] workgroups and a combine pass.
    fn wgsl(&self, ctx: &PlanCtx) -> Result<Vec<Dispatch>> {
        let x = ctx.inputs[0];
        let (cols, rows) = (x.cols(), x.rows());
        let ns = Argmax::splits(cols, rows, ctx.caps.cpu);
        if ns <= 1 {
            return Ok(vec![Dispatch {
                shader: "reduce.wgsl",
                entry: "argmax",
                defines: vec!["ARGMAX"],
                bindings: vec![Bind::Input(0, 0), Bind::Output],
                params: vec![u(cols)?, u(rows)?, 0],
                groups: grid(rows, ctx.caps)?,
            }]);
        }
        let params = vec![u(cols)?, u(rows)?, u(ns)?];
        Ok(vec![
            Dispatch {
                shader: "reduce.wgsl",
                entry: "argmax_part",
                defines: vec!["ARGMAX"],
                bindings: vec![Bind::Input(0, 0), Bind::Scratch(0, (rows * ns * 8) as u64)],
                params: params.clone(),
                groups: [u(rows)?, u(ns)?, 1],
            },
            Dispatch {
                shader: "reduce.wgsl",
                entry: "argmax_combine",
                defines: vec!["ARGMAX", "ARGMAX_COMBINE"],
                bindings: vec![Bind::ScratchRead(0), Bind::Output],
                params,
                groups: grid(rows, ctx.caps)?,
            },
        ])
    }
}

impl Argmax {
    /// Workgroups per row: one per 4096 values of a row of at least 16384
    /// on a GPU (at most 256, the combine pass's width; rows fit one grid
    /// dimension); 1 otherwise — CPU adapters have few cores to share out.
    pub fn splits(cols: usize, rows: usize, cpu: bool) -> usize {
        if cpu || cols < 16384 || rows > 65535 {
            1
        } else {
            cols.div_ceil(4096).min(256)
        }
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
