// optim.cu — gradient accumulation, global-norm clipping and AdamW, the twin
// of shaders/optim.wgsl (ops/optim.rs), PyTorch's single-tensor AdamW step to
// the operation order. Params: n, slot, max_norm. Binding 0 is `out`, the
// in-place destination (a state tensor; the [2] result for clip):
//   optim_accumulate (ACCUMULATE) out[i] += g[i]             0 out (G), 1 g
//   optim_zero       (ZERO)       out[i] = 0                  0 out
//   optim_sq_norm    (SQ_NORM)    out[slot] = sqrt(Σ g²)      0 out (norms), 1 g
//   optim_clip       (CLIP)       out = (‖·‖, coef): ‖·‖ = sqrt(Σ norms²), coef =
//                    min(1, max_norm / (‖·‖ + 1e-6)), 1 when max_norm ≤ 0
//                                                             0 out [2], 1 norms
//   optim_moments    (MOMENTS)    g' = g·coef; m += (g' − m)·(1 − β1);
//                    v = v·β2 + (1 − β2)·g'²       0 out [2, n], 1 g, 2 clip, 3 hyper
//   optim_param      (PARAM)      p = p·decay − step·m / (sqrt(v) / bc2_sqrt + eps)
//                                                             0 out (p), 1 mv, 2 hyper
// hyper = [decay, step, bc2_sqrt, eps, 1 − β1, β2, 1 − β2] (f32, host-written).
// 256 threads per block: one thread per element (ceil(n/256) blocks, folded
// by ops::grid), or one block in all for sq_norm and clip.
#include "common.cuh"

__device__ __forceinline__ u32 elem() { return wg_index() * 256u + threadIdx.x; }

extern "C" __global__ void optim_accumulate(Params p, Ptrs b) {
    u32 i = elem();
    if (i < p.w[0]) BUF(float, 0)[i] += BUF(const float, 1)[i];
}

extern "C" __global__ void optim_zero(Params p, Ptrs b) {
    u32 i = elem();
    if (i < p.w[0]) BUF(float, 0)[i] = 0.0f;
}

extern "C" __global__ void optim_sq_norm(Params p, Ptrs b) {
    const float* g = BUF(const float, 1);
    float s = 0.0f;
    for (u32 i = threadIdx.x; i < p.w[0]; i += 256u) s += g[i] * g[i];
    s = block_sum<256>(s);
    if (threadIdx.x == 0u) BUF(float, 0)[p.w[1]] = sqrtf(s);
}

extern "C" __global__ void optim_clip(Params p, Ptrs b) {
    const float* norms = BUF(const float, 1);
    float s = 0.0f;
    for (u32 i = threadIdx.x; i < p.w[0]; i += 256u) s += norms[i] * norms[i];
    const float total = sqrtf(block_sum<256>(s));
    if (threadIdx.x == 0u) {
        float* out = BUF(float, 0);
        const float max_norm = PF(2);
        out[0] = total;
        out[1] = max_norm > 0.0f ? fminf(1.0f, max_norm / (total + 1e-6f)) : 1.0f;
    }
}

extern "C" __global__ void optim_moments(Params p, Ptrs b) {
    const u32 n = p.w[0];
    u32 i = elem();
    if (i >= n) return;
    float* out = BUF(float, 0);
    const float* hyper = BUF(const float, 3);
    float gv = BUF(const float, 1)[i] * BUF(const float, 2)[1];
    float m = out[i];
    out[i] = m + (gv - m) * hyper[4];
    out[n + i] = out[n + i] * hyper[5] + hyper[6] * gv * gv;
}

extern "C" __global__ void optim_param(Params p, Ptrs b) {
    const u32 n = p.w[0];
    u32 i = elem();
    if (i >= n) return;
    float* out = BUF(float, 0);
    const float* mv = BUF(const float, 1);
    const float* hyper = BUF(const float, 2);
    float denom = sqrtf(mv[n + i]) / hyper[2] + hyper[3];
    out[i] = out[i] * hyper[0] - hyper[1] * (mv[i] / denom);
}
