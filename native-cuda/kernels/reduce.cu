// reduce.cu — per-row softmax and argmax over the last dimension, the twin of
// shaders/reduce.wgsl (ops/reduce.rs). Params: cols, rows, scale.
// Bindings: 0 x [rows, cols] f32, 1 y (softmax f32 [rows, cols] / argmax u32
// [rows]). One block of 256 per row; long rows split (argmax_part/_combine).
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

// The largest (value, index) pair of the block into bv_s[0] / bi_s[0] (ties
// to the lower index; index 0xffffffff: none).
__device__ void arg_reduce(float bv, u32 bi, float* bv_s, u32* bi_s) {
    const u32 lid = threadIdx.x;
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
}

// Largest x[i] for i in [i0, i1), lid's stride.
__device__ void arg_scan(const float* x, u32 i0, u32 i1, float* bv_s, u32* bi_s) {
    float bv = -3.0e38f;
    u32 bi = 0xffffffffu;
    for (u32 i = i0 + threadIdx.x; i < i1; i += 256u) {
        float v = x[i];
        if (v > bv) {
            bv = v;
            bi = i;
        }
    }
    arg_reduce(bv, bi, bv_s, bi_s);
}

// The first index of the largest value (ties to the lower index).
extern "C" __global__ void argmax(Params p, Ptrs b) {
    __shared__ float bv_s[256];
    __shared__ u32 bi_s[256];
    const u32 cols = p.w[0], rows = p.w[1];
    u32 row = wg_index();
    if (row >= rows) return;
    arg_scan(BUF(const float, 0) + (u64)row * cols, 0u, cols, bv_s, bi_s);
    if (threadIdx.x == 0u) BUF(u32, 1)[row] = bi_s[0] == 0xffffffffu ? 0u : bi_s[0];
}

// Long rows (params cols, rows, ns): chunk blockIdx.y of row blockIdx.x into
// scratch pairs (value bits, index) [rows, ns, 2]; argmax_combine keeps the
// best pair of each row (as the WGSL twin).
extern "C" __global__ void argmax_part(Params p, Ptrs b) {
    __shared__ float bv_s[256];
    __shared__ u32 bi_s[256];
    const u32 cols = p.w[0], ns = p.w[2];
    u32 row = blockIdx.x, s = blockIdx.y;
    u32 len = (cols + ns - 1u) / ns, i0 = min(s * len, cols);
    arg_scan(BUF(const float, 0) + (u64)row * cols, i0, min(i0 + len, cols), bv_s, bi_s);
    if (threadIdx.x == 0u) {
        u32* part = BUF(u32, 1) + ((u64)row * ns + s) * 2u;
        part[0] = __float_as_uint(bv_s[0]);
        part[1] = bi_s[0];
    }
}

extern "C" __global__ void argmax_combine(Params p, Ptrs b) {
    __shared__ float bv_s[256];
    __shared__ u32 bi_s[256];
    const u32 rows = p.w[1], ns = p.w[2];
    u32 row = wg_index();
    if (row >= rows) return;
    const u32* part = BUF(const u32, 0) + (u64)row * ns * 2u;
    float bv = -3.0e38f;
    u32 bi = 0xffffffffu;
    if (threadIdx.x < ns) {
        bv = __uint_as_float(part[2u * threadIdx.x]);
        bi = part[2u * threadIdx.x + 1u];
    }
    arg_reduce(bv, bi, bv_s, bi_s);
    if (threadIdx.x == 0u) BUF(u32, 1)[row] = bi_s[0] == 0xffffffffu ? 0u : bi_s[0];
}
