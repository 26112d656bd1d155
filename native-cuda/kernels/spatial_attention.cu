// spatial_attention.cu — non-causal multi-head attention over spatial tokens
// from a packed QKV, the twin of shaders/spatial_attention.wgsl
// (ops/spatial_attention.rs), in two passes. Params: t, c, heads, d, legacy,
// scale, blocks, batch, chunks, splits, ks.
// spatial_attention_partial — bindings 0 qkv [B, T, 3C], 1 part (scratch):
//   one block of 64 per (sample, head, 64 queries, 32 output dims, split of ks
//   keys); K tiles (whole head) and the chunk's V dims in shared memory;
//   online softmax per tile of 16 keys; writes (max, sum, acc[32]) per split.
// spatial_attention_combine — bindings 0 part, 1 y [B, T, C]: one thread per
//   output value merges the splits. 256 threads per block.
#include "common.cuh"

#define TK 16
#define KD 128
#define VD 32
#define REC 34

__device__ __forceinline__ u64 rec(const Params& p, u32 bh, u32 i, u32 sp, u32 dc) {
    return ((((u64)bh * p.w[0] + i) * p.w[9] + sp) * p.w[8] + dc) * REC;
}

extern "C" __global__ void spatial_attention_partial(Params p, Ptrs b) {
    const u32 t = p.w[0], c = p.w[1], heads = p.w[2], d = p.w[3], blocks = p.w[6], batch = p.w[7],
              chunks = p.w[8], splits = p.w[9], kspl = p.w[10];
    const float scale = PF(5);
    u32 id = wg_index();
    if (id >= batch * heads * blocks * chunks * splits) return;
    __shared__ float ks[TK * KD];
    __shared__ float vs[TK * VD];
    const u32 sp = id % splits;
    id /= splits;
    const u32 dc = id % chunks;
    id /= chunks;
    const u32 blk = id % blocks, bh = id / blocks, h = bh % heads, s_ = bh / heads;
    const u32 c3 = 3u * c;
    u32 qc = h * d, kc = c + h * d, vc = 2u * c + h * d;
    if (p.w[4] != 0u) {
        qc = 3u * h * d;
        kc = qc + d;
        vc = qc + 2u * d;
    }
    const float* qkv = BUF(const float, 0);
    float* part = BUF(float, 1);
    const u32 e0 = dc * VD, i = blk * 64u + threadIdx.x;
    const bool live = i < t;
    const u64 qrow = ((u64)s_ * t + min(i, t - 1u)) * c3 + qc;
    float acc[VD], s[TK];
    for (int e = 0; e < VD; e++) acc[e] = 0.0f;
    float m = -3.0e38f, l = 0.0f;
    const u32 kend = min(t, (sp + 1u) * kspl);
    for (u32 j0 = sp * kspl; j0 < kend; j0 += TK) {
        for (u32 x = threadIdx.x; x < TK * d; x += 64u) {
            u32 j = j0 + x / d;
            ks[(x / d) * KD + x % d] = j < kend ? qkv[((u64)s_ * t + j) * c3 + kc + x % d] : 0.0f;
        }
        for (u32 x = threadIdx.x; x < TK * VD; x += 64u) {
            u32 j = j0 + x / VD, e = e0 + x % VD;
            vs[x] = (j < kend && e < d) ? qkv[((u64)s_ * t + j) * c3 + vc + e] : 0.0f;
        }
        __syncthreads();
        u32 nk = min((u32)TK, kend - j0);
        float tmax = m;
        for (int j = 0; j < TK; j++) {
            float dot = 0.0f;
            for (u32 e = 0; e < d; e++) dot += qkv[qrow + e] * ks[j * KD + e];
            s[j] = dot * scale;
            if ((u32)j < nk) tmax = fmaxf(tmax, s[j]);
        }
        float corr = expf(m - tmax);
        l *= corr;
        for (int e = 0; e < VD; e++) acc[e] *= corr;
        for (int j = 0; j < TK; j++) {
            float w = (u32)j < nk ? expf(s[j] - tmax) : 0.0f;
            l += w;
            for (int e = 0; e < VD; e++) acc[e] += w * vs[j * VD + e];
        }
        m = tmax;
        __syncthreads();
    }
    if (live) {
        u64 r = rec(p, bh, i, sp, dc);
        part[r] = m;
        part[r + 1] = l;
        for (int e = 0; e < VD; e++) part[r + 2 + e] = acc[e];
    }
}

extern "C" __global__ void spatial_attention_combine(Params p, Ptrs b) {
    const u32 t = p.w[0], c = p.w[1], heads = p.w[2], d = p.w[3], batch = p.w[7], splits = p.w[9];
    u32 o = wg_index() * 256u + threadIdx.x;
    if (o >= batch * t * c) return;
    const float* part = BUF(const float, 0);
    u32 col = o % c, i = (o / c) % t, s_ = o / (c * t), h = col / d, e = col % d;
    u32 bh = s_ * heads + h;
    float mx = -3.0e38f;
    for (u32 sp = 0; sp < splits; sp++) mx = fmaxf(mx, part[rec(p, bh, i, sp, e / VD)]);
    float l = 0.0f, v = 0.0f;
    for (u32 sp = 0; sp < splits; sp++) {
        u64 r = rec(p, bh, i, sp, e / VD);
        float w = expf(part[r] - mx);
        l += w * part[r + 1];
        v += w * part[r + 2 + e % VD];
    }
    BUF(float, 1)[o] = v / l;
}
