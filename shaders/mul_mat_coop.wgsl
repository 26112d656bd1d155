// mul_mat_coop.wgsl — prefill products y[m, n] = x · Wᵀ (+ res) on tensor
// cores through wgpu's experimental cooperative matrices (Vulkan's
// VK_KHR_cooperative_matrix): 16×16×16 products of f16 operands into f32
// accumulators on 32-wide subgroups (ops/matmul_q8.rs checks
// GpuCaps::coop_f16; opt-in, `KILN_COOP=1`: on an H100 it measured no faster
// than the 8-bit integer GEMM — it is bound by its staging, not by the
// tensor cores; docs/bench/2026-12-07-h100-tensor-cores). Part of the opt-in
// low-precision activations (`KILN_ACTIVATIONS=q8`): x and the dequantized
// weights are rounded to f16
// (11 significant bits, relative error ≤ 2⁻¹¹ each, values clamped to
// ±65,504) — finer than the 8-bit x of the decode GEMVs, the trade
// llama.cpp's Vulkan backend makes for its prefill. The f32 kernels stay
// the default.
//
// A BM × BN tile (128 rows of x × 64 weight rows; 128 × 128 with WIDE)
// per workgroup of 256 invocations = 8 subgroups, each owning 32 × 32
// (2 × 2 matrices of 16 × 16; 32 × 64 with WIDE). K advances 32 (one quant block) per slice through two buffers
// of f16 operands in workgroup memory: x row-major (A), W row-major per
// weight row (B, read column-major); the next slice's global loads are
// issued before the current slice is multiplied, one barrier per slice.
// The weights decode through common/weights.wgsl's w4, so every weight
// format has this kernel. The accumulators leave through a 16 × 16 staging
// tile per subgroup; the residual is added there.
//
// Params: m, cols (output columns of this dispatch), k, n (y's row stride),
// n0 (first output column; the weight binding starts at that row), has_res.
// Bindings: 0 params, 1 W (rows from n0), 2 x [m, k] as vec4, 3 y [m, n],
// 4 res [m, n] (x when has_res = 0).
enable f16;
enable wgpu_cooperative_matrix;

struct Params {
    m: u32,
    cols: u32,
    k: u32,
    n: u32,
    n0: u32,
    has_res: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
const F16_MAX: f32 = 65504.0;
@group(0) @binding(1) var<storage, read> W: array<u32>;
@group(0) @binding(2) var<storage, read> xv: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<storage, read> res: array<f32>;

#include "common/weights.wgsl"

const BM: u32 = 128u;
#if WIDE
// 128 × 128, each subgroup 32 × 64 (2 × 4 matrices): 48 KiB of workgroup
// memory.
const BN: u32 = 128u;
#else
const BN: u32 = 64u;
#endif
const BK: u32 = 32u;
// Weight rows per subgroup block.
const SN: u32 = BN / 2u;
// Row stride of the staged operands in f16: 80 bytes, so the 8 rows of a
// 16-byte-row fragment load fall in distinct banks.
const BKP: u32 = 40u;
// vec4 loads per invocation per slice: x (BM × 8 groups), W (BN × 8).
const LA: u32 = BM * 8u / 256u;
const LB: u32 = BN * 8u / 256u;

var<workgroup> As: array<f16, 2u * BM * BKP>;
var<workgroup> Bs: array<f16, 2u * BN * BKP>;
var<workgroup> Cs: array<f32, 8u * 256u>;

fn out_n0() -> u32 {
    return p.n0;
}
#include "common/coop_out.wgsl"

// 4 values as f16 (clamped to its range) at As[i] / Bs[i].
fn put4a(i: u32, v: vec4<f32>) {
    let h = vec4<f16>(clamp(v, vec4<f32>(-F16_MAX), vec4<f32>(F16_MAX)));
    As[i] = h.x;
    As[i + 1u] = h.y;
    As[i + 2u] = h.z;
    As[i + 3u] = h.w;
}

fn put4b(i: u32, v: vec4<f32>) {
    let h = vec4<f16>(clamp(v, vec4<f32>(-F16_MAX), vec4<f32>(F16_MAX)));
    Bs[i] = h.x;
    Bs[i + 1u] = h.y;
    Bs[i + 2u] = h.z;
    Bs[i + 3u] = h.w;
}

// Group g (4 values) of slice s of x row r, zero past m or k.
fn load_x(r: u32, s: u32, g: u32) -> vec4<f32> {
    let kk = s * BK + 4u * g;
    if (r < p.m && kk < p.k) {
        return xv[(r * p.k + kk) >> 2u];
    }
    return vec4<f32>(0.0);
}

// Group g of slice s of weight row c (of this dispatch), zero past cols
// (w4 is zero past k).
fn load_w(c: u32, s: u32, g: u32) -> vec4<f32> {
    if (c < p.cols) {
        return w4(c, p.k, s * (BK / 4u) + g);
    }
    return vec4<f32>(0.0);
}

@compute @workgroup_size(256)
fn gemm(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32,
        @builtin(subgroup_id) sg: u32, @builtin(subgroup_invocation_id) lane: u32) {
    let c0 = wid.x * BN;
    let r0 = wid.y * BM;
    // Staging: row lid / 8 (+ 32·i), group lid % 8 of the slice.
    let lr = lid / 8u;
    let lg = lid % 8u;
    let ns = (p.k + BK - 1u) / BK;
    var xr: array<vec4<f32>, LA>;
    var wr: array<vec4<f32>, LB>;
    for (var i = 0u; i < LA; i++) {
        xr[i] = load_x(r0 + lr + 32u * i, 0u, lg);
    }
    for (var i = 0u; i < LB; i++) {
        wr[i] = load_w(c0 + lr + 32u * i, 0u, lg);
    }
    for (var i = 0u; i < LA; i++) {
        put4a((lr + 32u * i) * BKP + 4u * lg, xr[i]);
    }
    for (var i = 0u; i < LB; i++) {
        put4b((lr + 32u * i) * BKP + 4u * lg, wr[i]);
    }
    workgroupBarrier();
    // This subgroup's block: x rows sm·32.., weight rows sn·SN...
    let sm = sg % 4u;
    let sn = sg / 4u;
    var c00 = coop_mat16x16<f32, C>();
    var c01 = coop_mat16x16<f32, C>();
    var c10 = coop_mat16x16<f32, C>();
    var c11 = coop_mat16x16<f32, C>();
#if WIDE
    var c02 = coop_mat16x16<f32, C>();
    var c03 = coop_mat16x16<f32, C>();
    var c12 = coop_mat16x16<f32, C>();
    var c13 = coop_mat16x16<f32, C>();
#endif
    for (var s = 0u; s < ns; s++) {
        let buf = s & 1u;
        let more = s + 1u < ns;
        if (more) {
            for (var i = 0u; i < LA; i++) {
                xr[i] = load_x(r0 + lr + 32u * i, s + 1u, lg);
            }
            for (var i = 0u; i < LB; i++) {
                wr[i] = load_w(c0 + lr + 32u * i, s + 1u, lg);
            }
        }
        let ia = (buf * BM + sm * 32u) * BKP;
        let ib = (buf * BN + sn * SN) * BKP;
        for (var kk = 0u; kk < BK; kk += 16u) {
            let a0 = coopLoadT<coop_mat16x16<f16, A>>(&As[ia + kk], BKP);
            let a1 = coopLoadT<coop_mat16x16<f16, A>>(&As[ia + 16u * BKP + kk], BKP);
            let b0 = coopLoad<coop_mat16x16<f16, B>>(&Bs[ib + kk], BKP);
            let b1 = coopLoad<coop_mat16x16<f16, B>>(&Bs[ib + 16u * BKP + kk], BKP);
            c00 = coopMultiplyAdd(a0, b0, c00);
            c01 = coopMultiplyAdd(a0, b1, c01);
            c10 = coopMultiplyAdd(a1, b0, c10);
            c11 = coopMultiplyAdd(a1, b1, c11);
#if WIDE
            let b2 = coopLoad<coop_mat16x16<f16, B>>(&Bs[ib + 32u * BKP + kk], BKP);
            let b3 = coopLoad<coop_mat16x16<f16, B>>(&Bs[ib + 48u * BKP + kk], BKP);
            c02 = coopMultiplyAdd(a0, b2, c02);
            c03 = coopMultiplyAdd(a0, b3, c03);
            c12 = coopMultiplyAdd(a1, b2, c12);
            c13 = coopMultiplyAdd(a1, b3, c13);
#endif
        }
        if (more) {
            let nb = buf ^ 1u;
            for (var i = 0u; i < LA; i++) {
                put4a((nb * BM + lr + 32u * i) * BKP + 4u * lg, xr[i]);
            }
            for (var i = 0u; i < LB; i++) {
                put4b((nb * BN + lr + 32u * i) * BKP + 4u * lg, wr[i]);
            }
        }
        workgroupBarrier();
    }
    let st = sg * 256u;
    let rb = r0 + sm * 32u;
    let cb = c0 + sn * SN;
    out_edge(c00, st, rb, cb, lane);
    out_edge(c01, st, rb, cb + 16u, lane);
    out_edge(c10, st, rb + 16u, cb, lane);
    out_edge(c11, st, rb + 16u, cb + 16u, lane);
#if WIDE
    out_edge(c02, st, rb, cb + 32u, lane);
    out_edge(c03, st, rb, cb + 48u, lane);
    out_edge(c12, st, rb + 16u, cb + 32u, lane);
    out_edge(c13, st, rb + 16u, cb + 48u, lane);
#endif
}
