// timestep_embed.cu — sinusoidal timestep embedding, the twin of
// shaders/timestep_embed.wgsl (ops/timestep.rs). Params: n, dim, ln_period,
// shift, sin_first. Bindings: 0 t [B], 1 y [B, dim]. 256 threads per block.
#include "common.cuh"

extern "C" __global__ void timestep_embed(Params p, Ptrs b) {
    const u32 n = p.w[0], dim = p.w[1], half = dim / 2u;
    u32 i = wg_index() * 256u + threadIdx.x;
    if (i >= n) return;
    float* y = BUF(float, 1);
    u32 col = i % dim;
    if (col >= 2u * half) {
        y[i] = 0.0f;
        return;
    }
    u32 j = col % half;
    float arg = BUF(const float, 0)[i / dim] * expf(-PF(2) * (float)j / ((float)half - PF(3)));
    float s, c;
    sincosf(arg, &s, &c);
    bool first_is_cos = p.w[4] == 0u;
    y[i] = ((col < half) == first_is_cos) ? c : s;
}
