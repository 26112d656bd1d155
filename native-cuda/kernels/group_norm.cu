// group_norm.cu — group norm over NHWC activations with optional scale-shift
// and SiLU, the twin of shaders/group_norm.wgsl (ops/group_norm.rs).
// Params: n (pixels per sample), c, groups, batch, eps, silu, has_ss.
// Bindings: 0 x [B, N, C], 1 gamma [C], 2 beta [C], 3 ss [B, 2C] (x when
// absent), 4 y. One block of 256 per (sample, group); two-pass f32 sums.
#include "common.cuh"

extern "C" __global__ void group_norm(Params p, Ptrs b) {
    const u32 n = p.w[0], c = p.w[1], groups = p.w[2], batch = p.w[3];
    u32 id = wg_index();
    if (id >= batch * groups) return;
    const u32 s_ = id / groups, g = id % groups, cg = c / groups, count = n * cg;
    const float* x = BUF(const float, 0);
    const float* gamma = BUF(const float, 1);
    const float* beta = BUF(const float, 2);
    const float* ss = BUF(const float, 3);
    float* y = BUF(float, 4);
    const u64 base = (u64)s_ * n * c + (u64)g * cg;
    float s = 0.0f;
    for (u32 e = threadIdx.x; e < count; e += 256u) s += x[base + (u64)(e / cg) * c + e % cg];
    const float mean = block_sum<256>(s) / (float)count;
    float sq = 0.0f;
    for (u32 e = threadIdx.x; e < count; e += 256u) {
        float d = x[base + (u64)(e / cg) * c + e % cg] - mean;
        sq += d * d;
    }
    const float inv = 1.0f / sqrtf(block_sum<256>(sq) / (float)count + PF(4));
    for (u32 e = threadIdx.x; e < count; e += 256u) {
        u64 i = base + (u64)(e / cg) * c + e % cg;
        u32 ch = g * cg + e % cg;
        float v = (x[i] - mean) * inv * gamma[ch] + beta[ch];
        if (p.w[6] != 0u) v = v * (1.0f + ss[(u64)s_ * 2u * c + ch]) + ss[(u64)s_ * 2u * c + c + ch];
        if (p.w[5] != 0u) v = v / (1.0f + expf(-v));
        y[i] = v;
    }
}
