// dropout.cu — dropout with a counter-based mask, the twin of
// shaders/dropout.wgsl (ops/dropout.rs). Params: n, seed_sym, salt,
// threshold, keep. Bindings: 0 x, 1 y, 2 syms. One thread per element, 256
// per block, folded by ops::grid. The same integer hash as the WGSL, so the
// mask is the same bit for bit.
#include "common.cuh"

__device__ __forceinline__ u32 lowbias32(u32 h) {
    h ^= h >> 16;
    h *= 0x7FEB352Du;
    h ^= h >> 15;
    h *= 0x846CA68Bu;
    h ^= h >> 16;
    return h;
}

extern "C" __global__ void dropout(Params p, Ptrs b) {
    u32 i = wg_index() * 256u + threadIdx.x;
    if (i >= p.w[0]) return;
    const float* x = BUF(const float, 0);
    float* y = BUF(float, 1);
    const u32* syms = BUF(const u32, 2);
    u32 h = lowbias32(i ^ (p.w[2] * 0x9E3779B9u) ^ (syms[p.w[1]] * 0x85EBCA6Bu));
    y[i] = h < p.w[3] ? 0.0f : x[i] * PF(4);
}
