//! `conv2d` on the CPU: NHWC implicit GEMM on the f32 register tiles of
//! [`super::simd`], parallel over output rows.
//!
//! The input is copied once into a zero-bordered buffer (when the conv pads),
//! so every tap is in bounds and, for one kernel row `ky`, the `kw` taps of
//! an output pixel are `kw·Cin` contiguous floats — the same order as the
//! weight row's `(ky, kx, ci)` — so each output is `kh` contiguous dot
//! products ([`Segs`]) instead of `kh·kw` short ones. Weights other than
//! f32 are decoded to f32 once per call.

use super::kernels::{Kernel, f32s, f32s_mut};
use super::par::Shared;
use super::simd::{Isa, Rows, Segs, dot_grid};
use super::{Ctx, Scratch};
use crate::backend::BackendError;
use crate::dtype::DType;
use crate::host::HostTensor;
use crate::ops::conv2d::Conv2d;
use crate::quant;

pub(crate) struct ConvKernel {
    pub conv: Conv2d,
    pub name: String,
}

fn bad(what: String) -> BackendError {
    BackendError::Validation(format!("conv2d: {what}"))
}

/// `x [b, h, w, c]` with `pad` zero rows/columns before and `pad + extra`
/// after, into `buf`.
fn pad_into(x: &[f32], [b, h, w, c]: [usize; 4], pad: usize, extra: usize, buf: &mut Vec<f32>) {
    let (hp, wp) = (h + 2 * pad + extra, w + 2 * pad + extra);
    buf.clear();
    buf.resize(b * hp * wp * c, 0.0);
    for n in 0..b {
        for y in 0..h {
            let src = &x[(n * h + y) * w * c..][..w * c];
            let dst = ((n * hp + y + pad) * wp + pad) * c;
            buf[dst..dst + w * c].copy_from_slice(src);
        }
    }
}

impl Kernel for ConvKernel {
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
        let cv = self.conv;
        let x = f32s(inputs[0])?;
        let w = inputs[1];
        let bias = f32s(inputs[2])?;
        let res = inputs.get(3).map(|t| f32s(t)).transpose()?;
        let [b, h, wd, cin] = inputs[0].shape[..] else {
            return Err(bad(format!("x {:?} is not 4-D", inputs[0].shape)));
        };
        let [_, oh, ow, cout] = out.shape[..] else {
            return Err(bad(format!("y {:?} is not 4-D", out.shape)));
        };
        let k = cv.kh * cv.kw * cin;
        if w.shape != [cout, k] || bias.len() != cout || x.len() != b * h * wd * cin {
            return Err(bad(format!(
                "shapes x {:?}, w {:?}, bias {} do not match y {:?}",
                inputs[0].shape,
                w.shape,
                bias.len(),
                out.shape
            )));
        }
        if res.is_some_and(|r| r.len() != b * oh * ow * cout) {
            return Err(bad("the residual does not match y".into()));
        }
        let Scratch { conv_x, conv_w, .. } = &mut *ctx.scratch;
        let wf: &[f32] = if w.dtype == DType::F32 {
            f32s(w)?
        } else {
            let rb = w.dtype.row_bytes(k)?;
            conv_w.resize(cout * k, 0.0);
            for co in 0..cout {
                let bytes = w
                    .data
                    .get(co * rb..(co + 1) * rb)
                    .ok_or_else(|| bad(format!("weight holds {} bytes", w.data.len())))?;
                quant::dequantize_into(w.dtype, bytes, &mut conv_w[co * k..(co + 1) * k])?;
            }
            conv_w
        };
        let (pad, extra) = (cv.pad, cv.pad_extra);
        let (hp, wp) = (h + 2 * pad + extra, wd + 2 * pad + extra);
        let xp: &[f32] = if pad == 0 && extra == 0 {
            x
        } else {
            pad_into(x, [b, h, wd, cin], pad, extra, conv_x);
            conv_x
        };
        let s = cv.stride;
        let row_len = wp * cin;
        if b > 0
            && oh > 0
            && ow > 0
            && ((oh - 1) * s + cv.kh > hp
                || (ow - 1) * s + cv.kw > wp
                || xp.len() < b * hp * row_len)
        {
            return Err(bad(format!(
                "a {}×{} kernel at stride {s} does not give {oh}×{ow} from {h}×{wd}",
                cv.kh, cv.kw
            )));
        }
        let segs = Segs {
            n: cv.kh,
            len: cv.kw * cin,
            xstep: row_len,
            wstep: cv.kw * cin,
        };
        let y = Shared::new(f32s_mut(out)?);
        let rows = b * oh;
        let par = ctx.par;
        par.ranges(rows, par.chunk(rows, 1), |range| {
            for row in range {
                let (n, oy) = (row / oh, row % oh);
                let base = (n * hp + oy * s) * row_len;
                let ybase = row * ow * cout;
                // SAFETY: this task alone owns output row `row`.
                let yr = unsafe { y.slice(ybase, ow * cout) };
                let r = dot_grid(
                    Isa::Wide,
                    xp,
                    Rows::at(base, s * cin),
                    ow,
                    wf,
                    Rows::at(0, k),
                    cout,
                    segs,
                    yr,
                    cout,
                );
                match r {
                    Ok(()) => {
                        let res = res.map(|r| &r[ybase..ybase + ow * cout]);
                        for (px, yp) in yr.chunks_exact_mut(cout).enumerate() {
                            for (v, b) in yp.iter_mut().zip(bias) {
                                *v += b;
                            }
                            if let Some(res) = res {
                                for (v, r) in yp.iter_mut().zip(&res[px * cout..]) {
                                    *v += r;
                                }
                            }
                        }
                    }
                    // Unreachable after the checks above (dot_grid checks
                    // every row again): poison rather than return a
                    // plausible answer.
                    Err(_) => yr.fill(f32::NAN),
                }
            }
        })
    }
}
