//! `spatial_attention` and `cross_attention` on the CPU: per (sample, head)
//! the keys are transposed once, then each block of queries walks the keys
//! a block at a time (flash-attention's online softmax): the block's scores
//! `Q·Kᵀ`, a running maximum and sum per query (earlier blocks rescaled when
//! the maximum grows), and `P·V` added into the output rows, on the
//! outer-product tiles of [`super::simd`] (no horizontal sums, keys or head
//! dims along the vectors). A block's scores stay in L1, so the work no
//! longer streams `queries × keys` floats through memory several times
//! (16,384-token attention at 256² was memory-bound that way). Parallel over
//! (sample, head, query block).

use std::cell::RefCell;

use super::dot::dot_f32;
use super::kernels::{Kernel, f32s, f32s_mut};
use super::par::Shared;
use super::simd::{Isa, Rows, exp_f32, outer_grid};
use super::{Ctx, Scratch};
use crate::backend::BackendError;
use crate::host::HostTensor;
use crate::ops::spatial_attention::{CrossAttention, Layout, SpatialAttention};

/// Queries per task.
const QB: usize = 16;
/// Keys per block of the online softmax (QB × KB scores: 16 KiB).
const KB: usize = 256;
/// Head dims below this take P·V as dot products (see `run`).
const SMALL_D: usize = 16;

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

/// Partial maxima and sums per row: one 512-bit vector of f32.
const P: usize = 16;

/// The maximum of `row` (16 partial maxima, so it vectorizes; NaN-blind
/// like `f32::max`).
#[inline(always)]
fn max_body(row: &[f32]) -> f32 {
    let mut mp = [f32::NEG_INFINITY; P];
    let mut chunks = row.chunks_exact(P);
    for ch in &mut chunks {
        for (m, v) in mp.iter_mut().zip(ch) {
            *m = if *v > *m { *v } else { *m };
        }
    }
    chunks
        .remainder()
        .iter()
        .chain(&mp)
        .fold(f32::NEG_INFINITY, |m, v| if *v > m { *v } else { m })
}

/// `row[j] = exp((row[j] − m)·scale)`, returning their sum (16 partial
/// sums).
#[inline(always)]
fn exp_sum_body(row: &mut [f32], m: f32, scale: f32) -> f32 {
    for v in row.iter_mut() {
        *v = exp_f32((*v - m) * scale);
    }
    let mut zp = [0f32; P];
    let mut chunks = row.chunks_exact(P);
    for ch in &mut chunks {
        for (z, v) in zp.iter_mut().zip(ch) {
            *z += v;
        }
    }
    chunks.remainder().iter().sum::<f32>() + zp.iter().sum::<f32>()
}

// The same loops compiled for AVX-512 and AVX2 (LLVM vectorizes them 16 or 8
// wide; the portable build's baseline is SSE2's 4), chosen at run time.
#[cfg(target_arch = "x86_64")]
mod wide {
    #[target_feature(enable = "avx512f")]
    pub(super) fn max_512(row: &[f32]) -> f32 {
        super::max_body(row)
    }
    #[target_feature(enable = "avx512f")]
    pub(super) fn exp_sum_512(row: &mut [f32], m: f32, scale: f32) -> f32 {
        super::exp_sum_body(row, m, scale)
    }
    #[target_feature(enable = "avx2,fma")]
    pub(super) fn max_256(row: &[f32]) -> f32 {
        super::max_body(row)
    }
    #[target_feature(enable = "avx2,fma")]
    pub(super) fn exp_sum_256(row: &mut [f32], m: f32, scale: f32) -> f32 {
        super::exp_sum_body(row, m, scale)
    }
}

/// The vector width the softmax loops run at: 16 (AVX-512), 8 (AVX2), or
/// the build's own.
#[derive(Clone, Copy)]
enum Width {
    Base,
    #[cfg(target_arch = "x86_64")]
    W8,
    #[cfg(target_arch = "x86_64")]
    W16,
}

fn width() -> Width {
    static W: std::sync::OnceLock<Width> = std::sync::OnceLock::new();
    *W.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        if super::dot::level() != super::dot::Level::Portable {
            return if super::simd::wide512() {
                Width::W16
            } else {
                Width::W8
            };
        }
        Width::Base
    })
}

fn max_of(w: Width, row: &[f32]) -> f32 {
    match w {
        Width::Base => max_body(row),
        // SAFETY: the features were detected at run time (`width`).
        #[cfg(target_arch = "x86_64")]
        Width::W8 => unsafe { wide::max_256(row) },
        #[cfg(target_arch = "x86_64")]
        Width::W16 => unsafe { wide::max_512(row) },
    }
}

fn exp_sum(w: Width, row: &mut [f32], m: f32, scale: f32) -> f32 {
    match w {
        Width::Base => exp_sum_body(row, m, scale),
        // SAFETY: the features were detected at run time (`width`).
        #[cfg(target_arch = "x86_64")]
        Width::W8 => unsafe { wide::exp_sum_256(row, m, scale) },
        #[cfg(target_arch = "x86_64")]
        Width::W16 => unsafe { wide::exp_sum_512(row, m, scale) },
    }
}

/// One task's running state: per query row the maximum score so far
/// (unscaled), the sum of its exponentials and the weighted values.
struct Online<'a> {
    m: [f32; QB],
    l: [f32; QB],
    acc: &'a mut [f32],
}

impl Online<'_> {
    /// Folds a block's score rows (`rows × kn`, turned into weights in
    /// place) into the state; the caller then adds `P·V` into `acc`.
    fn absorb(&mut self, s: &mut [f32], rows: usize, kn: usize, d: usize, scale: f32) {
        let w = width();
        for (r, row) in s.chunks_mut(kn).take(rows).enumerate() {
            let m = self.m[r].max(max_of(w, row));
            if m > self.m[r] {
                // exp_f32 clamps: from −∞ the factor is ≈ 1e-38 of zeros.
                let f = exp_f32((self.m[r] - m) * scale);
                self.l[r] *= f;
                for a in &mut self.acc[r * d..(r + 1) * d] {
                    *a *= f;
                }
                self.m[r] = m;
            }
            self.l[r] += exp_sum(w, row, m, scale);
        }
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
        // Kᵀ of every (sample, head): [b·heads][d][tk]; for heads narrower
        // than a vector, Vᵀ after it (P·V then runs as dot products over the
        // keys instead of outer-product tiles a few columns wide).
        let small = d < SMALL_D;
        let one = b * heads * d * tk;
        let Scratch { att_kt, .. } = &mut *ctx.scratch;
        att_kt.resize(if small { 2 * one } else { one }, 0.0);
        {
            let kt = Shared::new(&mut att_kt[..]);
            par.ranges(b * heads, 1, |r| {
                for bh in r {
                    let (n, h) = (bh / heads, bh % heads);
                    for j in 0..tk {
                        let src = (n * tk + j) * l.k_rs + h * l.k_hs;
                        for e in 0..d {
                            kt.set((bh * d + e) * tk + j, kv[src + l.k_b + e]);
                            if small {
                                kt.set(one + (bh * d + e) * tk + j, kv[src + l.v_b + e]);
                            }
                        }
                    }
                }
            })?;
        }
        let (kt, vt) = att_kt.split_at(one);
        let y = Shared::new(f32s_mut(out)?);
        let scale = 1.0 / (d as f32).sqrt();
        let blocks = t.div_ceil(QB);
        let tasks = b * heads * blocks;
        let failed = std::sync::atomic::AtomicBool::new(false);
        par.ranges(tasks, par.chunk(tasks, 1), |r| {
            BUF.with_borrow_mut(|(s, yb)| {
                let kb = KB.min(tk);
                s.resize(QB * kb + QB * d, 0.0);
                yb.resize(QB * d, 0.0);
                let (s, pv) = s.split_at_mut(QB * kb);
                for task in r.clone() {
                    let (bh, blk) = (task / blocks, task % blocks);
                    let (n, h) = (bh / heads, bh % heads);
                    let i0 = blk * QB;
                    let rows = QB.min(t - i0);
                    let qrows = Rows::at((n * t + i0) * l.q_rs + l.q_b + h * l.q_hs, l.q_rs);
                    let ktb = &kt[bh * d * tk..(bh + 1) * d * tk];
                    let vb = &kv[n * tk * l.k_rs + l.v_b + h * l.k_hs..];
                    yb.fill(0.0);
                    let mut st = Online {
                        m: [f32::NEG_INFINITY; QB],
                        l: [0.0; QB],
                        acc: &mut yb[..],
                    };
                    let mut ok = Ok(());
                    for j0 in (0..tk).step_by(kb) {
                        let kn = kb.min(tk - j0);
                        ok = outer_grid(Isa::Best, q, qrows, rows, d, &ktb[j0..], tk, kn, s, kn)
                            .and_then(|()| {
                                st.absorb(s, rows, kn, d, scale);
                                if small {
                                    let vtb = &vt[bh * d * tk..(bh + 1) * d * tk];
                                    for (r, p) in s.chunks(kn).take(rows).enumerate() {
                                        for e in 0..d {
                                            pv[r * d + e] = dot_f32(p, &vtb[e * tk + j0..][..kn]);
                                        }
                                    }
                                    return Ok(());
                                }
                                let v = vb.get(j0 * l.k_rs..).unwrap_or(&[]);
                                outer_grid(
                                    Isa::Best,
                                    s,
                                    Rows::at(0, kn),
                                    rows,
                                    kn,
                                    v,
                                    l.k_rs,
                                    d,
                                    pv,
                                    d,
                                )
                            });
                        if ok.is_err() {
                            break;
                        }
                        for (a, p) in st.acc[..rows * d].iter_mut().zip(&pv[..rows * d]) {
                            *a += p;
                        }
                    }
                    if ok.is_err() {
                        failed.store(true, std::sync::atomic::Ordering::Relaxed);
                        continue;
                    }
                    for rr in 0..rows {
                        let o = (n * t + i0 + rr) * c + h * d;
                        let inv = 1.0 / st.l[rr];
                        for e in 0..d {
                            y.set(o + e, st.acc[rr * d + e] * inv);
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
