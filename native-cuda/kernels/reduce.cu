// reduce.cu — per-row softmax and argmax over the last dimension, the twin of
// shaders/reduce.wgsl (ops/reduce.rs). Params: cols, rows, scale.
// Bindings: 0 x [rows, cols] f32, 1 y (softmax f32 [rows, cols] / argmax u32
// [rows]). One block of 256 per row.
#include "common.cuh"

extern "C" __global__ void softmax(Params p, Ptrs b) {
    const u32 cols = p.w[0], rows = p.w[1];
    const float scale = PF(2);
    u32 row = wg_index();
    if (row >= rows) return;
    const float* x = BUF(const float, 0) + (u64)row * cols;
    float* y = BUF(float, 1) + (u64)row * cols;
    float m = -3.0e38f;
    for (u32 i = threadIdx.x; i < cols; i += 256u) m = fmaxf(m, x[i] * scale);
    m = block_max<256>(m);
    float s = 0.0f;
    for (u32 i = threadIdx.x; i < cols; i += 256u) s += expf(x[i] * scale - m);
    float inv = 1.0f / block_sum<256>(s);
    for (u32 i = threadIdx.x; i < cols; i += 256u) y[i] = expf(x[i] * scale - m) * inv;
}

// The first index of the largest value (ties to the lower index).
extern "C" __global__ void argmax(Params p, Ptrs b) {
    __shared__ float bv_s[256];
    __shared__ u32 bi_s[256];
    const u32 cols = p.w[0], rows = p.w[1];
    u32 row = wg_index();
    if (row >= rows) return;
    const float* x = BUF(const float, 0) + (u64)row * cols;
    const u32 lid = threadIdx.x;
    float bv = -3.0e38f;
    u32 bi = 0xffffffffu;
    for (u32 i = lid; i < cols; i += 256u) {
        float v = x[i];
        if (v > bv) {
            bv = v;
            bi = i;
        }
    }
    bv_s[lid] = bv;
    bi_s[lid] = bi;
    __syncthreads();
    for (u32 s = 128u; s > 0u; s >>= 1) {
        if (lid < s) {
            float ov = bv_s[lid + s];
            u32 oi = bi_s[lid + s];
            if (ov > bv_s[lid] || (ov == bv_s[lid] && oi < bi_s[lid])) {
                bv_s[lid] = ov;
                bi_s[lid] = oi;
            }
        }
        __syncthreads();
    }
    if (lid == 0u) BUF(u32, 1)[row] = bi_s[0] == 0xffffffffu ? 0u : bi_s[0];
}
