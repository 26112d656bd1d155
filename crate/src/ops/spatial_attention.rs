//! Non-causal multi-head self-attention over spatial tokens (the UNet's
//! attention blocks), from a packed QKV projection; and [`CrossAttention`],
//! spatial queries over another sequence's packed keys/values (SD's text
//! conditioning), which shares the general kernel and CPU reference.
//!
//! `qkv [B, T, 3C]` f32 (the 1×1 QKV convolution of NHWC activations, T =
//! H·W tokens) → `[B, T, C]`, `C = heads · d`. Channel layout of `qkv`, per
//! token:
//! * `legacy` (guided-diffusion's `QKVAttentionLegacy`): head `h` owns
//!   columns `[3hd, 3hd + 3d)` = `q | k | v`;
//! * otherwise (`QKVAttention`, diffusers' split): `q` = `[hd, hd + d)`,
//!   `k` = `C + …`, `v` = `2C + …`.
//!
//! `out[b, t, hd + j] = Σ_s softmax_s(q_t · k_s · scale) v_s[j]` with
//! `scale = 1/√d` (guided-diffusion multiplies q and k by `d^-¼` each: the
//! same product up to rounding). Kernels: on GPUs with `d ≤ 64`, the flash
//! kernel (`shaders/spatial_attention_flash.wgsl`; keys split and combined
//! when too few query blocks fill the GPU) or, for a few dozen tokens, the
//! tiled FWD kernel of causal attention run non-causally on the packed
//! layout (`shaders/causal_attention_tiled.wgsl`); otherwise
//! `shaders/spatial_attention.wgsl`, a partial pass (one invocation per query, 64 queries × 32 output dims of
//! one (sample, head) and one split of the keys per workgroup, K/V staged in
//! workgroup memory tile by tile, online softmax; the [T, T] score matrix is
//! never stored) and a pass combining the key splits.

use super::{Bind, Dispatch, Op, PlanCtx, arity, f, grid, put_f32, require_dtype, shape_err, u};
use crate::dtype::DType;
use crate::error::Result;
use crate::graph::{Graph, TensorId, TensorInfo};
use crate::host::HostTensor;

/// The largest head dimension the kernel holds in registers.
pub const MAX_HEAD_DIM: usize = 160;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpatialAttention {
    pub heads: usize,
    pub legacy: bool,
}

impl SpatialAttention {
    /// Column offsets of q, k, v of head `h` within a token's 3C values.
    fn cols(&self, h: usize, c: usize) -> [usize; 3] {
        let d = c / self.heads;
        if self.legacy {
            [3 * h * d, 3 * h * d + d, 3 * h * d + 2 * d]
        } else {
            [h * d, c + h * d, 2 * c + h * d]
        }
    }
}

impl Op for SpatialAttention {
    fn name(&self) -> &'static str {
        "spatial_attention"
    }

    fn infer(&self, inputs: &[&TensorInfo]) -> Result<(Vec<usize>, DType)> {
        arity(self.name(), inputs, &[1])?;
        let qkv = inputs[0];
        require_dtype(self.name(), "qkv", qkv, &[DType::F32])?;
        let [b, t, c3] = qkv.shape[..] else {
            return Err(shape_err(
                self.name(),
                format!("qkv {:?} must be [B, T, 3C]", qkv.shape),
            ));
        };
        let c = c3 / 3;
        if c3 % 3 != 0 || self.heads == 0 || c % self.heads != 0 {
            return Err(shape_err(
                self.name(),
                format!("{c3} columns are not 3 × {} heads × d", self.heads),
            ));
        }
        if c / self.heads > MAX_HEAD_DIM {
            return Err(shape_err(
                self.name(),
                format!("head dim {} exceeds {MAX_HEAD_DIM}", c / self.heads),
            ));
        }
        Ok((vec![b, t, c], DType::F32))
    }

    fn cpu(&self, inputs: &[&HostTensor], out: &mut HostTensor, _syms: &[u32]) -> Result<()> {
        let x = inputs[0].to_f32()?;
        let [b, t, c3] = inputs[0].shape[..] else {
            return Err(shape_err(self.name(), "qkv must be 3-D".into()));
        };
        let l = self.layout(b, t, c3 / 3);
        put_f32(out, &reference(&l, &x, &x));
        Ok(())
    }

    fn wgsl(&self, ctx: &PlanCtx) -> Result<Vec<Dispatch>> {
        let [b, t, c3] = ctx.inputs[0].shape[..] else {
            return Err(shape_err(self.name(), "qkv must be 3-D".into()));
        };
        let c = c3 / 3;
        let d = c / self.heads;
        if let Some(f) = flash(ctx, b, t, self.heads, d) {
            return self.flash(ctx, b, t, c, d, f);
        }
        if !ctx.caps.cpu && d <= 64 && d.is_multiple_of(4) {
            return Ok(vec![self.tiled(ctx, b, t, c, d)?]);
        }
        let l = self.layout(b, t, c);
        if let Some(ds) = lanes(ctx, &l, Bind::Input(0, 0))? {
            return Ok(ds);
        }
        two_pass(ctx, &l, Bind::Input(0, 0))
    }
}

/// Where q, k and v of every (sample, token, head) are, in floats: the
/// general kernel's layout params (shaders/spatial_attention.wgsl), also
/// read by the fast CPU backend's kernel.
pub(crate) struct Layout {
    pub batch: usize,
    /// Query tokens, key tokens, channels (heads × d).
    pub t: usize,
    pub tk: usize,
    pub c: usize,
    pub heads: usize,
    /// q: row stride, first column, stride between heads.
    pub q_rs: usize,
    pub q_b: usize,
    pub q_hs: usize,
    /// k and v (one tensor): row stride, first k and v columns, head stride.
    pub k_rs: usize,
    pub k_b: usize,
    pub v_b: usize,
    pub k_hs: usize,
}

impl SpatialAttention {
    pub(crate) fn layout(&self, batch: usize, t: usize, c: usize) -> Layout {
        let [q_b, k_b, v_b] = self.cols(0, c);
        let q_hs = self.cols(1.min(self.heads - 1), c)[0] - q_b;
        Layout {
            batch,
            t,
            tk: t,
            c,
            heads: self.heads,
            q_rs: 3 * c,
            q_b,
            q_hs,
            k_rs: 3 * c,
            k_b,
            v_b,
            k_hs: q_hs,
        }
    }
}

/// The f64 oracle: `y[b, i, h·d + e] = Σ_j softmax_j(q·k / √d) v[j, e]`.
fn reference(l: &Layout, q: &[f32], kv: &[f32]) -> Vec<f32> {
    let d = l.c / l.heads;
    let scale = 1.0 / (d as f64).sqrt();
    let mut y = vec![0f32; l.batch * l.t * l.c];
    let mut s = vec![0f64; l.tk];
    for n in 0..l.batch {
        for h in 0..l.heads {
            let qi = |i: usize, e: usize| q[(n * l.t + i) * l.q_rs + l.q_b + h * l.q_hs + e] as f64;
            let kv_at = |j: usize, base: usize, e: usize| {
                kv[(n * l.tk + j) * l.k_rs + base + h * l.k_hs + e] as f64
            };
            for i in 0..l.t {
                for (j, sj) in s.iter_mut().enumerate() {
                    *sj = (0..d).map(|e| qi(i, e) * kv_at(j, l.k_b, e)).sum::<f64>() * scale;
                }
                let m = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let z: f64 = s.iter().map(|v| (v - m).exp()).sum();
                for e in 0..d {
                    let v: f64 = (0..l.tk)
                        .map(|j| (s[j] - m).exp() * kv_at(j, l.v_b, e))
                        .sum();
                    y[(n * l.t + i) * l.c + h * d + e] = (v / z) as f32;
                }
            }
        }
    }
    y
}

/// The largest score matrix the CPU-adapter kernels store.
const LANES_MAX_SCORES: u64 = 256 << 20;

/// CPU adapters (`shaders/spatial_attention_lanes.wgsl`): scores, softmax
/// and `s·v` as three passes over the stored `[B·heads, T, TK]` score matrix
/// — where it fits in LANES_MAX_SCORES and a binding, and its rows in
/// lavapipe's loop guard (16,384 keys; the softmax walks a row 3 times).
/// None otherwise (the two-pass kernel).
/// `kv` is the binding of the keys/values.
fn lanes(ctx: &PlanCtx, l: &Layout, kv: Bind) -> Result<Option<Vec<Dispatch>>> {
    let (b, t, c, heads) = (l.batch, l.t, l.c, l.heads);
    let d = c / heads;
    let bytes = (b * heads * t * l.tk * 4) as u64;
    if !ctx.caps.cpu
        || bytes > LANES_MAX_SCORES.min(ctx.caps.max_binding_bytes)
        || l.tk > 16_384
        || std::env::var("KILN_SPATIAL").is_ok_and(|v| v == "two_pass")
    {
        return Ok(None);
    }
    // Query groups of 4, rounded so that no subgroup spans two blocks.
    let unit = if (1..=16).contains(&ctx.caps.subgroup_size) {
        16
    } else {
        64
    };
    let npg = t.div_ceil(4).next_multiple_of(unit);
    let params = vec![
        u(t)?,
        u(c)?,
        u(heads)?,
        u(d)?,
        u(l.tk)?,
        f(1.0 / (d as f32).sqrt()),
        u(b)?,
        u(npg)?,
        u(l.q_rs)?,
        u(l.q_b)?,
        u(l.q_hs)?,
        u(l.k_rs)?,
        u(l.k_b)?,
        u(l.v_b)?,
        u(l.k_hs)?,
    ];
    let shader = "spatial_attention_lanes.wgsl";
    let bh = b * heads;
    Ok(Some(vec![
        Dispatch {
            shader,
            entry: "main",
            defines: vec![],
            bindings: vec![Bind::Input(0, 0), kv, Bind::Scratch(0, bytes)],
            params: params.clone(),
            groups: grid((npg * l.tk.div_ceil(8) * bh).div_ceil(64), ctx.caps)?,
        },
        Dispatch {
            shader,
            entry: "softmax",
            defines: vec!["SOFTMAX"],
            bindings: vec![Bind::Scratch(0, bytes)],
            params: params.clone(),
            groups: grid((bh * t).div_ceil(64), ctx.caps)?,
        },
        Dispatch {
            shader,
            entry: "main",
            defines: vec!["PV"],
            bindings: vec![Bind::ScratchRead(0), kv, Bind::Output],
            params,
            groups: grid((npg * d.div_ceil(8) * bh).div_ceil(64), ctx.caps)?,
        },
    ]))
}

/// The general two-pass kernel (`shaders/spatial_attention.wgsl`): any
/// adapter, any layout, d ≤ 160; `kv` is the binding of the keys/values.
fn two_pass(ctx: &PlanCtx, l: &Layout, kv: Bind) -> Result<Vec<Dispatch>> {
    let (b, t, c, heads) = (l.batch, l.t, l.c, l.heads);
    let d = c / heads;
    let blocks = t.div_ceil(64);
    let chunks = d.div_ceil(32);
    let ks = keys_per_split(d);
    let splits = l.tk.div_ceil(ks);
    let params = vec![
        u(t)?,
        u(c)?,
        u(heads)?,
        u(d)?,
        u(l.tk)?,
        f(1.0 / (d as f32).sqrt()),
        u(blocks)?,
        u(b)?,
        u(chunks)?,
        u(splits)?,
        u(ks)?,
        u(l.q_rs)?,
        u(l.q_b)?,
        u(l.q_hs)?,
        u(l.k_rs)?,
        u(l.k_b)?,
        u(l.v_b)?,
        u(l.k_hs)?,
    ];
    // Per (sample, head, query, split, chunk): max, sum, 32 accumulators.
    let part = (b * heads * t * splits * chunks * 34 * 4) as u64;
    Ok(vec![
        Dispatch {
            shader: "spatial_attention.wgsl",
            entry: "partial",
            defines: vec![],
            bindings: vec![Bind::Input(0, 0), kv, Bind::Scratch(0, part)],
            params: params.clone(),
            groups: grid(b * heads * blocks * chunks * splits, ctx.caps)?,
        },
        Dispatch {
            shader: "spatial_attention.wgsl",
            entry: "combine",
            defines: vec!["COMBINE"],
            bindings: vec![Bind::ScratchRead(0), Bind::Output],
            params,
            groups: grid((b * t * c).div_ceil(256), ctx.caps)?,
        },
    ])
}

/// Cross-attention of spatial queries over another sequence (the SD UNet's
/// `attn2`: image tokens over text tokens): `q [B, T, C]` and a packed
/// `kv [B, TK, 2C]` (`k` = columns `[0, C)`, `v` = `[C, 2C)`, head `h` at
/// `h·d` within each) → `[B, T, C]`, `scale = 1/√d`. Kernel: the general
/// two-pass kernel on every adapter (TK is short: 77 text tokens).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CrossAttention {
    pub heads: usize,
}

impl CrossAttention {
    /// From the shapes of `q` and `kv` (checked by `infer`).
    pub(crate) fn layout(&self, q: &[usize], kv: &[usize]) -> Layout {
        let (c, d) = (q[2], q[2] / self.heads);
        Layout {
            batch: q[0],
            t: q[1],
            tk: kv[1],
            c,
            heads: self.heads,
            q_rs: c,
            q_b: 0,
            q_hs: d,
            k_rs: 2 * c,
            k_b: 0,
            v_b: c,
            k_hs: d,
        }
    }
}

impl Op for CrossAttention {
    fn name(&self) -> &'static str {
        "cross_attention"
    }

    fn infer(&self, inputs: &[&TensorInfo]) -> Result<(Vec<usize>, DType)> {
        arity(self.name(), inputs, &[2])?;
        let (q, kv) = (inputs[0], inputs[1]);
        require_dtype(self.name(), "q", q, &[DType::F32])?;
        require_dtype(self.name(), "kv", kv, &[DType::F32])?;
        let (&[b, _, c], &[bk, tk, c2]) = (&q.shape[..], &kv.shape[..]) else {
            return Err(shape_err(
                self.name(),
                format!(
                    "q {:?} and kv {:?} must be [B, T, C] and [B, TK, 2C]",
                    q.shape, kv.shape
                ),
            ));
        };
        if bk != b || c2 != 2 * c || tk == 0 || self.heads == 0 || c % self.heads != 0 {
            return Err(shape_err(
                self.name(),
                format!(
                    "q {:?} and kv {:?} must be [B, T, C] and [B, TK ≥ 1, 2C], C = {} heads × d",
                    q.shape, kv.shape, self.heads
                ),
            ));
        }
        if c / self.heads > MAX_HEAD_DIM {
            return Err(shape_err(
                self.name(),
                format!("head dim {} exceeds {MAX_HEAD_DIM}", c / self.heads),
            ));
        }
        Ok((q.shape.clone(), DType::F32))
    }

    fn cpu(&self, inputs: &[&HostTensor], out: &mut HostTensor, _syms: &[u32]) -> Result<()> {
        let l = self.layout(&inputs[0].shape, &inputs[1].shape);
        put_f32(
            out,
            &reference(&l, &inputs[0].to_f32()?, &inputs[1].to_f32()?),
        );
        Ok(())
    }

    fn wgsl(&self, ctx: &PlanCtx) -> Result<Vec<Dispatch>> {
        let l = self.layout(&ctx.inputs[0].shape, &ctx.inputs[1].shape);
        if let Some(ds) = lanes(ctx, &l, Bind::Input(1, 0))? {
            return Ok(ds);
        }
        two_pass(ctx, &l, Bind::Input(1, 0))
    }
}

/// How the flash kernel runs: its D64 build, and the key splits.
#[derive(Clone, Copy, Debug)]
struct Flash {
    d64: bool,
    splits: usize,
    kchunk: usize,
}

/// Workgroups that fill the GPU.
const FILL_WORKGROUPS: usize = 128;

/// Whether the flash kernel applies: GPUs, d ≤ 64 and d % 4 == 0, 256
/// invocations, workgroup memory for the build (22.3 KiB for d ≤ 32, 34.3
/// KiB up to 64), and FILL_WORKGROUPS workgroups of 64 queries — or, with
/// fewer (the terrain UNet at batch 1: 32² tokens, 2 heads, 32 of them),
/// the keys split until they are (each split ≥ 64 keys, whole 32-key tiles)
/// and the splits combined. Otherwise (a few dozen tokens) the tiled
/// kernel's 16-query workgroups.
fn flash(ctx: &PlanCtx, b: usize, t: usize, heads: usize, d: usize) -> Option<Flash> {
    let c = &ctx.caps;
    let d64 = d > 32;
    let need = if d64 { 35072 } else { 22784 };
    let ok = !c.cpu
        && d <= 64
        && d.is_multiple_of(4)
        && c.max_invocations >= 256
        && c.max_workgroup_storage as usize >= need;
    if !ok {
        return None;
    }
    let wgs = b * heads * t.div_ceil(64);
    if wgs >= FILL_WORKGROUPS {
        return Some(Flash {
            d64,
            splits: 1,
            kchunk: t,
        });
    }
    let want = FILL_WORKGROUPS.div_ceil(wgs).min(t / 64);
    // The partials: (d/4 + 1) vec4s per (sample, head, split, token).
    let bytes = |s: usize| b * heads * s * t * (d / 4 + 1) * 16;
    if want < 2 || bytes(want) as u64 > c.max_binding_bytes {
        return None;
    }
    let kchunk = t.div_ceil(want).next_multiple_of(32);
    Some(Flash {
        d64,
        splits: t.div_ceil(kchunk),
        kchunk,
    })
}

impl SpatialAttention {
    /// `shaders/spatial_attention_flash.wgsl`: a workgroup of 256 per 64
    /// queries of one (sample, head), keys 32 at a time through workgroup
    /// memory with an online softmax.
    fn flash(
        &self,
        ctx: &PlanCtx,
        b: usize,
        t: usize,
        c: usize,
        d: usize,
        fl: Flash,
    ) -> Result<Vec<Dispatch>> {
        let [q, k, v] = self.cols(0, c).map(|x| x / 4);
        let hs = self.cols(1, c)[0] / 4 - q;
        let blocks = t.div_ceil(64);
        let mut defines = if fl.d64 { vec!["D64"] } else { vec![] };
        let mut bindings = vec![Bind::Input(0, 0), Bind::Output];
        if fl.splits > 1 {
            defines.push("SPLIT");
            let bytes = b * self.heads * fl.splits * t * (d / 4 + 1) * 16;
            bindings.push(Bind::Scratch(0, bytes as u64));
        }
        let main = Dispatch {
            shader: "spatial_attention_flash.wgsl",
            entry: "main",
            defines,
            bindings,
            params: vec![
                u(t)?,
                u(self.heads)?,
                u(d)?,
                f(1.0 / (d as f32).sqrt()),
                u(3 * c / 4)?,
                u(hs)?,
                u(q)?,
                u(k)?,
                u(v)?,
                u(c / 4)?,
                u(blocks)?,
                u(b)?,
                u(fl.splits)?,
                u(fl.kchunk)?,
            ],
            groups: grid(b * self.heads * blocks * fl.splits, ctx.caps)?,
        };
        if fl.splits == 1 {
            return Ok(vec![main]);
        }
        let combine = Dispatch {
            entry: "combine",
            groups: grid((b * t * self.heads * (d / 4)).div_ceil(256), ctx.caps)?,
            ..main.clone()
        };
        Ok(vec![main, combine])
    }

    /// GPUs with d ≤ 64: the tiled attention kernel of causal attention
    /// (`causal_attention_tiled.wgsl`, FWD, non-causal), reading q, k and v
    /// from the packed qkv by strides — a workgroup per 16 queries of one
    /// (sample, head) walks the keys 8 at a time through workgroup memory,
    /// each query's scores computed once, in one pass without splits.
    fn tiled(&self, ctx: &PlanCtx, b: usize, t: usize, c: usize, d: usize) -> Result<Dispatch> {
        let d4 = d / 4;
        let [q, k, v] = self.cols(0, c).map(|x| x / 4);
        let hs = self.cols(1, c)[0] / 4 - q;
        let rs = u(3 * c / 4)?;
        Ok(Dispatch {
            shader: "causal_attention_tiled.wgsl",
            entry: "main",
            defines: vec!["FWD"],
            bindings: vec![
                Bind::Input(0, 0),
                Bind::Input(0, 0),
                Bind::Input(0, 0),
                Bind::Input(0, 0),
                Bind::Input(0, 0),
                Bind::Output,
            ],
            params: vec![
                u(b * t)?,
                u(self.heads)?,
                u(self.heads)?,
                u(d)?,
                u(t)?,
                f(1.0 / (d as f32).sqrt()),
                rs,
                u(hs)?,
                u(q)?,
                rs,
                u(hs)?,
                u(k)?,
                u(v)?,
                u(c / 4)?,
                u(d4)?,
                0,
            ],
            groups: grid(b * t.div_ceil(16) * self.heads, ctx.caps)?,
        })
    }
}

/// Keys one invocation of the partial pass visits: the q·k loop then runs
/// `ks·d ≤ 49152` times, under llvmpipe's 65535-iteration loop guard (a
/// multiple of the 16-key tile).
pub fn keys_per_split(d: usize) -> usize {
    (49152 / d.max(1) / 16).max(1) * 16
}

impl Graph {
    /// Self-attention over the tokens of a packed `qkv [B, T, 3C]`.
    pub fn spatial_attention(&mut self, qkv: TensorId, op: SpatialAttention) -> Result<TensorId> {
        self.push(op, &[qkv])
    }

    /// Attention of `q [B, T, C]` over a packed `kv [B, TK, 2C]`.
    pub fn cross_attention(&mut self, q: TensorId, kv: TensorId, heads: usize) -> Result<TensorId> {
        self.push(CrossAttention { heads }, &[q, kv])
    }
}
