// rope.cu — rotary position embedding, the twin of shaders/rope.wgsl
// (ops/rope.rs). Params: t, h, d, n_rot, neox, pos_sym, base, scaled, factor,
// low, high, orig_ctx, has_factors, period, inverse, col0, ld (x rows of ld
// values, head 0 at column col0). Bindings: 0 x [t, h, d], 1 y, 2 syms,
// 3 factors [n_rot/2] (x itself when has_factors = 0). One thread per pair,
// 256 per block. θ_j and the angle are f32 products (as HF and the oracle);
// CUDA's sinf/cosf reduce any argument exactly, so no manual range reduction.
#include "common.cuh"

__device__ float inv_freq(const Params& p, u32 j) {
    float inv = 1.0f / powf(PF(6), (float)(2u * j) / (float)p.w[3]);
    if (p.w[7] == 0u) return inv;
    float factor = PF(8), low = PF(9), high = PF(10);
    float old = (float)p.w[11];
    float low_wl = old / low, high_wl = old / high;
    float wl = 6.2831855f / inv;
    if (wl < high_wl) return inv;
    if (wl > low_wl) return inv / factor;
    float blend = (old / wl - low) / (high - low);
    return (1.0f - blend) * inv / factor + blend * inv;
}

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
    float inv = inv_freq(p, j);
    if (p.w[12] != 0u) inv = inv / BUF(const float, 3)[j];
    float angle = pos * inv;
    float s, c;
    sincosf(angle, &s, &c);
    if (p.w[14] != 0u) s = -s;
    float x0 = x[xb + a], x1 = x[xb + bb];
    y[base + a] = x0 * c - x1 * s;
    y[base + bb] = x0 * s + x1 * c;
}
