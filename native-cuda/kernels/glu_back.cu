// glu_back.cu — the gradients of SwiGLU y = silu(g)·u, the twin of
// shaders/glu_back.wgsl (ops/glu_back.rs).
//   which = 0: dg = dy·u·σ(g)·(1 + g·(1 − σ(g)))
//   which = 1: du = dy·silu(g) = dy·g·σ(g)
// Params: n, which. Bindings: 0 g, 1 u, 2 dy, 3 out (all f32, n elements).
// One thread per element, 256 per block, folded by ops::grid.
#include "common.cuh"

extern "C" __global__ void glu_back(Params p, Ptrs b) {
    u32 i = wg_index() * 256u + threadIdx.x;
    if (i >= p.w[0]) return;
    const float* g = BUF(const float, 0);
    const float* up = BUF(const float, 1);
    const float* dy = BUF(const float, 2);
    float* y = BUF(float, 3);
    float gv = g[i];
    float s = 1.0f / (1.0f + expf(-gv));
    if (p.w[1] == 0u) {
        y[i] = dy[i] * up[i] * s * (1.0f + gv * (1.0f - s));
    } else {
        y[i] = dy[i] * gv * s;
    }
}
