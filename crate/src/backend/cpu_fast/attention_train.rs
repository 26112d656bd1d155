//! Training's causal attention over whole sequences and its backward
//! ([`CausalAttention`], every mode) on the fast CPU backend: f32, rows in
//! parallel, no `[t, t]` matrix.
//!
//! * Forward, Stats and GradQ own query rows: per (row, head) the scores
//!   against the row's sequence up to itself, then the softmax-weighted sum
//!   (o), the log-sum-exp and `D = o·do` (stats), or `dq = scale·Σ ds·k`.
//! * GradK and GradV own key rows: per (key row, kv head) they walk the
//!   query rows after it in its sequence and the query heads of its group,
//!   with `p = exp(s − lse)` and `ds = p·(do·v − D)` from the stats.
//!
//! The gradient modes take p from the stats (lse, D) as the GPU kernels do;
//! the CPU reference recomputes the softmax. Same values within rounding.
//!
//! [`CausalAttention`]: crate::ops::causal_attention::CausalAttention

use std::cell::RefCell;

use super::Ctx;
use super::kernels::{Kernel, f32s, f32s_mut};
use super::par::Shared;
use super::simd::exp_f32;
use crate::backend::BackendError;
use crate::host::HostTensor;
use crate::ops::causal_attention::{AttnMode, CausalAttention};

pub(crate) struct CausalAttnKernel(pub CausalAttention);

thread_local! {
    /// One (row, head)'s scores over its keys.
    static SCORES: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    // Four partial sums: the loop vectorizes (d is a multiple of 4).
    let mut s = [0f32; 4];
    for (a, b) in a.chunks_exact(4).zip(b.chunks_exact(4)) {
        for l in 0..4 {
            s[l] += a[l] * b[l];
        }
    }
    (s[0] + s[1]) + (s[2] + s[3])
}

fn axpy(y: &mut [f32], a: f32, x: &[f32]) {
    for (y, x) in y.iter_mut().zip(x) {
        *y += a * x;
    }
}

fn bad(op: &CausalAttention, what: String) -> BackendError {
    BackendError::Validation(format!("causal attention ({:?}): {what}", op.mode))
}

impl Kernel for CausalAttnKernel {
    fn label(&self) -> String {
        use crate::ops::Op;
        self.0.name().to_string()
    }

    fn run(
        &self,
        inputs: &[&HostTensor],
        out: &mut HostTensor,
        _syms: &[u32],
        ctx: &mut Ctx,
    ) -> Result<(), BackendError> {
        let op = &self.0;
        let (qs, ks) = (&inputs[0].shape, &inputs[1].shape);
        let (&[t, hq, d], &[_, hkv, _]) = (&qs[..], &ks[..]) else {
            return Err(bad(op, format!("shapes {qs:?}, {ks:?}")));
        };
        if hkv == 0 || hq % hkv != 0 || op.seq == 0 || t % op.seq != 0 || d % 4 != 0 {
            return Err(bad(op, format!("shapes {qs:?}, {ks:?}, seq {}", op.seq)));
        }
        let q = f32s(inputs[0])?;
        let (k, v) = (f32s(inputs[1])?, f32s(inputs[2])?);
        let extra = |i: usize| inputs.get(i).map(|x| f32s(x)).transpose();
        let (i3, i4) = (extra(3)?, extra(4)?);
        let (nq, nk, nst) = (t * hq * d, t * hkv * d, t * hq * 2);
        let (n3, n4, nout) = match op.mode {
            AttnMode::Forward => (0, 0, nq),
            AttnMode::Stats => (nq, nq, nst),
            AttnMode::GradQ => (nq, nst, nq),
            AttnMode::GradK | AttnMode::GradV => (nq, nst, nk),
        };
        let out_len = out.data.len() / 4;
        if q.len() != nq
            || k.len() != nk
            || v.len() != nk
            || i3.map_or(0, <[f32]>::len) != n3
            || i4.map_or(0, <[f32]>::len) != n4
            || out_len != nout
        {
            return Err(bad(op, format!("buffer sizes for q {qs:?}, k {ks:?}")));
        }
        let y = Shared::new(f32s_mut(out)?);
        let dims = Dims {
            t,
            hq,
            hkv,
            d,
            seq: op.seq,
            scale: op.scale,
        };
        let par = ctx.par;
        let chunk = par.chunk(t, 4);
        match op.mode {
            AttnMode::Forward | AttnMode::Stats | AttnMode::GradQ => par.ranges(t, chunk, |rows| {
                for i in rows {
                    for h in 0..hq {
                        query_row(op.mode, &dims, (q, k, v), (i3, i4), i, h, &y);
                    }
                }
            }),
            AttnMode::GradK | AttnMode::GradV => {
                let (Some(dout), Some(stats)) = (i3, i4) else {
                    return Err(bad(op, "missing do or stats".into()));
                };
                par.ranges(t, chunk, |rows| {
                    for j in rows {
                        for kh in 0..hkv {
                            key_row(op.mode, &dims, (q, k, v), dout, stats, j, kh, &y);
                        }
                    }
                })
            }
        }
    }
}

struct Dims {
    t: usize,
    hq: usize,
    hkv: usize,
    d: usize,
    seq: usize,
    scale: f32,
}

/// Forward (o), Stats (lse, D) or GradQ (dq) of query row `i`, head `h`.
#[allow(clippy::too_many_arguments)]
fn query_row(
    mode: AttnMode,
    g: &Dims,
    (q, k, v): (&[f32], &[f32], &[f32]),
    (i3, i4): (Option<&[f32]>, Option<&[f32]>),
    i: usize,
    h: usize,
    y: &Shared<f32>,
) {
    let d = g.d;
    let kh = h / (g.hq / g.hkv);
    let qi = (i * g.hq + h) * d;
    let qrow = &q[qi..qi + d];
    let krow = |j: usize| &k[(j * g.hkv + kh) * d..][..d];
    let vrow = |j: usize| &v[(j * g.hkv + kh) * d..][..d];
    let s0 = i / g.seq * g.seq;
    SCORES.with(|s| {
        let mut s = s.borrow_mut();
        s.clear();
        s.extend((s0..=i).map(|j| g.scale * dot(qrow, krow(j))));
        let mx = s.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        match mode {
            AttnMode::Forward => {
                let mut z = 0f32;
                for e in s.iter_mut() {
                    *e = exp_f32(*e - mx);
                    z += *e;
                }
                // SAFETY: this task alone owns query row i.
                let o = unsafe { y.slice(qi, d) };
                o.fill(0.0);
                for (jj, p) in s.iter().enumerate() {
                    axpy(o, p / z, vrow(s0 + jj));
                }
            }
            AttnMode::Stats => {
                let z: f32 = s.iter().map(|e| exp_f32(e - mx)).sum();
                let (o, dout) = (i3.unwrap_or(&[]), i4.unwrap_or(&[]));
                let st = 2 * (i * g.hq + h);
                y.set(st, mx + z.ln());
                y.set(st + 1, dot(&o[qi..qi + d], &dout[qi..qi + d]));
            }
            _ => {
                let (dout, stats) = (i3.unwrap_or(&[]), i4.unwrap_or(&[]));
                let st = 2 * (i * g.hq + h);
                let (lse, dd) = (stats[st], stats[st + 1]);
                let doi = &dout[qi..qi + d];
                // SAFETY: this task alone owns query row i.
                let dq = unsafe { y.slice(qi, d) };
                dq.fill(0.0);
                for (jj, sj) in s.iter().enumerate() {
                    let j = s0 + jj;
                    let p = exp_f32(sj - lse);
                    let ds = p * (dot(doi, vrow(j)) - dd) * g.scale;
                    axpy(dq, ds, krow(j));
                }
            }
        }
    });
}

/// GradK (dk) or GradV (dv) of key row `j`, kv head `kh`: the query rows
/// from `j` to the end of its sequence, every query head of the group.
#[allow(clippy::too_many_arguments)]
fn key_row(
    mode: AttnMode,
    g: &Dims,
    (q, k, v): (&[f32], &[f32], &[f32]),
    dout: &[f32],
    stats: &[f32],
    j: usize,
    kh: usize,
    y: &Shared<f32>,
) {
    let d = g.d;
    let grp = g.hq / g.hkv;
    let kj = (j * g.hkv + kh) * d;
    let (krow, vrow) = (&k[kj..kj + d], &v[kj..kj + d]);
    let end = (j / g.seq + 1) * g.seq;
    // SAFETY: this task alone owns key row j.
    let acc = unsafe { y.slice(kj, d) };
    acc.fill(0.0);
    for i in j..end.min(g.t) {
        for h in kh * grp..(kh + 1) * grp {
            let qi = (i * g.hq + h) * d;
            let st = 2 * (i * g.hq + h);
            let p = exp_f32(g.scale * dot(&q[qi..qi + d], krow) - stats[st]);
            let doi = &dout[qi..qi + d];
            if mode == AttnMode::GradV {
                axpy(acc, p, doi);
            } else {
                let ds = p * (dot(doi, vrow) - stats[st + 1]) * g.scale;
                axpy(acc, ds, &q[qi..qi + d]);
            }
        }
    }
}
