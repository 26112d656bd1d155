//! Matrix multiplication with float or quantized weights: `y = x · Wᵀ`.
//!
//! `x [.., k]` f32 (m rows), `W [n, k]` in any [`DType::WEIGHTS`] type (k a
//! multiple of its block), `y [.., n]` f32. An optional third input
//! `res [.., n]` is added to the product in the kernel's epilogue
//! (`matmul_add`: the residual connection without a separate dispatch). The CPU reference dequantizes `W`
//! row by row and accumulates in f64 (it is the oracle, not a fast path).
//!
//! Kernels: `shaders/mul_mat_vec.wgsl` (GEMV, m ≤ 8: each weight block decoded
//! once for all rows) and `shaders/mul_mat.wgsl` (tiled GEMM). A weight larger
//! than one storage binding is split by rows; each chunk is one dispatch.

use super::{
    Backward, Dispatch, Op, PlanCtx, arity, grid, put_f32, require_dtype, require_residual,
    shape_err, u,
};
use crate::dtype::DType;
use crate::error::Result;
use crate::graph::{Graph, TensorId, TensorInfo};
use crate::host::HostTensor;
use crate::ops::Bind;
use crate::quant;

/// Rows of `x` up to which the GEMV kernel is used.
pub const GEMV_MAX_M: usize = 8;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MatMul;

/// The shader define selecting the weight decoder for `dtype`.
pub fn weight_define(dtype: DType) -> &'static str {
    match dtype {
        DType::F32 => "W_F32",
        DType::F16 => "W_F16",
        DType::BF16 => "W_BF16",
        DType::Q8_0 => "W_Q8_0",
        DType::Q4_0 => "W_Q4_0",
        DType::Q4_1 => "W_Q4_1",
        DType::Q5_0 => "W_Q5_0",
        DType::Q5_1 => "W_Q5_1",
        DType::Q2_K => "W_Q2_K",
        DType::Q3_K => "W_Q3_K",
        DType::Q4_K => "W_Q4_K",
        DType::Q5_K => "W_Q5_K",
        DType::IQ4_NL => "W_IQ4_NL",
        DType::IQ4_XS => "W_IQ4_XS",
        DType::Q6_K | DType::U32 => "W_Q6_K",
    }
}

impl Op for MatMul {
    fn name(&self) -> &'static str {
        "mul_mat"
    }

    fn infer(&self, inputs: &[&TensorInfo]) -> Result<(Vec<usize>, DType)> {
        arity(self.name(), inputs, &[2, 3])?;
        let (x, w) = (inputs[0], inputs[1]);
        require_dtype(self.name(), "x", x, &[DType::F32])?;
        require_dtype(self.name(), "w", w, &DType::WEIGHTS)?;
        if w.shape.len() != 2 || w.shape[1] != x.cols() {
            return Err(shape_err(
                self.name(),
                format!(
                    "w {:?} must be [n, {}] for x {:?}",
                    w.shape,
                    x.cols(),
                    x.shape
                ),
            ));
        }
        let mut shape = x.shape.clone();
        if let Some(last) = shape.last_mut() {
            *last = w.shape[0];
        }
        if let Some(r) = inputs.get(2) {
            require_residual(self.name(), r, &shape)?;
        }
        Ok((shape, DType::F32))
    }

    fn splittable_input(&self) -> Option<usize> {
        Some(1)
    }

    fn cpu(&self, inputs: &[&HostTensor], out: &mut HostTensor, _syms: &[u32]) -> Result<()> {
        let x = inputs[0].to_f32()?;
        let w = inputs[1];
        let (n, k) = (w.shape[0], w.shape[1]);
        let m = x.len() / k;
        let row_bytes = w.dtype.row_bytes(k)?;
        let mut y = vec![0f32; m * n];
        let mut wr = vec![0f32; k];
        let res = inputs.get(2).map(|t| t.to_f32()).transpose()?;
        for j in 0..n {
            quant::dequantize_into(
                w.dtype,
                &w.data[j * row_bytes..(j + 1) * row_bytes],
                &mut wr,
            )?;
            for i in 0..m {
                let xr = &x[i * k..(i + 1) * k];
                let s: f64 = xr.iter().zip(&wr).map(|(a, b)| *a as f64 * *b as f64).sum();
                y[i * n + j] = s as f32;
                if let Some(r) = &res {
                    y[i * n + j] = (s + r[i * n + j] as f64) as f32;
                }
            }
        }
        put_f32(out, &y);
        Ok(())
    }

    /// `dx = dy·W` (through any weight dtype), `dW = dyᵀ·x` (f32 weights:
    /// LoRA factors), `dres = dy`.
    fn backward(&self, g: &mut Graph, b: &Backward) -> Result<Vec<Option<TensorId>>> {
        let (x, w, dy) = (b.inputs[0], b.inputs[1], b.dy);
        Ok(vec![
            b.grad(0, || g.matmul_input_grad(dy, w))?,
            b.grad(1, || g.matmul_weight_grad(dy, x))?,
            b.grad(2, || Ok(dy))?,
        ][..b.inputs.len()]
            .to_vec())
    }

    fn wgsl(&self, ctx: &PlanCtx) -> Result<Vec<Dispatch>> {
        plan(ctx, (ctx.inputs.len() > 2).then_some(2), None)
    }
}

/// `y = x · Wᵀ + h·Bᵀ (+ res)`, h = x·Aᵀ: an unmerged LoRA path in the GEMV /
/// GEMM epilogue. Inputs `x, W, h [m, r], B [n, r]` (f32, B scaled) and an
/// optional residual — one dispatch instead of `x·Wᵀ` then a separate
/// `h·Bᵀ + y` GEMM per adapted projection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MatMulLora;

impl Op for MatMulLora {
    fn name(&self) -> &'static str {
        "mul_mat_lora"
    }

    fn infer(&self, inputs: &[&TensorInfo]) -> Result<(Vec<usize>, DType)> {
        arity(self.name(), inputs, &[4, 5])?;
        let (shape, dt) = MatMul.infer(&inputs[..2])?;
        let (h, b) = (inputs[2], inputs[3]);
        require_dtype(self.name(), "h", h, &[DType::F32])?;
        require_dtype(self.name(), "b", b, &[DType::F32])?;
        let (m, n) = (inputs[0].rows(), inputs[1].shape[0]);
        if h.rows() != m || b.shape.len() != 2 || b.shape[0] != n || b.shape[1] != h.cols() {
            return Err(shape_err(
                self.name(),
                format!(
                    "h {:?} and b {:?} must be [{m}, r] and [{n}, r]",
                    h.shape, b.shape
                ),
            ));
        }
        if let Some(r) = inputs.get(4) {
            require_residual(self.name(), r, &shape)?;
        }
        Ok((shape, dt))
    }

    fn splittable_input(&self) -> Option<usize> {
        Some(1)
    }

    fn cpu(&self, inputs: &[&HostTensor], out: &mut HostTensor, syms: &[u32]) -> Result<()> {
        let mut base = vec![inputs[0], inputs[1]];
        if let Some(r) = inputs.get(4) {
            base.push(r);
        }
        MatMul.cpu(&base, out, syms)?;
        let mut y = out.to_f32()?;
        let (h, b) = (inputs[2].to_f32()?, inputs[3].to_f32()?);
        let (n, r) = (inputs[3].shape[0], inputs[3].shape[1]);
        for (i, yv) in y.iter_mut().enumerate() {
            let (hm, bc) = (&h[(i / n) * r..][..r], &b[(i % n) * r..][..r]);
            let t: f64 = hm.iter().zip(bc).map(|(a, c)| *a as f64 * *c as f64).sum();
            *yv = (*yv as f64 + t) as f32;
        }
        put_f32(out, &y);
        Ok(())
    }

    fn wgsl(&self, ctx: &PlanCtx) -> Result<Vec<Dispatch>> {
        let rank = ctx.inputs[3].shape[1];
        plan(ctx, (ctx.inputs.len() > 4).then_some(4), Some((2, 3, rank)))
    }
}

/// The GEMV / GEMM dispatches of `x · Wᵀ` (inputs 0 and 1) with an optional
/// residual input and LoRA epilogue (h input, B input, rank).
fn plan(
    ctx: &PlanCtx,
    res: Option<usize>,
    lora: Option<(usize, usize, usize)>,
) -> Result<Vec<Dispatch>> {
    let (x, w) = (ctx.inputs[0], ctx.inputs[1]);
    let (m, n, k) = (x.rows(), w.shape[0], w.shape[1]);
    if lora.is_none() && super::matmul_q8::applies(ctx.caps, m, n, k, w.dtype) {
        let chunks: Vec<_> = ctx.chunks[1]
            .iter()
            .enumerate()
            .map(|(c, ch)| (Bind::Input(1, c), ch.row0, ch.rows))
            .collect();
        let q8 = super::matmul_q8::Q8Plan {
            x: Bind::Input(0, 0),
            norm: None,
            glu: false,
            res: res.map(|r| Bind::Input(r, 0)),
            out: Bind::Output,
            slot: 0,
        };
        return super::matmul_q8::dispatches(ctx, (m, n, k), &q8, w.dtype, &chunks);
    }
    // CPU adapters run every m through the row-per-invocation kernel
    // (no barriers, no reductions: SIMD lanes are invocations there).
    let gemv = m <= GEMV_MAX_M || ctx.caps.cpu;
    // Decode on GPUs: 4 rows per subgroup at a time with x in registers
    // (XREG, common/gemv_rows.wgsl).
    let xreg = gemv && ctx.caps.xreg_applies(m, k);
    let sub_rows = ctx.caps.gemv_rows_per_workgroup() * if xreg { 4 } else { 1 };
    ctx.chunks[1]
        .iter()
        .enumerate()
        .map(|(c, ch)| {
            let gemm = (!gemv).then(|| Gemm::pick(ctx, m, ch.rows, k));
            let (groups, mut defines) = if let Some(g) = gemm {
                let mut d = vec![weight_define(w.dtype)];
                d.extend(g.defines());
                (g.groups(m, ch.rows)?, d)
            } else {
                // Rows per workgroup: 64 (CPU), one per subgroup (four
                // with XREG), or 1.
                let per = if ctx.caps.cpu {
                    64
                } else if ctx.caps.subgroups {
                    sub_rows
                } else {
                    1
                };
                let mut d = vec![weight_define(w.dtype)];
                if ctx.caps.cpu {
                    d.push("ROW_PER_THREAD");
                }
                if k % 4 == 0 {
                    d.push("X_VEC4");
                }
                if xreg {
                    d.push("XREG");
                }
                (grid(ch.rows.div_ceil(per), ctx.caps)?, d)
            };
            // The residual binding is x itself when there is none.
            let mut bindings = vec![
                Bind::Input(1, c),
                Bind::Input(0, 0),
                Bind::Output,
                Bind::Input(res.unwrap_or(0), 0),
            ];
            if let Some((h, b, _)) = lora {
                defines.push("LORA");
                bindings.extend([Bind::Input(h, 0), Bind::Input(b, 0)]);
            }
            Ok(Dispatch {
                shader: if gemv {
                    "mul_mat_vec.wgsl"
                } else {
                    "mul_mat.wgsl"
                },
                entry: gemm.map_or("main", Gemm::entry),
                defines,
                bindings,
                params: vec![
                    u(m)?,
                    u(n)?,
                    u(k)?,
                    u(ch.row0)?,
                    u(ch.rows)?,
                    res.is_some() as u32,
                    u(sub_rows)?,
                    u(lora.map_or(0, |l| l.2))?,
                    u(k)?,
                ],
                groups,
            })
        })
        .collect()
}

/// The kernel of a GPU GEMM (mul_mat.wgsl, m rows of x × `rows` weight rows
/// over k): the big one (common/gemm_big.wgsl) where it has enough tiles
/// without splitting K, else 64×64 tiles where they pay, else 32×32.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Gemm {
    Big(super::conv2d::BigPlan),
    Tile64,
    Tile32,
}

impl Gemm {
    pub(crate) fn pick(ctx: &PlanCtx, m: usize, rows: usize, k: usize) -> Gemm {
        let big = (ctx.caps.gemm_big && k.is_multiple_of(4))
            .then(|| super::conv2d::big_plan(ctx, m, k, rows, k))
            .flatten()
            .filter(|pl| pl.splits == 1);
        match big {
            Some(pl) => Gemm::Big(pl),
            None if tile64_pays(m, rows) => Gemm::Tile64,
            None => Gemm::Tile32,
        }
    }

    /// The defines besides the weight type's (entry `big` with BIG).
    pub(crate) fn defines(self) -> Vec<&'static str> {
        match self {
            Gemm::Big(pl) if pl.bn == 64 => vec!["BIG", "X_VEC4", "BN64"],
            Gemm::Big(pl) if pl.bm == 128 => vec!["BIG", "X_VEC4", "BM128"],
            Gemm::Big(_) => vec!["BIG", "X_VEC4"],
            Gemm::Tile64 => vec!["TILE64"],
            Gemm::Tile32 => vec![],
        }
    }

    pub(crate) fn entry(self) -> &'static str {
        match self {
            Gemm::Big(_) => "big",
            _ => "main",
        }
    }

    pub(crate) fn groups(self, m: usize, rows: usize) -> Result<[u32; 3]> {
        let (bm, bn) = match self {
            Gemm::Big(pl) => (pl.bm, pl.bn),
            Gemm::Tile64 => (64, 64),
            Gemm::Tile32 => (32, 32),
        };
        Ok([u(rows.div_ceil(bn))?, u(m.div_ceil(bm))?, 1])
    }
}

/// Whether a GPU GEMM with an `a × b` output takes 64×64 tiles (4×4 per
/// invocation) rather than 32×32 ones: both sides must fill a tile, and the
/// grid must keep at least 128 workgroups — a large GPU's worth — busy
/// (LoRA's rank-r products, small batches and the vocabulary head's input
/// gradient, a long reduction with a small output, stay on 32×32 tiles).
pub(crate) fn tile64_pays(a: usize, b: usize) -> bool {
    a >= 64 && b >= 64 && a.div_ceil(64) * b.div_ceil(64) >= 128
}

impl Graph {
    /// `x · wᵀ` with `w [n, k]` in any weight dtype.
    pub fn matmul(&mut self, x: TensorId, w: TensorId) -> Result<TensorId> {
        self.push(MatMul, &[x, w])
    }

    /// `x · wᵀ + h · bᵀ (+ res)` in one kernel: an unmerged LoRA path
    /// (`h = x·Aᵀ [m, r]`, `b [n, r]` f32) in the GEMV / GEMM epilogue.
    pub fn matmul_lora(
        &mut self,
        x: TensorId,
        w: TensorId,
        h: TensorId,
        b: TensorId,
        res: Option<TensorId>,
    ) -> Result<TensorId> {
        match res {
            Some(r) => self.push(MatMulLora, &[x, w, h, b, r]),
            None => self.push(MatMulLora, &[x, w, h, b]),
        }
    }

    /// `x · wᵀ + res` in one kernel (a residual connection).
    pub fn matmul_add(&mut self, x: TensorId, w: TensorId, res: TensorId) -> Result<TensorId> {
        self.push(MatMul, &[x, w, res])
    }
}
