// mul_mat_fused.wgsl — decode GEMV with a fused prologue and epilogue
// (ops/matmul_fused.rs): y = f(norm(x) · Wᵀ) (+ res), where norm is RMSNorm
// with weight nw (NORM on) and f is SwiGLU over the two halves of W (GLU on:
// y[c] = silu(x·W[c]) · x·W[c + n]).
// Bindings: 0 params, 1 W: array<u32> (any W_<DTYPE>), 2 x: array<f32> [m, k],
// 3 y: array<f32> [m, n], 4 res: array<f32> [m, n] (x when unused),
// 5 nw: array<f32> [k] (x when unused).
// XG (decode on GPUs, the default) reads x as vec4s from global memory and
// applies 1/rms to the finished sums; XS stages the normalised x in
// workgroup memory instead (KILN_GEMV_XS=1).
// Dispatch: per output column c < n: one invocation per row of x
// (ROW_PER_THREAD, CPU adapters; 64 columns per workgroup, a grid row per
// row of x), one subgroup (SUBGROUPS; p.rows_per_wg
// columns per workgroup; with XREG a subgroup takes 4 columns, or 2 with GLU,
// at a time) or one workgroup (tree reductions). The RMS of each x row is recomputed where
// it is needed (k values: cheaper than a separate dispatch).

const WG: u32 = 64u;
const MMAX: u32 = 8u;
#include "common/reduce.wgsl"
#define HAS_X4
#include "common/weights.wgsl"

struct Params {
    m: u32,
    n: u32,
    k: u32,
    has_res: u32,
    has_norm: u32,
    eps: f32,
    glu: u32,
    rows_per_wg: u32,  // SUBGROUPS: output columns per workgroup
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> W: array<u32>;
#if XG
@group(0) @binding(2) var<storage, read> x: array<vec4<f32>>;
#else
@group(0) @binding(2) var<storage, read> x: array<f32>;
#endif
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<storage, read> res: array<f32>;
#if XG
@group(0) @binding(5) var<storage, read> nw: array<vec4<f32>>;
#else
@group(0) @binding(5) var<storage, read> nw: array<f32>;
#endif

// 1/rms of x row m % MMAX (1 without NORM), set before dot products.
var<private> inv: array<f32, MMAX>;

#if XG
// Decode (m = 1, k % 32 == 0) with subgroups, x read from global memory as
// vec4s (cached; no workgroup staging, no barrier): each subgroup sums x²
// itself and the finished dot products are scaled by 1/rms (`post`); the
// norm weight multiplies x elementwise here.
fn xload(g: u32) -> vec4<f32> {
    if (p.has_norm != 0u) {
        return x[g] * nw[g];
    }
    return x[g];
}

#if XREG
#include "common/gemv_rows.wgsl"
#else
fn x4(m: u32, g: u32) -> vec4<f32> {
    return xload(g);
}
#endif

// 1/rms of x (1 without NORM), every lane of the subgroup.
fn xg_inv(lane: u32, sgs: u32) -> f32 {
    if (p.has_norm == 0u) {
        return 1.0;
    }
    var ss = 0.0;
    for (var g = lane; g < p.k / 4u; g += sgs) {
        ss += dot(x[g], x[g]);
    }
    return inv_rms(subgroupAdd(ss));
}
#elif XS
// Decode (m = 1, k % 4 == 0) with subgroups: the workgroup normalises x once
// into workgroup memory (zero-filled to the last whole 32-block) and every
// row's dot products read it there: no norm weight loads or multiplies per
// row, and x read from global memory once per workgroup.
#if XS_4K
const XS4: u32 = 1024u;
#else
const XS4: u32 = 256u;
#endif
var<workgroup> xs: array<vec4<f32>, XS4>;

fn x4(m: u32, g: u32) -> vec4<f32> {
    return xs[g];
}

fn load_xs(lid: u32) {
    let n4 = p.k / 4u;
    let nb4 = ((p.k + 31u) / 32u) * 8u;
    var ss = 0.0;
    for (var i = lid; i < nb4; i += WG) {
        var v = vec4<f32>(0.0);
        if (i < n4) {
            v = vec4<f32>(x[4u * i], x[4u * i + 1u], x[4u * i + 2u], x[4u * i + 3u]);
        }
        xs[i] = v;
        ss += dot(v, v);
    }
    let total = wg_sum(ss, lid);
    if (p.has_norm != 0u) {
        let r = inv_rms(total);
        for (var i = lid; i < n4; i += WG) {
            let w = vec4<f32>(nw[4u * i], nw[4u * i + 1u], nw[4u * i + 2u], nw[4u * i + 3u]);
            xs[i] = xs[i] * r * w;
        }
    }
    workgroupBarrier();
}
#else
fn xraw(m: u32, c: u32) -> f32 {
    if (c < p.k) {
        return x[m * p.k + c];
    }
    return 0.0;
}

fn x4(m: u32, g: u32) -> vec4<f32> {
    let c = 4u * g;
    let base = m * p.k + c;
    var v: vec4<f32>;
    if (c + 3u < p.k) {
        v = vec4<f32>(x[base], x[base + 1u], x[base + 2u], x[base + 3u]);
    } else {
        v = vec4<f32>(xraw(m, c), xraw(m, c + 1u), xraw(m, c + 2u), xraw(m, c + 3u));
    }
    if (p.has_norm == 0u) {
        return v;
    }
    var w = vec4<f32>(0.0);
    for (var i = 0u; i < 4u; i++) {
        if (c + i < p.k) {
            w[i] = nw[c + i];
        }
    }
    return v * inv[m % MMAX] * w;
}

#endif

#if !XG
// Σ x² over the elements start, start+stride, … of row m.
fn sumsq(m: u32, start: u32, stride: u32) -> f32 {
    var s = 0.0;
    for (var c = start; c < p.k; c += stride) {
        let v = x[m * p.k + c];
        s += v * v;
    }
    return s;
}
#endif

fn inv_rms(ss: f32) -> f32 {
    return inverseSqrt(ss / f32(p.k) + p.eps);
}

fn finish(m: u32, c: u32, a: f32, b: f32) {
    var v = a;
    if (p.glu != 0u) {
        v = a / (1.0 + exp(-a)) * b;
    }
    let i = m * p.n + c;
    if (p.has_res != 0u) {
        v += res[i];
    }
    y[i] = v;
}

// The second weight row a GLU output column reads.
fn row2(c: u32) -> u32 {
    return c + p.n;
}

#if ROW_PER_THREAD
// Row m = wid.y of x (one per workgroup row: long per-invocation loops over
// every row lost rows past ≈ 60k x values on Mesa 22's lavapipe).
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let c = wid.x * WG + lid;
    let m = wid.y;
    if (c >= p.n || m >= p.m) {
        return;
    }
    let nu = (p.k + 31u) / 32u;
    if (p.has_norm != 0u) {
        inv[m % MMAX] = inv_rms(sumsq(m, 0u, 1u));
    } else {
        inv[m % MMAX] = 1.0;
    }
    var a = 0.0;
    var b = 0.0;
    for (var u = 0u; u < nu; u++) {
        a += dot32(c, p.k, u, m);
    }
    if (p.glu != 0u) {
        for (var u = 0u; u < nu; u++) {
            b += dot32(row2(c), p.k, u, m);
        }
    }
    finish(m, c, a, b);
}
#elif SUBGROUPS

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let sgs = subgroupAdd(1u);
    let sg = lid / sgs;
    let lane = lid % sgs;
    // XG: 1/rms scales the finished sums (x4 leaves it out).
    var post = 1.0;
#if XS
    load_xs(lid);
#elif XG
    post = xg_inv(lane, sgs);
#else
    for (var m = 0u; m < p.m; m++) {
        inv[m] = 1.0;
        if (p.has_norm != 0u) {
            inv[m] = inv_rms(subgroupAdd(sumsq(m, lane, sgs)));
        }
    }
#endif
    let rows_wg = p.rows_per_wg;
    let c0 = (wid.x + wid.y * nwg.x) * rows_wg;
    let nu = (p.k + 31u) / 32u;
#if XREG
    // 4 rows per subgroup at a time (common/gemv_rows.wgsl): 4 output
    // columns, or with GLU 2 columns' gate and up rows; rows_per_wg (columns
    // per workgroup) is a multiple of 4 (2 with GLU) per subgroup.
    let cps = select(4u, 2u, p.glu != 0u);
    let lastc = p.n - 1u;
    for (var cc = cps * sg; cc < rows_wg; cc += cps * (WG / sgs)) {
        let c = c0 + cc;
        if (c >= p.n) {
            break;
        }
        var rs: vec4<u32>;
        if (p.glu != 0u) {
            let c1 = min(c + 1u, lastc);
            rs = vec4<u32>(c, c1, row2(c), row2(c1));
        } else {
            rs = vec4<u32>(c, min(c + 1u, lastc), min(c + 2u, lastc), min(c + 3u, lastc));
        }
        let s = subgroupAdd(rows4(rs, lane, sgs)) * post;
        if (lane == 0u) {
            if (p.glu != 0u) {
                finish(0u, c, s.x, s.z);
                if (c + 1u < p.n) {
                    finish(0u, c + 1u, s.y, s.w);
                }
            } else {
                for (var i = 0u; i < 4u; i++) {
                    if (c + i < p.n) {
                        finish(0u, c + i, s[i], 0.0);
                    }
                }
            }
        }
    }
    return;
#else
    if (p.m == 1u) {
        // Decode: scalar accumulators (no per-row arrays in local memory).
        for (var cc = sg; cc < rows_wg; cc += WG / sgs) {
            let c = c0 + cc;
            if (c >= p.n) {
                break;
            }
            var a = 0.0;
            var b = 0.0;
            if (p.glu != 0u) {
                // Gate and up rows in one pass: twice the loads in flight.
                for (var u = lane; u < nu; u += sgs) {
                    a += dot32(c, p.k, u, 0u);
                    b += dot32(row2(c), p.k, u, 0u);
                }
            } else {
                for (var u = lane; u < nu; u += sgs) {
                    a += dot32(c, p.k, u, 0u);
                }
            }
            let sa = subgroupAdd(a) * post;
            let sb = subgroupAdd(b) * post;
            if (lane == 0u) {
                finish(0u, c, sa, sb);
            }
        }
        return;
    }
    for (var cc = sg; cc < rows_wg; cc += WG / sgs) {
        let c = c0 + cc;
        if (c >= p.n) {
            break;
        }
        var a: array<f32, MMAX>;
        var b: array<f32, MMAX>;
        for (var u = lane; u < nu; u += sgs) {
            for (var m = 0u; m < p.m; m++) {
                a[m] += dot32(c, p.k, u, m);
                if (p.glu != 0u) {
                    b[m] += dot32(row2(c), p.k, u, m);
                }
            }
        }
        for (var m = 0u; m < p.m; m++) {
            let sa = subgroupAdd(a[m]);
            let sb = subgroupAdd(b[m]);
            if (lane == 0u) {
                finish(m, c, sa, sb);
            }
        }
    }
#endif
}
#else
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let c = wid.x + wid.y * nwg.x;
    if (c >= p.n) {
        return;
    }
    for (var m = 0u; m < MMAX; m++) {
        if (m < p.m) {
            inv[m] = 1.0;
            if (p.has_norm != 0u) {
                inv[m] = inv_rms(wg_sum(sumsq(m, lid, WG), lid));
            }
        }
    }
    let nu = (p.k + 31u) / 32u;
    var a: array<f32, MMAX>;
    var b: array<f32, MMAX>;
    for (var u = lid; u < nu; u += WG) {
        for (var m = 0u; m < p.m; m++) {
            a[m] += dot32(c, p.k, u, m);
            if (p.glu != 0u) {
                b[m] += dot32(row2(c), p.k, u, m);
            }
        }
    }
    for (var m = 0u; m < MMAX; m++) {
        if (m < p.m) {
            let sa = wg_sum(a[m], lid);
            let sb = wg_sum(b[m], lid);
            if (lid == 0u) {
                finish(m, c, sa, sb);
            }
        }
    }
}
#endif
