// group_norm.cu — group norm over NHWC activations with optional scale-shift
// and SiLU, the twin of shaders/group_norm.wgsl (ops/group_norm.rs).
// Params: n (pixels per sample), c, groups, batch, eps, silu, has_ss, chunks,
// chunk_len. Bindings: 0 x [B, N, C], 1 gamma [C], 2 beta [C], 3 ss [B, 2C]
// (x when absent), 4 y, 5 part (the split kernels' partial sums). One block
// of 256 per (sample, group) — or per (sample, group, chunk) for the split
// passes group_norm_sum / _sq / _apply; two-pass f32 sums.
#include "common.cuh"

enum { GN_ALL = 0, GN_SUM = 1, GN_SQ = 2, GN_APPLY = 3 };

template <int PASS>
__device__ void group_norm_pass(const Params& p, const Ptrs& b) {
    const u32 n = p.w[0], c = p.w[1], groups = p.w[2], batch = p.w[3];
    const u32 chunks = p.w[7], len = p.w[8];
    const u32 id = wg_index();
    if (id >= batch * groups * chunks) return;
    const u32 bg = id / chunks, s_ = bg / groups, g = bg % groups, cg = c / groups;
    const u32 count = n * cg;
    const u32 lo = (id % chunks) * len, hi = min(count, lo + len);
    const float* x = BUF(const float, 0);
    const float* gamma = BUF(const float, 1);
    const float* beta = BUF(const float, 2);
    const float* ss = BUF(const float, 3);
    float* y = BUF(float, 4);
    float* part = BUF(float, 5);
    const u64 base = (u64)s_ * n * c + (u64)g * cg;
    auto at = [&](u32 e) { return base + (u64)(e / cg) * c + e % cg; };
    auto total = [&](u32 which) {
        float t = 0.0f;
        for (u32 i = 0; i < chunks; i++) t += part[2u * ((u64)bg * chunks + i) + which];
        return t;
    };
    float mean = 0.0f, inv = 0.0f;
    if (PASS == GN_SUM || PASS == GN_ALL) {
        float s = 0.0f;
        for (u32 e = lo + threadIdx.x; e < hi; e += 256u) s += x[at(e)];
        s = block_sum<256>(s);
        if (PASS == GN_SUM) {
            if (threadIdx.x == 0u) part[2u * (u64)id] = s;
            return;
        }
        mean = s / (float)count;
    } else {
        mean = total(0u) / (float)count;
    }
    if (PASS == GN_SQ || PASS == GN_ALL) {
        float sq = 0.0f;
        for (u32 e = lo + threadIdx.x; e < hi; e += 256u) {
            float d = x[at(e)] - mean;
            sq += d * d;
        }
        sq = block_sum<256>(sq);
        if (PASS == GN_SQ) {
            if (threadIdx.x == 0u) part[2u * (u64)id + 1u] = sq;
            return;
        }
        inv = 1.0f / sqrtf(sq / (float)count + PF(4));
    } else {
        inv = 1.0f / sqrtf(total(1u) / (float)count + PF(4));
    }
    for (u32 e = lo + threadIdx.x; e < hi; e += 256u) {
        u64 i = at(e);
        u32 ch = g * cg + e % cg;
        float v = (x[i] - mean) * inv * gamma[ch] + beta[ch];
        if (p.w[6] != 0u) v = v * (1.0f + ss[(u64)s_ * 2u * c + ch]) + ss[(u64)s_ * 2u * c + c + ch];
        if (p.w[5] != 0u) v = v / (1.0f + expf(-v));
        y[i] = v;
    }
}

extern "C" __global__ void group_norm(Params p, Ptrs b) { group_norm_pass<GN_ALL>(p, b); }
extern "C" __global__ void group_norm_sum(Params p, Ptrs b) { group_norm_pass<GN_SUM>(p, b); }
extern "C" __global__ void group_norm_sq(Params p, Ptrs b) { group_norm_pass<GN_SQ>(p, b); }
extern "C" __global__ void group_norm_apply(Params p, Ptrs b) { group_norm_pass<GN_APPLY>(p, b); }
