// mul_mat.wgsl — y = x · Wᵀ for many rows of x (prefill; ops/matmul.rs).
// Bindings: 0 params, 1 W: array<u32> (rows n0..n0+rows, any W_<DTYPE>),
// 2 x: array<f32> [m, k], 3 y: array<f32> [m, n], 4 res: array<f32> [m, n]
// (optional residual: y = x·Wᵀ + res).
// Dispatch: (ceil(rows/32), ceil(m/32)) workgroups of 16×16; each thread
// computes a 2×2 block of a 32×32 output tile; K advances 32 at a time with
// both tiles staged (dequantized) in workgroup memory. f32 accumulation.

// TILE64 (GPUs, m and rows ≥ 64): a 64×64 output tile, each thread a 4×4
// block, K advancing 16 at a time (common/tile64.wgsl).
// BIG (GPUs, k % 4 == 0, enough 256×32 / 128×64 / 128×32 tiles): entry `big`,
// common/gemm_big.wgsl, x read as vec4s (X_VEC4).

#include "common/weights.wgsl"

#include "common/matmul_io.wgsl"

#if BIG
// GPUs, many tiles, k % 4 == 0 (with X_VEC4): common/gemm_big.wgsl's
// 8 × 4-per-invocation double-buffered tiles. Its rows of X are x's rows.
struct Pixel {
    valid: bool,
    base: u32,
}

struct Cur {
    k: u32,
}

fn im_pixel(xm: u32) -> Pixel {
    return Pixel(xm < p.m, xm * (p.k / 4u));
}

fn im_cur(kk: u32) -> Cur {
    return Cur(kk);
}

fn im_next(c: Cur, step: u32) -> Cur {
    return Cur(c.k + step);
}

fn im_load(px: Pixel, c: Cur) -> vec4<f32> {
    if (!px.valid || c.k >= p.k) {
        return vec4<f32>(0.0);
    }
    return xv[px.base + c.k / 4u];
}

// gemm_big's addend: the LoRA term, added as put() adds it.
fn big_add(m: u32, r: u32, acc: vec4<f32>) -> vec4<f32> {
    var v = acc;
#if LORA
    if (m < p.m) {
        for (var j = 0u; j < 4u; j++) {
            if (r + j < p.rows) {
                v[j] = lora_add(m * p.n + p.n0 + r + j, acc[j]);
            }
        }
    }
#endif
    return v;
}

#include "common/gemm_big.wgsl"
#else
// Group g of 4 along K of x row xm (zeros past m and k).
fn x_group(xm: u32, g: u32) -> vec4<f32> {
    var xv = vec4<f32>(0.0);
    if (xm < p.m) {
        let c = 4u * g;
        for (var i = 0u; i < 4u; i++) {
            if (c + i < p.k) {
                xv[i] = x[xm * p.k + c + i];
            }
        }
    }
    return xv;
}

#if TILE64
fn gemm_put(m: u32, r: u32, v: f32) {
    put(m * p.n + p.n0 + r, v);
}

#include "common/gemm64.wgsl"
#else
const T: u32 = 32u;
#include "common/tile32.wgsl"

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid3: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let r0 = wid.x * T;
    let m0 = wid.y * T;
    let lr = lid / 8u;        // tile row loaded by this thread
    let lg = lid % 8u;        // group of 4 along K loaded by this thread
    var acc = vec4<f32>(0.0);
    for (var k0 = 0u; k0 < p.k; k0 += T) {
        let g = k0 / 4u + lg;
        let xv = x_group(m0 + lr, g);
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
                put(m * p.n + p.n0 + r, acc[i * 2u + j]);
            }
        }
    }
}
#endif
#endif
