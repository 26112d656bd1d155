// mul_mat_vec.wgsl — y = x · Wᵀ for few rows of x (decode; ops/matmul.rs).
// Bindings: 0 params, 1 W: array<u32> (rows n0..n0+rows of the weight, any
// W_<DTYPE> layout), 2 x: array<f32> [m, k], 3 y: array<f32> [m, n],
// 4 res: array<f32> [m, n] (optional residual: y = x·Wᵀ + res).
// Dispatch: one workgroup of 64 per weight row of this chunk (with SUBGROUPS
// per p.rows_per_wg rows: one per subgroup, 4 per subgroup with XREG; 64 per
// workgroup with ROW_PER_THREAD), folded by ops::grid. Each weight group of 4 is decoded once and
// used for all m ≤ 8 rows of x. f32 accumulation; tree reduction through
// workgroup memory, or subgroupAdd with SUBGROUPS.

const WG: u32 = 64u;
const MMAX: u32 = 8u;
#include "common/reduce.wgsl"
// x4 below lets the decoders offer dot32 (a whole block against a row of x).
#define HAS_X4
#include "common/weights.wgsl"

#include "common/matmul_io.wgsl"

#if XREG
fn xload(g: u32) -> vec4<f32> {
    return xv[g];
}
#include "common/gemv_rows.wgsl"
#elif X_VEC4
// Zero past k (a last partial 32-block: dot32 walks whole units).
fn x4(m: u32, g: u32) -> vec4<f32> {
    if (4u * g >= p.k) {
        return vec4<f32>(0.0);
    }
    return xv[m * (p.k >> 2u) + g];
}
#else
fn x4(m: u32, g: u32) -> vec4<f32> {
    let base = m * p.k;
    let c = 4u * g;
    if (c + 3u < p.k) {
        return vec4<f32>(x[base + c], x[base + c + 1u], x[base + c + 2u], x[base + c + 3u]);
    }
    var r = vec4<f32>(0.0);
    for (var i = 0u; i < 4u; i++) {
        if (c + i < p.k) {
            r[i] = x[base + c + i];
        }
    }
    return r;
}
#endif

#if ROW_PER_THREAD
// CPU adapters (lavapipe, SwiftShader): SIMD lanes are invocations, so one
// invocation owns one weight row and walks all of K — no reductions, no
// barriers, and 64 rows per workgroup amortise the launch.
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let r = (wid.x + wid.y * nwg.x) * WG + lid;
    if (r >= p.rows) {
        return;
    }
    let nu = (p.k + 31u) / 32u;
    for (var m = 0u; m < p.m; m++) {
        var acc = 0.0;
        for (var u = 0u; u < nu; u++) {
            acc += dot32(r, p.k, u, m);
        }
        put(m * p.n + p.n0 + r, acc);
    }
}
#elif SUBGROUPS
// Subgroup variant: a workgroup owns p.rows_per_wg consecutive weight rows
// (one per subgroup where the subgroup size is known, else 8); each
// subgroup takes rows in turn, its lanes stride over K in groups of 4
// weights and reduce with subgroupAdd —
// no workgroup memory, no barriers. Rows of x go MMAX at a time, so this
// kernel also serves any m (CPU adapters use it for prefill).

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let sgs = subgroupAdd(1u);
    let sg = lid / sgs;
    let lane = lid % sgs;
    let rows_wg = p.rows_per_wg;
    let r0 = (wid.x + wid.y * nwg.x) * rows_wg;
#if XREG
    // Decode on GPUs (m = 1, k % 32 == 0): each subgroup takes 4
    // consecutive rows at a time (common/gemv_rows.wgsl); rows_per_wg is a
    // multiple of 4.
    let last = p.rows - 1u;
    for (var rr = 4u * sg; rr < rows_wg; rr += 4u * (WG / sgs)) {
        let r = r0 + rr;
        if (r >= p.rows) {
            break;
        }
        let rs = vec4<u32>(r, min(r + 1u, last), min(r + 2u, last), min(r + 3u, last));
        let s = subgroupAdd(rows4(rs, lane, sgs));
        if (lane == 0u) {
            for (var i = 0u; i < 4u; i++) {
                if (r + i < p.rows) {
                    put(p.n0 + r + i, s[i]);
                }
            }
        }
    }
    return;
#else
    let ng = (p.k + 3u) / 4u;
    for (var rr = sg; rr < rows_wg; rr += WG / sgs) {
        let r = r0 + rr;
        if (r >= p.rows) {
            break;
        }
        if (p.m == 1u) {
            // Decode: one row of x, whole 32-weight units per lane.
            var acc = 0.0;
            let nu = (p.k + 31u) / 32u;
            for (var u = lane; u < nu; u += sgs) {
                acc += dot32(r, p.k, u, 0u);
            }
            let s = subgroupAdd(acc);
            if (lane == 0u) {
                put(p.n0 + r, s);
            }
            continue;
        }
        for (var m0 = 0u; m0 < p.m; m0 += MMAX) {
            let mc = min(MMAX, p.m - m0);
            var acc: array<f32, MMAX>;
            for (var g = lane; g < ng; g += sgs) {
                let w = w4(r, p.k, g);
                for (var m = 0u; m < mc; m++) {
                    acc[m] += dot(w, x4(m0 + m, g));
                }
            }
            for (var m = 0u; m < mc; m++) {
                let s = subgroupAdd(acc[m]);
                if (lane == 0u) {
                    put((m0 + m) * p.n + p.n0 + r, s);
                }
            }
        }
    }
#endif
}
#else
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let r = wid.x + wid.y * nwg.x;
    if (r >= p.rows) {
        return;
    }
    var acc: array<f32, MMAX>;
    let ng = (p.k + 3u) / 4u;
    for (var g = lid; g < ng; g += WG) {
        let w = w4(r, p.k, g);
        for (var m = 0u; m < p.m; m++) {
            acc[m] += dot(w, x4(m, g));
        }
    }
    for (var m = 0u; m < MMAX; m++) {
        if (m < p.m) {
            let s = wg_sum(acc[m], lid);
            if (lid == 0u) {
                put(m * p.n + p.n0 + r, s);
            }
        }
    }
}
#endif
