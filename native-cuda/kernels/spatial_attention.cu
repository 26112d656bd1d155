// spatial_attention.cu — non-causal multi-head attention over spatial tokens
// from a packed QKV, the twin of shaders/spatial_attention.wgsl
// (ops/spatial_attention.rs). Params: t, c, heads, d, legacy, scale, blocks,
// batch. Bindings: 0 qkv [B, T, 3C], 1 y [B, T, C]. One block of 64 per
// (sample, head, 64 queries); K/V tiles in shared memory; online softmax.
// Kernels attn_spatial_{32,64,128} hold d ≤ 32/64/128 in registers.
#include "common.cuh"

template <int MAXD, int TK>
__device__ void spatial_attention(const Params& p, const Ptrs& b) {
    const u32 t = p.w[0], c = p.w[1], heads = p.w[2], d = p.w[3], blocks = p.w[6], batch = p.w[7];
    const float scale = PF(5);
    u32 id = wg_index();
    if (id >= batch * heads * blocks) return;
    __shared__ float ks[TK * MAXD];
    __shared__ float vs[TK * MAXD];
    const u32 blk = id % blocks, h = (id / blocks) % heads, s_ = id / (blocks * heads);
    const u32 c3 = 3u * c;
    u32 qc = h * d, kc = c + h * d, vc = 2u * c + h * d;
    if (p.w[4] != 0u) {
        qc = 3u * h * d;
        kc = qc + d;
        vc = qc + 2u * d;
    }
    const float* qkv = BUF(const float, 0);
    const u32 i = blk * 64u + threadIdx.x;
    const bool live = i < t;
    float q[MAXD], acc[MAXD];
    for (u32 e = 0; e < d; e++) {
        acc[e] = 0.0f;
        q[e] = live ? qkv[((u64)s_ * t + i) * c3 + qc + e] * scale : 0.0f;
    }
    float m = -3.0e38f, l = 0.0f, s[TK];
    for (u32 j0 = 0; j0 < t; j0 += TK) {
        for (u32 x = threadIdx.x; x < TK * d; x += 64u) {
            u32 j = j0 + x / d, e = x % d;
            float kv = 0.0f, vv = 0.0f;
            if (j < t) {
                u64 row = ((u64)s_ * t + j) * c3;
                kv = qkv[row + kc + e];
                vv = qkv[row + vc + e];
            }
            ks[(x / d) * MAXD + e] = kv;
            vs[(x / d) * MAXD + e] = vv;
        }
        __syncthreads();
        u32 nk = min((u32)TK, t - j0);
        float tmax = m;
        for (u32 j = 0; j < nk; j++) {
            float dot = 0.0f;
            for (u32 e = 0; e < d; e++) dot += q[e] * ks[j * MAXD + e];
            s[j] = dot;
            tmax = fmaxf(tmax, dot);
        }
        float corr = expf(m - tmax);
        l *= corr;
        for (u32 e = 0; e < d; e++) acc[e] *= corr;
        for (u32 j = 0; j < nk; j++) {
            float w = expf(s[j] - tmax);
            l += w;
            for (u32 e = 0; e < d; e++) acc[e] += w * vs[j * MAXD + e];
        }
        m = tmax;
        __syncthreads();
    }
    if (live) {
        float inv = 1.0f / l;
        float* y = BUF(float, 1);
        for (u32 e = 0; e < d; e++) y[((u64)s_ * t + i) * c + h * d + e] = acc[e] * inv;
    }
}

extern "C" __global__ void attn_spatial_32(Params p, Ptrs b) { spatial_attention<32, 32>(p, b); }
extern "C" __global__ void attn_spatial_64(Params p, Ptrs b) { spatial_attention<64, 16>(p, b); }
extern "C" __global__ void attn_spatial_128(Params p, Ptrs b) { spatial_attention<128, 8>(p, b); }
