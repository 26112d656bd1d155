// conv2d.wgsl — NHWC 2-D convolution as an implicit GEMM with fused bias and
// residual (ops/conv2d.rs). y[p, co] = Σ_k im2col(x)[p, k] · W[co, k] + bias[co]
// (+ res[p, co]) over output pixels p = (b, oy, ox) and k = (ky, kx, ci).
// Bindings: 0 params, 1 W: array<u32> (rows n0..n0+rows, any W_<DTYPE>),
// 2 x: array<f32> [B, H, W, Cin], 3 y: array<f32> [B, OH, OW, Cout],
// 4 bias: array<f32> [Cout], 5 res: array<f32> [B, OH, OW, Cout] (x when absent).
// Entry `main` (GPUs): (ceil(rows/32), ceil(m/32)) workgroups of 16×16,
// m = B·OH·OW; each thread computes a 2×2 block of a 32×32 output tile; K
// advances 32 at a time with the weight tile dequantized and the x tile
// gathered (im2col on the fly, zero padding) into workgroup memory.
// Entry `big` (common/gemm_big.wgsl): GPUs, Cin % 4 == 0, large tiles;
// with SPLITK, slab wid.z of K into `part` and `splitk_sum` adds the slabs.
// Entry `lanes` (common/conv2d_lanes.wgsl): CPU adapters, weights of one
// element per slot. Entry `direct` (CPU adapters, block-quantized weights:
// lavapipe, SwiftShader, where barriers are
// expensive and invocations are SIMD lanes): (ceil(rows/8), ceil(m/256))
// workgroups of 64; each invocation computes 8 output channels of 4
// consecutive pixels (32 accumulators) with no workgroup memory; the weight
// loads are uniform across lanes and each is used for 4 pixels. f32 accumulation (MATMUL tolerance
// in the parity registry).

const T: u32 = 32u;

struct Params {
    m: u32,
    n: u32,       // Cout
    k: u32,       // kh·kw·Cin
    n0: u32,      // first weight row of this chunk
    rows: u32,    // weight rows in this chunk
    has_res: u32,
    h: u32,
    w: u32,
    cin: u32,
    oh: u32,
    ow: u32,
    kh: u32,
    kw: u32,
    stride: u32,
    pad: u32,
    splits: u32,  // big: K slabs (wid.z), summed by splitk_sum when > 1
    kslab: u32,   // big: K per slab (a multiple of 16)
    npg: u32,     // lanes: pixel groups of 4, rounded up to a multiple of 16
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> W: array<u32>;
#if BIG
@group(0) @binding(2) var<storage, read> x: array<vec4<f32>>;
#else
@group(0) @binding(2) var<storage, read> x: array<f32>;
#endif
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<storage, read> bias: array<f32>;
@group(0) @binding(5) var<storage, read> res: array<f32>;
#if SPLITK
// [splits][m][rows] partial sums (no bias) of the K slabs.
@group(0) @binding(6) var<storage, read_write> part: array<f32>;
#endif

#include "common/weights.wgsl"

// Elements i .. i + 4 of x (i a multiple of 4).
#if BIG
fn x_vec4(i: u32) -> vec4<f32> {
    return x[i / 4u];
}
#else
fn x_vec4(i: u32) -> vec4<f32> {
    return vec4<f32>(x[i], x[i + 1u], x[i + 2u], x[i + 3u]);
}
#endif
#include "common/conv2d_gather.wgsl"

#if !BIG
// im2col(x)[pixel, kk] for the pixel's (b, oy, ox) base; zero outside.
fn gather(b: u32, oy: u32, ox: u32, kk: u32) -> f32 {
    let ci = kk % p.cin;
    let t = kk / p.cin;
    let iy = i32(oy * p.stride + t / p.kw) - i32(p.pad);
    let ix = i32(ox * p.stride + t % p.kw) - i32(p.pad);
    if (iy < 0 || ix < 0 || iy >= i32(p.h) || ix >= i32(p.w)) {
        return 0.0;
    }
    return x[((b * p.h + u32(iy)) * p.w + u32(ix)) * p.cin + ci];
}

// Group g of 4 along K of output pixel xm's im2col row (zeros past m and k):
// one tap's 4 channels when Cin % 4 == 0.
fn x_group(xm: u32, g: u32) -> vec4<f32> {
    if (p.cin % 4u == 0u) {
        return im_load(im_pixel(xm), im_cur(4u * g));
    }
    var xv = vec4<f32>(0.0);
    if (xm < p.m) {
        let pix = xm % (p.oh * p.ow);
        let b = xm / (p.oh * p.ow);
        for (var i = 0u; i < 4u; i++) {
            let kk = 4u * g + i;
            if (kk < p.k) {
                xv[i] = gather(b, pix / p.ow, pix % p.ow, kk);
            }
        }
    }
    return xv;
}

#endif

// y[m, n0 + r] = v + bias (+ res).
fn gemm_put(m: u32, r: u32, v: f32) {
    let o = m * p.n + p.n0 + r;
    var s = v + bias[p.n0 + r];
    if (p.has_res != 0u) {
        s += res[o];
    }
    y[o] = s;
}

#if BIG
// gemm_big's addend: the bias ((acc + bias) + residual, gemm_put's order).
fn big_add(m: u32, r: u32, acc: vec4<f32>) -> vec4<f32> {
    var v = vec4<f32>(0.0);
    for (var j = 0u; j < 4u; j++) {
        if (r + j < p.rows) {
            v[j] = bias[p.n0 + r + j];
        }
    }
    return acc + v;
}

#include "common/gemm_big.wgsl"
#elif LANES
#include "common/conv2d_lanes.wgsl"
#else
#if TILE64
// GPUs, large m and Cout: 64×64 tiles, 4×4 per thread, K by 16.
#include "common/gemm64.wgsl"
#else
#include "common/tile32.wgsl"

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid3: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let r0 = wid.x * T;
    let m0 = wid.y * T;
    let lr = lid / 8u;        // tile row loaded by this thread
    let lg = lid % 8u;        // group of 4 along K loaded by this thread
    // Cin % 4 == 0: the pixel once, a cursor along K (no division per slice).
    let vec = p.cin % 4u == 0u;
    let px = im_pixel(m0 + lr);
    var cur = im_cur(4u * lg);
    var acc = vec4<f32>(0.0);
    for (var k0 = 0u; k0 < p.k; k0 += T) {
        let g = k0 / 4u + lg;
        var xv: vec4<f32>;
        if (vec) {
            xv = im_load(px, cur);
            cur = im_next(cur, T);
        } else {
            xv = x_group(m0 + lr, g);
        }
        var wv = vec4<f32>(0.0);
        if (r0 + lr < p.rows && 4u * g < p.k) {
            wv = w4(r0 + lr, p.k, g);
        }
        tile_store(lr, lg, xv, wv);
        workgroupBarrier();
        acc = tile_mac(lid3.y * 2u, lid3.x * 2u, acc);
        workgroupBarrier();
    }
    for (var i = 0u; i < 2u; i++) {
        for (var j = 0u; j < 2u; j++) {
            let m = m0 + lid3.y * 2u + i;
            let r = r0 + lid3.x * 2u + j;
            if (m < p.m && r < p.rows) {
                gemm_put(m, r, acc[i * 2u + j]);
            }
        }
    }
}
#endif

const NB: u32 = 8u;  // output channels per invocation (direct)
const PB: u32 = 4u;  // output pixels per invocation (direct)

@compute @workgroup_size(64)
fn direct(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let r0 = wid.x * NB;
    let m0 = (wid.y * 64u + lid) * PB;
    if (m0 >= p.m) {
        return;
    }
    let nr = min(NB, p.rows - r0);
    // Per pixel q: its sample's base row, oy·stride − pad, ox·stride − pad.
    var pb: array<u32, PB>;
    var py: array<i32, PB>;
    var px: array<i32, PB>;
    for (var q = 0u; q < PB; q++) {
        let m = min(m0 + q, p.m - 1u);
        let pix = m % (p.oh * p.ow);
        pb[q] = (m / (p.oh * p.ow)) * p.h;
        py[q] = i32((pix / p.ow) * p.stride) - i32(p.pad);
        px[q] = i32((pix % p.ow) * p.stride) - i32(p.pad);
    }
    var acc: array<vec4<f32>, NB>;  // acc[j][q]: channel r0 + j, pixel m0 + q
    for (var j = 0u; j < NB; j++) {
        acc[j] = vec4<f32>(0.0);
    }
    let vec_ci = p.cin % 4u == 0u;
    for (var t = 0u; t < p.kh * p.kw; t++) {
        let ky = i32(t / p.kw);
        let kx = i32(t % p.kw);
        var xb: array<u32, PB>;
        var inside: array<bool, PB>;
        for (var q = 0u; q < PB; q++) {
            let iy = py[q] + ky;
            let ix = px[q] + kx;
            inside[q] = iy >= 0 && ix >= 0 && iy < i32(p.h) && ix < i32(p.w);
            xb[q] = select(0u, ((pb[q] + u32(iy)) * p.w + u32(ix)) * p.cin, inside[q]);
        }
        let kb = t * p.cin;
        let step = select(1u, 4u, vec_ci);
        for (var ci = 0u; ci < p.cin; ci += step) {
            // xv[q]: 4 input channels (or 1, zero-padded) of pixel q.
            var xv: array<vec4<f32>, PB>;
            for (var q = 0u; q < PB; q++) {
                var v = vec4<f32>(0.0);
                if (inside[q]) {
                    if (vec_ci) {
                        v = vec4<f32>(x[xb[q] + ci], x[xb[q] + ci + 1u], x[xb[q] + ci + 2u], x[xb[q] + ci + 3u]);
                    } else {
                        v.x = x[xb[q] + ci];
                    }
                }
                xv[q] = v;
            }
            let kk = kb + ci;
            for (var j = 0u; j < NB; j++) {
                if (j < nr) {
                    var w = w4(r0 + j, p.k, kk / 4u);
                    if (!vec_ci) {
                        w = vec4<f32>(w[kk % 4u], 0.0, 0.0, 0.0);
                    }
                    acc[j] += vec4<f32>(dot(xv[0], w), dot(xv[1], w), dot(xv[2], w), dot(xv[3], w));
                }
            }
        }
    }
    for (var j = 0u; j < NB; j++) {
        if (j < nr) {
            for (var q = 0u; q < PB; q++) {
                let m = m0 + q;
                if (m < p.m) {
                    let o = m * p.n + p.n0 + r0 + j;
                    var v = acc[j][q] + bias[p.n0 + r0 + j];
                    if (p.has_res != 0u) {
                        v += res[o];
                    }
                    y[o] = v;
                }
            }
        }
    }
}
#endif
