// spatial_attention.cu — non-causal multi-head attention (spatial self-
// attention from a packed QKV, cross-attention over text keys/values), the
// twin of shaders/spatial_attention.wgsl (ops/spatial_attention.rs), in two
// passes. Params: t, c, heads, d, tk, scale, blocks, batch, chunks, splits,
// ks, q_rs, q_b, q_hs, k_rs, k_b, v_b, k_hs (layouts: see the WGSL).
// spatial_attention_partial — bindings 0 q, 1 kv (self: both the packed qkv),
//   2 part (scratch):
//   one block of 64 per (sample, head, 64 queries, 32 output dims, split of ks
//   keys); K tiles (whole head) and the chunk's V dims in shared memory;
//   online softmax per tile of 16 keys; writes (max, sum, acc[32]) per split.
// spatial_attention_combine — bindings 0 part, 1 y [B, T, C]: one thread per
//   output value merges the splits. 256 threads per block.
#include "common.cuh"

#define TK 16
#define KD 160
#define VD 32
#define REC 34

__device__ __forceinline__ u64 rec(const Params& p, u32 bh, u32 i, u32 sp, u32 dc) {
    return ((((u64)bh * p.w[0] + i) * p.w[9] + sp) * p.w[8] + dc) * REC;
}

extern "C" __global__ void spatial_attention_partial(Params p, Ptrs b) {
    const u32 t = p.w[0], heads = p.w[2], d = p.w[3], tk = p.w[4], blocks = p.w[6],
              batch = p.w[7], chunks = p.w[8], splits = p.w[9], kspl = p.w[10], q_rs = p.w[11],
              q_b = p.w[12], q_hs = p.w[13], k_rs = p.w[14], k_b = p.w[15], v_b = p.w[16],
              k_hs = p.w[17];
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
    const u32 kc = k_b + h * k_hs, vc = v_b + h * k_hs;
    const float* q = BUF(const float, 0);
    const float* kv = BUF(const float, 1);
    float* part = BUF(float, 2);
    const u32 e0 = dc * VD, i = blk * 64u + threadIdx.x;
    const bool live = i < t;
    const u64 qrow = ((u64)s_ * t + min(i, t - 1u)) * q_rs + q_b + h * q_hs;
    float acc[VD], s[TK];
    for (int e = 0; e < VD; e++) acc[e] = 0.0f;
    float m = -3.0e38f, l = 0.0f;
    const u32 kend = min(tk, (sp + 1u) * kspl);
    for (u32 j0 = sp * kspl; j0 < kend; j0 += TK) {
        for (u32 x = threadIdx.x; x < TK * d; x += 64u) {
            u32 j = j0 + x / d;
            ks[(x / d) * KD + x % d] = j < kend ? kv[((u64)s_ * tk + j) * k_rs + kc + x % d] : 0.0f;
        }
        for (u32 x = threadIdx.x; x < TK * VD; x += 64u) {
            u32 j = j0 + x / VD, e = e0 + x % VD;
            vs[x] = (j < kend && e < d) ? kv[((u64)s_ * tk + j) * k_rs + vc + e] : 0.0f;
        }
        __syncthreads();
        u32 nk = min((u32)TK, kend - j0);
        float tmax = m;
        for (int j = 0; j < TK; j++) {
            float dot = 0.0f;
            for (u32 e = 0; e < d; e++) dot += q[qrow + e] * ks[j * KD + e];
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

// spatial_attention_flash<DM> — the twin of shaders/spatial_attention_flash.wgsl
// (GPUs, d ≤ DM, d % 4 == 0). Params: t, heads, d, scale, rs, hs, q_b, k_b,
// v_b, o_rs, blocks, batch, splits, kchunk (strides in float4s). Bindings:
// 0 qkv, 1 y, 2 part (splits > 1: per-split partials, merged by
// spatial_attention_flash_combine). A
// block of 256 per (sample, head, 64 queries); keys 32 at a time in four
// phases (stage k; scores 4 queries × 2 keys per thread; online softmax by
// threads 0..63 while all stage v; p·v, RT queries × 4 dims per thread).
template <int DM>
__device__ void spatial_attention_flash(const Params& p, const Ptrs& b) {
    constexpr u32 BR = 64u, BC = 32u, CW = DM / 4, RT = BR * CW / 256u;
    __shared__ __align__(16) float qs[DM * BR];  // [DM][BR]
    __shared__ __align__(16) float kv[DM * BC];  // k [DM][BC] or v [BC][DM]
    __shared__ __align__(16) float ps[BC * BR];  // [BC][BR]
    __shared__ float alpha[BR];
    const u32 t = p.w[0], heads = p.w[1], d = p.w[2], rs = p.w[4], hs = p.w[5], q_b = p.w[6],
              k_b = p.w[7], v_b = p.w[8], o_rs = p.w[9], blocks = p.w[10], batch = p.w[11];
    const float scale = PF(3);
    const u32 splits = p.w[12], kchunk = p.w[13];
    const u32 wgi = wg_index();
    if (wgi >= batch * heads * blocks * splits) return;
    // This block's keys: split sp of the (sample, head)'s.
    const u32 sp = wgi % splits, id = wgi / splits;
    const u32 kb = sp * kchunk, ke = min(t, kb + kchunk);
    const float4* qkv = BUF(const float4, 0);
    float4* y = BUF(float4, 1);
    const u32 lid = threadIdx.x;
    const u32 blk = id % blocks, h = (id / blocks) % heads, bi = id / (blocks * heads);
    const u32 r0 = blk * BR, d4 = d / 4u;
    const u64 tok0 = (u64)bi * t;
    for (u32 x = lid / BR; x < CW; x += 256u / BR) {
        const u32 r = lid % BR;
        float4 v = make_float4(0.f, 0.f, 0.f, 0.f);
        if (x < d4 && r0 + r < t) v = qkv[(tok0 + r0 + r) * rs + h * hs + q_b + x];
        qs[(4u * x) * BR + r] = v.x;
        qs[(4u * x + 1u) * BR + r] = v.y;
        qs[(4u * x + 2u) * BR + r] = v.z;
        qs[(4u * x + 3u) * BR + r] = v.w;
    }
    const u32 ty = lid / 16u, tx = lid % 16u;
    const u32 cg = lid % CW, rg = lid / CW;
    float4 o[RT];
#pragma unroll
    for (u32 i = 0; i < RT; i++) o[i] = make_float4(0.f, 0.f, 0.f, 0.f);
    float m = -3.0e38f, l = 0.f;
    for (u32 k0 = kb; k0 < ke; k0 += BC) {
        for (u32 i = lid; i < BC * CW; i += 256u) {
            const u32 key = i % BC, x = i / BC;
            float4 v = make_float4(0.f, 0.f, 0.f, 0.f);
            if (x < d4 && k0 + key < t) v = qkv[(tok0 + k0 + key) * rs + h * hs + k_b + x];
            kv[(4u * x) * BC + key] = v.x;
            kv[(4u * x + 1u) * BC + key] = v.y;
            kv[(4u * x + 2u) * BC + key] = v.z;
            kv[(4u * x + 3u) * BC + key] = v.w;
        }
        __syncthreads();
        float s[4][2] = {{0.f, 0.f}, {0.f, 0.f}, {0.f, 0.f}, {0.f, 0.f}};
        for (u32 kk = 0; kk < d; kk++) {
            const float4 q4 = *(const float4*)&qs[kk * BR + 4u * ty];
            const float2 k2 = *(const float2*)&kv[kk * BC + 2u * tx];
            const float qa[4] = {q4.x, q4.y, q4.z, q4.w};
#pragma unroll
            for (u32 i = 0; i < 4u; i++) {
                s[i][0] = fmaf(qa[i], k2.x, s[i][0]);
                s[i][1] = fmaf(qa[i], k2.y, s[i][1]);
            }
        }
#pragma unroll
        for (u32 j = 0; j < 2u; j++) {
            const bool in = k0 + 2u * tx + j < t;
            float4 sv = make_float4(s[0][j] * scale, s[1][j] * scale, s[2][j] * scale,
                                    s[3][j] * scale);
            if (!in) sv = make_float4(-3.0e38f, -3.0e38f, -3.0e38f, -3.0e38f);
            *(float4*)&ps[(2u * tx + j) * BR + 4u * ty] = sv;
        }
        __syncthreads();
        if (lid < BR) {
            float mx = m;
            for (u32 j = 0; j < BC; j++) mx = fmaxf(mx, ps[j * BR + lid]);
            const float a = expf(m - mx);
            float sum = 0.f;
            for (u32 j = 0; j < BC; j++) {
                const float pv = expf(ps[j * BR + lid] - mx);
                ps[j * BR + lid] = pv;
                sum += pv;
            }
            l = l * a + sum;
            m = mx;
            alpha[lid] = a;
        }
        for (u32 i = lid; i < BC * CW; i += 256u) {
            const u32 key = i / CW, x = i % CW;
            float4 v = make_float4(0.f, 0.f, 0.f, 0.f);
            if (x < d4 && k0 + key < t) v = qkv[(tok0 + k0 + key) * rs + h * hs + v_b + x];
            *(float4*)&kv[4u * i] = v;
        }
        __syncthreads();
#pragma unroll
        for (u32 i = 0; i < RT; i++) {
            const float a = alpha[rg * RT + i];
            o[i].x *= a; o[i].y *= a; o[i].z *= a; o[i].w *= a;
        }
        for (u32 j = 0; j < BC; j++) {
            const float4 v = *(const float4*)&kv[4u * (j * CW + cg)];
#pragma unroll
            for (u32 i = 0; i < RT; i++) {
                const float pj = ps[j * BR + rg * RT + i];
                o[i].x = fmaf(pj, v.x, o[i].x);
                o[i].y = fmaf(pj, v.y, o[i].y);
                o[i].z = fmaf(pj, v.z, o[i].z);
                o[i].w = fmaf(pj, v.w, o[i].w);
            }
        }
        __syncthreads();
    }
    if (splits > 1u) {
        // Unnormalised into binding 2: the combine kernel weighs the splits.
        float4* part = BUF(float4, 2);
        const u64 base = ((u64)(bi * heads + h) * splits + sp) * t + r0;
        const u64 ml0 = (u64)batch * heads * splits * t * d4;
        if (lid < BR && r0 + lid < t) part[ml0 + base + lid] = make_float4(m, l, 0.f, 0.f);
        if (cg < d4) {
#pragma unroll
            for (u32 i = 0; i < RT; i++) {
                const u32 r = rg * RT + i;
                if (r0 + r < t) part[(base + r) * d4 + cg] = o[i];
            }
        }
        return;
    }
    if (lid < BR) alpha[lid] = 1.f / l;
    __syncthreads();
    if (cg < d4) {
#pragma unroll
        for (u32 i = 0; i < RT; i++) {
            const u32 r = rg * RT + i;
            if (r0 + r < t) {
                const float inv = alpha[r];
                y[(tok0 + r0 + r) * o_rs + h * d4 + cg] =
                    make_float4(o[i].x * inv, o[i].y * inv, o[i].z * inv, o[i].w * inv);
            }
        }
    }
}

// spatial_attention_flash.wgsl `combine`: y = Σ_s o_s·e^(m_s − m) /
// Σ_s l_s·e^(m_s − m), m = max_s m_s; a thread per (sample, token, head,
// float4 of the head's dims).
extern "C" __global__ void spatial_attention_flash_combine(Params p, Ptrs b) {
    const u32 t = p.w[0], heads = p.w[1], d = p.w[2], o_rs = p.w[9], batch = p.w[11],
              splits = p.w[12];
    const u32 d4 = d / 4u;
    const u64 i = (u64)wg_index() * 256u + threadIdx.x;
    if (i >= (u64)batch * t * heads * d4) return;
    const u32 x = (u32)(i % d4), h = (u32)((i / d4) % heads), tok = (u32)((i / ((u64)d4 * heads)) % t);
    const u32 bi = (u32)(i / ((u64)d4 * heads * t));
    const float4* part = BUF(const float4, 2);
    const u64 ml0 = (u64)batch * heads * splits * t * d4;
    const u64 first = (u64)(bi * heads + h) * splits * t + tok;
    float m = -3.0e38f;
    for (u32 s = 0; s < splits; s++) m = fmaxf(m, part[ml0 + first + (u64)s * t].x);
    float l = 0.f;
    float4 o = make_float4(0.f, 0.f, 0.f, 0.f);
    for (u32 s = 0; s < splits; s++) {
        const float4 ml = part[ml0 + first + (u64)s * t];
        const float w = expf(ml.x - m);
        l += ml.y * w;
        const float4 v = part[(first + (u64)s * t) * d4 + x];
        o.x += v.x * w; o.y += v.y * w; o.z += v.z * w; o.w += v.w * w;
    }
    BUF(float4, 1)[((u64)bi * t + tok) * o_rs + h * d4 + x] =
        make_float4(o.x / l, o.y / l, o.z / l, o.w / l);
}

extern "C" __global__ void __launch_bounds__(256) spatial_attention_flash32(Params p, Ptrs b) {
    spatial_attention_flash<32>(p, b);
}
extern "C" __global__ void __launch_bounds__(256) spatial_attention_flash64(Params p, Ptrs b) {
    spatial_attention_flash<64>(p, b);
}
