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

// ---- Tiled kernels (causal_attention_tiled.wgsl, d ≤ 64) -------------------
// A block of 64 threads owns TR = 16 rows of one sequence and one head (query
// rows / query head; key rows / kv head for KEYS) in shared memory and walks
// the other side in tiles of TC = 8 rows. Thread (r = tid / 4, sub = tid % 4)
// scores row r against tile rows 2·sub, 2·sub + 1, the scores (p, ds) pass
// through shared memory, and it accumulates float4 columns sub, sub + 4, ….
// Blocks: (sequence, row tile, head), heads fastest.
#define TR 16u
#define TC 8u
#define TD4 16u
#define TP4 17u  // padded row stride (float4s)

enum { T_FWD = 0, T_STATS = 1, T_DQ = 2, T_DK = 3, T_DV = 4 };

// Layouts in float4s (params 6..15): query-shaped rows (q, o, do, dq: row
// stride 6, head stride 7, base 8), key-shaped rows (k, dk: 9, 10, base 11;
// v, dv: base 12), the forward's output (13, 14); 15: causal. Dense for
// causal attention; one packed qkv for the UNet's spatial attention.
__device__ __forceinline__ u64 qi(const Params& p, u32 row, u32 h) {
    return (u64)row * p.w[6] + (u64)h * p.w[7] + p.w[8];
}
__device__ __forceinline__ u64 ki(const Params& p, u32 row, u32 h) {
    return (u64)row * p.w[9] + (u64)h * p.w[10] + p.w[11];
}
__device__ __forceinline__ u64 vi(const Params& p, u32 row, u32 h) {
    return (u64)row * p.w[9] + (u64)h * p.w[10] + p.w[12];
}

__device__ __forceinline__ float tile_dot(const float4* a, const float4* b, u32 d4) {
    float s = 0.0f;
    for (u32 x = 0; x < d4; x++) s += dot4(a[x], b[x]);
    return s;
}

template <int MODE>
__device__ void attn_tiled(const Params& p, const Ptrs& b) {
    const u32 t = p.w[0], hq = p.w[1], hkv = p.w[2], d = p.w[3], seq = p.w[4];
    const float scale = PF(5);
    const float4* q = BUF(const float4, 0);
    const float4* k = BUF(const float4, 1);
    const float4* v = BUF(const float4, 2);
    const float4* a4 = BUF(const float4, 3);
    const float* st = BUF(const float, 4);
    const bool keys = MODE == T_DK || MODE == T_DV;
    __shared__ float4 ta[TR * TP4], ta2[TR * TP4], tb[TC * TP4], tb2[TC * TP4];
    __shared__ float ps[TR * TC], tst[2 * TC];
    const u32 d4 = d / 4u, grp = hq / hkv, nh = keys ? hkv : hq;
    const u32 tps = (seq + TR - 1u) / TR;
    const u32 wg = wg_index(), lid = threadIdx.x;
    const u32 h = wg % nh, s = wg / nh / tps;
    if (s >= t / seq) return;
    const u32 s0 = s * seq, send = s0 + seq;
    const u32 r0 = s0 + ((wg / nh) % tps) * TR;
    const u32 rend = min(r0 + TR, send);
    const u32 r = lid / 4u, sub = lid % 4u, row = r0 + r;
    float4 acc[4];
#pragma unroll
    for (u32 mm = 0; mm < 4u; mm++) acc[mm] = make_float4(0.f, 0.f, 0.f, 0.f);
    const float4 zero = make_float4(0.f, 0.f, 0.f, 0.f);

    for (u32 e = lid; e < TR * TD4; e += 64u) {
        u32 rr = r0 + e / TD4, x = e % TD4;
        float4 a = zero, a2 = zero;
        if (rr < rend && x < d4) {
            if (keys) {
                a = k[ki(p, rr, h) + x];
                if (MODE == T_DK) a2 = v[vi(p, rr, h) + x];
            } else {
                a = q[qi(p, rr, h) + x];
                if (MODE == T_DQ) a2 = a4[qi(p, rr, h) + x];
            }
        }
        ta[(e / TD4) * TP4 + x] = a;
        ta2[(e / TD4) * TP4 + x] = a2;
    }

    if (keys) {
        for (u32 hh = 0; hh < grp; hh++) {
            const u32 qh = h * grp + hh;
            for (u32 i0 = r0; i0 < send; i0 += TC) {
                __syncthreads();
                for (u32 e = lid; e < TC * TD4; e += 64u) {
                    u32 i = i0 + e / TD4, x = e % TD4;
                    float4 bb = zero, bb2 = zero;
                    if (i < send && x < d4) {
                        bb = q[qi(p, i, qh) + x];
                        bb2 = a4[qi(p, i, qh) + x];
                    }
                    tb[(e / TD4) * TP4 + x] = bb;
                    tb2[(e / TD4) * TP4 + x] = bb2;
                }
                if (lid < 2u * TC) {
                    u32 i = i0 + lid / 2u;
                    tst[lid] = i < send ? st[2u * ((u64)i * hq + qh) + lid % 2u] : 0.0f;
                }
                __syncthreads();
                for (u32 u = 0; u < 2u; u++) {
                    u32 c = sub * 2u + u, i = i0 + c;
                    float w = 0.0f;
                    if (row < rend && i >= row && i < send) {
                        float pr = expf(tile_dot(&ta[r * TP4], &tb[c * TP4], d4) * scale -
                                        tst[2u * c]);
                        w = MODE == T_DK ? pr *
                                               (tile_dot(&ta2[r * TP4], &tb2[c * TP4], d4) -
                                                tst[2u * c + 1u]) *
                                               scale
                                         : pr;
                    }
                    ps[r * TC + c] = w;
                }
                __syncthreads();
                for (u32 c = 0; c < TC; c++) {
                    float w = ps[r * TC + c];
                    const float4* src = MODE == T_DK ? &tb[c * TP4] : &tb2[c * TP4];
#pragma unroll
                    for (u32 mm = 0; mm < 4u; mm++) acc[mm] = f4_mac(acc[mm], w, src[sub + 4u * mm]);
                }
            }
        }
        if (row < rend) {
            float4* out = BUF(float4, 5);
#pragma unroll
            for (u32 mm = 0; mm < 4u; mm++)
                if (sub + 4u * mm < d4) out[ki(p, row, h) + sub + 4u * mm] = acc[mm];
        }
        return;
    }

    const bool causal = p.w[15] != 0u;
    // Keys up to the tile's last row (causal), or the whole sequence.
    const u32 kh = h / grp, last = causal ? rend - 1u : send - 1u;
    float lse = 0.0f, dd = 0.0f, m = -3.0e38f, l = 0.0f;
    if (MODE == T_DQ && row < rend) {
        lse = st[2u * ((u64)row * hq + h)];
        dd = st[2u * ((u64)row * hq + h) + 1u];
    }
    for (u32 j0 = s0; j0 <= last; j0 += TC) {
        __syncthreads();
        for (u32 e = lid; e < TC * TD4; e += 64u) {
            u32 j = j0 + e / TD4, x = e % TD4;
            float4 bb = zero, bb2 = zero;
            if (j <= last && x < d4) {
                bb = k[ki(p, j, kh) + x];
                if (MODE != T_STATS) bb2 = v[vi(p, j, kh) + x];
            }
            tb[(e / TD4) * TP4 + x] = bb;
            tb2[(e / TD4) * TP4 + x] = bb2;
        }
        __syncthreads();
        for (u32 u = 0; u < 2u; u++) {
            u32 c = sub * 2u + u;
            bool live = row < rend && j0 + c <= (causal ? row : last);
            float w;
            if (MODE == T_DQ) {
                w = 0.0f;
                if (live) {
                    float pr = expf(tile_dot(&ta[r * TP4], &tb[c * TP4], d4) * scale - lse);
                    w = pr * (tile_dot(&ta2[r * TP4], &tb2[c * TP4], d4) - dd) * scale;
                }
            } else {
                w = live ? tile_dot(&ta[r * TP4], &tb[c * TP4], d4) * scale : -3.0e38f;
            }
            ps[r * TC + c] = w;
        }
        __syncthreads();
        if (MODE == T_DQ) {
            for (u32 c = 0; c < TC; c++) {
                float w = ps[r * TC + c];
#pragma unroll
                for (u32 mm = 0; mm < 4u; mm++)
                    acc[mm] = f4_mac(acc[mm], w, tb[c * TP4 + sub + 4u * mm]);
            }
        } else {
            float tmax = -3.0e38f;
            for (u32 c = 0; c < TC; c++) tmax = fmaxf(tmax, ps[r * TC + c]);
            float mn = fmaxf(m, tmax), corr = expf(m - mn);
            l *= corr;
            if (MODE == T_FWD) {
#pragma unroll
                for (u32 mm = 0; mm < 4u; mm++) acc[mm] = f4_scale(acc[mm], corr);
            }
            for (u32 c = 0; c < TC; c++) {
                float sc = ps[r * TC + c];
                if (sc > -1.0e38f) {
                    float pr = expf(sc - mn);
                    l += pr;
                    if (MODE == T_FWD) {
#pragma unroll
                        for (u32 mm = 0; mm < 4u; mm++)
                            acc[mm] = f4_mac(acc[mm], pr, tb2[c * TP4 + sub + 4u * mm]);
                    }
                }
            }
            m = mn;
        }
    }
    if (row >= rend) return;
    if (MODE == T_STATS) {
        if (sub == 0u) {
            const float4* b4 = BUF(const float4, 4);
            float* stats = BUF(float, 5);
            const u64 qb = qi(p, row, h);
            float dsum = 0.0f;
            for (u32 x = 0; x < d4; x++) dsum += dot4(a4[qb + x], b4[qb + x]);
            stats[2u * ((u64)row * hq + h)] = m + logf(l);
            stats[2u * ((u64)row * hq + h) + 1u] = dsum;
        }
        return;
    }
    float4* out = BUF(float4, 5);
#pragma unroll
    for (u32 mm = 0; mm < 4u; mm++) {
        u32 col = sub + 4u * mm;
        if (col < d4)
            out[(MODE == T_FWD ? (u64)row * p.w[13] + (u64)h * p.w[14] : qi(p, row, h)) + col] =
                MODE == T_FWD ? make_float4(acc[mm].x / l, acc[mm].y / l, acc[mm].z / l,
                                            acc[mm].w / l)
                              : acc[mm];
    }
}

extern "C" __global__ void causal_attn_tiled_fwd(Params p, Ptrs b) { attn_tiled<T_FWD>(p, b); }
extern "C" __global__ void causal_attn_tiled_stats(Params p, Ptrs b) { attn_tiled<T_STATS>(p, b); }
extern "C" __global__ void causal_attn_tiled_dq(Params p, Ptrs b) { attn_tiled<T_DQ>(p, b); }
extern "C" __global__ void causal_attn_tiled_dk(Params p, Ptrs b) { attn_tiled<T_DK>(p, b); }
extern "C" __global__ void causal_attn_tiled_dv(Params p, Ptrs b) { attn_tiled<T_DV>(p, b); }
