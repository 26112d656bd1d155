//! RoPE, KV-cache writes and causal attention over the cache on the CPU.
//!
//! Rotation angles are computed as the reference does (`pos·θ_j` in f32,
//! sine and cosine in f64), so roped values match it to f32 rounding.
//! Attention runs one task per (token, head): scores as f32 dots, softmax
//! in f32 with the maximum subtracted, values accumulated with `axpy`.

use std::cell::RefCell;

use super::Ctx;
use super::dot::{axpy, dot_f32};
use super::kernels::{Kernel, f32s, f32s_mut};
use super::par::Shared;
use crate::backend::BackendError;
use crate::dtype::DType;
use crate::host::HostTensor;
use crate::ops::attention::{Attention, MAX_HEAD_DIM, key_range};
use crate::ops::rope::{Rope, RopeMode};
use crate::ops::sym;

thread_local! {
    static SCORES: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// (cos, sin) of every (token, pair) for `t` tokens from the rope's
/// position, with the optional frequency factors tensor.
fn rope_table(
    r: &Rope,
    factors: Option<&&HostTensor>,
    syms: &[u32],
    t: usize,
    out: &mut Vec<(f64, f64)>,
) -> Result<(), BackendError> {
    let factors = factors.map(|f| f32s(f)).transpose()?;
    let p0 = sym(syms, r.pos)?;
    let half = r.n_rot / 2;
    out.clear();
    for ti in 0..t {
        let pos = (p0 as usize + if r.period > 0 { ti % r.period } else { ti }) as f32;
        for j in 0..half {
            let inv = match factors {
                Some(f) => r.inv_freq(j) / f.get(j).copied().unwrap_or(1.0),
                None => r.inv_freq(j),
            };
            let (s, c) = ((pos * inv) as f64).sin_cos();
            out.push((c, if r.inverse { -s } else { s }));
        }
    }
    Ok(())
}

/// Rotates one head row in place with one token's (cos, sin) pairs.
fn rotate(mode: RopeMode, row: &mut [f32], cs: &[(f64, f64)]) {
    let half = cs.len();
    for (j, &(c, s)) in cs.iter().enumerate() {
        let (a, b) = match mode {
            RopeMode::Normal => (2 * j, 2 * j + 1),
            RopeMode::Neox => (j, j + half),
        };
        let (x0, x1) = (row[a] as f64, row[b] as f64);
        row[a] = (x0 * c - x1 * s) as f32;
        row[b] = (x0 * s + x1 * c) as f32;
    }
}

/// A row of `d` values of a cache (f32 or f16) as f32.
fn cache_row<'a>(
    cache: &'a HostTensor,
    f: Option<&'a [f32]>,
    at: usize,
    d: usize,
    buf: &'a mut [f32],
) -> &'a [f32] {
    match f {
        Some(f) => &f[at..at + d],
        None => {
            let b = &cache.data[at * 2..(at + d) * 2];
            for (o, h) in buf.iter_mut().zip(b.chunks_exact(2)) {
                *o = half::f16::from_le_bytes([h[0], h[1]]).to_f32();
            }
            &buf[..d]
        }
    }
}

/// `rope`: `x [t, h, d]`, optional factors.
pub(crate) struct RopeKernel(pub Rope);

impl Kernel for RopeKernel {
    fn label(&self) -> String {
        "rope".into()
    }

    fn run(
        &self,
        inputs: &[&HostTensor],
        out: &mut HostTensor,
        syms: &[u32],
        ctx: &mut Ctx,
    ) -> Result<(), BackendError> {
        let x = f32s(inputs[0])?;
        let (t, d) = (inputs[0].shape[0], inputs[0].shape[2]);
        let table = &mut ctx.scratch.rope;
        rope_table(&self.0, inputs.get(1), syms, t, table)?;
        let y = f32s_mut(out)?;
        y.copy_from_slice(x);
        let half = self.0.n_rot / 2;
        let per_token = x.len() / t.max(1);
        for (ti, tok) in y.chunks_mut(per_token.max(1)).enumerate() {
            for row in tok.chunks_mut(d) {
                rotate(self.0.mode, row, &table[ti * half..(ti + 1) * half]);
            }
        }
        Ok(())
    }
}

/// `write_cache` / `write_cache_window` (optionally roped): rows of `src`
/// (`[t, h, d]`, or heads from column `col0` of `[t, ld]`) into the cache
/// `[h, cap, d]` at positions `pos..pos+t`.
pub(crate) struct CacheKernel {
    pub pos: crate::graph::Sym,
    pub col0: usize,
    pub rope: Option<Rope>,
}

impl Kernel for CacheKernel {
    fn label(&self) -> String {
        if self.rope.is_some() {
            "write_cache + rope"
        } else {
            "write_cache"
        }
        .into()
    }

    fn run(
        &self,
        inputs: &[&HostTensor],
        out: &mut HostTensor,
        syms: &[u32],
        ctx: &mut Ctx,
    ) -> Result<(), BackendError> {
        let src = f32s(inputs[1])?;
        let (h, cap, d) = (out.shape[0], out.shape[1], out.shape[2]);
        let t = inputs[1].shape[0];
        let ld = src.len() / t.max(1);
        let p0 = sym(syms, self.pos)?;
        if let Some(r) = &self.rope {
            rope_table(r, inputs.get(2), syms, t, &mut ctx.scratch.rope)?;
        }
        let half = self.rope.map_or(0, |r| r.n_rot / 2);
        let mut row = [0f32; MAX_HEAD_DIM];
        let f16 = out.dtype == DType::F16;
        for ti in 0..t {
            for hi in 0..h {
                let from = ti * ld + self.col0 + hi * d;
                let row = &mut row[..d];
                row.copy_from_slice(&src[from..from + d]);
                if let Some(r) = &self.rope {
                    rotate(r.mode, row, &ctx.scratch.rope[ti * half..(ti + 1) * half]);
                }
                let at = (hi * cap + p0 as usize + ti) * d;
                if f16 {
                    for (o, v) in out.data[at * 2..(at + d) * 2]
                        .chunks_exact_mut(2)
                        .zip(row.iter())
                    {
                        o.copy_from_slice(&half::f16::from_f32(*v).to_le_bytes());
                    }
                } else {
                    f32s_mut(out)?[at..at + d].copy_from_slice(row);
                }
            }
        }
        Ok(())
    }
}

pub(crate) struct AttnKernel(pub Attention);

impl Kernel for AttnKernel {
    fn label(&self) -> String {
        if self.0.rope_q.is_some() {
            "attention + rope"
        } else {
            "attention"
        }
        .into()
    }

    fn run(
        &self,
        inputs: &[&HostTensor],
        out: &mut HostTensor,
        syms: &[u32],
        ctx: &mut Ctx,
    ) -> Result<(), BackendError> {
        let a = &self.0;
        let q = f32s(inputs[0])?;
        let (kc, vc) = (inputs[1], inputs[2]);
        let (hkv, cap, d) = (kc.shape[0], kc.shape[1], kc.shape[2]);
        let t = inputs[0].shape[0];
        let ld = q.len() / t.max(1);
        let (col0, hq) = match &a.rope_q {
            Some(r) => (r.col0, r.heads),
            None => (0, inputs[0].shape[1]),
        };
        let p0 = sym(syms, a.pos)?;
        if let Some(r) = &a.rope_q {
            rope_table(&r.rope, inputs.get(3), syms, t, &mut ctx.scratch.rope)?;
        }
        let table = &ctx.scratch.rope;
        let half = a.rope_q.map_or(0, |r| r.rope.n_rot / 2);
        let (kf, vf) = if kc.dtype == DType::F32 {
            (Some(f32s(kc)?), Some(f32s(vc)?))
        } else {
            (None, None)
        };
        let group = (hq / hkv.max(1)).max(1);
        let y = Shared::new(f32s_mut(out)?);
        let par = ctx.par;
        par.ranges(t * hq, 1, |tasks| {
            SCORES.with_borrow_mut(|scores| {
                let (mut qv, mut acc, mut kb, mut vb) = (
                    [0f32; MAX_HEAD_DIM],
                    [0f32; MAX_HEAD_DIM],
                    [0f32; MAX_HEAD_DIM],
                    [0f32; MAX_HEAD_DIM],
                );
                for task in tasks {
                    let (ti, h) = (task / hq, task % hq);
                    let qv = &mut qv[..d];
                    qv.copy_from_slice(&q[ti * ld + col0 + h * d..][..d]);
                    if let Some(r) = &a.rope_q {
                        rotate(r.rope.mode, qv, &table[ti * half..(ti + 1) * half]);
                    }
                    let keys = key_range((p0 as usize + ti + 1).min(cap), a.window);
                    let base = (h / group) * cap + keys.start;
                    scores.resize(keys.len(), 0.0);
                    let mut mx = f32::NEG_INFINITY;
                    for (j, s) in scores.iter_mut().enumerate() {
                        let kr = cache_row(kc, kf, (base + j) * d, d, &mut kb);
                        *s = dot_f32(qv, kr) * a.scale;
                        mx = mx.max(*s);
                    }
                    let mut sum = 0f32;
                    for s in scores.iter_mut() {
                        *s = (*s - mx).exp();
                        sum += *s;
                    }
                    let acc = &mut acc[..d];
                    acc.fill(0.0);
                    for (j, e) in scores.iter().enumerate() {
                        axpy(acc, *e, cache_row(vc, vf, (base + j) * d, d, &mut vb));
                    }
                    let o = (ti * hq + h) * d;
                    for (c, v) in acc.iter().enumerate() {
                        y.set(o + c, v / sum);
                    }
                }
            })
        })?;
        Ok(())
    }
}
