// norm_back.cu — the input gradient of RMSNorm, the twin of
// shaders/norm_back.wgsl (ops/norm_back.rs). With r = 1/sqrt(mean(x²) + eps):
//   dx_i = r·w_i·dy_i − x_i · r³/n · Σ_j w_j·dy_j·x_j.
// Params: cols, rows, eps, has_w. Bindings: 0 x [rows, cols], 1 w [cols]
// (x itself when has_w = 0), 2 dy [rows, cols], 3 dx [rows, cols].
// One block of 256 per row, folded by ops::grid; f32 accumulation,
// warp-shuffle reductions.
#include "common.cuh"

extern "C" __global__ void norm_back(Params p, Ptrs b) {
    const u32 cols = p.w[0], rows = p.w[1];
    const bool has_w = p.w[3] != 0u;
    u32 row = wg_index();
    if (row >= rows) return;
    const float* x = BUF(const float, 0) + (u64)row * cols;
    const float* w = BUF(const float, 1);
    const float* dy = BUF(const float, 2) + (u64)row * cols;
    float* dx = BUF(float, 3) + (u64)row * cols;
    float ss = 0.0f, sd = 0.0f;
    for (u32 i = threadIdx.x; i < cols; i += 256u) {
        float xv = x[i];
        float wdy = has_w ? w[i] * dy[i] : dy[i];
        ss += xv * xv;
        sd += wdy * xv;
    }
    const float n = (float)cols;
    const float r = 1.0f / sqrtf(block_sum<256>(ss) / n + PF(2));
    const float c = block_sum<256>(sd) * r * r * r / n;
    for (u32 i = threadIdx.x; i < cols; i += 256u) {
        float wdy = has_w ? w[i] * dy[i] : dy[i];
        dx[i] = r * wdy - x[i] * c;
    }
}
