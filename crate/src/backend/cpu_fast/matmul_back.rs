//! The input gradient of a product through a frozen (often quantized)
//! weight, `dx [m, k] = dy [m, n] · W [n, k]` ([`MatMulInputGrad`]): the
//! largest part of a LoRA training step (57% of SmolLM2's on the CPU
//! reference kernel).
//!
//! Each task owns a block of `dx`'s columns (whole quantization blocks, so
//! a row's bytes for those columns decode on their own): it decodes its
//! columns of `CHUNK` weight rows at a time into a per-thread buffer and
//! accumulates `dy[:, rows] · W[rows, cols]` with the f32 outer-product
//! tiles of `simd.rs`. The weight is never dequantized whole; each byte is
//! decoded once.
//!
//! The weight gradient of a trainable (f32) weight, `dW [n, k] = dyᵀ · x`
//! ([`MatMulWeightGrad`]: LoRA's A and B), runs on the same outer-product
//! tiles: each task owns a 64 × 64 block of dW, gathers its rows of dyᵀ,
//! and computes `dW[r0.., c0..] = dyᵀ[r0.., :] · x[:, c0..]`, in f32 (the
//! reference accumulates in f64; m is the step's tokens).
//!
//! [`MatMulInputGrad`]: crate::ops::matmul_back::MatMulInputGrad
//! [`MatMulWeightGrad`]: crate::ops::matmul_back::MatMulWeightGrad

use std::cell::RefCell;

use super::Ctx;
use super::kernels::{Kernel, f32s, f32s_mut};
use super::par::Shared;
use super::simd::{Isa, Rows, outer_grid};
use crate::backend::BackendError;
use crate::host::HostTensor;
use crate::quant;

pub(crate) struct InputGradKernel {
    pub name: String,
}

/// Weight rows decoded per step (per thread: 512 rows of a 64-column block
/// are 128 KiB).
const CHUNK: usize = 512;

thread_local! {
    /// Decoded weight columns of one chunk, the chunk's partial product,
    /// and the task's accumulated block of dx.
    static BUF: RefCell<(Vec<f32>, Vec<f32>, Vec<f32>)> =
        const { RefCell::new((Vec::new(), Vec::new(), Vec::new())) };
}

fn bad(what: String) -> BackendError {
    BackendError::Validation(format!("mul_mat_input_grad: {what}"))
}

impl Kernel for InputGradKernel {
    fn label(&self) -> String {
        self.name.clone()
    }

    fn run(
        &self,
        inputs: &[&HostTensor],
        out: &mut HostTensor,
        _syms: &[u32],
        ctx: &mut Ctx,
    ) -> Result<(), BackendError> {
        let (dy, w) = (f32s(inputs[0])?, inputs[1]);
        let (n, k) = match w.shape[..] {
            [n, k] => (n, k),
            _ => return Err(bad(format!("w shape {:?}", w.shape))),
        };
        let bs = w.dtype.block_size();
        let rb = w.dtype.row_bytes(k).map_err(|e| bad(e.to_string()))?;
        let m = dy.len().checked_div(n).unwrap_or(0);
        if n == 0 || k == 0 || bs == 0 || k % bs != 0 || dy.len() != m * n || w.data.len() != n * rb
        {
            return Err(bad(format!("dy {}, w {:?}", dy.len(), w.shape)));
        }
        let dx = f32s_mut(out)?;
        if dx.len() != m * k {
            return Err(bad(format!("dx {} values for [{m}, {k}]", dx.len())));
        }
        let y = Shared::new(dx);
        // Column blocks of whole quantization blocks, at least 64 wide.
        let width = 64usize.div_ceil(bs) * bs;
        let blocks = k.div_ceil(width);
        ctx.par.try_each(blocks, |b| {
            let (c0, c1) = (b * width, ((b + 1) * width).min(k));
            column_block(dy, (m, n, k), w, rb, (c0, c1), &y)
        })
    }
}

/// `dx[:, c0..c1]` of `dx [m, k]` (`c0`, `c1` at whole quantization
/// blocks, or `c1 = k`); `rb` bytes per weight row.
fn column_block(
    dy: &[f32],
    (m, n, k): (usize, usize, usize),
    w: &HostTensor,
    rb: usize,
    (c0, c1): (usize, usize),
    y: &Shared<f32>,
) -> Result<(), BackendError> {
    let bs = w.dtype.block_size();
    let cw = c1 - c0;
    let bb = w.dtype.block_bytes();
    let (b0, b1) = (c0 / bs * bb, c1 / bs * bb);
    BUF.with(|buf| {
        let mut buf = buf.borrow_mut();
        let (dec, part, acc) = &mut *buf;
        let mut j0 = 0;
        while j0 < n {
            let rows = CHUNK.min(n - j0);
            dec.resize(rows * cw, 0.0);
            for (r, d) in dec.chunks_exact_mut(cw).enumerate() {
                let row = &w.data[(j0 + r) * rb..(j0 + r + 1) * rb];
                quant::dequantize_into(w.dtype, &row[b0..b1], d).map_err(|e| bad(e.to_string()))?;
            }
            // part[i, c] = Σ_{r < rows} dy[i, j0 + r] · dec[r, c]; the
            // first chunk writes acc itself (every element).
            let target: &mut Vec<f32> = if j0 == 0 { acc } else { part };
            target.resize(m * cw, 0.0);
            outer_grid(
                Isa::Best,
                dy,
                Rows::at(j0, n),
                m,
                rows,
                dec,
                cw,
                cw,
                target,
                cw,
            )?;
            if j0 > 0 {
                for (a, p) in acc.iter_mut().zip(part.iter()) {
                    *a += *p;
                }
            }
            j0 += rows;
        }
        for i in 0..m {
            // SAFETY: this task alone writes columns c0..c1 of dx.
            let dst = unsafe { y.slice(i * k + c0, cw) };
            dst.copy_from_slice(&acc[i * cw..(i + 1) * cw]);
        }
        Ok(())
    })
}

pub(crate) struct WeightGradKernel;

/// Rows and columns of dW per task.
const WG_BLOCK: usize = 64;

thread_local! {
    /// One task's rows of dyᵀ and its block of dW.
    static WBUF: RefCell<(Vec<f32>, Vec<f32>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

fn bad_w(what: String) -> BackendError {
    BackendError::Validation(format!("mul_mat_weight_grad: {what}"))
}

impl Kernel for WeightGradKernel {
    fn label(&self) -> String {
        "mul_mat_weight_grad".into()
    }

    fn run(
        &self,
        inputs: &[&HostTensor],
        out: &mut HostTensor,
        _syms: &[u32],
        ctx: &mut Ctx,
    ) -> Result<(), BackendError> {
        let (dy, x) = (f32s(inputs[0])?, f32s(inputs[1])?);
        let (n, k) = match out.shape[..] {
            [n, k] => (n, k),
            _ => return Err(bad_w(format!("dW shape {:?}", out.shape))),
        };
        let m = dy.len().checked_div(n).unwrap_or(0);
        if n == 0 || k == 0 || dy.len() != m * n || x.len() != m * k {
            return Err(bad_w(format!(
                "dy {}, x {}, dW [{n}, {k}]",
                dy.len(),
                x.len()
            )));
        }
        let dw = f32s_mut(out)?;
        if m == 0 {
            dw.fill(0.0);
            return Ok(());
        }
        let y = Shared::new(dw);
        let (rblocks, cblocks) = (n.div_ceil(WG_BLOCK), k.div_ceil(WG_BLOCK));
        ctx.par.try_each(rblocks * cblocks, |t| {
            let (r0, c0) = (t / cblocks * WG_BLOCK, t % cblocks * WG_BLOCK);
            let (rows, cw) = (WG_BLOCK.min(n - r0), WG_BLOCK.min(k - c0));
            WBUF.with(|buf| {
                let mut buf = buf.borrow_mut();
                let (dyt, blk) = &mut *buf;
                // This task's rows of dyᵀ (each dW row's reduction
                // contiguous), gathered here: small, and in parallel.
                dyt.resize(rows * m, 0.0);
                for (jj, d) in dyt.chunks_exact_mut(m).enumerate() {
                    for (i, v) in d.iter_mut().enumerate() {
                        *v = dy[i * n + r0 + jj];
                    }
                }
                blk.resize(rows * cw, 0.0);
                outer_grid(
                    Isa::Best,
                    dyt,
                    Rows::at(0, m),
                    rows,
                    m,
                    &x[c0..],
                    k,
                    cw,
                    blk,
                    cw,
                )?;
                for (i, src) in blk.chunks_exact(cw).enumerate() {
                    // SAFETY: this task alone writes rows r0.., columns
                    // c0..c0 + cw of dW.
                    let dst = unsafe { y.slice((r0 + i) * k + c0, cw) };
                    dst.copy_from_slice(src);
                }
                Ok(())
            })
        })
    }
}
