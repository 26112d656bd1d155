// binary.cu — element-wise f32 binary ops, the twin of shaders/binary.wgsl
// (ops/binary.rs). Params: n, nb, kind (0 add, 1 mul, 2 swiglu: silu(a)·b,
// 3 glu, 4 geglu), cols, has_res, inner, rep (b broadcast as
// b[(i / (rep·inner))·inner + i % inner]). Bindings: 0 a, 1 b, 2 y.
// Kind 3 (glu, the prefill epilogue of ops/matmul_fused.rs) reads a as
// [rows, 2·cols]: y[r, c] = silu(a[r, c]) · a[r, cols + c] (+ b[i] with has_res);
// kind 4 (GEGLU) too: y[r, c] = a[r, c] · gelu_erf(a[r, cols + c]).
// 256 threads per block.
#include "common.cuh"

extern "C" __global__ void binary(Params p, Ptrs b) {
    u32 i = wg_index() * 256u + threadIdx.x;
    if (i >= p.w[0]) return;
    if (p.w[2] == 3u) {
        const u32 cols = p.w[3];
        const float* a = BUF(const float, 0);
        u64 r = i / cols, c = i % cols;
        float g = a[r * 2u * cols + c];
        float v = g / (1.0f + expf(-g)) * a[r * 2u * cols + cols + c];
        if (p.w[4] != 0u) v += BUF(const float, 1)[i];
        BUF(float, 2)[i] = v;
        return;
    }
    if (p.w[2] == 4u) {
        const u32 cols = p.w[3];
        const float* a = BUF(const float, 0);
        u64 r = i / cols, c = i % cols;
        float g = a[r * 2u * cols + cols + c];
        BUF(float, 2)[i] = a[r * 2u * cols + c] * 0.5f * g * (1.0f + erff(g * 0.7071067811865476f));
        return;
    }
    float av = BUF(const float, 0)[i];
    const u32 inner = p.w[5], rep = p.w[6];
    float bv = BUF(const float, 1)[(i / (rep * inner)) * inner + i % inner];
    float r;
    switch (p.w[2]) {
        case 0u: r = av + bv; break;
        case 1u: r = av * bv; break;
        default: r = av / (1.0f + expf(-av)) * bv;
    }
    BUF(float, 2)[i] = r;
}
