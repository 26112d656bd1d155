//! The decode GEMV with 8-bit activations, a GPU kernel variant of
//! [`super::matmul::MatMul`] and [`super::matmul_fused::FusedMatMul`]
//! (`shaders/mul_mat_q8.wgsl`, its CUDA twin `kernels/mul_mat_q8.cu`).
//!
//! Opt-in (`GpuCaps::q8_activations`, `KILN_ACTIVATIONS=q8`), the trade
//! llama.cpp's GPU backends make by default and Kiln's fast CPU backend makes
//! with `--activations q8`: x (after the RMSNorm weight, before 1/rms, which
//! factors out) is rounded per block of 32 to `d·q` with `d = max|v|/127`,
//! `q = round(v/d)` an integer in ±127, and the product runs on 4-wide integer
//! dot products — a quarter of the f32 path's x traffic. The result is the
//! f32 product of the weights with that rounded x: the reference is the op's
//! own CPU reference on the rounded x ([`q8_round`]); with an RMSNorm
//! prologue each output may move by the rounding of its inputs, bounded
//! statistically ([`crate::parity::q8`]). The f32 kernels stay the default.
//!
//! Applies to one row of x (decode), whole 32-blocks, Q4_0 / Q4_1 / Q8_0
//! weights, no LoRA epilogue, on GPUs with subgroups; everything else takes
//! the f32 kernels.

use super::matmul::weight_define;
use super::{Bind, Dispatch, PlanCtx, f, grid, u};
use crate::dtype::DType;
use crate::error::Result;

/// Weight formats with an 8-bit-activation kernel.
pub const Q8_FORMATS: [DType; 3] = [DType::Q4_0, DType::Q4_1, DType::Q8_0];

/// Whether a product of `m` rows of x over `k` with `w` weights takes the
/// 8-bit-activation kernels under these capabilities.
pub fn applies(ctx: &PlanCtx, m: usize, k: usize, w: DType) -> bool {
    let c = ctx.caps;
    c.q8_activations
        && c.subgroups
        && !c.cpu
        && m == 1
        && k.is_multiple_of(32)
        && Q8_FORMATS.contains(&w)
}

/// `v` rounded per block of 32 as the kernels quantize it: `d·round(v/d)`,
/// `d = max|v|/127` (0 stays 0; ties away from zero).
pub fn q8_round(v: &mut [f32]) {
    for b in v.chunks_mut(32) {
        let d = b.iter().fold(0f32, |m, v| m.max(v.abs())) / 127.0;
        let id = if d > 0.0 { 1.0 / d } else { 0.0 };
        for v in b {
            *v = (*v * id).round() * d;
        }
    }
}

/// The epilogue and prologue of one product.
pub(crate) struct Q8Plan {
    /// RMSNorm weight input and epsilon.
    pub norm: Option<(Bind, f32)>,
    /// SwiGLU over gate rows then up rows (the weight is never split then).
    pub glu: bool,
    /// The residual input added last.
    pub res: Option<Bind>,
}

/// The dispatches: x quantized once into scratch slot 0, then one GEMV per
/// weight chunk (`(weight binding, first row, rows)`; with glu one chunk of
/// 2·cols rows, `cols` outputs).
pub(crate) fn dispatches(
    ctx: &PlanCtx,
    k: usize,
    plan: &Q8Plan,
    w: DType,
    chunks: &[(Bind, usize, usize)],
) -> Result<Vec<Dispatch>> {
    let nb = k / 32;
    let scratch = ((k / 4 + 3 * nb) * 4) as u64;
    let x = Bind::Input(0, 0);
    let (has_norm, eps) = match plan.norm {
        Some((_, e)) => (1, e),
        None => (0, 0.0),
    };
    let rows_per_wg = ctx.caps.gemv_rows_per_workgroup();
    let params = |cols: usize, n0: usize| -> Result<Vec<u32>> {
        Ok(vec![
            u(k)?,
            u(cols)?,
            u(n0)?,
            plan.res.is_some() as u32,
            has_norm,
            f(eps),
            plan.glu as u32,
            u(rows_per_wg)?,
        ])
    };
    let mut out = vec![Dispatch {
        shader: "mul_mat_q8.wgsl",
        entry: "quantize",
        defines: vec!["QUANTIZE"],
        bindings: vec![
            x,
            plan.norm.map_or(x, |(nw, _)| nw),
            Bind::Scratch(0, scratch),
        ],
        params: params(0, 0)?,
        groups: grid(nb.div_ceil(64), ctx.caps)?,
    }];
    for &(wb, n0, rows) in chunks {
        let cols = if plan.glu { rows / 2 } else { rows };
        out.push(Dispatch {
            shader: "mul_mat_q8.wgsl",
            entry: "gemv",
            defines: vec![weight_define(w)],
            bindings: vec![
                wb,
                Bind::ScratchRead(0),
                Bind::Output,
                plan.res.unwrap_or(x),
            ],
            params: params(cols, n0)?,
            groups: grid(cols.div_ceil(rows_per_wg), ctx.caps)?,
        });
    }
    Ok(out)
}
