// rope.cu — rotary position embedding, the twin of shaders/rope.wgsl
// (ops/rope.rs). Params: t, h, d, n_rot, neox, pos_sym, base, scaled, factor,
// low, high, orig_ctx, has_factors, period, inverse, col0, ld (x rows of ld
// values, head 0 at column col0). Bindings: 0 x [t, h, d], 1 y, 2 syms,
// 3 factors [n_rot/2] (x itself when has_factors = 0). One thread per pair,
// 256 per block.
// rope_cache_{f32,f16}: the same rotation written into a KV cache y
// [h, cap, d] (in place) at rows pos..pos+t; params as rope plus cap (w[17]);
// one thread per two adjacent outputs. θ_j and the angle are f32 products (as HF and the oracle);
// CUDA's sinf/cosf reduce any argument exactly, so no manual range reduction.
#include "common.cuh"
#include "rope.cuh"

extern "C" __global__ void rope(Params p, Ptrs b) {
    const u32 t = p.w[0], h = p.w[1], d = p.w[2], n_rot = p.w[3];
    const float* x = BUF(const float, 0);
    float* y = BUF(float, 1);
    u32 q = wg_index() * 256u + threadIdx.x;
    u32 half_d = d / 2u;
    if (q >= t * h * half_d) return;
    u32 j = q % half_d, row = q / half_d, ti = row / h;
    u64 base = (u64)row * d;
    u64 xb = (u64)ti * p.w[16] + p.w[15] + (u64)(row % h) * d;
    u32 half_rot = n_rot / 2u;
    if (j >= half_rot) {
        y[base + 2u * j] = x[xb + 2u * j];
        y[base + 2u * j + 1u] = x[xb + 2u * j + 1u];
        return;
    }
    u64 a = 2u * j, bb = a + 1u;
    if (p.w[4] != 0u) {
        a = j;
        bb = a + half_rot;
    }
    u32 tp = p.w[13] != 0u ? ti % p.w[13] : ti;
    float pos = (float)(BUF(const u32, 2)[p.w[5]] + tp);
    float inv = rope_inv_freq(p, j, 0);
    if (p.w[12] != 0u) inv = inv / BUF(const float, 3)[j];
    float angle = pos * inv;
    float s, c;
    sincosf(angle, &s, &c);
    if (p.w[14] != 0u) s = -s;
    float x0 = x[xb + a], x1 = x[xb + bb];
    y[base + a] = x0 * c - x1 * s;
    y[base + bb] = x0 * s + x1 * c;
}

template <bool F16>
__device__ void rope_cache(const Params& p, const Ptrs& b) {
    const u32 t = p.w[0], h = p.w[1], d = p.w[2], cap = p.w[17];
    u32 e = 2u * (wg_index() * 256u + threadIdx.x);
    if (e >= t * h * d) return;
    u32 c = e % d, hh = (e / d) % h, ti = e / (d * h);
    u32 p0 = BUF(const u32, 2)[p.w[5]];
    float pos = (float)(p0 + ti);
    u64 xb = (u64)ti * p.w[16] + p.w[15] + (u64)hh * d;
    const float* x = BUF(const float, 0);
    const float* fac = BUF(const float, 3);
    float y0 = rope_rotated(p, x, fac, xb, c, pos, 0), y1 = rope_rotated(p, x, fac, xb, c + 1u, pos, 0);
    u64 o = ((u64)hh * cap + p0 + ti) * d + c;
    if (F16) {
        u16* y = BUF(u16, 1);
        y[o] = f2h(y0);
        y[o + 1u] = f2h(y1);
    } else {
        float* y = BUF(float, 1);
        y[o] = y0;
        y[o + 1u] = y1;
    }
}

extern "C" __global__ void rope_cache_f32(Params p, Ptrs b) { rope_cache<false>(p, b); }
extern "C" __global__ void rope_cache_f16(Params p, Ptrs b) { rope_cache<true>(p, b); }
