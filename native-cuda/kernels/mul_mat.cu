// mul_mat.cu — y = x · Wᵀ (+ res), the twin of shaders/mul_mat_vec.wgsl (GEMV,
// m ≤ 8) and shaders/mul_mat.wgsl (tiled GEMM). ops/matmul.rs plans both.
// Params: m, n, k, n0 (first weight row of this chunk), rows, has_res,
// rows_per_wg, lora_rank.
// Bindings: 0 W (any dtype, rows n0..n0+rows), 1 x [m, k] f32, 2 y [m, n] f32,
// 3 res [m, n] f32 (x itself when has_res = 0); with lora_rank > 0 (LORA),
// 4 lh [m, r] and 5 lb [n, r]: y += lh·lbᵀ in the epilogue.
// mul_mat_fused_* (the twin of shaders/mul_mat_fused.wgsl, ops/matmul_fused.rs):
// decode GEMV with an RMSNorm prologue and a SwiGLU epilogue, see below.
#include "common.cuh"
#include "quant.cuh"
#include "gemv1.cuh"
#include "tile32.cuh"
#include "tile64.cuh"

// y[i] (+ the LoRA term Σ_j lh[m, j]·lb[c, j] when lora_rank = p.w[7] > 0,
// bindings 4 lh [m, r] and 5 lb [n, r]) (+ res[i]).
__device__ __forceinline__ void put(const Params& p, const Ptrs& b, u32 i, float v) {
    float* y = BUF(float, 2);
    const float* res = BUF(const float, 3);
    const u32 r = p.w[7];
    if (r) {
        const float* lh = BUF(const float, 4);
        const float* lb = BUF(const float, 5);
        const u64 hb = (u64)(i / p.w[1]) * r, bb = (u64)(i % p.w[1]) * r;
        for (u32 j = 0; j < r; j++) v += lh[hb + j] * lb[bb + j];
    }
    y[i] = p.w[5] != 0u ? v + res[i] : v;
}

// GEMV (the SUBGROUPS variant of mul_mat_vec.wgsl): a block of 64 threads
// (two warps) owns rows_per_wg consecutive weight rows (2 as planned for
// CUDA; 8 with X4); each warp takes rows in turn,
// its lanes stride over K and reduce with shuffles. Rows of x go 8 at a time.
// X4 (the XREG twin, common/gemv_rows.wgsl; m = 1, k % 32 = 0): where the
// wide-load path applies each warp takes 4 rows at a time in one pass
// (rows_per_wg is 8); elsewhere the rows go one per warp in turn as without.
template <class D, bool X4>
__device__ void mul_mat_vec(const Params& p, const Ptrs& b) {
    const u8* W = BUF(const u8, 0);
    const float* x = BUF(const float, 1);
    const u32 m = p.w[0], n = p.w[1], k = p.w[2], n0 = p.w[3], rows = p.w[4];
    const u32 lane = threadIdx.x & 31u, sg = threadIdx.x >> 5;
    const u32 R = p.w[6] ? p.w[6] : 8u;  // rows per block (params: rows_per_wg)
    const u32 r0 = wg_index() * R;
    const u32 ng = (k + 3u) / 4u;
    prefetch_rows<D>(W, r0, min(r0 + R, rows), k);
    kiln_entry();  // this entry waits itself (kernels::SELF_WAITING)
    if constexpr (X4 && Half<D>::ok) {
        if (half_ok(m, k, x, x)) {
            const u32 last = rows - 1u;
            for (u32 rq = sg * 4u; rq < R; rq += 8u) {
                const u32 r = r0 + rq;
                if (r >= rows) break;
                const uint4 rs = make_uint4(r, min(r + 1u, last), min(r + 2u, last), min(r + 3u, last));
                const float4 s4 = half_rows4<D, false>(W, rs, k, x, x, lane);
                const float sv[4] = {s4.x, s4.y, s4.z, s4.w};
                if (lane == 0u)
                    for (u32 i = 0; i < 4u; i++)
                        if (r + i < rows) put(p, b, n0 + r + i, sv[i]);
            }
            return;
        }
    }
    for (u32 rr = sg; rr < R; rr += 2u) {
        u32 r = r0 + rr;
        if (r >= rows) break;
        if constexpr (Half<D>::ok) {
            if (half_ok(m, k, x, x)) {
                float s = half_row<D, false>(W, r, k, x, x, lane);
                if (lane == 0u) put(p, b, n0 + r, s);
                continue;
            }
        }
        if (m == 1u) {
            float acc = 0.0f;
            for (u32 u = lane; u < (k + 31u) / 32u; u += 32u) acc += D::dot32(W, r, k, u, x);
            float s = warp_sum(acc);
            if (lane == 0u) put(p, b, n0 + r, s);
            continue;
        }
        for (u32 m0 = 0; m0 < m; m0 += 8u) {
            u32 mc = min(8u, m - m0);
            float acc[8] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f};
            for (u32 g = lane; g < ng; g += 32u) {
                float4 w = D::w4(W, r, k, g);
#pragma unroll
                for (u32 mm = 0; mm < 8u; mm++)
                    if (mm < mc) acc[mm] += dot4(w, xs4(x + (u64)(m0 + mm) * k, k, g));
            }
#pragma unroll
            for (u32 mm = 0; mm < 8u; mm++) {
                if (mm < mc) {
                    float s = warp_sum(acc[mm]);
                    if (lane == 0u) put(p, b, (m0 + mm) * n + n0 + r, s);
                }
            }
        }
    }
}

// Tiled GEMM (mul_mat.wgsl): 16×16 threads, a 32×32 output tile, each thread
// a 2×2 block; K advances 32 at a time with both tiles staged (dequantized)
// in shared memory. Grid (ceil(rows/32), ceil(m/32)).
template <class D>
__device__ void mul_mat(const Params& p, const Ptrs& b) {
    __shared__ float xs[32 * 33];
    __shared__ float ws[32 * 33];
    const u8* W = BUF(const u8, 0);
    const float* x = BUF(const float, 1);
    const u32 m = p.w[0], n = p.w[1], k = p.w[2], n0 = p.w[3], rows = p.w[4];
    const u32 r0 = blockIdx.x * 32u, m0 = blockIdx.y * 32u;
    const u32 lid = threadIdx.y * 16u + threadIdx.x;
    const u32 lr = lid / 8u, lg = lid % 8u;
    float acc[4] = {0.f, 0.f, 0.f, 0.f};
    for (u32 k0 = 0; k0 < k; k0 += 32u) {
        u32 g = k0 / 4u + lg;
        float4 xv = make_float4(0.f, 0.f, 0.f, 0.f);
        u32 xm = m0 + lr;
        if (xm < m) xv = xs4(x + (u64)xm * k, k, g);
        float4 wv = make_float4(0.f, 0.f, 0.f, 0.f);
        if (r0 + lr < rows && 4u * g < k) wv = D::w4(W, r0 + lr, k, g);
        tile_store(xs, ws, lr, lg, xv, wv);
        __syncthreads();
        tile_mac(xs, ws, threadIdx.y * 2u, threadIdx.x * 2u, acc);
        __syncthreads();
    }
    for (u32 i = 0; i < 2u; i++) {
        for (u32 j = 0; j < 2u; j++) {
            u32 mm = m0 + threadIdx.y * 2u + i, r = r0 + threadIdx.x * 2u + j;
            if (mm < m && r < rows) put(p, b, mm * n + n0 + r, acc[i * 2u + j]);
        }
    }
}

// TILE64 (mul_mat.wgsl): a 64×64 output tile, each thread a 4×4 block, K
// advancing 16 at a time (tile64.cuh).
// Grid (ceil(rows/64), ceil(m/64)).
template <class D>
__device__ void mul_mat64(const Params& p, const Ptrs& b) {
    __shared__ float xs[64 * 17];
    __shared__ float ws[64 * 17];
    const u8* W = BUF(const u8, 0);
    const float* x = BUF(const float, 1);
    const u32 m = p.w[0], n = p.w[1], k = p.w[2], n0 = p.w[3], rows = p.w[4];
    const u32 r0 = blockIdx.x * 64u, m0 = blockIdx.y * 64u;
    const u32 tx = threadIdx.x, ty = threadIdx.y;
    const u32 lid = ty * 16u + tx;
    const u32 lr = lid / 4u, lg = lid % 4u;
    float acc[16];
#pragma unroll
    for (u32 i = 0; i < 16u; i++) acc[i] = 0.f;
    for (u32 k0 = 0; k0 < k; k0 += 16u) {
        u32 g = k0 / 4u + lg;
        float4 xv = make_float4(0.f, 0.f, 0.f, 0.f);
        if (m0 + lr < m) xv = xs4(x + (u64)(m0 + lr) * k, k, g);
        float4 wv = make_float4(0.f, 0.f, 0.f, 0.f);
        if (r0 + lr < rows && 4u * g < k) wv = D::w4(W, r0 + lr, k, g);
        tile64_store(xs, ws, lr, lg, xv, wv);
        __syncthreads();
        tile64_mac(xs, ws, tx, ty, acc);
        __syncthreads();
    }
tile64_each(m0, r0, m, rows, acc, [&](u32 mm, u32 r, float v) { put(p, b, mm * n + n0 + r, v); });
}

// Fused decode GEMV (the SUBGROUPS variant of mul_mat_fused.wgsl):
// y = f(norm(x) · Wᵀ) (+ res). Params: m (≤ 8), n, k, has_res, has_norm, eps,
// glu. Bindings: 0 W, 1 x [m, k], 2 y [m, n], 3 res (x when unused), 4 nw [k]
// (x when unused). norm is RMSNorm with weight nw (has_norm); with glu,
// y[c] = silu(x·W[c]) · x·W[c + n]. Blocks of 64 (two warps), rows_per_wg
// output columns per block (2 as planned for CUDA; 8, or 4 with glu, with
// X4); each warp recomputes the rows' RMS (k values).
// X4: as mul_mat_vec's, 4 columns per warp at a time (2 with glu: their gate
// and up rows) where the wide-load path applies.
template <class D, bool X4>
__device__ void mul_mat_fused(const Params& p, const Ptrs& b) {
    const u8* W = BUF(const u8, 0);
    const float* x = BUF(const float, 1);
    float* y = BUF(float, 2);
    const float* res = BUF(const float, 3);
    const float* nw = BUF(const float, 4);
    const u32 m = min(p.w[0], 8u), n = p.w[1], k = p.w[2];
    const bool has_res = p.w[3] != 0u, has_norm = p.w[4] != 0u, glu = p.w[6] != 0u;
    const float eps = PF(5);
    const u32 lane = threadIdx.x & 31u, sg = threadIdx.x >> 5;
    const u32 R = p.w[7] ? p.w[7] : 8u;  // columns per block (params: rows_per_wg)
    const u32 c0 = wg_index() * R;
    prefetch_rows<D>(W, c0, min(c0 + R, n), k);
    if (glu) prefetch_rows<D>(W, n + c0, n + min(c0 + R, n), k);
    kiln_entry();  // this entry waits itself (kernels::SELF_WAITING)
    float inv[8];
    for (u32 mm = 0; mm < 8u; mm++) {
        inv[mm] = 1.0f;
        if (has_norm && mm < m) {
            float s = 0.0f;
            for (u32 c = lane; c < k; c += 32u) {
                float v = x[(u64)mm * k + c];
                s += v * v;
            }
            inv[mm] = 1.0f / sqrtf(warp_sum(s) / (float)k + eps);
        }
    }
    if constexpr (Half<D>::ok) {
        if (half_ok(m, k, x, has_norm ? nw : x)) {
            // m = 1 over whole blocks (gemv1.cuh): 1/rms applied to the sums.
            if constexpr (X4) {
                const u32 cs = glu ? 2u : 4u, last = n - 1u;
                for (u32 cq = sg * cs; cq < R; cq += 2u * cs) {
                    const u32 c = c0 + cq;
                    if (c >= n) break;
                    const u32 c1 = min(c + 1u, last);
                    const uint4 rs = glu ? make_uint4(c, c1, c + n, c1 + n)
                                         : make_uint4(c, c1, min(c + 2u, last), min(c + 3u, last));
                    float4 s4 = has_norm ? half_rows4<D, true>(W, rs, k, x, nw, lane)
                                         : half_rows4<D, false>(W, rs, k, x, x, lane);
                    const float sv[4] = {s4.x * inv[0], s4.y * inv[0], s4.z * inv[0], s4.w * inv[0]};
                    if (lane == 0u) {
                        for (u32 i = 0; i < (glu ? 2u : 4u); i++) {
                            if (c + i >= n) break;
                            const float a = sv[i];
                            float v = glu ? a / (1.0f + expf(-a)) * sv[i + 2u] : a;
                            if (has_res) v += res[c + i];
                            y[c + i] = v;
                        }
                    }
                }
                return;
            }
            for (u32 cc = sg; cc < R; cc += 2u) {
                const u32 c = c0 + cc;
                if (c >= n) break;
                float sa, sb = 0.0f;
                if (glu) {
                    float2 r2 = has_norm ? half_rows2<D, true>(W, c, c + n, k, x, nw, lane)
                                         : half_rows2<D, false>(W, c, c + n, k, x, x, lane);
                    sa = r2.x * inv[0];
                    sb = r2.y * inv[0];
                } else {
                    sa = (has_norm ? half_row<D, true>(W, c, k, x, nw, lane) : half_row<D, false>(W, c, k, x, x, lane)) *
                         inv[0];
                }
                if (lane == 0u) {
                    float v = glu ? sa / (1.0f + expf(-sa)) * sb : sa;
                    if (has_res) v += res[c];
                    y[c] = v;
                }
            }
            return;
        }
    }
    const u32 ng = (k + 3u) / 4u;
    for (u32 cc = sg; cc < R; cc += 2u) {
        u32 c = c0 + cc;
        if (c >= n) break;
        float a[8] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f};
        float bb[8] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f};
        for (u32 g = lane; g < ng; g += 32u) {
            float4 w = D::w4(W, c, k, g);
            float4 w2 = glu ? D::w4(W, c + n, k, g) : make_float4(0.f, 0.f, 0.f, 0.f);
            float4 s = has_norm ? xs4(nw, k, g) : make_float4(1.f, 1.f, 1.f, 1.f);
#pragma unroll
            for (u32 mm = 0; mm < 8u; mm++) {
                if (mm < m) {
                    float4 xv = xs4(x + (u64)mm * k, k, g);
                    float f = inv[mm];
                    xv = make_float4(xv.x * f * s.x, xv.y * f * s.y, xv.z * f * s.z, xv.w * f * s.w);
                    a[mm] += dot4(w, xv);
                    if (glu) bb[mm] += dot4(w2, xv);
                }
            }
        }
#pragma unroll
        for (u32 mm = 0; mm < 8u; mm++) {
            if (mm < m) {
                float sa = warp_sum(a[mm]), sb = warp_sum(bb[mm]);
                if (lane == 0u) {
                    float v = glu ? sa / (1.0f + expf(-sa)) * sb : sa;
                    u64 i = (u64)mm * n + c;
                    if (has_res) v += res[i];
                    y[i] = v;
                }
            }
        }
    }
}

extern "C" __global__ void mul_mat_fused_f32(Params p, Ptrs b) { mul_mat_fused<DF32, false>(p, b); }
extern "C" __global__ void mul_mat_fused4_f32(Params p, Ptrs b) { mul_mat_fused<DF32, true>(p, b); }
extern "C" __global__ void mul_mat_fused_f16(Params p, Ptrs b) { mul_mat_fused<DF16, false>(p, b); }
extern "C" __global__ void mul_mat_fused4_f16(Params p, Ptrs b) { mul_mat_fused<DF16, true>(p, b); }
extern "C" __global__ void mul_mat_fused_bf16(Params p, Ptrs b) { mul_mat_fused<DBF16, false>(p, b); }
extern "C" __global__ void mul_mat_fused4_bf16(Params p, Ptrs b) { mul_mat_fused<DBF16, true>(p, b); }
extern "C" __global__ void mul_mat_fused_q8_0(Params p, Ptrs b) { mul_mat_fused<DQ8_0, false>(p, b); }
extern "C" __global__ void mul_mat_fused4_q8_0(Params p, Ptrs b) { mul_mat_fused<DQ8_0, true>(p, b); }
extern "C" __global__ void mul_mat_fused_q4_0(Params p, Ptrs b) { mul_mat_fused<DQ4_0, false>(p, b); }
extern "C" __global__ void mul_mat_fused4_q4_0(Params p, Ptrs b) { mul_mat_fused<DQ4_0, true>(p, b); }
extern "C" __global__ void mul_mat_fused_q4_1(Params p, Ptrs b) { mul_mat_fused<DQ4_1, false>(p, b); }
extern "C" __global__ void mul_mat_fused4_q4_1(Params p, Ptrs b) { mul_mat_fused<DQ4_1, true>(p, b); }
extern "C" __global__ void mul_mat_fused_q5_0(Params p, Ptrs b) { mul_mat_fused<DQ5_0, false>(p, b); }
extern "C" __global__ void mul_mat_fused4_q5_0(Params p, Ptrs b) { mul_mat_fused<DQ5_0, true>(p, b); }
extern "C" __global__ void mul_mat_fused_q5_1(Params p, Ptrs b) { mul_mat_fused<DQ5_1, false>(p, b); }
extern "C" __global__ void mul_mat_fused4_q5_1(Params p, Ptrs b) { mul_mat_fused<DQ5_1, true>(p, b); }
extern "C" __global__ void mul_mat_fused_q2_k(Params p, Ptrs b) { mul_mat_fused<DQ2_K, false>(p, b); }
extern "C" __global__ void mul_mat_fused4_q2_k(Params p, Ptrs b) { mul_mat_fused<DQ2_K, true>(p, b); }
extern "C" __global__ void mul_mat_fused_q3_k(Params p, Ptrs b) { mul_mat_fused<DQ3_K, false>(p, b); }
extern "C" __global__ void mul_mat_fused4_q3_k(Params p, Ptrs b) { mul_mat_fused<DQ3_K, true>(p, b); }
extern "C" __global__ void mul_mat_fused_q4_k(Params p, Ptrs b) { mul_mat_fused<DQ4_K, false>(p, b); }
extern "C" __global__ void mul_mat_fused4_q4_k(Params p, Ptrs b) { mul_mat_fused<DQ4_K, true>(p, b); }
extern "C" __global__ void mul_mat_fused_q5_k(Params p, Ptrs b) { mul_mat_fused<DQ5_K, false>(p, b); }
extern "C" __global__ void mul_mat_fused4_q5_k(Params p, Ptrs b) { mul_mat_fused<DQ5_K, true>(p, b); }
extern "C" __global__ void mul_mat_fused_q6_k(Params p, Ptrs b) { mul_mat_fused<DQ6_K, false>(p, b); }
extern "C" __global__ void mul_mat_fused4_q6_k(Params p, Ptrs b) { mul_mat_fused<DQ6_K, true>(p, b); }
extern "C" __global__ void mul_mat_fused_iq4_nl(Params p, Ptrs b) { mul_mat_fused<DIQ4_NL, false>(p, b); }
extern "C" __global__ void mul_mat_fused4_iq4_nl(Params p, Ptrs b) { mul_mat_fused<DIQ4_NL, true>(p, b); }
extern "C" __global__ void mul_mat_fused_iq4_xs(Params p, Ptrs b) { mul_mat_fused<DIQ4_XS, false>(p, b); }
extern "C" __global__ void mul_mat_fused4_iq4_xs(Params p, Ptrs b) { mul_mat_fused<DIQ4_XS, true>(p, b); }

extern "C" __global__ void mul_mat_vec_f32(Params p, Ptrs b) { mul_mat_vec<DF32, false>(p, b); }
extern "C" __global__ void mul_mat_vec4_f32(Params p, Ptrs b) { mul_mat_vec<DF32, true>(p, b); }
extern "C" __global__ void mul_mat_vec_f16(Params p, Ptrs b) { mul_mat_vec<DF16, false>(p, b); }
extern "C" __global__ void mul_mat_vec4_f16(Params p, Ptrs b) { mul_mat_vec<DF16, true>(p, b); }
extern "C" __global__ void mul_mat_vec_bf16(Params p, Ptrs b) { mul_mat_vec<DBF16, false>(p, b); }
extern "C" __global__ void mul_mat_vec4_bf16(Params p, Ptrs b) { mul_mat_vec<DBF16, true>(p, b); }
extern "C" __global__ void mul_mat_vec_q8_0(Params p, Ptrs b) { mul_mat_vec<DQ8_0, false>(p, b); }
extern "C" __global__ void mul_mat_vec4_q8_0(Params p, Ptrs b) { mul_mat_vec<DQ8_0, true>(p, b); }
extern "C" __global__ void mul_mat_vec_q4_0(Params p, Ptrs b) { mul_mat_vec<DQ4_0, false>(p, b); }
extern "C" __global__ void mul_mat_vec4_q4_0(Params p, Ptrs b) { mul_mat_vec<DQ4_0, true>(p, b); }
extern "C" __global__ void mul_mat_vec_q4_1(Params p, Ptrs b) { mul_mat_vec<DQ4_1, false>(p, b); }
extern "C" __global__ void mul_mat_vec4_q4_1(Params p, Ptrs b) { mul_mat_vec<DQ4_1, true>(p, b); }
extern "C" __global__ void mul_mat_vec_q5_0(Params p, Ptrs b) { mul_mat_vec<DQ5_0, false>(p, b); }
extern "C" __global__ void mul_mat_vec4_q5_0(Params p, Ptrs b) { mul_mat_vec<DQ5_0, true>(p, b); }
extern "C" __global__ void mul_mat_vec_q5_1(Params p, Ptrs b) { mul_mat_vec<DQ5_1, false>(p, b); }
extern "C" __global__ void mul_mat_vec4_q5_1(Params p, Ptrs b) { mul_mat_vec<DQ5_1, true>(p, b); }
extern "C" __global__ void mul_mat_vec_q2_k(Params p, Ptrs b) { mul_mat_vec<DQ2_K, false>(p, b); }
extern "C" __global__ void mul_mat_vec4_q2_k(Params p, Ptrs b) { mul_mat_vec<DQ2_K, true>(p, b); }
extern "C" __global__ void mul_mat_vec_q3_k(Params p, Ptrs b) { mul_mat_vec<DQ3_K, false>(p, b); }
extern "C" __global__ void mul_mat_vec4_q3_k(Params p, Ptrs b) { mul_mat_vec<DQ3_K, true>(p, b); }
extern "C" __global__ void mul_mat_vec_q4_k(Params p, Ptrs b) { mul_mat_vec<DQ4_K, false>(p, b); }
extern "C" __global__ void mul_mat_vec4_q4_k(Params p, Ptrs b) { mul_mat_vec<DQ4_K, true>(p, b); }
extern "C" __global__ void mul_mat_vec_q5_k(Params p, Ptrs b) { mul_mat_vec<DQ5_K, false>(p, b); }
extern "C" __global__ void mul_mat_vec4_q5_k(Params p, Ptrs b) { mul_mat_vec<DQ5_K, true>(p, b); }
extern "C" __global__ void mul_mat_vec_q6_k(Params p, Ptrs b) { mul_mat_vec<DQ6_K, false>(p, b); }
extern "C" __global__ void mul_mat_vec4_q6_k(Params p, Ptrs b) { mul_mat_vec<DQ6_K, true>(p, b); }
extern "C" __global__ void mul_mat_vec_iq4_nl(Params p, Ptrs b) { mul_mat_vec<DIQ4_NL, false>(p, b); }
extern "C" __global__ void mul_mat_vec4_iq4_nl(Params p, Ptrs b) { mul_mat_vec<DIQ4_NL, true>(p, b); }
extern "C" __global__ void mul_mat_vec_iq4_xs(Params p, Ptrs b) { mul_mat_vec<DIQ4_XS, false>(p, b); }
extern "C" __global__ void mul_mat_vec4_iq4_xs(Params p, Ptrs b) { mul_mat_vec<DIQ4_XS, true>(p, b); }

extern "C" __global__ void mul_mat_f32(Params p, Ptrs b) { mul_mat<DF32>(p, b); }
extern "C" __global__ void mul_mat_f16(Params p, Ptrs b) { mul_mat<DF16>(p, b); }
extern "C" __global__ void mul_mat_bf16(Params p, Ptrs b) { mul_mat<DBF16>(p, b); }
extern "C" __global__ void mul_mat_q8_0(Params p, Ptrs b) { mul_mat<DQ8_0>(p, b); }
extern "C" __global__ void mul_mat_q4_0(Params p, Ptrs b) { mul_mat<DQ4_0>(p, b); }
extern "C" __global__ void mul_mat_q4_1(Params p, Ptrs b) { mul_mat<DQ4_1>(p, b); }
extern "C" __global__ void mul_mat_q5_0(Params p, Ptrs b) { mul_mat<DQ5_0>(p, b); }
extern "C" __global__ void mul_mat_q5_1(Params p, Ptrs b) { mul_mat<DQ5_1>(p, b); }
extern "C" __global__ void mul_mat_q2_k(Params p, Ptrs b) { mul_mat<DQ2_K>(p, b); }
extern "C" __global__ void mul_mat_q3_k(Params p, Ptrs b) { mul_mat<DQ3_K>(p, b); }
extern "C" __global__ void mul_mat_q4_k(Params p, Ptrs b) { mul_mat<DQ4_K>(p, b); }
extern "C" __global__ void mul_mat_q5_k(Params p, Ptrs b) { mul_mat<DQ5_K>(p, b); }
extern "C" __global__ void mul_mat_q6_k(Params p, Ptrs b) { mul_mat<DQ6_K>(p, b); }
extern "C" __global__ void mul_mat_iq4_nl(Params p, Ptrs b) { mul_mat<DIQ4_NL>(p, b); }
extern "C" __global__ void mul_mat_iq4_xs(Params p, Ptrs b) { mul_mat<DIQ4_XS>(p, b); }
extern "C" __global__ void mul_mat64_f32(Params p, Ptrs b) { mul_mat64<DF32>(p, b); }
extern "C" __global__ void mul_mat64_f16(Params p, Ptrs b) { mul_mat64<DF16>(p, b); }
extern "C" __global__ void mul_mat64_bf16(Params p, Ptrs b) { mul_mat64<DBF16>(p, b); }
extern "C" __global__ void mul_mat64_q8_0(Params p, Ptrs b) { mul_mat64<DQ8_0>(p, b); }
extern "C" __global__ void mul_mat64_q4_0(Params p, Ptrs b) { mul_mat64<DQ4_0>(p, b); }
extern "C" __global__ void mul_mat64_q4_1(Params p, Ptrs b) { mul_mat64<DQ4_1>(p, b); }
extern "C" __global__ void mul_mat64_q5_0(Params p, Ptrs b) { mul_mat64<DQ5_0>(p, b); }
extern "C" __global__ void mul_mat64_q5_1(Params p, Ptrs b) { mul_mat64<DQ5_1>(p, b); }
extern "C" __global__ void mul_mat64_q2_k(Params p, Ptrs b) { mul_mat64<DQ2_K>(p, b); }
extern "C" __global__ void mul_mat64_q3_k(Params p, Ptrs b) { mul_mat64<DQ3_K>(p, b); }
extern "C" __global__ void mul_mat64_q4_k(Params p, Ptrs b) { mul_mat64<DQ4_K>(p, b); }
extern "C" __global__ void mul_mat64_q5_k(Params p, Ptrs b) { mul_mat64<DQ5_K>(p, b); }
extern "C" __global__ void mul_mat64_q6_k(Params p, Ptrs b) { mul_mat64<DQ6_K>(p, b); }
extern "C" __global__ void mul_mat64_iq4_nl(Params p, Ptrs b) { mul_mat64<DIQ4_NL>(p, b); }
extern "C" __global__ void mul_mat64_iq4_xs(Params p, Ptrs b) { mul_mat64<DIQ4_XS>(p, b); }
