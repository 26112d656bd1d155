//! `mul_mat` and `mul_mat_fused` on the CPU: `y = f(norm(x)·Wᵀ) + res`
//! (see [`crate::ops::matmul_fused`] for the math), parallel over output
//! columns, each weight row read once per run for all rows of `x`.
//!
//! Q4_0/Q4_1/Q8_0 weights with 8-bit activations use the integer dots of
//! [`super::dot`]; any other case decodes each weight row to f32 (in a
//! per-thread buffer) and takes f32 dots.

use std::cell::RefCell;

use super::dot::{self, Q8Rows, QK, Tiles, XRow};
use super::kernels::{Kernel, f32s, f32s_mut};
use super::par::Shared;
use super::simd::{Isa, Rows, Segs, dot_grid};
use super::{Activations, Ctx};
use crate::backend::BackendError;
use crate::dtype::DType;
use crate::host::HostTensor;
use crate::quant;

pub(crate) struct MatMulKernel {
    pub name: String,
    /// Input index of the RMSNorm weight and epsilon (prologue).
    pub norm: Option<(usize, f32)>,
    /// `W` holds gate rows then up rows; `y = silu(gate)·up`.
    pub glu: bool,
    /// Input index of the residual added last.
    pub res: Option<usize>,
}

thread_local! {
    /// Decoded weight rows (two for GLU): per thread, reused across runs.
    static ROWS: RefCell<(Vec<f32>, Vec<f32>)> = const { RefCell::new((Vec::new(), Vec::new())) };
    /// The f32 path's products of one block of columns (gate, up).
    static OUT: RefCell<(Vec<f32>, Vec<f32>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

fn silu(a: f32) -> f32 {
    a / (1.0 + (-a).exp())
}

/// RMSNorm of each row of `x` times `nw`, as the reference computes it
/// (f64 mean of squares).
fn rms_norm_into(x: &[f32], nw: &[f32], eps: f32, out: &mut Vec<f32>) {
    let k = nw.len().max(1);
    out.resize(x.len(), 0.0);
    for (row, o) in x.chunks(k).zip(out.chunks_mut(k)) {
        let ms = row.iter().map(|v| (*v as f64).powi(2)).sum::<f64>() / k as f64;
        let inv = 1.0 / (ms + eps as f64).sqrt();
        for ((o, v), g) in o.iter_mut().zip(row).zip(nw) {
            *o = (*v as f64 * inv * *g as f64) as f32;
        }
    }
}

/// Weight rows decoded per step of the f32 path (per thread: 16 rows of
/// 2,048 floats are 128 KiB, in L2 while every token row passes).
const DECODED: usize = 16;

/// Decodes weight rows `rows` (of `k` values, `rb` bytes each) into `buf`.
fn decode_rows(
    dtype: DType,
    w: &[u8],
    rb: usize,
    rows: std::ops::Range<usize>,
    buf: &mut Vec<f32>,
    k: usize,
) {
    buf.resize(rows.len() * k, 0.0);
    for (i, r) in rows.enumerate() {
        let dst = &mut buf[i * k..(i + 1) * k];
        let ok = w
            .get(r * rb..(r + 1) * rb)
            .is_some_and(|b| quant::dequantize_into(dtype, b, dst).is_ok());
        if !ok {
            // Unreachable for the shapes `infer` accepted; poison rather
            // than return a plausible wrong answer.
            dst.fill(f32::NAN);
        }
    }
}

/// Products of weight rows `base + c` (`c` in `cols`) with activation rows
/// `0..m`, each handed to `emit(c, i, value)`: 4×1 tiles for one token,
/// 2×4 tiles for more, single rows and tokens at the edges.
#[allow(clippy::too_many_arguments)]
fn products<'x>(
    t: &Tiles,
    w: &[u8],
    rb: usize,
    base: usize,
    cols: std::ops::Range<usize>,
    x: &dyn Fn(usize) -> XRow<'x>,
    m: usize,
    emit: &mut dyn FnMut(usize, usize, f32),
) {
    let wr = |c: usize| &w[((base + c) * rb).min(w.len())..];
    let mut c = cols.start;
    if m == 1 {
        let x0 = [x(0)];
        while c + 4 <= cols.end {
            let o = (t.r4c1)(wr(c), rb, &x0);
            for (r, o) in o.iter().enumerate() {
                emit(c + r, 0, o[0]);
            }
            c += 4;
        }
        for c in c..cols.end {
            emit(c, 0, (t.r1c1)(wr(c), rb, &x0)[0][0]);
        }
        return;
    }
    while c < cols.end {
        let pair = c + 2 <= cols.end;
        let mut i = 0;
        while i + 4 <= m {
            let xs = [x(i), x(i + 1), x(i + 2), x(i + 3)];
            if pair {
                let o = (t.r2c4)(wr(c), rb, &xs);
                for (r, o) in o.iter().enumerate() {
                    for (j, v) in o.iter().enumerate() {
                        emit(c + r, i + j, *v);
                    }
                }
            } else {
                for (j, v) in (t.r1c4)(wr(c), rb, &xs)[0].iter().enumerate() {
                    emit(c, i + j, *v);
                }
            }
            i += 4;
        }
        for i in i..m {
            for r in 0..1 + pair as usize {
                emit(c + r, i, (t.r1c1)(wr(c + r), rb, &[x(i)])[0][0]);
            }
        }
        c += 1 + pair as usize;
    }
}

impl Kernel for MatMulKernel {
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
        let x = f32s(inputs[0])?;
        let w = inputs[1];
        let (rows, k) = (w.shape[0], w.shape[1]);
        let m = x.len() / k.max(1);
        let n = if self.glu { rows / 2 } else { rows };
        let rb = w.dtype.row_bytes(k)?;
        if w.data.len() < rows * rb {
            return Err(BackendError::Validation(format!(
                "{}: weight holds {} bytes, {rows} rows need {}",
                self.name,
                w.data.len(),
                rows * rb
            )));
        }
        let res = self.res.map(|i| f32s(inputs[i])).transpose()?;
        let super::Scratch { f, q, .. } = &mut *ctx.scratch;
        let xin: &[f32] = match self.norm {
            Some((i, eps)) => {
                rms_norm_into(x, f32s(inputs[i])?, eps, f);
                f
            }
            None => x,
        };
        let y = Shared::new(f32s_mut(out)?);
        let finish = |i: usize, c: usize, a: f32, b: f32| {
            let v = if self.glu { silu(a) * b } else { a };
            y.set(i * n + c, v + res.map_or(0.0, |r| r[i * n + c]));
        };
        let par = ctx.par;
        let integer = match ctx.act {
            Activations::Q8 if k % QK == 0 => dot::q8_tiles(w.dtype),
            _ => None,
        };
        if let Some(t) = integer {
            q.quantize(xin);
            let q: &Q8Rows = q;
            let nb = k / QK;
            let x = |i: usize| {
                let (q, d, s) = q.row(i, nb);
                XRow { q, d, s }
            };
            let wd = &w.data[..];
            par.ranges(n, par.chunk(n, 8), |cols| {
                if self.glu {
                    // Gate products first (parked in y), then the up rows.
                    products(t, wd, rb, 0, cols.clone(), &x, m, &mut |c, i, v| {
                        y.set(i * n + c, v)
                    });
                    products(t, wd, rb, n, cols, &x, m, &mut |c, i, v| {
                        finish(i, c, y.get(i * n + c), v)
                    });
                } else {
                    products(t, wd, rb, 0, cols, &x, m, &mut |c, i, v| {
                        finish(i, c, v, 0.0)
                    });
                }
            })?;
        } else {
            // f32 products on the register tiles: f32 weights in place,
            // others decoded DECODED columns at a time per thread.
            let wf = if w.dtype == DType::F32 {
                Some(f32s(w)?)
            } else {
                None
            };
            let g = Segs::one(k);
            par.ranges(n, par.chunk(n, 8), |cols| {
                ROWS.with_borrow_mut(|(ra, rb_)| {
                    OUT.with_borrow_mut(|(ya, yb)| {
                        let mut c0 = cols.start;
                        while c0 < cols.end {
                            let nc = DECODED.min(cols.end - c0);
                            let (gate, up, woff): (&[f32], &[f32], usize) = match wf {
                                Some(wf) => (wf, wf, c0 * k),
                                None => {
                                    decode_rows(w.dtype, &w.data, rb, c0..c0 + nc, ra, k);
                                    if self.glu {
                                        decode_rows(
                                            w.dtype,
                                            &w.data,
                                            rb,
                                            n + c0..n + c0 + nc,
                                            rb_,
                                            k,
                                        );
                                    }
                                    (ra, rb_, 0)
                                }
                            };
                            let up_off = if wf.is_some() { n * k } else { 0 };
                            // Columns c0..c0 + nc of the rows at `off` in `wb`, into `out`.
                            let prod = |wb: &[f32], off: usize, out: &mut Vec<f32>| {
                                out.resize(m * nc, 0.0);
                                dot_grid(
                                    Isa::Best,
                                    xin,
                                    Rows::at(0, k),
                                    m,
                                    wb,
                                    Rows::at(off, k),
                                    nc,
                                    g,
                                    out,
                                    nc,
                                )
                            };
                            let r = prod(gate, woff, ya).and_then(|()| {
                                if self.glu {
                                    prod(up, up_off + woff, yb)
                                } else {
                                    Ok(())
                                }
                            });
                            for i in 0..m {
                                for c in 0..nc {
                                    match r {
                                        Ok(()) => {
                                            let b = if self.glu { yb[i * nc + c] } else { 0.0 };
                                            finish(i, c0 + c, ya[i * nc + c], b)
                                        }
                                        // Unreachable for the shapes checked above; poison
                                        // rather than return a plausible answer.
                                        Err(_) => y.set(i * n + c0 + c, f32::NAN),
                                    }
                                }
                            }
                            c0 += nc;
                        }
                    })
                })
            })?;
        }
        Ok(())
    }
}
