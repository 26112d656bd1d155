// unary.cu — element-wise f32 functions, the twin of shaders/unary.wgsl
// (ops/unary.rs). Params: n, kind (0 silu, 1 gelu tanh, 2 gelu erf, 3 scale,
// 4 quick gelu: x·σ(1.702x), CLIP's, 5 relu, 6 tanh), s.
// Bindings: 0 x, 1 y. 256 threads per block, one per element. CUDA's expf,
// tanhf and erff (no fast math) are within 2 ulp.
#include "common.cuh"

extern "C" __global__ void unary(Params p, Ptrs b) {
    u32 i = wg_index() * 256u + threadIdx.x;
    if (i >= p.w[0]) return;
    float v = BUF(const float, 0)[i];
    float r;
    switch (p.w[1]) {
        case 0u: r = v / (1.0f + expf(-v)); break;
        case 1u: {
            float u = 0.7978845608028654f * (v + 0.044715f * v * v * v);
            r = 0.5f * v * (1.0f + tanhf(u));
            break;
        }
        case 2u: r = 0.5f * v * (1.0f + erff(v * 0.7071067811865476f)); break;
        case 4u: r = v / (1.0f + expf(-1.702f * v)); break;
        case 5u: r = fmaxf(v, 0.0f); break;
        case 6u: r = tanhf(v); break;
        default: r = v * PF(2);
    }
    BUF(float, 1)[i] = r;
}
