//! The two gradients of `y = x · Wᵀ` (ops/matmul.rs), for reverse mode.
//!
//! * [`MatMulInputGrad`]: `dx [.., k] = dy [.., n] · W [n, k]`, `W` in any
//!   [`DType::WEIGHTS`] type decoded on the fly (a frozen quantized base is
//!   never dequantized into memory). A weight split across storage bindings
//!   is one dispatch per row chunk; later chunks add to `dx`.
//! * [`MatMulWeightGrad`]: `dW [n, k] = dyᵀ · x` over all rows (f32), the
//!   gradient of a trainable weight (LoRA A and B).
//!
//! Kernel: `shaders/mul_mat_back.wgsl` (`INPUT_GRAD`, tiled on GPUs /
//! `WEIGHT_GRAD`).

use super::{Dispatch, Op, PlanCtx, arity, grid, put_f32, require_dtype, shape_err, u};
use crate::dtype::DType;
use crate::error::Result;
use crate::graph::{Graph, TensorId, TensorInfo};
use crate::host::HostTensor;
use crate::ops::Bind;
use crate::ops::matmul::weight_define;
use crate::quant;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MatMulInputGrad;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MatMulWeightGrad;

impl Op for MatMulInputGrad {
    fn name(&self) -> &'static str {
        "mul_mat_input_grad"
    }

    fn infer(&self, inputs: &[&TensorInfo]) -> Result<(Vec<usize>, DType)> {
        arity(self.name(), inputs, &[2])?;
        let (dy, w) = (inputs[0], inputs[1]);
        require_dtype(self.name(), "dy", dy, &[DType::F32])?;
        require_dtype(self.name(), "w", w, &DType::WEIGHTS)?;
        if w.shape.len() != 2 || w.shape[0] != dy.cols() {
            return Err(shape_err(
                self.name(),
                format!(
                    "w {:?} must be [{}, k] for dy {:?}",
                    w.shape,
                    dy.cols(),
                    dy.shape
                ),
            ));
        }
        w.dtype.row_bytes(w.shape[1])?;
        let mut shape = dy.shape.clone();
        if let Some(last) = shape.last_mut() {
            *last = w.shape[1];
        }
        Ok((shape, DType::F32))
    }

    fn splittable_input(&self) -> Option<usize> {
        Some(1)
    }

    fn cpu(&self, inputs: &[&HostTensor], out: &mut HostTensor, _syms: &[u32]) -> Result<()> {
        let dy = inputs[0].to_f32()?;
        let w = inputs[1];
        let (n, k) = (w.shape[0], w.shape[1]);
        let m = dy.len() / n;
        let row_bytes = w.dtype.row_bytes(k)?;
        let mut acc = vec![0f64; m * k];
        let mut wr = vec![0f32; k];
        for j in 0..n {
            quant::dequantize_into(
                w.dtype,
                &w.data[j * row_bytes..(j + 1) * row_bytes],
                &mut wr,
            )?;
            for i in 0..m {
                let d = dy[i * n + j] as f64;
                if d == 0.0 {
                    continue;
                }
                for (a, wv) in acc[i * k..(i + 1) * k].iter_mut().zip(&wr) {
                    *a += d * *wv as f64;
                }
            }
        }
        let y: Vec<f32> = acc.iter().map(|v| *v as f32).collect();
        put_f32(out, &y);
        Ok(())
    }

    fn wgsl(&self, ctx: &PlanCtx) -> Result<Vec<Dispatch>> {
        let (dy, w) = (ctx.inputs[0], ctx.inputs[1]);
        let (m, n, k) = (dy.rows(), w.shape[0], w.shape[1]);
        // GPUs: a tiled GEMM (64×64 tiles once m and k fill one); CPU
        // adapters: the barrier-free kernel.
        let tiled = !ctx.caps.cpu;
        let invocations = k.div_ceil(4) * m.div_ceil(4);
        // CPU adapters walk each chunk in segments (llvmpipe ends loops past
        // 65535 iterations per invocation); GPUs take a chunk at once.
        let seg = if tiled { usize::MAX } else { CPU_SEGMENT_ROWS };
        let mut out = Vec::new();
        for (c, ch) in ctx.chunks[1].iter().enumerate() {
            let mut defines = vec!["INPUT_GRAD", weight_define(w.dtype)];
            let big = tiled && super::matmul::tile64_pays(m, k);
            if big {
                defines.push("TILE64");
            } else if tiled {
                defines.push("TILED");
            }
            let mut first = 0;
            while first < ch.rows {
                let rows = seg.min(ch.rows - first);
                out.push(Dispatch {
                    shader: "mul_mat_back.wgsl",
                    entry: "main",
                    defines: defines.clone(),
                    bindings: vec![Bind::Input(1, c), Bind::Input(0, 0), Bind::Output],
                    params: vec![
                        u(m)?,
                        u(n)?,
                        u(k)?,
                        u(ch.row0)?,
                        u(rows)?,
                        (c > 0 || first > 0) as u32,
                        u(first)?,
                    ],
                    groups: if big {
                        [u(k.div_ceil(64))?, u(m.div_ceil(64))?, 1]
                    } else if tiled {
                        [u(k.div_ceil(32))?, u(m.div_ceil(32))?, 1]
                    } else {
                        grid(invocations.div_ceil(64), ctx.caps)?
                    },
                });
                first += rows;
            }
        }
        Ok(out)
    }
}

/// Weight rows per dispatch of the input gradient on CPU adapters: with ≤ 4
/// rows of dy per invocation and a few loop steps per decoded group, a
/// segment stays well below llvmpipe's 65535 loop iterations.
const CPU_SEGMENT_ROWS: usize = 4096;

impl Op for MatMulWeightGrad {
    fn name(&self) -> &'static str {
        "mul_mat_weight_grad"
    }

    fn infer(&self, inputs: &[&TensorInfo]) -> Result<(Vec<usize>, DType)> {
        arity(self.name(), inputs, &[2])?;
        let (dy, x) = (inputs[0], inputs[1]);
        require_dtype(self.name(), "dy", dy, &[DType::F32])?;
        require_dtype(self.name(), "x", x, &[DType::F32])?;
        if dy.rows() != x.rows() {
            return Err(shape_err(
                self.name(),
                format!(
                    "dy {:?} and x {:?} must have as many rows",
                    dy.shape, x.shape
                ),
            ));
        }
        Ok((vec![dy.cols(), x.cols()], DType::F32))
    }

    fn cpu(&self, inputs: &[&HostTensor], out: &mut HostTensor, _syms: &[u32]) -> Result<()> {
        let (dy, x) = (inputs[0].to_f32()?, inputs[1].to_f32()?);
        let (n, k) = (out.shape[0], out.shape[1]);
        let m = dy.len() / n;
        let mut acc = vec![0f64; n * k];
        for i in 0..m {
            let xr = &x[i * k..(i + 1) * k];
            for j in 0..n {
                let d = dy[i * n + j] as f64;
                for (a, xv) in acc[j * k..(j + 1) * k].iter_mut().zip(xr) {
                    *a += d * *xv as f64;
                }
            }
        }
        let y: Vec<f32> = acc.iter().map(|v| *v as f32).collect();
        put_f32(out, &y);
        Ok(())
    }

    fn wgsl(&self, ctx: &PlanCtx) -> Result<Vec<Dispatch>> {
        let (dy, x) = (ctx.inputs[0], ctx.inputs[1]);
        let (m, n, k) = (dy.rows(), dy.cols(), x.cols());
        // GPUs: a workgroup per 4×4 block splits m (few outputs, long m);
        // CPU adapters: an invocation per block, no barriers.
        let split = !ctx.caps.cpu;
        let blocks = k.div_ceil(4) * n.div_ceil(4);
        Ok(vec![Dispatch {
            shader: "mul_mat_back.wgsl",
            entry: "main",
            defines: if split {
                vec!["WEIGHT_GRAD", "SPLIT_M"]
            } else {
                vec!["WEIGHT_GRAD"]
            },
            bindings: vec![Bind::Input(0, 0), Bind::Input(1, 0), Bind::Output],
            params: vec![u(m)?, u(n)?, u(k)?, 0, u(n)?, 0],
            groups: grid(if split { blocks } else { blocks.div_ceil(64) }, ctx.caps)?,
        }])
    }
}

impl Graph {
    /// `dy · w` — the input gradient of `x · wᵀ` (any weight dtype).
    pub fn matmul_input_grad(&mut self, dy: TensorId, w: TensorId) -> Result<TensorId> {
        self.push(MatMulInputGrad, &[dy, w])
    }

    /// `dyᵀ · x` — the gradient of an f32 weight `w [n, k]` of `x · wᵀ`.
    pub fn matmul_weight_grad(&mut self, dy: TensorId, x: TensorId) -> Result<TensorId> {
        self.push(MatMulWeightGrad, &[dy, x])
    }
}
