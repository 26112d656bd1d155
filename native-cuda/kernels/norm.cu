// norm.cu — RMSNorm / LayerNorm over the last dimension, the twin of
// shaders/norm.wgsl (ops/norm.rs). Params: cols, rows, eps, kind (0 rms,
// 1 layer), has_w, has_b. Bindings: 0 x, 1 w, 2 b (x itself when absent), 3 y.
// One block of 256 per row; f32 accumulation, warp-shuffle reductions.
#include "common.cuh"

extern "C" __global__ void norm_rows(Params p, Ptrs b) {
    const u32 cols = p.w[0], rows = p.w[1];
    u32 row = wg_index();
    if (row >= rows) return;
    const float* x = BUF(const float, 0) + (u64)row * cols;
    const float* w = BUF(const float, 1);
    const float* bias = BUF(const float, 2);
    float* y = BUF(float, 3) + (u64)row * cols;
    float mean = 0.0f;
    if (p.w[3] == 1u) {
        float s = 0.0f;
        for (u32 i = threadIdx.x; i < cols; i += 256u) s += x[i];
        mean = block_sum<256>(s) / (float)cols;
    }
    float ss = 0.0f;
    for (u32 i = threadIdx.x; i < cols; i += 256u) {
        float d = x[i] - mean;
        ss += d * d;
    }
    float inv = 1.0f / sqrtf(block_sum<256>(ss) / (float)cols + PF(2));
    for (u32 i = threadIdx.x; i < cols; i += 256u) {
        float v = (x[i] - mean) * inv;
        if (p.w[4] != 0u) v *= w[i];
        if (p.w[5] != 0u) v += bias[i];
        y[i] = v;
    }
}
