// attention.cu — causal GQA attention over a KV cache, the twin of
// shaders/attention.wgsl (ops/attention.rs).
// Params (all entries): t, hq, hkv, d, cap, scale, pos_sym, ns, window (a
// sliding window of keys, 0: all — key_lo).
// attn_rows_* / attn_split_* / attn_one_* bindings: 0 q [t, hq, d] f32, 1 k, 2 v
//   [hkv, cap, d] (f32, or IEEE halves for the _f16 entries), 3 syms,
//   4 out: attn_rows → y [t, hq·d]; attn_split → partials [t·hq, ns, d+2]
//   = (max, sum, Σ p·v).
// attn_combine bindings: 0 partials, 1 y.
// *_rope entries (ROPE_Q): q is a window of rows of ld values, roped as it is
//   loaded; rope.cu's parameter words 3..16 follow window (offset 6), binding 5
//   is the frequency divisors (q itself when there are none).
// *_rope_kv entries (NEW_KV, t = 1): the step's own K (roped, at column
//   k_col0 = w[23]) and V (v_col0 = w[24]) heads of the same row are written
//   into the caches at pos by the first query head of each KV group (in
//   attn_split the split holding key pos), and every block scores key pos
//   from its own copy (rounded as the cache holds it), as the WGSL twin.
// Blocks of 64 threads; each thread owns head dims lid + 64·i (i < 4, d ≤ 256).
// attn_rows: one block per (token, head); attn_split: grid (t·hq, ns);
// attn_combine: one block per (token, head). attn_one: one block of 256 per
// (token, head), below; attn_tile: one block of 256 per (16 tokens, head).
#include "common.cuh"
#include "rope.cuh"

struct KvF32 {
    static __device__ __forceinline__ float at(const void* c, u64 e) { return ((const float*)c)[e]; }
    static __device__ __forceinline__ float round(float x) { return x; }
    static __device__ __forceinline__ void put(u64 c, u64 e, float x) { ((float*)c)[e] = x; }
};
struct KvF16 {
    static __device__ __forceinline__ float at(const void* c, u64 e) { return h2f(((const u16*)c)[e]); }
    static __device__ __forceinline__ float round(float x) { return h2f(f2h(x)); }
    static __device__ __forceinline__ void put(u64 c, u64 e, float x) { ((u16*)c)[e] = f2h(x); }
};

// NEW_KV: this step's key (roped) and value of KV head kvh into kn, vn, as
// the cache holds them (published by load_q's barrier, which must follow).
template <class KV, u32 WG>
__device__ void load_new_kv(const Params& p, const Ptrs& b, u32 kvh, float* kn, float* vn) {
    const u32 d = p.w[3], lid = threadIdx.x;
    const float* q = BUF(const float, 0);
    const float* fac = BUF(const float, 5);
    const float pos = (float)BUF(const u32, 3)[p.w[6]];
    for (u32 c = lid; c < d; c += WG) {
        kn[c] = KV::round(rope_rotated(p, q, fac, (u64)p.w[23] + (u64)kvh * d, c, pos, 6));
        vn[c] = KV::round(q[(u64)p.w[24] + (u64)kvh * d + c]);
    }
}

// Writes kn and vn into cache row pos of KV head kvh (after load_q).
template <class KV, u32 WG>
__device__ void store_new_kv(const Params& p, const Ptrs& b, u32 kvh, const float* kn, const float* vn) {
    const u32 d = p.w[3], cap = p.w[4], lid = threadIdx.x;
    const u64 e0 = ((u64)kvh * cap + BUF(const u32, 3)[p.w[6]]) * d;
    for (u32 c = lid; c < d; c += WG) {
        KV::put(b.p[1], e0 + c, kn[c]);
        KV::put(b.p[2], e0 + c, vn[c]);
    }
}

// Whether query row `row`'s block writes its KV head's new row.
__device__ __forceinline__ bool kv_writer(const Params& p, u32 row) {
    const u32 hq = p.w[1], hkv = p.w[2];
    return (row % hq) % (hq / hkv) == 0u;
}

// The first key a query that sees keys [0, n_kv) attends to.
__device__ __forceinline__ u32 key_lo(const Params& p, u32 n_kv) {
    const u32 w = p.w[8];
    return (w > 0u && n_kv > w) ? n_kv - w : 0u;
}

struct AttnState {
    float m, l;
    float acc[4];
};

// Query row `qi` (roped with ROPE) times the scale into qs; WG threads.
template <bool ROPE, u32 WG>
__device__ void load_q(const Params& p, const Ptrs& b, u32 qi, float* qs) {
    const u32 d = p.w[3], lid = threadIdx.x;
    const float scale = PF(5);
    const float* q = BUF(const float, 0);
    if (ROPE) {
        const u32 hq = p.w[1], ti = qi / hq;
        u64 xb = (u64)ti * p.w[22] + p.w[21] + (u64)(qi % hq) * d;
        float pos = (float)(BUF(const u32, 3)[p.w[6]] + ti);
        const float* fac = BUF(const float, 5);
        for (u32 c = lid; c < d; c += WG) qs[c] = rope_rotated(p, q, fac, xb, c, pos, 6) * scale;
    } else {
        for (u32 c = lid; c < d; c += WG) qs[c] = q[(u64)qi * d + c] * scale;
    }
    __syncthreads();
}

// One block of the online softmax (WG threads): scores of keys c0 + lid
// (those < j1) of KV head kvh against qs; each key's weight exp(s − m_new)
// goes to ps. Returns (m_new, exp(m − m_new), Σ weights).
// NEW: key jn is kn (NEW_KV).
template <class KV, u32 WG, bool NEW>
__device__ float3 softmax_block(const Params& p, const Ptrs& b, const float* qs, float* ps, u32 kvh,
                                u32 c0, u32 j1, float m, const float* kn, u32 jn) {
    const u32 d = p.w[3], cap = p.w[4], lid = threadIdx.x;
    const void* kc = (const void*)b.p[1];
    u32 j = c0 + lid;
    float s = -3.0e38f;
    if (j < j1) {
        u64 kb = ((u64)kvh * cap + j) * d;
        float dot = 0.0f;
        if (NEW && j == jn) {
            for (u32 c = 0; c < d; c++) dot += qs[c] * kn[c];
        } else {
            for (u32 c = 0; c < d; c++) dot += qs[c] * KV::at(kc, kb + c);
        }
        s = dot;
    }
    float m_new = fmaxf(m, block_max<WG>(s));
    float corr = expf(m - m_new);
    float e = j < j1 ? expf(s - m_new) : 0.0f;
    ps[lid] = e;
    return make_float3(m_new, corr, block_sum<WG>(e));
}

// Online softmax of query row `qi` against keys [j0, j1) of KV head `kvh`.
// With NEW, `write`: this block writes the KV head's new row.
template <class KV, bool ROPE, bool NEW>
__device__ AttnState attend(const Params& p, const Ptrs& b, u32 qi, u32 kvh, u32 j0, u32 j1, bool write) {
    __shared__ float qs[256];
    __shared__ float ps[64];
    __shared__ float kn[NEW ? 256 : 1], vn[NEW ? 256 : 1];
    const u32 d = p.w[3], cap = p.w[4];
    const void* vc = (const void*)b.p[2];
    const u32 lid = threadIdx.x;
    const u32 jn = NEW ? BUF(const u32, 3)[p.w[6]] : 0u;
    if (NEW) load_new_kv<KV, 64>(p, b, kvh, kn, vn);
    load_q<ROPE, 64>(p, b, qi, qs);
    if (NEW && write) store_new_kv<KV, 64>(p, b, kvh, kn, vn);
    AttnState st;
    st.m = -3.0e38f;
    st.l = 0.0f;
    for (int i = 0; i < 4; i++) st.acc[i] = 0.0f;
    for (u32 c0 = j0; c0 < j1; c0 += 64u) {
        float3 sb = softmax_block<KV, 64, NEW>(p, b, qs, ps, kvh, c0, j1, st.m, kn, jn);
        st.l = st.l * sb.y + sb.z;
        for (int i = 0; i < 4; i++) st.acc[i] *= sb.y;
        u32 cnt = min(64u, j1 - c0);
        for (u32 jj = 0; jj < cnt; jj++) {
            u64 vb = ((u64)kvh * cap + c0 + jj) * d;
            float pj = ps[jj];
            const bool fresh = NEW && c0 + jj == jn;
            for (u32 i = 0; i < 4u; i++) {
                u32 c = lid + 64u * i;
                if (c < d) st.acc[i] += pj * (fresh ? vn[c] : KV::at(vc, vb + c));
            }
        }
        st.m = sb.x;
        __syncthreads();
    }
    return st;
}

template <class KV, bool ROPE, bool NEW>
__device__ void attn_rows(const Params& p, const Ptrs& b) {
    const u32 t = p.w[0], hq = p.w[1], hkv = p.w[2], d = p.w[3];
    u32 row = wg_index();
    if (row >= t * hq) return;
    u32 ti = row / hq, kvh = (row % hq) / (hq / hkv);
    u32 n_kv = BUF(const u32, 3)[p.w[6]] + ti + 1u;
    AttnState st = attend<KV, ROPE, NEW>(p, b, row, kvh, key_lo(p, n_kv), n_kv, kv_writer(p, row));
    float* y = BUF(float, 4);
    for (u32 i = 0; i < 4u; i++) {
        u32 c = threadIdx.x + 64u * i;
        if (c < d) y[(u64)row * d + c] = st.acc[i] / st.l;
    }
}

template <class KV, bool ROPE, bool NEW>
__device__ void attn_split(const Params& p, const Ptrs& b) {
    const u32 hq = p.w[1], hkv = p.w[2], d = p.w[3], ns = p.w[7];
    u32 row = blockIdx.x, s = blockIdx.y;
    u32 ti = row / hq, kvh = (row % hq) / (hq / hkv);
    u32 n_kv = BUF(const u32, 3)[p.w[6]] + ti + 1u;
    u32 lo = key_lo(p, n_kv);
    u32 len = (n_kv - lo + ns - 1u) / ns;
    u32 j0 = min(lo + s * len, n_kv), j1 = min(j0 + len, n_kv);
    const bool write = kv_writer(p, row) && j0 < n_kv && n_kv <= j1;
    AttnState st = attend<KV, ROPE, NEW>(p, b, row, kvh, j0, j1, write);
    float* out = BUF(float, 4);
    u64 o = ((u64)row * ns + s) * (d + 2u);
    if (threadIdx.x == 0u) {
        out[o] = st.m;
        out[o + 1u] = st.l;
    }
    for (u32 i = 0; i < 4u; i++) {
        u32 c = threadIdx.x + 64u * i;
        if (c < d) out[o + 2u + c] = st.acc[i];
    }
}

// attn_one_*: one block of 256 per (token, head), keys in blocks of 256 (one
// per thread). For the values each thread owns a quad of dims (nq = ⌈d/4⌉
// quads padded to a power of two nqp) and the block splits into 256/nqp key
// groups, each summing every (256/nqp)-th key of a block; the groups' sums
// merge at the end (as the WGSL twin).
template <class KV, bool ROPE, bool NEW>
__device__ void attn_one(const Params& p, const Ptrs& b) {
    __shared__ float qs[256];
    __shared__ float ps[256];
    __shared__ float4 accs[256];
    __shared__ float kn[NEW ? 256 : 1], vn[NEW ? 256 : 1];
    const u32 t = p.w[0], hq = p.w[1], hkv = p.w[2], d = p.w[3], cap = p.w[4];
    u32 row = wg_index();
    if (row >= t * hq) return;
    u32 ti = row / hq, kvh = (row % hq) / (hq / hkv);
    u32 n_kv = BUF(const u32, 3)[p.w[6]] + ti + 1u;
    const u32 jn = n_kv - 1u;
    if (NEW) load_new_kv<KV, 256>(p, b, kvh, kn, vn);
    load_q<ROPE, 256>(p, b, row, qs);
    if (NEW && kv_writer(p, row)) store_new_kv<KV, 256>(p, b, kvh, kn, vn);
    const void* vc = (const void*)b.p[2];
    const u32 lid = threadIdx.x, nq = (d + 3u) / 4u;
    u32 nqp = 1u;
    while (nqp < nq) nqp *= 2u;
    const u32 groups = 256u / nqp, quad = lid % nqp, kg = lid / nqp;
    float m = -3.0e38f, l = 0.0f, acc[4] = {0.f, 0.f, 0.f, 0.f};
    for (u32 c0 = key_lo(p, n_kv); c0 < n_kv; c0 += 256u) {
        float3 sb = softmax_block<KV, 256, NEW>(p, b, qs, ps, kvh, c0, n_kv, m, kn, jn);
        l = l * sb.y + sb.z;
        for (int k = 0; k < 4; k++) acc[k] *= sb.y;
        if (quad < nq) {
            u32 cnt = min(256u, n_kv - c0);
            for (u32 jj = kg; jj < cnt; jj += groups) {
                u64 vb = ((u64)kvh * cap + c0 + jj) * d + 4u * quad;
                float pj = ps[jj];
                const bool fresh = NEW && c0 + jj == jn;
                for (u32 k = 0; k < 4u; k++)
                    if (4u * quad + k < d) acc[k] += pj * (fresh ? vn[4u * quad + k] : KV::at(vc, vb + k));
            }
        }
        m = sb.x;
        __syncthreads();
    }
    accs[lid] = make_float4(acc[0], acc[1], acc[2], acc[3]);
    __syncthreads();
    if (kg == 0u && quad < nq) {
        float sum[4] = {0.f, 0.f, 0.f, 0.f};
        for (u32 g = 0; g < groups; g++) {
            float4 a = accs[g * nqp + quad];
            sum[0] += a.x;
            sum[1] += a.y;
            sum[2] += a.z;
            sum[3] += a.w;
        }
        float* y = BUF(float, 4);
        for (u32 k = 0; k < 4u; k++) {
            u32 c = 4u * quad + k;
            if (c < d) y[(u64)row * d + c] = sum[k] / l;
        }
    }
}

// attn_tile_*: prefill, one block of 256 per (tile of TQ consecutive tokens,
// head), d ≤ TD and d % 4 == 0 (as the WGSL twin): keys and values pass
// through shared memory TK at a time and serve all TQ queries; 16 threads
// per query row, each scoring 2 keys of a block and owning 4 value dims;
// online softmax per row.
#define TQ 16u
#define TK 32u
#define TD 64u
template <class KV, bool ROPE>
__device__ void attn_tile(const Params& p, const Ptrs& b) {
    __shared__ float tq[TQ * (TD + 1u)];
    __shared__ float tkv[TD * (TK + 1u)];
    __shared__ float tp[TQ * TK];
    const u32 t = p.w[0], hq = p.w[1], hkv = p.w[2], d = p.w[3], cap = p.w[4];
    const float scale = PF(5);
    const u32 wg = wg_index();
    if (wg >= (t + TQ - 1u) / TQ * hq) return;
    const u32 h = wg % hq, t0 = wg / hq * TQ, kvh = h / (hq / hkv);
    const u32 pos = BUF(const u32, 3)[p.w[6]];
    const u32 lid = threadIdx.x, r = lid / 16u, g = lid % 16u;
    const bool live = t0 + r < t;
    const u32 n_kv = pos + t0 + r + 1u, lo = key_lo(p, n_kv);
    const float* q = BUF(const float, 0);
    for (u32 e = lid; e < TQ * d; e += 256u) {
        const u32 rr = e / d, c = e % d, ti = t0 + rr;
        float v = 0.0f;
        if (ti < t) {
            if (ROPE) {
                const u64 xb = (u64)ti * p.w[22] + p.w[21] + (u64)h * d;
                v = rope_rotated(p, q, BUF(const float, 5), xb, c, (float)(pos + ti), 6) * scale;
            } else {
                v = q[((u64)ti * hq + h) * d + c] * scale;
            }
        }
        tq[rr * (TD + 1u) + c] = v;
    }
    const u32 j_lo = key_lo(p, pos + t0 + 1u), j_hi = pos + min(t0 + TQ, t);
    const void* kc = (const void*)b.p[1];
    const void* vc = (const void*)b.p[2];
    const u64 kb = (u64)kvh * cap * d;
    float m = -3.0e38f, l = 0.0f, acc[4] = {0.f, 0.f, 0.f, 0.f};
    for (u32 c0 = j_lo; c0 < j_hi; c0 += TK) {
        __syncthreads();  // the previous block's values are read (and the queries written)
        for (u32 e = lid; e < TK * d; e += 256u) {
            const u32 kk = e / d, c = e % d;
            tkv[c * (TK + 1u) + kk] = c0 + kk < j_hi ? KV::at(kc, kb + (u64)(c0 + kk) * d + c) : 0.0f;
        }
        __syncthreads();
        float s0 = 0.0f, s1 = 0.0f;
        for (u32 c = 0; c < d; c++) {
            const float qv = tq[r * (TD + 1u) + c];
            s0 += qv * tkv[c * (TK + 1u) + g];
            s1 += qv * tkv[c * (TK + 1u) + g + 16u];
        }
        const u32 ja = c0 + g, jb = ja + 16u;
        const bool ok0 = live && ja >= lo && ja < n_kv, ok1 = live && jb >= lo && jb < n_kv;
        tp[r * TK + g] = ok0 ? s0 : -3.0e38f;
        tp[r * TK + g + 16u] = ok1 ? s1 : -3.0e38f;
        __syncthreads();
        float mb = -3.0e38f;
        for (u32 j = 0; j < TK; j++) mb = fmaxf(mb, tp[r * TK + j]);
        const float m_new = fmaxf(m, mb), corr = expf(m - m_new);
        const float e0 = ok0 ? expf(s0 - m_new) : 0.0f, e1 = ok1 ? expf(s1 - m_new) : 0.0f;
        __syncthreads();  // every score and key is read
        tp[r * TK + g] = e0;
        tp[r * TK + g + 16u] = e1;
        for (u32 e = lid; e < TK * d; e += 256u) {
            const u32 kk = e / d, c = e % d;
            tkv[kk * TD + c] = c0 + kk < j_hi ? KV::at(vc, kb + (u64)(c0 + kk) * d + c) : 0.0f;
        }
        __syncthreads();
        float lb = 0.0f, a[4] = {0.f, 0.f, 0.f, 0.f};
        const u32 c = min(4u * g, TD - 4u);
        for (u32 j = 0; j < TK; j++) {
            const float pj = tp[r * TK + j];
            lb += pj;
#pragma unroll
            for (u32 i = 0; i < 4u; i++) a[i] += pj * tkv[j * TD + c + i];
        }
        l = l * corr + lb;
#pragma unroll
        for (u32 i = 0; i < 4u; i++) acc[i] = acc[i] * corr + a[i];
        m = m_new;
    }
    if (live && 4u * g < d) {
        float* y = BUF(float, 4);
        const u64 o = (((u64)t0 + r) * hq + h) * d + 4u * g;
        for (u32 i = 0; i < 4u; i++) y[o + i] = acc[i] / l;
    }
}
#undef TQ
#undef TK
#undef TD

extern "C" __global__ void attn_tile_f32(Params p, Ptrs b) { attn_tile<KvF32, false>(p, b); }
extern "C" __global__ void attn_tile_f16(Params p, Ptrs b) { attn_tile<KvF16, false>(p, b); }
extern "C" __global__ void attn_tile_f32_rope(Params p, Ptrs b) { attn_tile<KvF32, true>(p, b); }
extern "C" __global__ void attn_tile_f16_rope(Params p, Ptrs b) { attn_tile<KvF16, true>(p, b); }
extern "C" __global__ void attn_one_f32(Params p, Ptrs b) { attn_one<KvF32, false, false>(p, b); }
extern "C" __global__ void attn_one_f16(Params p, Ptrs b) { attn_one<KvF16, false, false>(p, b); }
extern "C" __global__ void attn_one_f32_rope(Params p, Ptrs b) { attn_one<KvF32, true, false>(p, b); }
extern "C" __global__ void attn_one_f16_rope(Params p, Ptrs b) { attn_one<KvF16, true, false>(p, b); }
extern "C" __global__ void attn_rows_f32(Params p, Ptrs b) { attn_rows<KvF32, false, false>(p, b); }
extern "C" __global__ void attn_rows_f16(Params p, Ptrs b) { attn_rows<KvF16, false, false>(p, b); }
extern "C" __global__ void attn_split_f32(Params p, Ptrs b) { attn_split<KvF32, false, false>(p, b); }
extern "C" __global__ void attn_split_f16(Params p, Ptrs b) { attn_split<KvF16, false, false>(p, b); }
extern "C" __global__ void attn_rows_f32_rope(Params p, Ptrs b) { attn_rows<KvF32, true, false>(p, b); }
extern "C" __global__ void attn_rows_f16_rope(Params p, Ptrs b) { attn_rows<KvF16, true, false>(p, b); }
extern "C" __global__ void attn_split_f32_rope(Params p, Ptrs b) { attn_split<KvF32, true, false>(p, b); }
extern "C" __global__ void attn_split_f16_rope(Params p, Ptrs b) { attn_split<KvF16, true, false>(p, b); }
extern "C" __global__ void attn_one_f32_rope_kv(Params p, Ptrs b) { attn_one<KvF32, true, true>(p, b); }
extern "C" __global__ void attn_one_f16_rope_kv(Params p, Ptrs b) { attn_one<KvF16, true, true>(p, b); }
extern "C" __global__ void attn_rows_f32_rope_kv(Params p, Ptrs b) { attn_rows<KvF32, true, true>(p, b); }
extern "C" __global__ void attn_rows_f16_rope_kv(Params p, Ptrs b) { attn_rows<KvF16, true, true>(p, b); }
extern "C" __global__ void attn_split_f32_rope_kv(Params p, Ptrs b) { attn_split<KvF32, true, true>(p, b); }
extern "C" __global__ void attn_split_f16_rope_kv(Params p, Ptrs b) { attn_split<KvF16, true, true>(p, b); }

// One thread per split reads its (max, sum) and weight in parallel (as the
// WGSL twin); then each head dim adds the weighted sums.
extern "C" __global__ void attn_combine(Params p, Ptrs b) {
    __shared__ float ws[64];
    const u32 t = p.w[0], hq = p.w[1], d = p.w[3], ns = p.w[7];
    u32 row = wg_index();
    if (row >= t * hq) return;
    const float* part = BUF(const float, 0);
    float* y = BUF(float, 1);
    const u32 lid = threadIdx.x;
    u32 stride = d + 2u;
    u64 base = (u64)row * ns * stride;
    float ms = -3.0e38f, ls = 0.0f;
    if (lid < ns) {
        ls = part[base + (u64)lid * stride + 1u];
        if (ls > 0.0f) ms = part[base + (u64)lid * stride];
    }
    float mx = block_max<64>(ms);
    float w = ls > 0.0f ? expf(ms - mx) : 0.0f;
    ws[lid] = w;
    float l = block_sum<64>(w * ls);
    __syncthreads();
    float acc[4] = {0.f, 0.f, 0.f, 0.f};
    for (u32 s = 0; s < ns; s++) {
        float ww = ws[s];
        if (ww > 0.0f) {
            u64 o = base + (u64)s * stride + 2u;
            for (u32 i = 0; i < 4u; i++) {
                u32 c = lid + 64u * i;
                if (c < d) acc[i] += ww * part[o + c];
            }
        }
    }
    for (u32 i = 0; i < 4u; i++) {
        u32 c = lid + 64u * i;
        if (c < d) y[(u64)row * d + c] = acc[i] / l;
    }
}
