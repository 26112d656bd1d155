//! `spatial_attention` and `cross_attention` on the CPU: per (sample, head)
//! the keys are transposed once, then each block of queries computes its
//! score rows `Q·Kᵀ`, a softmax, and `P·V` on the outer-product tiles of
//! [`super::simd`] (no horizontal sums, keys or head dims along the
//! vectors). Parallel over (sample, head, query block).

use std::cell::RefCell;

use super::kernels::{Kernel, f32s, f32s_mut};
use super::par::Shared;
use super::simd::{Isa, Rows, exp_f32, outer_grid};
use super::{Ctx, Scratch};
use crate::backend::BackendError;
use crate::host::HostTensor;
use crate::ops::spatial_attention::{CrossAttention, Layout, SpatialAttention};

/// Queries per task.
const QB: usize = 16;

pub(crate) enum AttnKind {
    Spatial(SpatialAttention),
    Cross(CrossAttention),
}

pub(crate) struct SpatialKernel(pub AttnKind);

thread_local! {
    /// Per thread: a block's score rows and its output rows.
    static BUF: RefCell<(Vec<f32>, Vec<f32>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

fn bad(what: String) -> BackendError {
    BackendError::Validation(format!("spatial attention: {what}"))
}

/// Softmax of `scale·row`, in place (f32; the row's maximum subtracted).
/// Written as separate passes with 8 partial maxima and sums, so each
/// vectorizes.
fn softmax_scaled(row: &mut [f32], scale: f32) {
    let mut m8 = [f32::NEG_INFINITY; 8];
    let mut chunks = row.chunks_exact(8);
    for ch in &mut chunks {
        for (m, v) in m8.iter_mut().zip(ch) {
            *m = if *v > *m { *v } else { *m };
        }
    }
    let m = chunks
        .remainder()
        .iter()
        .chain(&m8)
        .fold(f32::NEG_INFINITY, |m, v| if *v > m { *v } else { m });
    for v in row.iter_mut() {
        *v = exp_f32((*v - m) * scale);
    }
    let mut z8 = [0f32; 8];
    let mut chunks = row.chunks_exact(8);
    for ch in &mut chunks {
        for (z, v) in z8.iter_mut().zip(ch) {
            *z += v;
        }
    }
    let z: f32 = chunks.remainder().iter().sum::<f32>() + z8.iter().sum::<f32>();
    let inv = 1.0 / z;
    for v in row.iter_mut() {
        *v *= inv;
    }
}

impl Kernel for SpatialKernel {
    fn label(&self) -> String {
        match self.0 {
            AttnKind::Spatial(_) => "spatial_attention".into(),
            AttnKind::Cross(_) => "cross_attention".into(),
        }
    }

    fn run(
        &self,
        inputs: &[&HostTensor],
        out: &mut HostTensor,
        _syms: &[u32],
        ctx: &mut Ctx,
    ) -> Result<(), BackendError> {
        let q = f32s(inputs[0])?;
        let (kv, l): (&[f32], Layout) = match &self.0 {
            AttnKind::Spatial(a) => {
                let [b, t, c3] = inputs[0].shape[..] else {
                    return Err(bad(format!("qkv {:?} is not 3-D", inputs[0].shape)));
                };
                (q, a.layout(b, t, c3 / 3))
            }
            AttnKind::Cross(a) => {
                let kv = inputs.get(1).ok_or_else(|| bad("no kv input".into()))?;
                (f32s(kv)?, a.layout(&inputs[0].shape, &kv.shape))
            }
        };
        let (b, t, tk, c, heads) = (l.batch, l.t, l.tk, l.c, l.heads);
        let d = c / heads.max(1);
        if heads == 0 || d == 0 || out.data.len() != 4 * b * t * c {
            return Err(bad(format!("{heads} heads over {c} channels")));
        }
        let q_end = ((b * t).max(1) - 1) * l.q_rs + l.q_b + (heads - 1) * l.q_hs + d;
        let k_end = ((b * tk).max(1) - 1) * l.k_rs + l.k_b.max(l.v_b) + (heads - 1) * l.k_hs + d;
        if q_end > q.len() || k_end > kv.len() {
            return Err(bad("q/k/v run past their tensors".into()));
        }
        let par = ctx.par;
        // Kᵀ of every (sample, head): [b·heads][d][tk].
        let Scratch { att_kt, .. } = &mut *ctx.scratch;
        att_kt.resize(b * heads * d * tk, 0.0);
        {
            let kt = Shared::new(&mut att_kt[..]);
            par.ranges(b * heads, 1, |r| {
                for bh in r {
                    let (n, h) = (bh / heads, bh % heads);
                    for j in 0..tk {
                        let src = (n * tk + j) * l.k_rs + l.k_b + h * l.k_hs;
                        for e in 0..d {
                            kt.set((bh * d + e) * tk + j, kv[src + e]);
                        }
                    }
                }
            })?;
        }
        let kt: &[f32] = att_kt;
        let y = Shared::new(f32s_mut(out)?);
        let scale = 1.0 / (d as f32).sqrt();
        let blocks = t.div_ceil(QB);
        let tasks = b * heads * blocks;
        let failed = std::sync::atomic::AtomicBool::new(false);
        par.ranges(tasks, par.chunk(tasks, 1), |r| {
            BUF.with_borrow_mut(|(s, yb)| {
                s.resize(QB * tk, 0.0);
                yb.resize(QB * d, 0.0);
                for task in r.clone() {
                    let (bh, blk) = (task / blocks, task % blocks);
                    let (n, h) = (bh / heads, bh % heads);
                    let i0 = blk * QB;
                    let rows = QB.min(t - i0);
                    let qrows = Rows::at((n * t + i0) * l.q_rs + l.q_b + h * l.q_hs, l.q_rs);
                    let ktb = &kt[bh * d * tk..(bh + 1) * d * tk];
                    let vb = &kv[n * tk * l.k_rs + l.v_b + h * l.k_hs..];
                    let ok = outer_grid(Isa::Best, q, qrows, rows, d, ktb, tk, tk, s, tk).and_then(
                        |()| {
                            for row in s.chunks_mut(tk).take(rows) {
                                softmax_scaled(row, scale);
                            }
                            outer_grid(
                                Isa::Best,
                                s,
                                Rows::at(0, tk),
                                rows,
                                tk,
                                vb,
                                l.k_rs,
                                d,
                                yb,
                                d,
                            )
                        },
                    );
                    if ok.is_err() {
                        failed.store(true, std::sync::atomic::Ordering::Relaxed);
                        continue;
                    }
                    for rr in 0..rows {
                        let o = (n * t + i0 + rr) * c + h * d;
                        for e in 0..d {
                            y.set(o + e, yb[rr * d + e]);
                        }
                    }
                }
            })
        })?;
        if failed.into_inner() {
            return Err(bad("a block ran past its buffers".into()));
        }
        Ok(())
    }
}
