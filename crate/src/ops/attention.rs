//! Causal grouped-query attention over a KV cache.
//!
//! Inputs: `q [t, hq, d]` f32 (already RoPE'd), `k_cache` and `v_cache`
//! `[hkv, cap, d]` (f32 or f16 state tensors, written by `write_cache`), and a
//! run-time symbol `pos`: query `i` sits at position `pos + i` and attends to
//! keys `0..=pos+i`. Query head `h` reads KV head `h / (hq/hkv)`.
//! `y [t, hq·d] = softmax(scale · q·kᵀ) · v` per head. With a sliding
//! `window` w > 0 (Mistral, Gemma 3's local layers) query `i` attends only to
//! the last w keys, `pos+i+1−w ..= pos+i` (HF's and llama.cpp's mask: key j
//! is seen when `pos+i − j < w`); the cache still holds every position.
//!
//! Kernels (`shaders/attention.wgsl`): on GPUs, prefill (`t > 4`) and
//! decode over a cache of at most `ONE_MAX_CAP` positions run one dispatch
//! of a 256-wide workgroup per (token, head) (`attn_one`); prefill with a
//! head dimension of at most 64 (a multiple of 4) runs one per (16 tokens,
//! head) instead, the keys and values of each 32-key block shared through
//! workgroup memory (`attn_tile`, flash-attention's tiling) — or, where
//! several query heads share a KV head, one per (tokens, KV head) whose
//! block serves all of that KV head's query heads (`attn_gqa`). Decode over longer
//! caches, and on CPU adapters, splits the KV length across `ns` workgroups
//! per head (flash-decoding: partial max, sum and weighted values in
//! scratch, then a combine pass). Prefill on CPU adapters streams the keys
//! with one workgroup of 64 per (token, head) (`attn_rows`). All use an
//! online softmax and are exact up to f32 rounding.
//!
//! With `rope_q`, input 0 is instead a window of rows `[t, ld]` (the Q heads
//! of a fused Q/K/V output, from column `col0`), roped as the kernels load
//! it — one dispatch fewer than RoPE then attention — with the frequency
//! divisors as an optional fourth input.
//!
//! With `new_kv` as well (one query token: the decode step) the step's own
//! K (roped) and V heads sit in that row too, at `k_col0` / `v_col0`, and
//! the caches were written by two `deferred` `write_cache_window` nodes
//! ([`Graph::attention_new_kv`]): on GPUs those dispatch nothing and this
//! kernel writes the cache rows itself, scoring the new key from its own
//! copy — one dispatch per layer for RoPE, both cache writes and attention.
//! The CPU reference reads the caches the write nodes filled.

use super::{
    Dispatch, GpuCaps, Op, PlanCtx, arity, f, grid, put_f32, require_dtype, shape_err, sym, u,
};
use crate::dtype::DType;
use crate::error::{KilnError, Result};
use crate::graph::{Graph, Sym, TensorId, TensorInfo};
use crate::host::HostTensor;
use crate::ops::Bind;
use crate::ops::rope::Rope;

/// Query tokens up to which the split-KV (decode) kernels are used.
pub const SPLIT_MAX_T: usize = 4;
/// Largest head dimension the kernels hold in registers/workgroup memory.
pub const MAX_HEAD_DIM: usize = 256;
/// Caches up to which decode on a GPU runs as one dispatch (`attn_one`: a
/// workgroup of 256 per head walks all keys) instead of the split-KV pair.
/// H200, SmolLM2, fused graph (docs/bench/2026-12-03-h200-llm-fused, run7):
/// with a cache of 131 positions one dispatch decoded 634 tok/s on wgpu
/// (the pair: 491 in run3) and 735 on CUDA (675); with 641, 430 against
/// 413 on wgpu but 426 against 581 on CUDA. The break-even was not measured.
pub const ONE_MAX_CAP: usize = 160;

/// The attention kernel for `t` query tokens over a cache of `cap`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kernel {
    Rows,
    Split,
    One,
    Tile,
    /// `attn_gqa`: `Tile`'s shapes, a workgroup per (tokens, KV head)
    /// ([`gqa_lanes`]).
    Gqa,
    /// `attn_coop` (attention_coop.wgsl): `Tile`'s shapes on tensor cores.
    Coop,
}

/// Head dimensions up to which prefill on GPUs takes `attn_tile` (its `TD`).
pub const TILE_MAX_HEAD_DIM: usize = 64;
/// Query tokens per `attn_tile` workgroup (its `TQ`).
const TILE_Q: usize = 16;
/// Query tokens per `attn_coop` workgroup (its `TQ`).
const COOP_Q: usize = 64;

/// Lanes per row of `attn_gqa` (4 or 8), or `None` for `attn_tile`: where
/// a KV head serves G = hq / hkv ≥ 2 query heads (G ≤ 256 / lanes), each
/// block of keys and values staged once for the G heads instead of G
/// times, if the device has its workgroup memory. Opt-in
/// (`KILN_ATTN_GQA=4|8`, native: the lanes) until timed on a GPU — written
/// 2026-12-08 with no device to run it on; correct on lavapipe with the GPU
/// kernels at subgroup widths 8 and 32 and without subgroups (the op-parity
/// suite runs it through `with_attn_gqa`).
fn gqa_lanes(caps: &GpuCaps, hq: usize, hkv: usize) -> Option<usize> {
    let forced = if cfg!(target_arch = "wasm32") {
        None
    } else {
        std::env::var("KILN_ATTN_GQA").ok()
    };
    let lanes = match forced.as_deref() {
        Some("4") => 4,
        Some("8") => 8,
        _ => caps.attn_gqa.filter(|l| [4, 8].contains(l))?,
    };
    let g = hq / hkv.max(1);
    // Keys (32 × 17 vec4), values (32 × 16 vec4), weights (rows × 33), the
    // lanes' maxima (256) when no subgroup holds a row.
    let bytes = 32 * 17 * 16 + 32 * 16 * 16 + (256 / lanes) * 33 * 4 + 256 * 4;
    (g >= 2 && g <= 256 / lanes && caps.max_workgroup_storage as usize >= bytes).then_some(lanes)
}

/// Whether prefill attention that would take `attn_tile` runs on tensor
/// cores instead (`attn_coop`: q, k, v and the weights rounded to f16):
/// the tensor-core GEMM's conditions (`matmul_q8::coop_applies`, 8-bit
/// activations on) and `KILN_COOP_ATTN=1` — an experiment, off by default:
/// its first form failed its parity cases on an H100 (errors ≈ 0.3–5;
/// docs/bench/2026-12-07-h100-coop-half), the present form (V staged
/// transposed, so every fragment load has the layouts the passing GEMM
/// uses) has not run on a GPU yet.
pub fn coop_applies(c: &GpuCaps) -> bool {
    super::matmul_q8::coop_applies(c)
        && c.q8_activations.is_some()
        && super::env_switch("KILN_COOP_ATTN") == Some(true)
}

impl Kernel {
    /// By shape and adapter: prefill on GPUs runs `attn_one` (a 128-token
    /// chunk had 1.16× the prefill rate of `attn_rows` on the H200: enough
    /// rows to hide the serial value sums), on CPU adapters `attn_rows`.
    /// A head dimension of at most `TILE_MAX_HEAD_DIM` (a multiple of 4)
    /// takes `attn_tile` instead: keys and values through workgroup memory
    /// for 16 queries at a time (H100, Llama-3.2-1B shape, 512-token chunk:
    /// attn_one was 23% of the wgpu prefill and 53% of the CUDA twin's,
    /// docs/bench/2026-12-06-h100-q8-local).
    /// `KILN_ATTN=split|one|rows|tile` (native, for benchmarks) forces one
    /// where it applies (`rows` and `one` for any t, `split` for t ≤
    /// SPLIT_MAX_T, `tile` where the head dimension allows).
    fn pick(t: usize, cap: usize, d: usize, cpu: bool) -> Kernel {
        let tile_ok = d <= TILE_MAX_HEAD_DIM && d.is_multiple_of(4);
        let forced = if cfg!(target_arch = "wasm32") {
            None
        } else {
            std::env::var("KILN_ATTN").ok()
        };
        match (forced.as_deref(), t <= SPLIT_MAX_T) {
            (Some("rows"), _) => Kernel::Rows,
            (Some("one"), _) => Kernel::One,
            (Some("split"), true) => Kernel::Split,
            (Some("tile"), _) if tile_ok => Kernel::Tile,
            (_, false) if cpu => Kernel::Rows,
            (_, false) if tile_ok => Kernel::Tile,
            (_, false) => Kernel::One,
            (_, true) if !cpu && cap <= ONE_MAX_CAP => Kernel::One,
            (_, true) => Kernel::Split,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Attention {
    pub scale: f32,
    pub pos: Sym,
    pub rope_q: Option<RopeQ>,
    /// Sliding window in keys (0: every earlier key).
    pub window: usize,
    /// The step's K and V columns of input 0, written by this kernel on GPUs.
    pub new_kv: Option<NewKv>,
}

impl Attention {
    /// Whether `t` query tokens over a cache of `cap` positions with head
    /// dimension `d` run on tensor cores under `caps` (`attn_coop`): what
    /// [`crate::parity::q8`] bounds with f16 rounding instead of the f32
    /// tolerance.
    pub fn on_tensor_cores(&self, caps: &GpuCaps, t: usize, cap: usize, d: usize) -> bool {
        let new_kv = self.new_kv.filter(|_| caps.kv_in_attention);
        new_kv.is_none() && coop_applies(caps) && Kernel::pick(t, cap, d, caps.cpu) == Kernel::Tile
    }
}

/// Where the decode step's K and V heads sit in the fused Q/K/V row (see
/// the module documentation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NewKv {
    pub k_col0: usize,
    pub v_col0: usize,
}

/// The keys `[lo, n_kv)` a query at position `n_kv − 1` sees.
pub fn key_range(n_kv: usize, window: usize) -> std::ops::Range<usize> {
    let lo = if window > 0 {
        n_kv.saturating_sub(window)
    } else {
        0
    };
    lo..n_kv
}

/// RoPE on the queries inside [`Attention`]: `heads` heads from column
/// `col0` of each row of input 0.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RopeQ {
    pub rope: Rope,
    pub col0: usize,
    pub heads: usize,
}

impl Attention {
    /// Input 0 as `[t, hq, d]` (the window's view with `rope_q`).
    fn q_view(&self, inputs: &[&TensorInfo]) -> Result<TensorInfo> {
        let Some(r) = &self.rope_q else {
            return Ok(inputs[0].clone());
        };
        let d = inputs
            .get(1)
            .and_then(|k| k.shape.get(2))
            .copied()
            .unwrap_or(0);
        match inputs[0].shape[..] {
            [t, ld] if r.heads > 0 && r.col0 + r.heads * d <= ld => {
                let view = TensorInfo {
                    shape: vec![t, r.heads, d],
                    ..inputs[0].clone()
                };
                if r.rope.pos != self.pos || r.rope.period != 0 {
                    return Err(KilnError::BadParam {
                        op: "attention",
                        detail: "RoPE on q must use the attention's position (and no period)"
                            .into(),
                    });
                }
                let mut ins = vec![&view];
                ins.extend(inputs.get(3).copied());
                r.rope.infer(&ins)?;
                Ok(view)
            }
            _ => Err(shape_err(
                "attention",
                format!(
                    "q {:?} must be [t, columns] holding {} heads of {d} from column {}",
                    inputs[0].shape, r.heads, r.col0
                ),
            )),
        }
    }

    /// Number of KV splits for a cache of `cap` positions: enough
    /// workgroups to fill a GPU; CPU adapters have few cores, and every
    /// split costs them a workgroup launch even when it is empty.
    pub fn splits(cap: usize, cpu: bool) -> usize {
        if cpu {
            2
        } else {
            cap.div_ceil(64).clamp(2, 32)
        }
    }
}

impl Op for Attention {
    fn name(&self) -> &'static str {
        "attention"
    }

    fn infer(&self, inputs: &[&TensorInfo]) -> Result<(Vec<usize>, DType)> {
        arity(
            self.name(),
            inputs,
            if self.rope_q.is_some() { &[3, 4] } else { &[3] },
        )?;
        let qv = self.q_view(inputs)?;
        let (q, k, v) = (&qv, inputs[1], inputs[2]);
        require_dtype(self.name(), "q", q, &[DType::F32])?;
        require_dtype(self.name(), "k_cache", k, &[DType::F32, DType::F16])?;
        require_dtype(self.name(), "v_cache", v, &[DType::F32, DType::F16])?;
        if q.shape.len() != 3 || k.shape.len() != 3 || k.shape != v.shape || k.dtype != v.dtype {
            return Err(shape_err(
                self.name(),
                format!(
                    "q {:?} must be [t, hq, d], caches {:?} {:?} equal [hkv, cap, d]",
                    q.shape, k.shape, v.shape
                ),
            ));
        }
        let (t, hq, d) = (q.shape[0], q.shape[1], q.shape[2]);
        let (hkv, kd) = (k.shape[0], k.shape[2]);
        if kd != d || hkv == 0 || hq % hkv != 0 || d > MAX_HEAD_DIM {
            return Err(shape_err(
                self.name(),
                format!(
                    "need equal head dims ≤ {MAX_HEAD_DIM} and hq % hkv == 0 (q {:?}, cache {:?})",
                    q.shape, k.shape
                ),
            ));
        }
        if let Some(n) = &self.new_kv {
            let ld = inputs[0].shape.get(1).copied().unwrap_or(0);
            let fits = |c: usize| c + hkv * d <= ld;
            let half_ok = k.dtype != DType::F16 || d % 2 == 0;
            if self.rope_q.is_none() || t != 1 || !fits(n.k_col0) || !fits(n.v_col0) || !half_ok {
                return Err(shape_err(
                    self.name(),
                    format!(
                        "the new K/V heads (columns {} and {}, {hkv} heads of {d}) need RoPE on q, \
                         one query row and a row of at least their columns ({:?})",
                        n.k_col0, n.v_col0, inputs[0].shape
                    ),
                ));
            }
        }
        Ok((vec![t, hq * d], DType::F32))
    }

    fn syms(&self) -> Vec<Sym> {
        vec![self.pos]
    }

    fn check_syms(&self, inputs: &[&TensorInfo], syms: &[u32], names: &[String]) -> Result<()> {
        let p = sym(syms, self.pos)?;
        let (t, cap) = (inputs[0].shape[0], inputs[1].shape[1]);
        if p as usize + t > cap {
            return Err(KilnError::SymbolRange {
                name: names[self.pos.0 as usize].clone(),
                value: p,
                detail: format!("{t} query tokens from it exceed the cache of {cap} positions"),
            });
        }
        Ok(())
    }

    fn cpu(&self, inputs: &[&HostTensor], out: &mut HostTensor, syms: &[u32]) -> Result<()> {
        let roped;
        let q_in = match &self.rope_q {
            None => inputs[0],
            Some(r) => {
                let d = inputs[1].shape[2];
                let win = super::rope::window(inputs[0], r.col0, r.heads, d)?;
                let mut ins = vec![&win];
                ins.extend(inputs.get(3).copied());
                let mut y = HostTensor::zeros(&win.shape, DType::F32)?;
                r.rope.cpu(&ins, &mut y, syms)?;
                roped = y;
                &roped
            }
        };
        let q = q_in.to_f32()?;
        let k = inputs[1].to_f32()?;
        let v = inputs[2].to_f32()?;
        let (t, hq, d) = (q_in.shape[0], q_in.shape[1], q_in.shape[2]);
        let (hkv, cap) = (inputs[1].shape[0], inputs[1].shape[1]);
        let p0 = sym(syms, self.pos)? as usize;
        let group = hq / hkv;
        let mut y = vec![0f32; t * hq * d];
        for ti in 0..t {
            let keys = key_range(p0 + ti + 1, self.window);
            for h in 0..hq {
                let kvh = h / group;
                let qr = &q[(ti * hq + h) * d..][..d];
                let scores: Vec<f64> = keys
                    .clone()
                    .map(|j| {
                        let kr = &k[(kvh * cap + j) * d..][..d];
                        qr.iter()
                            .zip(kr)
                            .map(|(a, b)| *a as f64 * *b as f64)
                            .sum::<f64>()
                            * self.scale as f64
                    })
                    .collect();
                let m = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let e: Vec<f64> = scores.iter().map(|s| (s - m).exp()).collect();
                let sum: f64 = e.iter().sum();
                for c in 0..d {
                    let acc: f64 = keys
                        .clone()
                        .zip(&e)
                        .map(|(j, e)| e * v[(kvh * cap + j) * d + c] as f64)
                        .sum();
                    y[(ti * hq + h) * d + c] = (acc / sum) as f32;
                }
            }
        }
        put_f32(out, &y);
        Ok(())
    }

    fn wgsl(&self, ctx: &PlanCtx) -> Result<Vec<Dispatch>> {
        let qv = self.q_view(&ctx.inputs)?;
        let (q, k) = (&qv, ctx.inputs[1]);
        let (t, hq, d) = (q.shape[0], q.shape[1], q.shape[2]);
        let (hkv, cap) = (k.shape[0], k.shape[1]);
        let ns = Attention::splits(cap, ctx.caps.cpu);
        let mut params = vec![
            u(t)?,
            u(hq)?,
            u(hkv)?,
            u(d)?,
            u(cap)?,
            f(self.scale),
            self.pos.0,
            u(ns)?,
            u(self.window)?,
        ];
        let mut kv = if k.dtype == DType::F16 {
            vec!["KV_F16"]
        } else if d % 4 == 0 {
            vec!["KV_VEC4"]
        } else {
            vec![]
        };
        // The new K/V rows are this kernel's only where the write nodes
        // deferred them (the caps decide both).
        let new_kv = self.new_kv.filter(|_| ctx.caps.kv_in_attention);
        let cache = |i| match new_kv {
            Some(_) => Bind::InputWrite(i, 0),
            None => Bind::Input(i, 0),
        };
        let io = vec![Bind::Input(0, 0), cache(1), cache(2), Bind::Syms];
        // The frequency divisors, or any read-only input when there are
        // none (never a cache this kernel writes).
        let fac = if ctx.inputs.len() > 3 { 3 } else { 0 };
        let rope_bind = self.rope_q.map(|_| Bind::Input(fac, 0));
        if let Some(r) = &self.rope_q {
            let ld = ctx.inputs[0].shape[1];
            let words = r.rope.params(t, hq, d, r.col0, ld, ctx.inputs.len() > 3)?;
            params.extend_from_slice(&words[3..]);
            kv.push("ROPE_Q");
        }
        if let Some(n) = &new_kv {
            params.extend([u(n.k_col0)?, u(n.v_col0)?]);
            kv.push("NEW_KV");
        }
        let kernel = match Kernel::pick(t, cap, d, ctx.caps.cpu) {
            // attn_tile has no NEW_KV (one query token takes attn_one).
            Kernel::Tile if new_kv.is_some() => Kernel::One,
            Kernel::Tile if coop_applies(ctx.caps) => Kernel::Coop,
            Kernel::Tile if gqa_lanes(ctx.caps, hq, hkv).is_some() => Kernel::Gqa,
            k => k,
        };
        if kernel != Kernel::Split {
            let mut bindings = io;
            bindings.push(Bind::Output);
            bindings.extend(rope_bind);
            let (entry, groups) = match kernel {
                Kernel::One => {
                    kv.push("ONE");
                    ("attn_one", t * hq)
                }
                Kernel::Tile => {
                    kv.push("TILE");
                    // A row's 16 invocations in one subgroup: its maximum
                    // by shuffles (`KILN_ATTN_SG=0` keeps the workgroup loop).
                    if ctx.caps.subgroups
                        && ctx.caps.subgroup_size >= 16
                        && super::env_switch("KILN_ATTN_SG") != Some(false)
                    {
                        kv.push("SG16");
                    }
                    ("attn_tile", t.div_ceil(TILE_Q) * hq)
                }
                Kernel::Gqa => {
                    kv.push("GQA");
                    let lanes = gqa_lanes(ctx.caps, hq, hkv).unwrap_or(4);
                    if lanes == 8 {
                        kv.push("LPR8");
                    }
                    // A row's lanes in one subgroup: its maximum by shuffles
                    // (`KILN_ATTN_SG=0`: through workgroup memory).
                    if ctx.caps.subgroups
                        && ctx.caps.subgroup_size as usize >= lanes
                        && super::env_switch("KILN_ATTN_SG") != Some(false)
                    {
                        kv.push("SG_LPR");
                    }
                    let tq = (256 / lanes) / (hq / hkv);
                    ("attn_gqa", t.div_ceil(tq) * hkv)
                }
                Kernel::Coop => ("attn_coop", t.div_ceil(COOP_Q) * hq),
                _ => ("attn_rows", t * hq),
            };
            return Ok(vec![Dispatch {
                shader: if kernel == Kernel::Coop {
                    "attention_coop.wgsl"
                } else {
                    "attention.wgsl"
                },
                entry,
                defines: kv,
                bindings,
                params,
                groups: grid(groups, ctx.caps)?,
            }]);
        }
        let scratch = Bind::Scratch(0, (t * hq * ns * (d + 2) * 4) as u64);
        let mut split_bind = io;
        split_bind.push(scratch);
        split_bind.extend(rope_bind);
        Ok(vec![
            Dispatch {
                shader: "attention.wgsl",
                entry: "attn_split",
                defines: kv,
                bindings: split_bind,
                params: params.clone(),
                groups: [u(t * hq)?, u(ns)?, 1],
            },
            Dispatch {
                shader: "attention.wgsl",
                entry: "attn_combine",
                // The combine pass reads none of the cache defines, and only
                // the first 9 parameter words.
                defines: vec!["COMBINE"],
                bindings: vec![scratch, Bind::Output],
                params: params[..9].to_vec(),
                groups: grid(t * hq, ctx.caps)?,
            },
        ])
    }
}

impl Graph {
    /// Causal GQA attention of `q [t, hq, d]` over caches `[hkv, cap, d]`,
    /// query 0 at position `pos`.
    pub fn attention(
        &mut self,
        q: TensorId,
        k_cache: TensorId,
        v_cache: TensorId,
        scale: f32,
        pos: Sym,
    ) -> Result<TensorId> {
        self.attention_window(q, k_cache, v_cache, scale, pos, 0)
    }

    /// [`Graph::attention`] over a sliding window of the last `window` keys
    /// (0: all).
    pub fn attention_window(
        &mut self,
        q: TensorId,
        k_cache: TensorId,
        v_cache: TensorId,
        scale: f32,
        pos: Sym,
        window: usize,
    ) -> Result<TensorId> {
        self.push(
            Attention {
                scale,
                pos,
                rope_q: None,
                window,
                new_kv: None,
            },
            &[q, k_cache, v_cache],
        )
    }

    /// [`Graph::attention`] with the queries roped as they are loaded:
    /// `rope_q.heads` heads from column `rope_q.col0` of each row of
    /// `qkv [t, ld]`, with the frequency divisors when the model has them,
    /// over a sliding window of `window` keys (0: all).
    #[allow(clippy::too_many_arguments)]
    pub fn attention_rope_q(
        &mut self,
        qkv: TensorId,
        k_cache: TensorId,
        v_cache: TensorId,
        scale: f32,
        rope_q: RopeQ,
        factors: Option<TensorId>,
        window: usize,
    ) -> Result<TensorId> {
        let ins: Vec<TensorId> = [qkv, k_cache, v_cache].into_iter().chain(factors).collect();
        let op = Attention {
            scale,
            pos: rope_q.rope.pos,
            rope_q: Some(rope_q),
            window,
            new_kv: None,
        };
        self.push(op, &ins)
    }

    /// The decode step's attention layer from one fused Q/K/V row `qkv [1,
    /// ld]`: K heads from `new_kv.k_col0` roped into `k_cache`, V heads from
    /// `new_kv.v_col0` into `v_cache` (two `deferred` write nodes), then
    /// [`Graph::attention_rope_q`] over the caches — on GPUs one dispatch.
    #[allow(clippy::too_many_arguments)]
    pub fn attention_new_kv(
        &mut self,
        qkv: TensorId,
        k_cache: TensorId,
        v_cache: TensorId,
        scale: f32,
        rope_q: RopeQ,
        factors: Option<TensorId>,
        window: usize,
        new_kv: NewKv,
    ) -> Result<TensorId> {
        use super::copy::WriteCacheWindow;
        let pos = rope_q.rope.pos;
        let op = Attention {
            scale,
            pos,
            rope_q: Some(rope_q),
            window,
            new_kv: Some(new_kv),
        };
        // Checked before any node is pushed: a deferred write must never
        // be left without the attention that does it.
        let ins: Vec<TensorId> = [qkv, k_cache, v_cache].into_iter().chain(factors).collect();
        let infos = ins
            .iter()
            .map(|t| self.info(*t))
            .collect::<Result<Vec<_>>>()?;
        op.infer(&infos)?;
        let write_k = WriteCacheWindow {
            pos,
            col0: new_kv.k_col0,
            rope: Some(rope_q.rope),
            deferred: true,
        };
        let k_ins: Vec<TensorId> = [k_cache, qkv].into_iter().chain(factors).collect();
        let kc = self.push(write_k, &k_ins)?;
        let write_v = WriteCacheWindow {
            pos,
            col0: new_kv.v_col0,
            rope: None,
            deferred: true,
        };
        let vc = self.push(write_v, &[v_cache, qkv])?;
        let ins: Vec<TensorId> = [qkv, kc, vc].into_iter().chain(factors).collect();
        self.push(op, &ins)
    }
}
