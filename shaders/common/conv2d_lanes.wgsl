// common/conv2d_lanes.wgsl — conv2d.wgsl's `lanes` entry for CPU adapters
// (lavapipe, SwiftShader; included with LANES). A software rasterizer runs
// invocations as SIMD lanes: every storage load with a computed index is a
// per-lane gather, and a dynamically indexed private array lives in memory.
// So each invocation computes 4 consecutive pixels × 8 output channels in 8
// named vec4 accumulators (no arrays), one input channel per step (any Cin):
// 4 input loads and 8 weights per 32 multiply-adds. With SUBGROUPS the 8
// weights are loaded once per subgroup (lane l: channel l % 8, or l % 4 and
// 4 + l % 4 in subgroups of 4) and broadcast. 8 pixels per invocation were
// 1.3× faster again on SwiftShader but took its shader compiler 25 s and
// gigabytes (docs/bench/2026-12-03-chromium-terrain-cpu/). Weight types
// with one element per slot (w1: f32, f16, bf16). No barriers, no
// workgroup memory. lavapipe's loop guard: kh·kw·Cin ≤ 16,384 (ops/conv2d.rs).
// Dispatch npg·ceil(rows/8) invocations (ops::grid of workgroups of 64),
// npg = ceil(m/4) rounded up to a multiple of 16 (or 64).

const LP: u32 = 4u;  // pixels per invocation

#if SUBGROUPS
#include "common/broadcast.wgsl"
#endif

// The element offset of the pixel's tap (ky, kx) (ci 0), −1 outside.
fn tap(px: Pixel, ky: u32, kx: u32) -> i32 {
    let iy = px.iy0 + i32(ky);
    let ix = px.ix0 + i32(kx);
    let inside = iy >= 0 && ix >= 0 && iy < i32(p.h) && ix < i32(p.w);
    return select(-1, i32(px.base) + (iy * i32(p.w) + ix) * i32(p.cin), inside);
}

// x[o + ci] where the tap is inside (o ≥ 0), else 0.
fn xat(o: i32, ci: u32) -> f32 {
    let ok = o >= 0;
    return select(0.0, x[select(0u, u32(o) + ci, ok)], ok);
}

#if SUBGROUPS
@compute @workgroup_size(64)
fn lanes(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
         @builtin(local_invocation_index) lid: u32,
         @builtin(subgroup_invocation_id) sl: u32, @builtin(subgroup_size) ss: u32) {
#else
@compute @workgroup_size(64)
fn lanes(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
         @builtin(local_invocation_index) lid: u32) {
#endif
    // Invocation idx: pixel group idx % npg (4 pixels), channel block
    // idx / npg (8 channels). npg is a multiple of 16 (or 64), so a subgroup
    // shares one channel block (ops/conv2d.rs lanes_groups).
    let idx = (wid.x + wid.y * nwg.x) * 64u + lid;
    let first = (idx % p.npg) * LP;
    let blocks = (p.rows + 7u) / 8u;
    let r0 = min(idx / p.npg, blocks - 1u) * 8u;
    let mine = first < p.m && idx / p.npg < blocks;
    // Rows past the chunk repeat the last one, pixels past m the last pixel
    // (computed, not stored: every lane of a subgroup runs the loop).
    let m0 = min(first, p.m - 1u);
    let lr = p.rows - 1u;
#if SUBGROUPS
    // Lane sl loads channel r0 + sl % 8 (subgroups of 8+: all 8 in one
    // load) or r0 + sl % 4 and r0 + 4 + sl % 4 (subgroups of 4); every lane
    // gets all 8 by broadcast.
    let wide = ss >= 8u;
    let wa = min(r0 + select(sl % 4u, sl % 8u, wide), lr) * p.k;
    let wb = min(r0 + 4u + sl % 4u, lr) * p.k;
#else
    let w0 = min(r0, lr) * p.k;
    let w1_ = min(r0 + 1u, lr) * p.k;
    let w2 = min(r0 + 2u, lr) * p.k;
    let w3 = min(r0 + 3u, lr) * p.k;
    let w4_ = min(r0 + 4u, lr) * p.k;
    let w5 = min(r0 + 5u, lr) * p.k;
    let w6 = min(r0 + 6u, lr) * p.k;
    let w7 = min(r0 + 7u, lr) * p.k;
#endif
    let lm = p.m - 1u;
    let q0 = im_pixel(m0);
    let q1 = im_pixel(min(m0 + 1u, lm));
    let q2 = im_pixel(min(m0 + 2u, lm));
    let q3 = im_pixel(min(m0 + 3u, lm));
    // a<q>l / a<q>h: pixel m0 + q, channels r0 .. +4 / r0 + 4 .. +8.
    var a0l = vec4<f32>(0.0);
    var a0h = vec4<f32>(0.0);
    var a1l = vec4<f32>(0.0);
    var a1h = vec4<f32>(0.0);
    var a2l = vec4<f32>(0.0);
    var a2h = vec4<f32>(0.0);
    var a3l = vec4<f32>(0.0);
    var a3h = vec4<f32>(0.0);
    var kt = 0u;
    for (var ky = 0u; ky < p.kh; ky++) {
        for (var kx = 0u; kx < p.kw; kx++) {
            let o0 = tap(q0, ky, kx);
            let o1 = tap(q1, ky, kx);
            let o2 = tap(q2, ky, kx);
            let o3 = tap(q3, ky, kx);
            for (var ci = 0u; ci < p.cin; ci++) {
#if SUBGROUPS
                let va = w1(wa + kt);
                let wl = bcast_lo(va);
                var wh: vec4<f32>;
                if (wide) {
                    wh = bcast_hi(va);
                } else {
                    wh = bcast_lo(w1(wb + kt));
                }
#else
                let wl = vec4<f32>(w1(w0 + kt), w1(w1_ + kt), w1(w2 + kt), w1(w3 + kt));
                let wh = vec4<f32>(w1(w4_ + kt), w1(w5 + kt), w1(w6 + kt), w1(w7 + kt));
#endif
                var v = xat(o0, ci);
                a0l += v * wl;
                a0h += v * wh;
                v = xat(o1, ci);
                a1l += v * wl;
                a1h += v * wh;
                v = xat(o2, ci);
                a2l += v * wl;
                a2h += v * wh;
                v = xat(o3, ci);
                a3l += v * wl;
                a3h += v * wh;
                kt += 1u;
            }
        }
    }
    if (!mine) {
        return;
    }
    lanes_put(m0, r0, a0l, a0h);
    lanes_put(m0 + 1u, r0, a1l, a1h);
    lanes_put(m0 + 2u, r0, a2l, a2h);
    lanes_put(m0 + 3u, r0, a3l, a3h);
}

// Channels r .. r + 8 of pixel m (those in range).
fn lanes_put(m: u32, r: u32, lo: vec4<f32>, hi: vec4<f32>) {
    if (m >= p.m) {
        return;
    }
    for (var j = 0u; j < 4u; j++) {
        if (r + j < p.rows) {
            gemm_put(m, r + j, lo[j]);
        }
        if (r + 4u + j < p.rows) {
            gemm_put(m, r + 4u + j, hi[j]);
        }
    }
}
