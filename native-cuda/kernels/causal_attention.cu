// causal_attention.cu — causal GQA attention over whole sequences (no KV
// cache) and its backward, the twin of shaders/causal_attention.wgsl
// (ops/causal_attention.rs). Rows are t tokens: t / seq sequences of seq
// tokens, each token attending to its own sequence up to itself. q, o, do
// [t, hq, d]; k, v, dk, dv [t, hkv, d]; stats [t, hq, 2] = (logsumexp of the
// scaled scores, D = do·o). Query head h reads kv head h / (hq / hkv).
// Params: t, hq, hkv, d (a multiple of 4: rows read as float4), seq, scale.
// Bindings: 0 q, 1 k, 2 v, 3 o (STATS) / do (backward), 4 do (STATS) /
// stats (backward), 5 out; inputs an entry does not read are q.
//   causal_attn_fwd   (FWD)      o = softmax(scale·q·kᵀ)·v, online softmax
//   causal_attn_stats (STATS)    (row, head): lse and D
//   causal_attn_dq    (DQ)       dq = scale·Σ_j p·(do·v_j − D)·k_j
//   causal_attn_dk    (KEYS+DK)  dk_j = scale·Σ_{h in group, i ≥ j} p·(do_i·v_j − D_i)·q_i
//   causal_attn_dv    (KEYS+DV)  dv_j = Σ_{h in group, i ≥ j} p·do_i
// Blocks of 64, folded by ops::grid; a thread owns (row, head) for STATS,
// else (row, head, 32-wide block of d). No barriers; f32 accumulation.
#include "common.cuh"

#define DB 8u  // float4s of d per thread (32 floats)

__device__ __forceinline__ float qk(const Params& p, const float4* q, const float4* k, u64 qb,
                                    u64 kb) {
    float s = 0.0f;
    for (u32 c = 0; c < p.w[3] / 4u; c++) s += dot4(q[qb + c], k[kb + c]);
    return s * PF(5);
}

// do_i · v_j.
__device__ __forceinline__ float dov(const Params& p, const float4* a4, const float4* v, u64 ob,
                                     u64 vb) {
    float s = 0.0f;
    for (u32 c = 0; c < p.w[3] / 4u; c++) s += dot4(a4[ob + c], v[vb + c]);
    return s;
}

__device__ __forceinline__ float4 f4_scale(float4 a, float s) {
    return make_float4(a.x * s, a.y * s, a.z * s, a.w * s);
}
__device__ __forceinline__ float4 f4_mac(float4 acc, float s, float4 a) {
    return make_float4(acc.x + s * a.x, acc.y + s * a.y, acc.z + s * a.z, acc.w + s * a.w);
}

extern "C" __global__ void causal_attn_stats(Params p, Ptrs b) {
    const u32 t = p.w[0], hq = p.w[1], hkv = p.w[2], d = p.w[3], seq = p.w[4];
    const float4* q = BUF(const float4, 0);
    const float4* k = BUF(const float4, 1);
    const float4* a4 = BUF(const float4, 3);
    const float4* b4 = BUF(const float4, 4);
    float* stats = BUF(float, 5);
    u32 idx = wg_index() * 64u + threadIdx.x;
    u32 h = idx % hq, i = idx / hq;
    if (i >= t) return;
    const u32 d4 = d / 4u;
    const u32 kh = h / (hq / hkv);
    const u64 qb = ((u64)i * hq + h) * d4;
    float m = -3.0e38f, l = 0.0f;
    for (u32 j = (i / seq) * seq; j <= i; j++) {
        float sc = qk(p, q, k, qb, ((u64)j * hkv + kh) * d4);
        float mn = fmaxf(m, sc);
        l = l * expf(m - mn) + expf(sc - mn);
        m = mn;
    }
    float dd = 0.0f;
    for (u32 c = 0; c < d4; c++) dd += dot4(a4[qb + c], b4[qb + c]);
    u64 si = 2u * ((u64)i * hq + h);
    stats[si] = m + logf(l);
    stats[si + 1u] = dd;
}

// FWD (MODE 0) and DQ (MODE 1): a thread owns (query row i, head h, block).
template <int MODE>
__device__ void query_rows(const Params& p, const Ptrs& b) {
    const u32 t = p.w[0], hq = p.w[1], hkv = p.w[2], d = p.w[3], seq = p.w[4];
    const float4* q = BUF(const float4, 0);
    const float4* k = BUF(const float4, 1);
    const float4* v = BUF(const float4, 2);
    const float4* a4 = BUF(const float4, 3);
    const float* st = BUF(const float, 4);
    float4* out = BUF(float4, 5);
    const u32 d4 = d / 4u, nb = (d4 + DB - 1u) / DB;
    u32 idx = wg_index() * 64u + threadIdx.x;
    u32 blk = idx % nb, rest = idx / nb;
    const u32 c0 = blk * DB, cn = min(DB, d4 - c0);
    const u32 grp = hq / hkv;
    u32 h = rest % hq, i = rest / hq;
    if (i >= t) return;
    const u32 kh = h / grp;
    const u64 qb = ((u64)i * hq + h) * d4;
    float4 acc[DB];
#pragma unroll
    for (u32 c = 0; c < DB; c++) acc[c] = make_float4(0.f, 0.f, 0.f, 0.f);
    if (MODE == 0) {
        float m = -3.0e38f, l = 0.0f;
        for (u32 j = (i / seq) * seq; j <= i; j++) {
            u64 kb = ((u64)j * hkv + kh) * d4;
            float sc = qk(p, q, k, qb, kb);
            float mn = fmaxf(m, sc);
            float corr = expf(m - mn);
            float pr = expf(sc - mn);
            l = l * corr + pr;
#pragma unroll
            for (u32 c = 0; c < DB; c++)
                if (c < cn) acc[c] = f4_mac(f4_scale(acc[c], corr), pr, v[kb + c0 + c]);
            m = mn;
        }
#pragma unroll
        for (u32 c = 0; c < DB; c++)
            if (c < cn)
                out[qb + c0 + c] =
                    make_float4(acc[c].x / l, acc[c].y / l, acc[c].z / l, acc[c].w / l);
    } else {
        u64 si = 2u * ((u64)i * hq + h);
        const float lse = st[si], dd = st[si + 1u];
        for (u32 j = (i / seq) * seq; j <= i; j++) {
            u64 kb = ((u64)j * hkv + kh) * d4;
            float pr = expf(qk(p, q, k, qb, kb) - lse);
            float ds = pr * (dov(p, a4, v, qb, kb) - dd) * PF(5);
#pragma unroll
            for (u32 c = 0; c < DB; c++)
                if (c < cn) acc[c] = f4_mac(acc[c], ds, k[kb + c0 + c]);
        }
#pragma unroll
        for (u32 c = 0; c < DB; c++)
            if (c < cn) out[qb + c0 + c] = acc[c];
    }
}

// KEYS: DK (MODE 0) and DV (MODE 1): a thread owns (key row j, kv head kh,
// block) and sums over the group's query heads and the later rows of its
// sequence.
template <int MODE>
__device__ void key_rows(const Params& p, const Ptrs& b) {
    const u32 t = p.w[0], hq = p.w[1], hkv = p.w[2], d = p.w[3], seq = p.w[4];
    const float4* q = BUF(const float4, 0);
    const float4* k = BUF(const float4, 1);
    const float4* v = BUF(const float4, 2);
    const float4* a4 = BUF(const float4, 3);
    const float* st = BUF(const float, 4);
    float4* out = BUF(float4, 5);
    const u32 d4 = d / 4u, nb = (d4 + DB - 1u) / DB;
    u32 idx = wg_index() * 64u + threadIdx.x;
    u32 blk = idx % nb, rest = idx / nb;
    const u32 c0 = blk * DB, cn = min(DB, d4 - c0);
    const u32 grp = hq / hkv;
    u32 kh = rest % hkv, j = rest / hkv;
    if (j >= t) return;
    const u64 kb = ((u64)j * hkv + kh) * d4;
    const u32 end = (j / seq + 1u) * seq;
    float4 acc[DB];
#pragma unroll
    for (u32 c = 0; c < DB; c++) acc[c] = make_float4(0.f, 0.f, 0.f, 0.f);
    for (u32 hh = 0; hh < grp; hh++) {
        u32 h = kh * grp + hh;
        for (u32 i = j; i < end; i++) {
            u64 qb = ((u64)i * hq + h) * d4;
            u64 si = 2u * ((u64)i * hq + h);
            float pr = expf(qk(p, q, k, qb, kb) - st[si]);
            if (MODE == 0) {
                float ds = pr * (dov(p, a4, v, qb, kb) - st[si + 1u]) * PF(5);
#pragma unroll
                for (u32 c = 0; c < DB; c++)
                    if (c < cn) acc[c] = f4_mac(acc[c], ds, q[qb + c0 + c]);
            } else {
#pragma unroll
                for (u32 c = 0; c < DB; c++)
                    if (c < cn) acc[c] = f4_mac(acc[c], pr, a4[qb + c0 + c]);
            }
        }
    }
#pragma unroll
    for (u32 c = 0; c < DB; c++)
        if (c < cn) out[kb + c0 + c] = acc[c];
}

extern "C" __global__ void causal_attn_fwd(Params p, Ptrs b) { query_rows<0>(p, b); }
extern "C" __global__ void causal_attn_dq(Params p, Ptrs b) { query_rows<1>(p, b); }
extern "C" __global__ void causal_attn_dk(Params p, Ptrs b) { key_rows<0>(p, b); }
extern "C" __global__ void causal_attn_dv(Params p, Ptrs b) { key_rows<1>(p, b); }
