// spatial_attention_lanes.wgsl — spatial_attention.wgsl's math for CPU
// adapters (lavapipe, SwiftShader), as three GEMM-like passes over a stored
// score matrix (ops/spatial_attention.rs, `lanes`): a software rasterizer
// runs invocations as SIMD lanes, so the online-softmax kernel's per-query
// private arrays (dynamically indexed: memory, not registers) and its
// workgroup staging are what cost there. Layout params as in
// spatial_attention.wgsl.
//   scores:  s[bh, i, j] = scale · q_i · k_j. An invocation: 4 queries × 8
//            keys of one (sample, head), 8 named vec4 accumulators, one
//            head dim per step; with SUBGROUPS the 8 keys' values are loaded
//            once per subgroup and broadcast (common/conv2d_lanes.wgsl's
//            scheme). Bindings 1 q, 2 kv, 3 s (scratch).
//   softmax: each row of s in place (max, exp, sum, scale), an invocation
//            per row. Binding 1 s.
//   pv:      y[b, i, h·d + e] = Σ_j s[bh, i, j] v_j[e]: 4 queries × 8 dims per
//            invocation, one key per step. Bindings 1 s, 2 kv, 3 y.
// Invocation idx of scores / pv: query group idx % npg (npg = ceil(t/4)
// rounded up to a multiple of 16, or 64: a subgroup shares the rest), then
// the block of 8 keys / dims, then (sample, head). Dispatched by ops::grid
// in workgroups of 64.

struct Params {
    t: u32,        // queries per sample
    c: u32,
    heads: u32,
    d: u32,
    tk: u32,       // keys per sample
    scale: f32,
    batch: u32,
    npg: u32,
    q_rs: u32,
    q_b: u32,
    q_hs: u32,
    k_rs: u32,
    k_b: u32,
    v_b: u32,
    k_hs: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
#if SOFTMAX
@group(0) @binding(1) var<storage, read_write> s: array<f32>;
#elif PV
@group(0) @binding(1) var<storage, read> s: array<f32>;
@group(0) @binding(2) var<storage, read> kv: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
#else
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> kv: array<f32>;
@group(0) @binding(3) var<storage, read_write> s: array<f32>;
#endif

#if SUBGROUPS
#include "common/broadcast.wgsl"
#endif

#if SOFTMAX
@compute @workgroup_size(64)
fn softmax(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
    let row = (wid.x + wid.y * nwg.x) * 64u + lid;
    if (row >= p.batch * p.heads * p.t) {
        return;
    }
    let o = row * p.tk;
    var m = -3.0e38;
    for (var j = 0u; j < p.tk; j++) {
        m = max(m, s[o + j]);
    }
    var l = 0.0;
    for (var j = 0u; j < p.tk; j++) {
        let e = exp(s[o + j] - m);
        s[o + j] = e;
        l += e;
    }
    let r = 1.0 / l;
    for (var j = 0u; j < p.tk; j++) {
        s[o + j] *= r;
    }
}
#else

// (sample·heads + head, first query, first key/dim of the block, whether
// the invocation stores) of invocation idx over `blocks` blocks of 8.
struct Job {
    bh: u32,
    i0: u32,
    c0: u32,
    mine: bool,
}

fn job(idx: u32, blocks: u32) -> Job {
    let i0 = (idx % p.npg) * 4u;
    let rest = idx / p.npg;
    let bhs = p.batch * p.heads;
    let bh = rest / blocks;
    // Past the end: the last block again (computed, not stored), so every
    // lane of a subgroup runs the loop.
    return Job(min(bh, bhs - 1u), min(i0, p.t - 1u), (rest % blocks) * 8u, i0 < p.t && bh < bhs);
}

#if SUBGROUPS
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32,
        @builtin(subgroup_invocation_id) sl: u32, @builtin(subgroup_size) ss: u32) {
#else
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
#endif
    let idx = (wid.x + wid.y * nwg.x) * 64u + lid;
#if PV
    let blocks = (p.d + 7u) / 8u;
    let last = p.d - 1u;
#else
    let blocks = (p.tk + 7u) / 8u;
    let last = p.tk - 1u;
#endif
    let jb = job(idx, blocks);
    let b = jb.bh / p.heads;
    let h = jb.bh % p.heads;
    let lq = p.t - 1u;
    let i1 = min(jb.i0 + 1u, lq);
    let i2 = min(jb.i0 + 2u, lq);
    let i3 = min(jb.i0 + 3u, lq);
#if PV
    // Rows of s; the block's value columns (8 dims of head h).
    let r0 = (jb.bh * p.t + jb.i0) * p.tk;
    let r1 = (jb.bh * p.t + i1) * p.tk;
    let r2 = (jb.bh * p.t + i2) * p.tk;
    let r3 = (jb.bh * p.t + i3) * p.tk;
    let kb = b * p.tk * p.k_rs + p.v_b + h * p.k_hs;
    let n = p.tk;
    let col_stride = 1u;        // along the block: value dims
    let step_stride = p.k_rs;   // per step: the next key
#else
    // Query rows; the block's 8 keys (rows of kv).
    let r0 = (b * p.t + jb.i0) * p.q_rs + p.q_b + h * p.q_hs;
    let r1 = (b * p.t + i1) * p.q_rs + p.q_b + h * p.q_hs;
    let r2 = (b * p.t + i2) * p.q_rs + p.q_b + h * p.q_hs;
    let r3 = (b * p.t + i3) * p.q_rs + p.q_b + h * p.q_hs;
    let kb = b * p.tk * p.k_rs + p.k_b + h * p.k_hs;
    let n = p.d;
    let col_stride = p.k_rs;    // along the block: keys
    let step_stride = 1u;       // per step: the next head dim
#endif
#if SUBGROUPS
    let wide = ss >= 8u;
    let ca = kb + min(jb.c0 + select(sl % 4u, sl % 8u, wide), last) * col_stride;
    let cb = kb + min(jb.c0 + 4u + sl % 4u, last) * col_stride;
#else
    let c0 = kb + min(jb.c0, last) * col_stride;
    let c1 = kb + min(jb.c0 + 1u, last) * col_stride;
    let c2 = kb + min(jb.c0 + 2u, last) * col_stride;
    let c3 = kb + min(jb.c0 + 3u, last) * col_stride;
    let c4 = kb + min(jb.c0 + 4u, last) * col_stride;
    let c5 = kb + min(jb.c0 + 5u, last) * col_stride;
    let c6 = kb + min(jb.c0 + 6u, last) * col_stride;
    let c7 = kb + min(jb.c0 + 7u, last) * col_stride;
#endif
    // a<q>l / a<q>h: query i0 + q, block columns 0 .. 4 / 4 .. 8.
    var a0l = vec4<f32>(0.0);
    var a0h = vec4<f32>(0.0);
    var a1l = vec4<f32>(0.0);
    var a1h = vec4<f32>(0.0);
    var a2l = vec4<f32>(0.0);
    var a2h = vec4<f32>(0.0);
    var a3l = vec4<f32>(0.0);
    var a3h = vec4<f32>(0.0);
    var so = 0u;  // this step's offset along the block's columns
    for (var st = 0u; st < n; st++) {
#if SUBGROUPS
        let va = kv[ca + so];
        let wl = bcast_lo(va);
        var wh: vec4<f32>;
        if (wide) {
            wh = bcast_hi(va);
        } else {
            wh = bcast_lo(kv[cb + so]);
        }
#else
        let wl = vec4<f32>(kv[c0 + so], kv[c1 + so], kv[c2 + so], kv[c3 + so]);
        let wh = vec4<f32>(kv[c4 + so], kv[c5 + so], kv[c6 + so], kv[c7 + so]);
#endif
#if PV
        var v = s[r0 + st];
        a0l += v * wl;
        a0h += v * wh;
        v = s[r1 + st];
        a1l += v * wl;
        a1h += v * wh;
        v = s[r2 + st];
        a2l += v * wl;
        a2h += v * wh;
        v = s[r3 + st];
#else
        var v = q[r0 + st];
        a0l += v * wl;
        a0h += v * wh;
        v = q[r1 + st];
        a1l += v * wl;
        a1h += v * wh;
        v = q[r2 + st];
        a2l += v * wl;
        a2h += v * wh;
        v = q[r3 + st];
#endif
        a3l += v * wl;
        a3h += v * wh;
        so += step_stride;
    }
    if (!jb.mine) {
        return;
    }
    put4(jb, b, h, jb.i0, a0l, a0h);
    put4(jb, b, h, jb.i0 + 1u, a1l, a1h);
    put4(jb, b, h, jb.i0 + 2u, a2l, a2h);
    put4(jb, b, h, jb.i0 + 3u, a3l, a3h);
}

// Query i's 8 block columns (those in range).
fn put4(jb: Job, b: u32, h: u32, i: u32, lo: vec4<f32>, hi: vec4<f32>) {
    if (i >= p.t) {
        return;
    }
    for (var j = 0u; j < 8u; j++) {
        let cc = jb.c0 + j;
        let v = select(hi[j % 4u], lo[j % 4u], j < 4u);
#if PV
        if (cc < p.d) {
            y[(b * p.t + i) * p.c + h * p.d + cc] = v;
        }
#else
        if (cc < p.tk) {
            s[(jb.bh * p.t + i) * p.tk + cc] = v * p.scale;
        }
#endif
    }
}
#endif
