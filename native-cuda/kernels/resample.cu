// resample.cu — 2×2 average pooling and nearest 2× upsampling of NHWC
// activations, the twin of shaders/resample.wgsl (ops/resample.rs).
// Params: n (output elements), h, w, c, oh, ow, mode (0 pool, 1 upsample).
// Bindings: 0 x [B, H, W, C], 1 y [B, OH, OW, C]. 256 threads per block.
#include "common.cuh"

extern "C" __global__ void resample(Params p, Ptrs b) {
    const u32 n = p.w[0], h = p.w[1], w = p.w[2], c = p.w[3], oh = p.w[4], ow = p.w[5];
    u32 i = wg_index() * 256u + threadIdx.x;
    if (i >= n) return;
    const float* x = BUF(const float, 0);
    u32 ch = i % c, ox = (i / c) % ow, oy = (i / (c * ow)) % oh, s = i / (c * ow * oh);
    u64 img = (u64)s * h * w;
    float v;
    if (p.w[6] == 0u) {
        u64 r0 = (img + 2u * oy * w + 2u * ox) * c + ch, r1 = r0 + (u64)w * c;
        v = ((x[r0] + x[r0 + c]) + (x[r1] + x[r1 + c])) * 0.25f;
    } else {
        v = x[(img + (u64)(oy / 2u) * w + ox / 2u) * c + ch];
    }
    BUF(float, 1)[i] = v;
}
