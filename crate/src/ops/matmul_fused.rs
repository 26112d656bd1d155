//! Matmul with a fused RMSNorm prologue and SwiGLU / residual epilogue — the
//! decode path's biggest dispatch saver (Q/K/V and the FFN's gate+up each
//! become one kernel).
//!
//! `y = f(norm(x) · Wᵀ) + res`:
//! * `norm` (optional): RMSNorm of each row of `x [.., k]` with weight `nw [k]`;
//! * `f` (optional, GLU): `W [2n, k]` holds gate rows then up rows and
//!   `y[c] = silu(h·W[c]) · (h·W[n + c])`; otherwise `W [n, k]`, `f = id`;
//! * `res [.., n]` (optional) is added last.
//!
//! Inputs: `x`, `w`, then `nw` if `norm`, then `res` if `residual`. Kernels:
//! decode (≤ 8 rows, or any on CPU adapters) `shaders/mul_mat_fused.wgsl`,
//! one dispatch; prefill `norm.wgsl` → `mul_mat.wgsl` → `binary.wgsl` (glu),
//! with scratch buffers between them, or on tensor cores with 8-bit
//! activations (`matmul_q8::half_fuses`) two dispatches: the RMSNorm inside
//! x's f16 conversion, the SwiGLU and residual in the GEMM's epilogue. The weight is never split across
//! bindings (callers fuse only weights that fit one binding).

use super::matmul::{GEMV_MAX_M, Gemm, weight_define};
use super::{
    Dispatch, Op, PlanCtx, arity, f, grid, put_f32, require_dtype, require_residual, shape_err, u,
};
use crate::dtype::DType;
use crate::error::Result;
use crate::graph::{Graph, TensorId, TensorInfo};
use crate::host::HostTensor;
use crate::ops::Bind;
use crate::quant;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FusedMatMul {
    /// RMSNorm epsilon when the prologue normalizes x.
    pub norm_eps: Option<f32>,
    pub glu: bool,
    pub residual: bool,
}

impl FusedMatMul {
    fn n_out(&self, w_rows: usize) -> usize {
        if self.glu { w_rows / 2 } else { w_rows }
    }
}

impl Op for FusedMatMul {
    fn name(&self) -> &'static str {
        "mul_mat_fused"
    }

    fn infer(&self, inputs: &[&TensorInfo]) -> Result<(Vec<usize>, DType)> {
        let want = 2 + self.norm_eps.is_some() as usize + self.residual as usize;
        arity(self.name(), inputs, &[want])?;
        let (x, w) = (inputs[0], inputs[1]);
        require_dtype(self.name(), "x", x, &[DType::F32])?;
        require_dtype(self.name(), "w", w, &DType::WEIGHTS)?;
        let k = x.cols();
        if w.shape.len() != 2 || w.shape[1] != k || (self.glu && w.shape[0] % 2 != 0) {
            return Err(shape_err(
                self.name(),
                format!(
                    "w {:?} must be [n{}, {k}] for x {:?}",
                    w.shape,
                    if self.glu { "·2" } else { "" },
                    x.shape
                ),
            ));
        }
        let mut shape = x.shape.clone();
        if let Some(last) = shape.last_mut() {
            *last = self.n_out(w.shape[0]);
        }
        let mut next = 2;
        if self.norm_eps.is_some() {
            let nw = inputs[next];
            require_dtype(self.name(), "norm weight", nw, &[DType::F32])?;
            if nw.shape != [k] {
                return Err(shape_err(
                    self.name(),
                    format!("norm weight {:?} must be [{k}]", nw.shape),
                ));
            }
            next += 1;
        }
        if self.residual {
            require_residual(self.name(), inputs[next], &shape)?;
        }
        Ok((shape, DType::F32))
    }

    fn cpu(&self, inputs: &[&HostTensor], out: &mut HostTensor, _syms: &[u32]) -> Result<()> {
        let mut x = inputs[0].to_f32()?;
        let w = inputs[1];
        let (rows, k) = (w.shape[0], w.shape[1]);
        let m = x.len() / k;
        let mut next = 2;
        if let Some(eps) = self.norm_eps {
            let nw = inputs[next].to_f32()?;
            next += 1;
            for row in x.chunks_mut(k) {
                let ms = row.iter().map(|v| (*v as f64).powi(2)).sum::<f64>() / k as f64;
                let inv = 1.0 / (ms + eps as f64).sqrt();
                for (v, g) in row.iter_mut().zip(&nw) {
                    *v = (*v as f64 * inv * *g as f64) as f32;
                }
            }
        }
        let rb = w.dtype.row_bytes(k)?;
        let mut prod = vec![0f64; m * rows];
        let mut wr = vec![0f32; k];
        for j in 0..rows {
            quant::dequantize_into(w.dtype, &w.data[j * rb..(j + 1) * rb], &mut wr)?;
            for i in 0..m {
                prod[i * rows + j] = x[i * k..(i + 1) * k]
                    .iter()
                    .zip(&wr)
                    .map(|(a, b)| *a as f64 * *b as f64)
                    .sum();
            }
        }
        let n = self.n_out(rows);
        let res = if self.residual {
            Some(inputs[next].to_f32()?)
        } else {
            None
        };
        let mut y = vec![0f32; m * n];
        for i in 0..m {
            for c in 0..n {
                let a = prod[i * rows + c];
                let mut v = if self.glu {
                    a / (1.0 + (-a).exp()) * prod[i * rows + n + c]
                } else {
                    a
                };
                if let Some(r) = &res {
                    v += r[i * n + c] as f64;
                }
                y[i * n + c] = v as f32;
            }
        }
        put_f32(out, &y);
        Ok(())
    }

    fn wgsl(&self, ctx: &PlanCtx) -> Result<Vec<Dispatch>> {
        let (x, w) = (ctx.inputs[0], ctx.inputs[1]);
        let (m, rows, k) = (x.rows(), w.shape[0], w.shape[1]);
        let n = self.n_out(rows);
        let nw = self
            .norm_eps
            .map(|_| Bind::Input(2, 0))
            .unwrap_or(Bind::Input(0, 0));
        let res_idx = 2 + self.norm_eps.is_some() as usize;
        let res = if self.residual {
            Bind::Input(res_idx, 0)
        } else {
            Bind::Input(0, 0)
        };
        let eps = self.norm_eps.unwrap_or(0.0);
        let q8 = super::matmul_q8::applies(ctx.caps, m, rows, k, w.dtype);
        // The whole fusion in the 8-bit kernels: the one-token GEMV, or the
        // prefill GEMM on f16 tensor cores (the RMSNorm in its x
        // conversion, the SwiGLU and residual in its epilogue).
        if q8 && (m == 1 || super::matmul_q8::half_fuses(ctx.caps, (m, n, k), w.dtype, self.glu)) {
            let plan = super::matmul_q8::Q8Plan {
                x: Bind::Input(0, 0),
                norm: self.norm_eps.map(|e| (nw, e)),
                glu: self.glu,
                res: self.residual.then_some(res),
                out: Bind::Output,
                slot: 0,
            };
            let chunk = [(Bind::Input(1, 0), 0, rows)];
            return super::matmul_q8::dispatches(ctx, (m, n, k), &plan, w.dtype, &chunk);
        }
        if m <= GEMV_MAX_M || ctx.caps.cpu {
            // CPU adapters run one output column per invocation, where an
            // in-kernel RMSNorm would be recomputed per column: normalise
            // once into scratch instead (still no barrier anywhere).
            let mut out = Vec::new();
            let (mut xin, mut in_kernel_norm) = (Bind::Input(0, 0), self.norm_eps.is_some());
            if ctx.caps.cpu && self.norm_eps.is_some() {
                out.push(norm_dispatch(m, k, eps, nw, ctx)?);
                xin = Bind::ScratchRead(0);
                in_kernel_norm = false;
            }
            // Decode on GPUs: 4 rows per subgroup at a time with x in
            // registers (XREG, common/gemv_rows.wgsl): 4 columns, 2 with GLU.
            // XG (below) unless KILN_GEMV_XS=1 keeps the workgroup-memory copy.
            let xg = m == 1 && k % 32 == 0 && super::env_switch("KILN_GEMV_XS") != Some(true);
            let xreg = xg && ctx.caps.xreg_applies(m, k);
            let sub_rows = ctx.caps.gemv_rows_per_workgroup()
                * if !xreg {
                    1
                } else if self.glu {
                    2
                } else {
                    4
                };
            let (defines, per) = if ctx.caps.cpu {
                (vec![weight_define(w.dtype), "ROW_PER_THREAD"], 64)
            } else if ctx.caps.subgroups {
                let mut d = vec![weight_define(w.dtype)];
                // Decode over whole blocks: x read as vec4s, 1/rms applied
                // to the sums (no workgroup memory, no barrier); else x
                // normalised once per workgroup in workgroup memory (4 or 16
                // KiB, plus the reduction's 256 bytes).
                let xs = if k <= 1024 { 4096 } else { 16384 };
                if xg {
                    d.push("XG");
                    if xreg {
                        d.push("XREG");
                    }
                } else if m == 1
                    && k % 4 == 0
                    && k <= 4096
                    && ctx.caps.max_workgroup_storage as usize >= xs + 256
                {
                    d.push("XS");
                    if k > 1024 {
                        d.push("XS_4K");
                    }
                }
                (d, sub_rows)
            } else {
                (vec![weight_define(w.dtype)], 1)
            };
            out.push(Dispatch {
                shader: "mul_mat_fused.wgsl",
                entry: "main",
                defines,
                bindings: vec![Bind::Input(1, 0), xin, Bind::Output, res, nw],
                params: vec![
                    u(m)?,
                    u(n)?,
                    u(k)?,
                    self.residual as u32,
                    in_kernel_norm as u32,
                    f(eps),
                    self.glu as u32,
                    u(sub_rows)?,
                ],
                groups: if ctx.caps.cpu {
                    // A grid row per row of x (shaders/mul_mat_fused.wgsl).
                    let max = ctx.caps.max_workgroups_per_dim as usize;
                    if n.div_ceil(per) > max || m > max {
                        return Err(shape_err(
                            self.name(),
                            format!(
                                "[{m}, {n}] exceeds the device's {max} workgroups per dimension"
                            ),
                        ));
                    }
                    [u(n.div_ceil(per))?, u(m)?, 1]
                } else {
                    grid(n.div_ceil(per), ctx.caps)?
                },
            });
            return Ok(out);
        }
        // Prefill: normalize into scratch 0, GEMM (into scratch 1 for
        // GLU), then the GLU epilogue.
        let mut out = Vec::new();
        let mut xin = Bind::Input(0, 0);
        if self.norm_eps.is_some() {
            out.push(norm_dispatch(m, k, eps, nw, ctx)?);
            xin = Bind::ScratchRead(0);
        }
        let gemm_out = if self.glu {
            Bind::Scratch(1, (m * rows * 4) as u64)
        } else {
            Bind::Output
        };
        let gemm_res = if self.residual && !self.glu {
            res
        } else {
            Bind::Input(0, 0)
        };
        if q8 {
            // 8-bit activations: x (normalized above) quantized into scratch
            // 2, then the integer GEMM (ops/matmul_q8.rs).
            let plan = super::matmul_q8::Q8Plan {
                x: xin,
                norm: None,
                glu: false,
                res: (self.residual && !self.glu).then_some(gemm_res),
                out: gemm_out,
                slot: 2,
            };
            let chunk = [(Bind::Input(1, 0), 0, rows)];
            out.extend(super::matmul_q8::dispatches(
                ctx,
                (m, rows, k),
                &plan,
                w.dtype,
                &chunk,
            )?);
        } else {
            // The GEMM kernel mul_mat picks for this shape.
            let gemm = Gemm::pick(ctx, m, rows, k);
            let mut defines = vec![weight_define(w.dtype)];
            defines.extend(gemm.defines());
            out.push(Dispatch {
                shader: "mul_mat.wgsl",
                entry: gemm.entry(),
                defines,
                bindings: vec![Bind::Input(1, 0), xin, gemm_out, gemm_res],
                params: vec![
                    u(m)?,
                    u(rows)?,
                    u(k)?,
                    0,
                    u(rows)?,
                    (self.residual && !self.glu) as u32,
                    0,
                    0,
                    u(k)?,
                ],
                groups: gemm.groups(m, rows)?,
            });
        }
        if self.glu {
            out.push(Dispatch {
                shader: "binary.wgsl",
                entry: "main",
                defines: vec![],
                bindings: vec![Bind::ScratchRead(1), res, Bind::Output],
                params: vec![u(m * n)?, 1, 3, u(n)?, self.residual as u32],
                groups: grid((m * n).div_ceil(256), ctx.caps)?,
            });
        }
        Ok(out)
    }
}

/// RMSNorm of the m rows of x into scratch slot 0.
fn norm_dispatch(m: usize, k: usize, eps: f32, nw: Bind, ctx: &PlanCtx) -> Result<Dispatch> {
    Ok(Dispatch {
        shader: "norm.wgsl",
        entry: "main",
        defines: vec![],
        bindings: vec![
            Bind::Input(0, 0),
            nw,
            Bind::Input(0, 0),
            Bind::Scratch(0, (m * k * 4) as u64),
        ],
        params: vec![u(k)?, u(m)?, f(eps), 0, 1, 0],
        groups: grid(m, ctx.caps)?,
    })
}

/// What a fused matmul does around the product.
#[derive(Clone, Copy, Debug, Default)]
pub struct Fusion {
    /// RMSNorm of x first: (norm weight, epsilon).
    pub norm: Option<(TensorId, f32)>,
    /// W holds gate then up rows; the output is SwiGLU of the two halves.
    pub glu: bool,
    /// Added to the result.
    pub residual: Option<TensorId>,
}

impl Graph {
    /// `f(norm(x) · wᵀ) + res` in one decode kernel (see [`FusedMatMul`]).
    pub fn matmul_fused(&mut self, x: TensorId, w: TensorId, fusion: Fusion) -> Result<TensorId> {
        let op = FusedMatMul {
            norm_eps: fusion.norm.map(|(_, eps)| eps),
            glu: fusion.glu,
            residual: fusion.residual.is_some(),
        };
        let inputs: Vec<TensorId> = [
            Some(x),
            Some(w),
            fusion.norm.map(|(t, _)| t),
            fusion.residual,
        ]
        .into_iter()
        .flatten()
        .collect();
        self.push(op, &inputs)
    }
}
