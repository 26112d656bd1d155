//! Matrix products with 8-bit activations, a GPU kernel variant of
//! [`super::matmul::MatMul`] and [`super::matmul_fused::FusedMatMul`]
//! (`shaders/mul_mat_q8.wgsl`, its CUDA twin `kernels/mul_mat_q8.cu`).
//!
//! Opt-in (`GpuCaps::q8_activations`, `KILN_ACTIVATIONS=q8`), the trade
//! llama.cpp's GPU backends make by default and Kiln's fast CPU backend makes
//! with `--activations q8`: x (after the RMSNorm weight, before 1/rms, which
//! factors out) is rounded per block of 32 to `d·q` with `d = max|v|/127`,
//! `q = round(v/d)` an integer in ±127, and the product runs on 4-wide integer
//! dot products — a quarter of the f32 path's x traffic. The result is the
//! f32 product of the weights with that rounded x ([`q8_round`]: the op's
//! own CPU reference on it is what the kernels compute, up to f32 summation
//! order). The GPU suites check the statistical bound of
//! [`crate::parity::q8`] (6σ of the rounding noise) rather than that exact
//! form: WGSL's division need not be correctly rounded, so `v/d` may land
//! on the other side of a .5 tie than the host's, and with an RMSNorm
//! prologue the rounding happens before 1/rms. The f32 kernels stay the
//! default.
//!
//! Applies to one row of x (decode: a GEMV with the RMSNorm prologue and
//! SwiGLU epilogue inside) and to more than `GEMV_MAX_M` rows (prefill: a
//! tiled GEMM after the f32 RMSNorm, before the GLU dispatch), whole
//! 32-blocks, Q4_0 / Q4_1 / Q8_0 weights of at least the caps' minimum
//! size, no LoRA epilogue, on GPUs with subgroups; everything else takes
//! the f32 kernels.
//!
//! Where the device offers tensor cores through wgpu's cooperative matrices
//! ([`coop_applies`]; native adapters, `KILN_COOP=0` turns them off), the
//! prefill GEMM of this mode runs on them instead
//! (`shaders/mul_mat_coop_half.wgsl`, [`HALF_TILES`]): x converted to f16
//! once, the weights decoded to f16 while staging (11 significant bits,
//! finer than the 8-bit x; values clamped to ±65,504), f32 accumulation —
//! llama.cpp's Vulkan prefill trade; on an H100 1.49× the integer GEMM's
//! prefill (docs/bench/2026-12-07-h100-coop-half). Its parity bound is f16
//! rounding's ([`crate::parity::q8`]). `KILN_COOP_KERNEL=decode` keeps the
//! first attempt (`shaders/mul_mat_coop.wgsl`, no faster than the integer
//! GEMM: docs/bench/2026-12-07-h100-tensor-cores).

use super::matmul::weight_define;
use super::{Bind, Dispatch, GpuCaps, PlanCtx, f, grid, u};
use crate::dtype::DType;
use crate::error::{KilnError, Result};

/// The smallest weight matrix (weights) the CUDA twin takes to 8 bits by
/// default under `KILN_ACTIVATIONS=q8`: below it the quantize launch costs
/// more than the lighter product saves (H100, 2026-12-06: SmolLM2's
/// 0.5–1.8 M-weight layers decoded 1131 → 1046 tok/s on the CUDA twin with
/// every product at 8 bits, the Llama-3.2-1B shape's ≥ 4 M-weight ones
/// 720 → 1067; docs/bench/2026-12-06-h100-q8-activations; again 2026-12-07:
/// 1083 → 1029).
pub const MIN_WEIGHTS: usize = 1 << 21;

/// The same on wgpu: every product. Its one-token GEMV quantizes x in its
/// own prologue (`XQ_LOCAL`, four invocations per block with `XQ_SPREAD`),
/// so there is no launch to save: H100, 2026-12-07, SmolLM2 decode 839 →
/// 979 tok/s with every product at 8 bits (docs/bench/2026-12-07-h100-newkv).
pub const MIN_WEIGHTS_WGPU: usize = 0;

/// Weight formats with an 8-bit-activation kernel.
pub const Q8_FORMATS: [DType; 3] = [DType::Q4_0, DType::Q4_1, DType::Q8_0];

/// Whether a product of `m` rows of x with `w` weights (`rows × k`) takes
/// the 8-bit-activation kernels under these capabilities.
/// The minimum size is the decode GEMV's (its quantize launch); prefill
/// products on tensor cores ([`coop_applies`], `GpuCaps::q8_prefill_mma`)
/// have none.
pub fn applies(c: &GpuCaps, m: usize, rows: usize, k: usize, w: DType) -> bool {
    let tensor_cores = m > super::matmul::GEMV_MAX_M && (c.q8_prefill_mma || coop_applies(c));
    c.q8_activations
        .is_some_and(|min| rows.saturating_mul(k) >= min || tensor_cores)
        && c.subgroups
        && !c.cpu
        && (m == 1 || m > super::matmul::GEMV_MAX_M)
        && k.is_multiple_of(32)
        && Q8_FORMATS.contains(&w)
}

/// `v` rounded per block of 32 as the kernels quantize it: `d·round(v/d)`,
/// `d = max|v|/127` (0 stays 0; ties away from zero).
pub fn q8_round(v: &mut [f32]) {
    for b in v.chunks_mut(32) {
        let d = b.iter().fold(0f32, |m, v| m.max(v.abs())) / 127.0;
        let id = if d > 0.0 { 1.0 / d } else { 0.0 };
        for v in b {
            *v = (*v * id).round() * d;
        }
    }
}

/// The prologue and epilogue of one product, and where it reads and writes.
pub(crate) struct Q8Plan {
    /// The activations `[m, k]` (an input, or scratch an earlier dispatch
    /// of the node wrote).
    pub x: Bind,
    /// RMSNorm weight input and epsilon (one-row products only; prefill
    /// normalizes before).
    pub norm: Option<(Bind, f32)>,
    /// SwiGLU over gate rows then up rows (one-row products only; the
    /// weight is never split then).
    pub glu: bool,
    /// The residual input added last.
    pub res: Option<Bind>,
    /// Where y goes (the output, or scratch for a later GLU dispatch).
    pub out: Bind,
    /// The scratch slot of the quantized x.
    pub slot: u8,
}

/// The dispatches of `y [m, n] = x · Wᵀ`: x quantized once into scratch,
/// then per weight chunk (`(weight binding, first row, rows)`; with glu one
/// chunk of 2·n rows) the one-row GEMV (m = 1) or the tiled GEMM. A
/// one-row product that [`local_applies`] is the GEMV alone, quantizing x
/// in each workgroup (`XQ_LOCAL`): one dispatch instead of two.
pub(crate) fn dispatches(
    ctx: &PlanCtx,
    (m, n, k): (usize, usize, usize),
    plan: &Q8Plan,
    w: DType,
    chunks: &[(Bind, usize, usize)],
) -> Result<Vec<Dispatch>> {
    let (glu, norm) = (plan.glu, plan.norm.is_some());
    if m > 1 && (norm || glu) && !half_fuses(ctx.caps, (m, n, k), w, glu) {
        return Err(KilnError::BadParam {
            op: "mul_mat_q8",
            detail: "this GEMM takes no norm prologue or GLU epilogue".into(),
        });
    }
    if m > 1 && coop_applies(ctx.caps) {
        return coop_dispatches(ctx, (m, n, k), plan, w, chunks);
    }
    let nb = k / 32;
    let scratch = (m * (k / 4 + 3 * nb) * 4) as u64;
    let (has_norm, eps) = match plan.norm {
        Some((_, e)) => (1, e),
        None => (0, 0.0),
    };
    let local = m == 1 && local_applies(ctx.caps, k, n);
    let rows_per_wg = if local {
        local_rows(n)
    } else {
        ctx.caps.gemv_rows_per_workgroup()
    };
    let params = |cols: usize, n0: usize| -> Result<Vec<u32>> {
        Ok(vec![
            u(k)?,
            u(cols)?,
            u(n0)?,
            plan.res.is_some() as u32,
            has_norm,
            f(eps),
            plan.glu as u32,
            u(rows_per_wg)?,
            u(m)?,
            u(n)?,
        ])
    };
    if local {
        return chunks
            .iter()
            .map(|&(wb, n0, rows)| {
                let cols = if plan.glu { rows / 2 } else { rows };
                Ok(Dispatch {
                    shader: "mul_mat_q8.wgsl",
                    entry: "gemv",
                    defines: gemv_defines(w, true),
                    bindings: vec![
                        wb,
                        plan.x,
                        plan.out,
                        plan.res.unwrap_or(plan.x),
                        plan.norm.map_or(plan.x, |(nw, _)| nw),
                    ],
                    params: params(cols, n0)?,
                    groups: grid(cols.div_ceil(rows_per_wg), ctx.caps)?,
                })
            })
            .collect();
    }
    let mut out = vec![Dispatch {
        shader: "mul_mat_q8.wgsl",
        entry: "quantize",
        defines: vec!["QUANTIZE"],
        bindings: vec![
            plan.x,
            plan.norm.map_or(plan.x, |(nw, _)| nw),
            Bind::Scratch(plan.slot, scratch),
        ],
        params: params(0, 0)?,
        groups: grid((m * nb).div_ceil(64), ctx.caps)?,
    }];
    for &(wb, n0, rows) in chunks {
        let cols = if plan.glu { rows / 2 } else { rows };
        let (entry, groups) = if m == 1 {
            ("gemv", grid(cols.div_ceil(rows_per_wg), ctx.caps)?)
        } else {
            (
                "gemm",
                tile_grid(
                    ctx,
                    "mul_mat_q8",
                    cols.div_ceil(GEMM_BN),
                    m.div_ceil(GEMM_BM),
                )?,
            )
        };
        out.push(Dispatch {
            shader: "mul_mat_q8.wgsl",
            entry,
            defines: if m == 1 {
                gemv_defines(w, false)
            } else {
                vec![weight_define(w)]
            },
            bindings: vec![
                wb,
                Bind::ScratchRead(plan.slot),
                plan.out,
                plan.res.unwrap_or(plan.x),
            ],
            params: params(cols, n0)?,
            groups,
        });
    }
    Ok(out)
}

/// The one-token GEMV's defines: the weight format, `XQ_LOCAL` when it
/// quantizes x itself, and the kernel variants (shaders/mul_mat_q8.wgsl):
/// `XQ_SPREAD` (x quantized by four invocations per block) and `WBLOCK`
/// (whole Q4_0 / Q4_1 blocks per lane). Both are on: together they took the
/// 1B-shape decode from 866 to 1085 tok/s on an H100 (docs/bench/
/// 2026-12-07-h100-newkv/); `KILN_Q8_SPREAD=0` / `KILN_Q8_WBLOCK=0` turn
/// them off natively for comparison.
fn gemv_defines(w: DType, local: bool) -> Vec<&'static str> {
    let on = |name: &str| super::env_switch(name).unwrap_or(true);
    let mut d = vec![weight_define(w)];
    if local {
        d.push("XQ_LOCAL");
        if on("KILN_Q8_SPREAD") {
            d.push("XQ_SPREAD");
        }
    }
    if matches!(w, DType::Q4_0 | DType::Q4_1) && on("KILN_Q8_WBLOCK") {
        d.push("WBLOCK");
    }
    d
}

/// The largest k the one-token GEMV quantizes in workgroup memory
/// (`KMAX` in the WGSL: 11 KiB of the 16 KiB WebGPU guarantees).
pub const LOCAL_MAX_K: usize = 8192;
/// Output columns above which one quantize dispatch is cheaper than every
/// workgroup of the GEMV reading x in f32 (the vocabulary head).
pub const LOCAL_MAX_COLS: usize = 32768;
/// Workgroup memory of the `XQ_LOCAL` GEMV, bytes.
const LOCAL_WG_BYTES: u32 = ((LOCAL_MAX_K / 4 + 3 * LOCAL_MAX_K / 32) * 4) as u32;

/// Whether a one-token product over `k` into `n` columns quantizes x inside
/// the GEMV (`XQ_LOCAL`) rather than in a dispatch of its own.
fn local_applies(c: &GpuCaps, k: usize, n: usize) -> bool {
    c.q8_local
        && k <= LOCAL_MAX_K
        && n <= LOCAL_MAX_COLS
        && c.max_invocations >= 256
        && c.max_workgroup_storage >= LOCAL_WG_BYTES
}

/// Rows per 256-invocation workgroup of the `XQ_LOCAL` GEMV: about 1024
/// workgroups, 8 to 64 rows each (each workgroup reads x once);
/// `KILN_Q8_LOCAL_ROWS=N` (1..=256) overrides it, for benchmarks.
fn local_rows(n: usize) -> usize {
    static ROWS: std::sync::OnceLock<Option<usize>> = std::sync::OnceLock::new();
    let forced = ROWS.get_or_init(|| {
        std::env::var("KILN_Q8_LOCAL_ROWS")
            .ok()
            .and_then(|v| v.parse().ok())
            .filter(|n| (1..=256).contains(n))
    });
    forced.unwrap_or_else(|| n.div_ceil(1024).next_multiple_of(8).clamp(8, 64))
}

/// The GEMM's tile: rows of x × weight rows per workgroup.
const GEMM_BM: usize = 128;
const GEMM_BN: usize = 64;

/// The tensor-core GEMM's tile (`BM`, `BN` in mul_mat_coop.wgsl) and its
/// workgroup memory: two slices of f16 x and W rows (32 + 8 padding), and
/// a 16 × 16 f32 staging tile per subgroup.
const COOP_BM: usize = 128;
const COOP_BN: usize = 64;
const fn coop_wg_bytes(bn: usize) -> u32 {
    ((2 * (COOP_BM + bn) * 40 * 2) + 8 * 256 * 4) as u32
}
const COOP_WG_BYTES: u32 = coop_wg_bytes(COOP_BN);

/// The 128 × 128 tile (`WIDE`) where the device has its 48 KiB and
/// `KILN_COOP_WIDE` is not 0.
fn coop_wide(c: &GpuCaps) -> bool {
    c.max_workgroup_storage >= coop_wg_bytes(128)
        && super::env_switch("KILN_COOP_WIDE") != Some(false)
}

/// Whether a prefill product with 8-bit activations on runs on the tensor
/// cores (mul_mat_coop.wgsl: x and the dequantized weights in f16) instead
/// of the 8-bit integer GEMM: the device offers the cooperative matrices
/// (`GpuCaps::coop_f16`) and the kernel's workgroup memory.
pub fn coop_applies(c: &GpuCaps) -> bool {
    c.coop_f16 && c.max_invocations >= 256 && c.max_workgroup_storage >= COOP_WG_BYTES
}

/// The tensor-core GEMM, one dispatch per weight chunk: no quantize pass
/// (the kernel rounds x to f16 as it stages it).
fn coop_dispatches(
    ctx: &PlanCtx,
    (m, n, k): (usize, usize, usize),
    plan: &Q8Plan,
    w: DType,
    chunks: &[(Bind, usize, usize)],
) -> Result<Vec<Dispatch>> {
    if let Some(d) = coop_half(ctx, (m, n, k), plan, w, chunks)? {
        return Ok(d);
    }
    if plan.norm.is_some() || plan.glu {
        return Err(KilnError::BadParam {
            op: "mul_mat_q8",
            detail: "the f16 GEMM does not apply: no norm prologue or GLU epilogue".into(),
        });
    }
    let wide = coop_wide(ctx.caps);
    let bn = if wide { 128 } else { COOP_BN };
    let mut defines = vec![weight_define(w)];
    if wide {
        defines.push("WIDE");
    }
    chunks
        .iter()
        .map(|&(wb, n0, cols)| {
            let groups = tile_grid(ctx, "mul_mat_coop", cols.div_ceil(bn), m.div_ceil(COOP_BM))?;
            Ok(Dispatch {
                shader: "mul_mat_coop.wgsl",
                entry: "gemm",
                defines: defines.clone(),
                bindings: vec![wb, plan.x, plan.out, plan.res.unwrap_or(plan.x)],
                params: coop_params(plan, (m, cols, k, n, n0))?,
                groups,
            })
        })
        .collect()
}

/// A variant of the tensor-core GEMM on f16 copies of its operands
/// (`shaders/mul_mat_coop_half.wgsl`): weight rows per subgroup (`SW64`),
/// K per slice (`BK64`), two slice buffers (`DB`), operands staged as
/// vec4<f16> (`V4`), and whether every product takes the 2 × 2-subgroup
/// workgroup (`N2`; `None`: by grid size, [`SMALL_GRID`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HalfTile {
    pub sw: usize,
    pub bk: usize,
    pub db: bool,
    pub v4: bool,
    pub n2: Option<bool>,
}

impl HalfTile {
    /// Weight rows per workgroup: 4 subgroups along them, 2 with `N2`.
    pub fn bn(&self, n2: bool) -> usize {
        self.sw * if n2 { 2 } else { 4 }
    }

    /// Workgroup memory: the x (128 rows) and weight slices (rows padded
    /// by 8 values) per buffer, and a 16 × 16 f32 staging tile per subgroup.
    pub fn wg_bytes(&self, n2: bool) -> u32 {
        let bufs = if self.db { 2 } else { 1 };
        let subgroups = 2 * self.bn(n2) / self.sw;
        (bufs * (128 + self.bn(n2)) * (self.bk + 8) * 2 + subgroups * 256 * 4) as u32
    }

    pub fn defines(&self, n2: bool) -> Vec<&'static str> {
        let mut d = Vec::new();
        if self.sw == 64 {
            d.push("SW64");
        }
        if self.bk == 64 {
            d.push("BK64");
        }
        if self.db {
            d.push("DB");
        }
        if self.v4 {
            d.push("V4");
        }
        if n2 {
            d.push("N2");
        }
        d
    }

    /// The `N2` choices this tile can take.
    pub fn n2_choices(&self) -> Vec<bool> {
        match self.n2 {
            Some(n2) => vec![n2],
            None => vec![false, true],
        }
    }
}

/// The variants `KILN_COOP_KERNEL` names: `half` (64 × 32 per subgroup, 32
/// of K per slice, two slice buffers), `half64` (64 × 64 per subgroup, one
/// buffer), `halfk64` (64 × 32, 64 of K per slice, one buffer); with `v4`
/// the same staged as vec4<f16>; `w64`: 64 × 64 per subgroup in 2 × 2
/// subgroups (a 128 × 128 tile of 128 invocations, llama.cpp's KHR-coopmat
/// shape), K 32 with two buffers, vec4 staging. (Decoding blocks while
/// staging, one per invocation, needs `sw · bk ≤ 2048`.)
pub const HALF_TILES: [(&str, HalfTile); 7] = [
    ("half", tile(32, 32, true, false, None)),
    ("half64", tile(64, 32, false, false, None)),
    ("halfk64", tile(32, 64, false, false, None)),
    ("halfv4", tile(32, 32, true, true, None)),
    ("halfk64v4", tile(32, 64, false, true, None)),
    ("w64", tile(64, 32, true, true, Some(true))),
    ("half64v4", tile(64, 32, false, true, None)),
];

const fn tile(sw: usize, bk: usize, db: bool, v4: bool, n2: Option<bool>) -> HalfTile {
    HalfTile { sw, bk, db, v4, n2 }
}

/// Whether the f16-operand GEMM decodes `w`'s blocks while staging
/// (`WQ`: Q4_0 / Q4_1 / Q8_0, `KILN_COOP_WQ` not 0) instead of reading a
/// dequantized f16 copy of each chunk written by a `to_half` pass.
fn wq_applies(w: DType) -> bool {
    Q8_FORMATS.contains(&w) && super::env_switch("KILN_COOP_WQ") != Some(false)
}

/// Below this many workgroups a product splits K or takes the `N2` tile
/// ([`half_layout`]); `KILN_COOP_N2=0/1` forces the `N2` tile off / on,
/// `KILN_COOP_GRID=G` moves the threshold (for measuring).
const SMALL_GRID: usize = 256;

fn small_grid() -> usize {
    std::env::var("KILN_COOP_GRID")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(SMALL_GRID)
}

/// The f16-operand GEMM variant `KILN_COOP_KERNEL` asks for (default
/// `halfk64v4`: H100, 2026-12-07, 1B-shape prefill-512 31.9k tok/s against
/// `halfk64` 31.3k, `half` 25.3k, `w64` 24.2k;
/// docs/bench/2026-12-07-h100-coop-v4), or `None` for mul_mat_coop.wgsl's
/// kernel (`decode`: the weights decoded and x converted while staging)
/// or where the device lacks the variant's workgroup memory.
pub fn half_tile(c: &GpuCaps) -> Option<HalfTile> {
    let want = std::env::var("KILN_COOP_KERNEL").unwrap_or_else(|_| "halfk64v4".into());
    HALF_TILES
        .iter()
        .find(|(name, _)| *name == want)
        .map(|t| t.1)
        .filter(|t| c.max_workgroup_storage >= t.wg_bytes(t.n2 == Some(true)))
}

/// Whether the f16-operand GEMM ([`coop_half`]) takes an `m`-row product
/// into `n` outputs over `k` (one chunk; with `glu` 2·n weight rows) on
/// these capabilities, and so can fold mul_mat_fused's RMSNorm prologue
/// into its x conversion (`to_half_norm`) and, with `glu`, the SwiGLU into
/// its epilogue (`GLU`: 32 weight rows per subgroup, no split-K).
/// Opt-in (`KILN_COOP_FUSE=1`) until it has run on a GPU with cooperative
/// matrices (written 2026-12-08 with no device to run it on; its parity
/// and speed are the first items of `tools/gpu_prefill_tune.sh`).
pub fn half_fuses(c: &GpuCaps, (m, n, k): (usize, usize, usize), w: DType, glu: bool) -> bool {
    let Some(tile) = half_tile(c) else {
        return false;
    };
    if super::env_switch("KILN_COOP_FUSE") != Some(true) {
        return false;
    }
    let rows = if glu { 2 * n } else { n };
    m > super::matmul::GEMV_MAX_M
        && coop_applies(c)
        && half_bytes(c, &tile, (m, rows, k), w).is_some()
        && (!glu || tile.sw == 32)
}

/// The bytes of the f16 copies of x and of a chunk of `rows` weight rows
/// (padded to the tile; 0 where the blocks are decoded while staging), or
/// `None` where one exceeds the binding limit.
fn half_bytes(
    c: &GpuCaps,
    tile: &HalfTile,
    (m, rows, k): (usize, usize, usize),
    w: DType,
) -> Option<(u64, u64)> {
    let xb = (m * k * 2) as u64;
    let wb = if wq_applies(w) {
        0
    } else {
        (rows.next_multiple_of(tile.bn(false)) * k * 2) as u64
    };
    (xb.max(wb) <= c.max_binding_bytes).then_some((xb, wb))
}

/// The tensor-core GEMM on f16 operands: x converted once (`to_half`, or
/// `to_half_norm` with the plan's RMSNorm), then per weight chunk the
/// GEMM, which decodes the chunk's blocks while staging ([`wq_applies`])
/// or reads an f16 copy a `to_half` pass wrote just before (padded to the
/// tile), with the plan's SwiGLU in its epilogue (`GLU`). `None` when no
/// variant applies ([`half_tile`]) or a copy would exceed the binding
/// limit.
fn coop_half(
    ctx: &PlanCtx,
    (m, n, k): (usize, usize, usize),
    plan: &Q8Plan,
    w: DType,
    chunks: &[(Bind, usize, usize)],
) -> Result<Option<Vec<Dispatch>>> {
    let Some(tile) = half_tile(ctx.caps) else {
        return Ok(None);
    };
    let forced = super::env_switch("KILN_COOP_N2");
    let slices = k.div_ceil(tile.bk);
    let wq = wq_applies(w);
    let most = chunks.iter().map(|c| c.2).max().unwrap_or(0);
    let Some((xb, wb)) = half_bytes(ctx.caps, &tile, (m, most, k), w) else {
        return Ok(None);
    };
    if plan.glu && (tile.sw != 32 || chunks.len() != 1) {
        return Ok(None);
    }
    let (xs, ws) = (plan.slot, plan.slot + 1);
    let half = |src: Bind, rows: usize, pad: usize, is_w: bool, dt: DType| -> Result<Dispatch> {
        Ok(Dispatch {
            shader: "mul_mat_coop_half.wgsl",
            entry: "to_half",
            defines: vec!["HALF", weight_define(dt)],
            bindings: vec![
                src,
                plan.x,
                Bind::Scratch(if is_w { ws } else { xs }, if is_w { wb } else { xb }),
            ],
            params: vec![u(rows)?, 0, u(k)?, 0, u(pad)?, is_w as u32],
            groups: grid((pad * k / 4).div_ceil(256), ctx.caps)?,
        })
    };
    // x converted while staging (`XF32`, `KILN_COOP_XF32=1`) where there
    // is no RMSNorm to fold into a conversion pass.
    let xf32 = plan.norm.is_none() && super::env_switch("KILN_COOP_XF32") == Some(true);
    let mut out = Vec::new();
    if !xf32 {
        out.push(match plan.norm {
            // RMSNorm and the conversion in one pass, a workgroup per row.
            Some((nw, eps)) => Dispatch {
                shader: "mul_mat_coop_half.wgsl",
                entry: "to_half_norm",
                defines: vec!["NORM"],
                bindings: vec![nw, plan.x, Bind::Scratch(xs, xb)],
                params: vec![u(m)?, 0, u(k)?, 0, u(m)?, eps.to_bits()],
                groups: grid(m, ctx.caps)?,
            },
            None => half(plan.x, m, m, false, DType::F32)?,
        });
    }
    for &(wbind, n0, rows) in chunks {
        // With GLU, `rows` weight rows (gate, then up) make rows / 2 outputs.
        let cols = if plan.glu { rows / 2 } else { rows };
        let (n2, mut splits) = half_layout(&tile, m, rows, slices, forced);
        if plan.glu {
            splits = 1;
        }
        let bn = tile.bn(n2);
        let mut defines = tile.defines(n2);
        if plan.glu {
            defines.push("GLU");
        }
        if xf32 {
            defines.push("XF32");
        }
        if wq {
            defines.extend(["WQ", weight_define(w)]);
        } else {
            out.push(half(wbind, rows, rows.next_multiple_of(bn), true, w)?);
        }
        let mut groups = tile_grid(ctx, "mul_mat_coop", rows.div_ceil(bn), m.div_ceil(128))?;
        let nsp = slices.div_ceil(splits);
        // Split-K: layer z's partial at columns z·cols of a [m, S·cols]
        // scratch (no residual), then `ksum` adds them (and the residual)
        // into y.
        let ps = plan.slot + 4;
        let (y, res, params) = if splits == 1 {
            let mut params = coop_params(plan, (m, cols, k, n, n0))?;
            params.extend([u(nsp)?, 0]);
            (plan.out, plan.res.unwrap_or(plan.x), params)
        } else {
            groups[2] = u(splits)?;
            let part = Bind::Scratch(ps, (m * splits * cols * 4) as u64);
            let params = vec![
                u(m)?,
                u(cols)?,
                u(k)?,
                u(splits * cols)?,
                0,
                0,
                u(nsp)?,
                u(cols)?,
            ];
            (part, plan.x, params)
        };
        out.push(Dispatch {
            shader: "mul_mat_coop_half.wgsl",
            entry: "gemm",
            defines,
            bindings: vec![
                if wq { wbind } else { Bind::ScratchRead(ws) },
                if xf32 { plan.x } else { Bind::ScratchRead(xs) },
                y,
                res,
            ],
            params,
            groups,
        });
        if splits > 1 {
            // Four columns per invocation where rows stay 16-byte aligned.
            let sum4 = cols % 4 == 0 && n % 4 == 0 && n0 % 4 == 0;
            out.push(Dispatch {
                shader: "mul_mat_coop_half.wgsl",
                entry: "ksum",
                defines: if sum4 {
                    vec!["SUM", "SUM4"]
                } else {
                    vec!["SUM"]
                },
                bindings: vec![Bind::ScratchRead(ps), plan.out, plan.res.unwrap_or(plan.x)],
                params: vec![
                    u(m)?,
                    u(cols)?,
                    u(splits)?,
                    u(n)?,
                    u(n0)?,
                    plan.res.is_some() as u32,
                ],
                groups: grid(
                    (m * cols / if sum4 { 4 } else { 1 }).div_ceil(256),
                    ctx.caps,
                )?,
            });
        }
    }
    Ok(Some(out))
}

/// How a product of `m` rows and `cols` weight rows over `slices` K slices
/// runs on `tile`: whether it takes the N2 tile, and its K splits. A grid
/// under [`SMALL_GRID`] splits K where K is long enough ([`split_k`]),
/// keeping the full tile, else takes the N2 tile (H100, 1B shape: N2 alone
/// 33.3k tok/s, N2 + split-K 4 31.4k, full tile + split-K 4 39.5k;
/// docs/bench/2026-12-07-h100-coop-splitk). `forced`: `KILN_COOP_N2`.
fn half_layout(
    tile: &HalfTile,
    m: usize,
    cols: usize,
    slices: usize,
    forced: Option<bool>,
) -> (bool, usize) {
    let grid = |n2: bool| cols.div_ceil(tile.bn(n2)) * m.div_ceil(128);
    let split = split_k(slices);
    let small = small_grid();
    let n2 = tile
        .n2
        .or(forced)
        .unwrap_or(grid(false) < small && split == 1);
    (n2, if grid(n2) < small { split } else { 1 })
}

/// K splits of a tensor-core GEMM over `slices` K slices whose grid is
/// under [`SMALL_GRID`]: 4 (`KILN_COOP_SPLITK=S` picks S; 1 turns it off),
/// at most one per 8 slices.
fn split_k(slices: usize) -> usize {
    let want = std::env::var("KILN_COOP_SPLITK")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(4);
    want.clamp(1, (slices / 8).max(1))
}

/// The 2-D grid of a tiled GEMM (`x` tiles of columns, `y` of rows), or a
/// typed error past the device's per-dimension limit.
fn tile_grid(ctx: &PlanCtx, op: &'static str, x: usize, y: usize) -> Result<[u32; 3]> {
    let max = ctx.caps.max_workgroups_per_dim as usize;
    if x > max || y > max {
        return Err(KilnError::BadParam {
            op,
            detail: format!("a [{x}, {y}] GEMM grid exceeds the device's {max} per dimension"),
        });
    }
    Ok([u(x)?, u(y)?, 1])
}

/// mul_mat_coop.wgsl's `Params` for a GEMM of `cols` columns from `n0`.
fn coop_params(
    plan: &Q8Plan,
    (m, cols, k, n, n0): (usize, usize, usize, usize, usize),
) -> Result<Vec<u32>> {
    Ok(vec![
        u(m)?,
        u(cols)?,
        u(k)?,
        u(n)?,
        u(n0)?,
        plan.res.is_some() as u32,
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The split-K rule (with `KILN_COOP_SPLITK` unset): small grids over a
    /// long K split 4 ways on the full tile, fewer over 8–31 slices; small
    /// grids over a short K take the N2 tile; big grids neither.
    #[test]
    fn small_grids_split_k_or_take_n2() {
        let t = HALF_TILES.iter().find(|t| t.0 == "halfk64v4").unwrap().1;
        // 1B shape, 512 rows: O / down (2048 columns, K 2048 / 8192).
        assert_eq!(half_layout(&t, 512, 2048, 32, None), (false, 4));
        assert_eq!(half_layout(&t, 512, 2048, 128, None), (false, 4));
        // gate+up: 512 workgroups.
        assert_eq!(half_layout(&t, 512, 16384, 32, None), (false, 1));
        // SmolLM2 shape: K 576 (9 slices) → N2; down, K 1536 (24) → 3 ways.
        assert_eq!(half_layout(&t, 512, 576, 9, None), (true, 1));
        assert_eq!(half_layout(&t, 512, 576, 24, None), (false, 3));
        // KILN_COOP_N2=1 forces the N2 tile, which may still split.
        assert_eq!(half_layout(&t, 512, 2048, 32, Some(true)), (true, 4));
    }
}
