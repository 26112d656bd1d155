//! Causal grouped-query attention over whole sequences (training: no KV
//! cache), and its backward. Rows are `t` tokens forming `t / seq`
//! sequences of `seq` tokens (a batch, row-major); each token attends to the
//! tokens of its own sequence up to itself. `q [t, hq, d]`, `k, v [t, hkv,
//! d]` f32, query head `h` reads kv head `h / (hq / hkv)`; `d % 4 == 0`.
//!
//! Modes (one op each, all recomputing the softmax — no `[t, t]` matrix is
//! ever stored, only `stats [t, hq, 2]` = (logsumexp, `D = do·o`)):
//! * `Forward (q, k, v)` → `o [t, hq, d]`
//! * `Stats (q, k, v, o, do)` → `stats`
//! * `GradQ / GradK / GradV (q, k, v, do, stats)` → `dq [t, hq, d]`,
//!   `dk / dv [t, hkv, d]` (`ds = p·(do·v − D)`, `dq = scale·Σ ds·k`,
//!   `dk = scale·Σ ds·q`, `dv = Σ p·do`, summed over the query heads of a
//!   group).
//!
//! Kernels: on GPUs with `d ≤ 64`, `shaders/causal_attention_tiled.wgsl`
//! (a workgroup per 16 rows of one sequence and head, the other side walked
//! in 8-row tiles through workgroup memory). Otherwise (CPU adapters, larger
//! heads) `shaders/causal_attention.wgsl`, one invocation per (row, head,
//! 32-wide slice of d), no barriers. Per invocation
//! the key loop runs ≤ `seq·d/4` dot-product steps (≤ `group·seq·d/4` for
//! dk/dv): lavapipe ends loops past 65535 iterations, so `group·seq·d/4`
//! must stay below it there (SmolLM2: d 64, group 3 → seq ≤ 1365).

use super::{
    Backward, Dispatch, Op, PlanCtx, arity, f, grid, put_f32, require_dtype, shape_err, u,
};
use crate::dtype::DType;
use crate::error::{KilnError, Result};
use crate::graph::{Graph, TensorId, TensorInfo};
use crate::host::HostTensor;
use crate::ops::Bind;

/// The tiled GPU kernel's limits: head sizes up to 64, 16 own rows per
/// workgroup (`shaders/causal_attention_tiled.wgsl`).
const TILED_MAX_D: usize = 64;
const TILE_ROWS: usize = 16;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttnMode {
    Forward,
    Stats,
    GradQ,
    GradK,
    GradV,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CausalAttention {
    pub mode: AttnMode,
    /// Tokens per sequence.
    pub seq: usize,
    pub scale: f32,
}

struct Dims {
    t: usize,
    hq: usize,
    hkv: usize,
    d: usize,
}

impl CausalAttention {
    fn dims(&self, q: &TensorInfo, k: &TensorInfo) -> Dims {
        Dims {
            t: q.shape[0],
            hq: q.shape[1],
            hkv: k.shape[1],
            d: q.shape[2],
        }
    }
}

impl Op for CausalAttention {
    fn name(&self) -> &'static str {
        match self.mode {
            AttnMode::Forward => "causal_attention",
            AttnMode::Stats => "causal_attention_stats",
            AttnMode::GradQ => "causal_attention_grad_q",
            AttnMode::GradK => "causal_attention_grad_k",
            AttnMode::GradV => "causal_attention_grad_v",
        }
    }

    fn infer(&self, inputs: &[&TensorInfo]) -> Result<(Vec<usize>, DType)> {
        let n = if self.mode == AttnMode::Forward { 3 } else { 5 };
        arity(self.name(), inputs, &[n])?;
        for t in inputs {
            require_dtype(self.name(), "inputs", t, &[DType::F32])?;
        }
        let (q, k, v) = (inputs[0], inputs[1], inputs[2]);
        let bad = |detail: String| shape_err(self.name(), detail);
        if q.shape.len() != 3 || k.shape.len() != 3 || k.shape != v.shape {
            return Err(bad(format!(
                "q {:?}, k {:?}, v {:?} must be [t, hq, d], [t, hkv, d] ×2",
                q.shape, k.shape, v.shape
            )));
        }
        let Dims { t, hq, hkv, d } = self.dims(q, k);
        if k.shape[0] != t || k.shape[2] != d || hkv == 0 || hq % hkv != 0 || d % 4 != 0 {
            return Err(bad(format!(
                "q {:?} and k {:?}: same t and d (a multiple of 4), hq a multiple of hkv",
                q.shape, k.shape
            )));
        }
        if self.seq == 0 || t % self.seq != 0 {
            return Err(KilnError::BadParam {
                op: self.name(),
                detail: format!("{t} rows are not whole sequences of {}", self.seq),
            });
        }
        let stats = vec![t, hq, 2];
        if self.mode == AttnMode::Stats {
            if inputs[3].shape != q.shape || inputs[4].shape != q.shape {
                return Err(bad("o and do must have q's shape".into()));
            }
        } else if n == 5 && (inputs[3].shape != q.shape || inputs[4].shape != stats) {
            return Err(bad(format!(
                "do must have q's shape and stats be {stats:?}"
            )));
        }
        Ok(match self.mode {
            AttnMode::Forward | AttnMode::GradQ => (q.shape.clone(), DType::F32),
            AttnMode::Stats => (stats, DType::F32),
            AttnMode::GradK | AttnMode::GradV => (k.shape.clone(), DType::F32),
        })
    }

    fn cpu(&self, inputs: &[&HostTensor], out: &mut HostTensor, _syms: &[u32]) -> Result<()> {
        let f = |i: usize| -> Result<Vec<f64>> {
            Ok(inputs[i].to_f32()?.iter().map(|v| *v as f64).collect())
        };
        let (q, k, v) = (f(0)?, f(1)?, f(2)?);
        let (t, hq, d) = (inputs[0].shape[0], inputs[0].shape[1], inputs[0].shape[2]);
        let hkv = inputs[1].shape[1];
        let grp = hq / hkv;
        let sc = self.scale as f64;
        let qrow = |i: usize, h: usize| (i * hq + h) * d;
        let krow = |j: usize, h: usize| (j * hkv + h / grp) * d;
        let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
        // Softmax probabilities of query (i, h) over keys s0..=i.
        let probs = |i: usize, h: usize| -> (usize, Vec<f64>) {
            let s0 = i / self.seq * self.seq;
            let s: Vec<f64> = (s0..=i)
                .map(|j| {
                    sc * dot(
                        &q[qrow(i, h)..qrow(i, h) + d],
                        &k[krow(j, h)..krow(j, h) + d],
                    )
                })
                .collect();
            let mx = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let e: Vec<f64> = s.iter().map(|x| (x - mx).exp()).collect();
            let z: f64 = e.iter().sum();
            (s0, e.iter().map(|x| x / z).collect())
        };
        let mut y = vec![0f64; out.shape.iter().product()];
        let ob = if self.mode == AttnMode::Stats {
            f(3)?
        } else {
            Vec::new()
        };
        let dob = match self.mode {
            AttnMode::Forward => Vec::new(),
            AttnMode::Stats => f(4)?,
            _ => f(3)?,
        };
        for i in 0..t {
            for h in 0..hq {
                let (s0, p) = probs(i, h);
                let qi = qrow(i, h);
                match self.mode {
                    AttnMode::Forward => {
                        for (jj, pj) in p.iter().enumerate() {
                            let kj = krow(s0 + jj, h);
                            for c in 0..d {
                                y[qi + c] += pj * v[kj + c];
                            }
                        }
                    }
                    AttnMode::Stats => {
                        // lse = log Σ exp(s): recompute from the max-free form.
                        let s: Vec<f64> = (s0..=i)
                            .map(|j| sc * dot(&q[qi..qi + d], &k[krow(j, h)..krow(j, h) + d]))
                            .collect();
                        let mx = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                        let z: f64 = s.iter().map(|x| (x - mx).exp()).sum();
                        y[2 * (i * hq + h)] = mx + z.ln();
                        y[2 * (i * hq + h) + 1] = dot(&ob[qi..qi + d], &dob[qi..qi + d]);
                    }
                    _ => {
                        let doi = &dob[qi..qi + d];
                        let dps: Vec<f64> = (s0..=i)
                            .map(|j| dot(doi, &v[krow(j, h)..krow(j, h) + d]))
                            .collect();
                        let dd: f64 = p.iter().zip(&dps).map(|(a, b)| a * b).sum();
                        for (jj, pj) in p.iter().enumerate() {
                            let kj = krow(s0 + jj, h);
                            let ds = pj * (dps[jj] - dd) * sc;
                            for c in 0..d {
                                match self.mode {
                                    AttnMode::GradQ => y[qi + c] += ds * k[kj + c],
                                    AttnMode::GradK => y[kj + c] += ds * q[qi + c],
                                    _ => y[kj + c] += pj * doi[c],
                                }
                            }
                        }
                    }
                }
            }
        }
        let y: Vec<f32> = y.iter().map(|v| *v as f32).collect();
        put_f32(out, &y);
        Ok(())
    }

    /// The forward's gradients: one `Stats` pass, then dq / dk / dv.
    fn backward(&self, g: &mut Graph, b: &Backward) -> Result<Vec<Option<TensorId>>> {
        if self.mode != AttnMode::Forward {
            return Err(KilnError::BadParam {
                op: self.name(),
                detail: "has no backward (a backward op itself)".into(),
            });
        }
        let (q, k, v) = (b.inputs[0], b.inputs[1], b.inputs[2]);
        let with = |mode| CausalAttention { mode, ..*self };
        let stats = g.push(with(AttnMode::Stats), &[q, k, v, b.output, b.dy])?;
        let ins = [q, k, v, b.dy, stats];
        Ok(vec![
            b.grad(0, || g.push(with(AttnMode::GradQ), &ins))?,
            b.grad(1, || g.push(with(AttnMode::GradK), &ins))?,
            b.grad(2, || g.push(with(AttnMode::GradV), &ins))?,
        ])
    }

    fn wgsl(&self, ctx: &PlanCtx) -> Result<Vec<Dispatch>> {
        let Dims { t, hq, hkv, d } = self.dims(ctx.inputs[0], ctx.inputs[1]);
        let nb = (d / 4).div_ceil(8);
        let (defines, invocations) = match self.mode {
            AttnMode::Forward => (vec!["FWD"], t * hq * nb),
            AttnMode::Stats => (vec!["STATS"], t * hq),
            AttnMode::GradQ => (vec!["DQ"], t * hq * nb),
            AttnMode::GradK => (vec!["KEYS", "DK"], t * hkv * nb),
            AttnMode::GradV => (vec!["KEYS", "DV"], t * hkv * nb),
        };
        // GPUs with d ≤ 64: the tiled kernel, a workgroup per (sequence,
        // 16-row tile, head); heads are kv heads for dk / dv.
        let tiled = !ctx.caps.cpu && d <= TILED_MAX_D;
        let (shader, groups) = if tiled {
            let heads = if defines.contains(&"KEYS") { hkv } else { hq };
            let tiles = (t / self.seq) * self.seq.div_ceil(TILE_ROWS) * heads;
            ("causal_attention_tiled.wgsl", tiles)
        } else {
            ("causal_attention.wgsl", invocations.div_ceil(64))
        };
        let extra = |i: usize| if ctx.inputs.len() > i { i } else { 0 };
        Ok(vec![Dispatch {
            shader,
            entry: "main",
            defines,
            bindings: vec![
                Bind::Input(0, 0),
                Bind::Input(1, 0),
                Bind::Input(2, 0),
                Bind::Input(extra(3), 0),
                Bind::Input(extra(4), 0),
                Bind::Output,
            ],
            params: {
                let mut p = vec![u(t)?, u(hq)?, u(hkv)?, u(d)?, u(self.seq)?, f(self.scale)];
                if tiled {
                    // Dense layouts: [t, hq, d] and [t, hkv, d] (vec4s), causal.
                    let d4 = d / 4;
                    let (q, k) = (u(hq * d4)?, u(hkv * d4)?);
                    p.extend([q, u(d4)?, 0, k, u(d4)?, 0, 0, q, u(d4)?, 1]);
                }
                p
            },
            groups: grid(groups, ctx.caps)?,
        }])
    }
}

impl Graph {
    /// Causal attention of `q [t, hq, d]` over `k, v [t, hkv, d]` within
    /// sequences of `seq` rows.
    pub fn causal_attention(
        &mut self,
        q: TensorId,
        k: TensorId,
        v: TensorId,
        seq: usize,
        scale: f32,
    ) -> Result<TensorId> {
        let op = CausalAttention {
            mode: AttnMode::Forward,
            seq,
            scale,
        };
        self.push(op, &[q, k, v])
    }
}
