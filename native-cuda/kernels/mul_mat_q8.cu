// mul_mat_q8.cu — the twin of shaders/mul_mat_q8.wgsl (ops/matmul_q8.rs):
// matrix products with 8-bit activations. `quantize_q8` writes the m rows of
// x (⊙ nw with has_norm) as blocks of 32 int8 values with d = max|v|/127,
// s = d·Σq and ss = Σx² per block into the scratch xq (layout in the WGSL
// file); `mul_mat_q8_<w>` (m = 1) takes one output column per warp at a
// time, lanes over half-blocks (16 weights) with __dp4a, 1/rms (has_norm),
// SwiGLU (glu) and the residual (has_res) in the epilogue
// (`mul_mat_q8_local_<w>`: blocks of 256 that quantize x themselves);
// (`_wb_`: WBLOCK, Q4_0 / Q4_1 — each lane takes whole blocks from five
// aligned words, two blocks in flight, as the WGSL variant);
// `mul_mat_q8_gemm_<w>` (prefill) a 128 × 64 tile per block of 256, 8 × 4
// outputs per thread, K two 32-blocks per stage through shared memory
// (`_tc`: the same tile on integer tensor cores, mma.sync s8).
// Params: k, cols, n0, has_res, has_norm, eps, glu, rows_per_wg, m, n.
// Bindings (quantize_q8): 0 x [m, k], 1 nw [k] (x when unused), 2 xq.
// (mul_mat_q8_*): 0 W (rows from n0), 1 xq, 2 y, 3 res (x when unused);
// (mul_mat_q8_local_*): 1 is x [k], 4 nw [k] (x when unused).
#include "common.cuh"
#include "quant.cuh"

// Block u (of 32 values, row-major over x) of v = x (⊙ nw with has_norm):
// q packed four per word, d = max|v|/127 (NaN when the block holds a NaN or
// infinity, as the WGSL), s = d·Σq, ss = Σx² of the raw x.
struct QBlock {
    u32 q[8];
    float d, s, ss;
};

__device__ __forceinline__ QBlock quant_block(const float* x, const float* nw, bool has_norm, u32 nb, u32 u) {
    const u32 nu = 32u * (u % nb);
    float v[32];
    float amax = 0.0f, ss = 0.0f;
    bool finite = true;
#pragma unroll
    for (u32 i = 0; i < 8u; i++) {
        float4 a = *(const float4*)(x + 32u * u + 4u * i);
        ss += a.x * a.x + a.y * a.y + a.z * a.z + a.w * a.w;
        if (has_norm) {
            float4 g = *(const float4*)(nw + nu + 4u * i);
            a = make_float4(a.x * g.x, a.y * g.y, a.z * g.z, a.w * g.w);
        }
        v[4u * i] = a.x;
        v[4u * i + 1u] = a.y;
        v[4u * i + 2u] = a.z;
        v[4u * i + 3u] = a.w;
        amax = fmaxf(amax, fmaxf(fmaxf(fabsf(a.x), fabsf(a.y)), fmaxf(fabsf(a.z), fabsf(a.w))));
        finite = finite && fabsf(a.x) <= 3.4028235e38f && fabsf(a.y) <= 3.4028235e38f &&
                 fabsf(a.z) <= 3.4028235e38f && fabsf(a.w) <= 3.4028235e38f;
    }
    QBlock o;
    o.d = finite ? amax / 127.0f : __uint_as_float(0x7fc00000u);
    const float id = o.d > 0.0f ? 1.0f / o.d : 0.0f;
    int sum = 0;
#pragma unroll
    for (u32 i = 0; i < 8u; i++) {
        u32 w = 0u;
#pragma unroll
        for (u32 j = 0; j < 4u; j++) {
            const int r = (int)roundf(v[4u * i + j] * id);
            sum += r;
            w |= ((u32)r & 0xffu) << (8u * j);
        }
        o.q[i] = w;
    }
    o.s = o.d * (float)sum;
    o.ss = ss;
    return o;
}

// One thread per 32-block (blocks of 64 threads).
extern "C" __global__ void quantize_q8(Params p, Ptrs b) {
    const float* x = BUF(const float, 0);
    const float* nw = BUF(const float, 1);
    u32* xq = BUF(u32, 2);
    const u32 k = p.w[0], nb = k >> 5, nt = p.w[8] * nb;
    const u32 u = wg_index() * 64u + threadIdx.x;
    if (u >= nt) return;
    const QBlock q = quant_block(x, nw, p.w[4] != 0u, nb, u);
#pragma unroll
    for (u32 i = 0; i < 8u; i++) xq[8u * u + i] = q.q[i];
    const u64 o = (u64)p.w[8] * (k >> 2);
    xq[o + u] = __float_as_uint(q.d);
    xq[o + nt + u] = __float_as_uint(q.s);
    xq[o + 2u * nt + u] = __float_as_uint(q.ss);
}

__device__ __forceinline__ u32 ld2x16q(const u8* p) {
    const u16* h = (const u16*)p;
    return (u32)h[0] | ((u32)h[1] << 16);
}

// The nibbles of q's bytes (shift 0 or 4) minus 8 as signed bytes (as the WGSL).
__device__ __forceinline__ int nib_s8(u32 q, u32 shift) {
    return (int)((((q >> shift) & 0x0f0f0f0fu) + 0x78787878u) ^ 0x80808080u);
}

template <class D>
struct Q8Dot;

template <>
struct Q8Dot<DQ4_0> {
    static __device__ __forceinline__ float half(const u8* W, const int* xq, const float* xd, const float* xs,
                                                 u32 nb, u32 row, u32 hb) {
        const u32 u = hb >> 1, h = hb & 1u;
        const u8* blk = W + ((u64)row * nb + u) * 18u;
        const u32 q0 = ld2x16q(blk + 2u + 8u * h), q1 = ld2x16q(blk + 6u + 8u * h);
        const int* xo = xq + 8u * u + 2u * h;
        int si = __dp4a(nib_s8(q0, 0u), xo[0], 0);
        si = __dp4a(nib_s8(q1, 0u), xo[1], si);
        si = __dp4a(nib_s8(q0, 4u), xo[4], si);
        si = __dp4a(nib_s8(q1, 4u), xo[5], si);
        return h2f(*(const u16*)blk) * xd[u] * (float)si;
    }
    // Whole block u from the five aligned words holding its 18 bytes.
    static __device__ __forceinline__ float block(const u8* W, const int* xq, const float* xd, const float* xs,
                                                  u32 nb, u32 row, u32 u) {
        const u64 off = ((u64)row * nb + u) * 18u;
        const u32* w = (const u32*)(W + (off & ~(u64)3));
        const bool mid = (off & 2u) != 0u;
        u32 ww[5];
#pragma unroll
        for (u32 i = 0; i < 5u; i++) ww[i] = w[i];
        const int* xo = xq + 8u * u;
        int si = 0;
#pragma unroll
        for (u32 j = 0; j < 4u; j++) {
            const u32 q = mid ? ww[j + 1u] : __funnelshift_r(ww[j], ww[j + 1u], 16);
            si = __dp4a(nib_s8(q, 0u), xo[j], si);
            si = __dp4a(nib_s8(q, 4u), xo[4u + j], si);
        }
        return h2f((u16)(mid ? ww[0] >> 16 : ww[0] & 0xffffu)) * xd[u] * (float)si;
    }
};

template <>
struct Q8Dot<DQ4_1> {
    static __device__ __forceinline__ float half(const u8* W, const int* xq, const float* xd, const float* xs,
                                                 u32 nb, u32 row, u32 hb) {
        const u32 u = hb >> 1, h = hb & 1u;
        const u32* blk = (const u32*)(W + ((u64)row * nb + u) * 20u);
        const u32 dm = blk[0], q0 = blk[1u + 2u * h], q1 = blk[2u + 2u * h];
        const int* xo = xq + 8u * u + 2u * h;
        const u32 m4 = 0x0f0f0f0fu;
        int si = __dp4a((int)(q0 & m4), xo[0], 0);
        si = __dp4a((int)(q1 & m4), xo[1], si);
        si = __dp4a((int)((q0 >> 4) & m4), xo[4], si);
        si = __dp4a((int)((q1 >> 4) & m4), xo[5], si);
        const float sm = h == 0u ? h2f((u16)(dm >> 16)) * xs[u] : 0.0f;
        return h2f((u16)(dm & 0xffffu)) * xd[u] * (float)si + sm;
    }
    static __device__ __forceinline__ float block(const u8* W, const int* xq, const float* xd, const float* xs,
                                                  u32 nb, u32 row, u32 u) {
        // 4-aligned only (20-byte blocks): five word loads, not a uint4.
        const u32* blk = (const u32*)(W + ((u64)row * nb + u) * 20u);
        const u32 dm = blk[0];
        const u32 qq[4] = {blk[1], blk[2], blk[3], blk[4]};
        const int* xo = xq + 8u * u;
        const u32 m4 = 0x0f0f0f0fu;
        int si = 0;
#pragma unroll
        for (u32 j = 0; j < 4u; j++) {
            si = __dp4a((int)(qq[j] & m4), xo[j], si);
            si = __dp4a((int)((qq[j] >> 4) & m4), xo[4u + j], si);
        }
        return h2f((u16)(dm & 0xffffu)) * xd[u] * (float)si + h2f((u16)(dm >> 16)) * xs[u];
    }
};

template <>
struct Q8Dot<DQ8_0> {
    static __device__ __forceinline__ float half(const u8* W, const int* xq, const float* xd, const float* xs,
                                                 u32 nb, u32 row, u32 hb) {
        const u32 u = hb >> 1, h = hb & 1u;
        const u8* blk = W + ((u64)row * nb + u) * 34u;
        const u8* q = blk + 2u + 16u * h;
        const int* xo = xq + 8u * u + 4u * h;
        int si = __dp4a((int)ld2x16q(q), xo[0], 0);
        si = __dp4a((int)ld2x16q(q + 4u), xo[1], si);
        si = __dp4a((int)ld2x16q(q + 8u), xo[2], si);
        si = __dp4a((int)ld2x16q(q + 12u), xo[3], si);
        return h2f(*(const u16*)blk) * xd[u] * (float)si;
    }
};

// The largest k the LOCAL GEMV quantizes in shared memory (KMAX in the WGSL).
#define Q8_KMAX 8192u

// Blocks of 64 (two warps; LOCAL: 256, eight warps, x quantized into shared
// memory first instead of read from the scratch xq); rows_per_wg output
// columns per block.
template <class D, bool LOCAL, bool WB = false>
__device__ void mul_mat_q8(const Params& p, const Ptrs& b) {
    const u8* W = BUF(const u8, 0);
    float* y = BUF(float, 2);
    const float* res = BUF(const float, 3);
    const u32 k = p.w[0], cols = p.w[1], n0 = p.w[2];
    const bool has_res = p.w[3] != 0u, has_norm = p.w[4] != 0u, glu = p.w[6] != 0u;
    const float eps = PF(5);
    const u32 R = p.w[7] ? p.w[7] : 2u;
    const u32 lane = threadIdx.x & 31u, sg = threadIdx.x >> 5, warps = blockDim.x >> 5;
    const u32 c0 = wg_index() * R;
    prefetch_rows<D>(W, c0, min(c0 + R, cols), k);
    if (glu) prefetch_rows<D>(W, cols + c0, cols + min(c0 + R, cols), k);
    kiln_entry();  // this entry waits itself (kernels::SELF_WAITING)
    const u32 nb = k >> 5, nh = 2u * nb;
    const int* xq;
    const float *xd, *xs, *xss;
    if constexpr (LOCAL) {
        __shared__ int Lq[Q8_KMAX / 4u];
        __shared__ float Ld[Q8_KMAX / 32u], Ls[Q8_KMAX / 32u], Lss[Q8_KMAX / 32u];
        const float* x = BUF(const float, 1);
        const float* nw = BUF(const float, 4);
        for (u32 u = threadIdx.x; u < nb; u += blockDim.x) {
            const QBlock q = quant_block(x, nw, has_norm, nb, u);
#pragma unroll
            for (u32 i = 0; i < 8u; i++) Lq[8u * u + i] = (int)q.q[i];
            Ld[u] = q.d;
            Ls[u] = q.s;
            Lss[u] = q.ss;
        }
        __syncthreads();
        xq = Lq;
        xd = Ld;
        xs = Ls;
        xss = Lss;
    } else {
        xq = BUF(const int, 1);
        xd = (const float*)(xq + (k >> 2));
        xs = xd + nb;
        xss = xs + nb;
    }
    float inv = 1.0f;
    if (has_norm) {
        float s = 0.0f;
        for (u32 u = lane; u < nb; u += 32u) s += xss[u];
        inv = 1.0f / sqrtf(warp_sum(s) / (float)k + eps);
    }
    for (u32 cc = sg; cc < R; cc += warps) {
        const u32 c = c0 + cc;
        if (c >= cols) break;
        float a = 0.0f, bv = 0.0f;
        if constexpr (WB) {
            using Q = Q8Dot<D>;
            u32 u = lane;
            if (glu) {
                for (; u + 32u < nb; u += 64u) {
                    a += Q::block(W, xq, xd, xs, nb, c, u) + Q::block(W, xq, xd, xs, nb, c, u + 32u);
                    bv += Q::block(W, xq, xd, xs, nb, cols + c, u) + Q::block(W, xq, xd, xs, nb, cols + c, u + 32u);
                }
                if (u < nb) {
                    a += Q::block(W, xq, xd, xs, nb, c, u);
                    bv += Q::block(W, xq, xd, xs, nb, cols + c, u);
                }
            } else {
                for (; u + 32u < nb; u += 64u)
                    a += Q::block(W, xq, xd, xs, nb, c, u) + Q::block(W, xq, xd, xs, nb, c, u + 32u);
                if (u < nb) a += Q::block(W, xq, xd, xs, nb, c, u);
            }
        } else if (glu) {
            for (u32 hb = lane; hb < nh; hb += 32u) {
                a += Q8Dot<D>::half(W, xq, xd, xs, nb, c, hb);
                bv += Q8Dot<D>::half(W, xq, xd, xs, nb, cols + c, hb);
            }
        } else {
            for (u32 hb = lane; hb < nh; hb += 32u) a += Q8Dot<D>::half(W, xq, xd, xs, nb, c, hb);
        }
        const float sa = warp_sum(a) * inv, sb = warp_sum(bv) * inv;
        if (lane == 0u) {
            float v = glu ? sa / (1.0f + expf(-sa)) * sb : sa;
            const u64 i = (u64)n0 + c;
            if (has_res) v += res[i];
            y[i] = v;
        }
    }
}

// The raw words of part j (0..3) of block u of weight row `row` (as the
// WGSL fetch_w): Q4_0 / Q4_1 (x: 4 quant bytes, y: d / d and m), Q8_0 (x, y:
// 8 quant bytes, z: d); and their store into stage slot b of the tile as
// signed-byte words, part 0 also the scales.
template <class D>
struct Q8Tile;

template <>
struct Q8Tile<DQ4_0> {
    static __device__ __forceinline__ uint4 fetch(const u8* W, u32 nb, u32 row, u32 u, u32 j) {
        const u8* blk = W + ((u64)row * nb + u) * 18u;
        return make_uint4(ld2x16q(blk + 2u + 4u * j), *(const u16*)blk, 0u, 0u);
    }
    template <u32 WN>
    static __device__ __forceinline__ void store(uint4 r, u32 j, u32 col, u32 (*Ws)[WN], float* Wd, float* Wm) {
        Ws[j][col] = (u32)nib_s8(r.x, 0u);
        Ws[4u + j][col] = (u32)nib_s8(r.x, 4u);
        if (j == 0u) Wd[col] = h2f((u16)r.y);
    }
};

template <>
struct Q8Tile<DQ4_1> {
    static __device__ __forceinline__ uint4 fetch(const u8* W, u32 nb, u32 row, u32 u, u32 j) {
        const u32* blk = (const u32*)(W + ((u64)row * nb + u) * 20u);
        return make_uint4(blk[1u + j], blk[0], 0u, 0u);
    }
    template <u32 WN>
    static __device__ __forceinline__ void store(uint4 r, u32 j, u32 col, u32 (*Ws)[WN], float* Wd, float* Wm) {
        Ws[j][col] = r.x & 0x0f0f0f0fu;
        Ws[4u + j][col] = (r.x >> 4) & 0x0f0f0f0fu;
        if (j == 0u) {
            Wd[col] = h2f((u16)(r.y & 0xffffu));
            Wm[col] = h2f((u16)(r.y >> 16));
        }
    }
};

template <>
struct Q8Tile<DQ8_0> {
    static __device__ __forceinline__ uint4 fetch(const u8* W, u32 nb, u32 row, u32 u, u32 j) {
        const u8* blk = W + ((u64)row * nb + u) * 34u;
        return make_uint4(ld2x16q(blk + 2u + 8u * j), ld2x16q(blk + 6u + 8u * j), *(const u16*)blk, 0u);
    }
    template <u32 WN>
    static __device__ __forceinline__ void store(uint4 r, u32 j, u32 col, u32 (*Ws)[WN], float* Wd, float* Wm) {
        Ws[2u * j][col] = r.x;
        Ws[2u * j + 1u][col] = r.y;
        if (j == 0u) Wd[col] = h2f((u16)r.z);
    }
};

// The prefill GEMM (the WGSL `gemm`): blocks of 256, a 128 × 64 tile, two
// 32-blocks per stage, the next stage's global loads in registers while the
// current one is multiplied.
template <class D>
__device__ void mul_mat_q8_gemm(const Params& p, const Ptrs& b) {
    kiln_entry();  // this entry waits itself (kernels::SELF_WAITING)
    constexpr u32 BM = 128u, BN = 64u, KB = 2u;
    __shared__ __align__(16) u32 Xs[KB][8][BM];
    __shared__ __align__(16) u32 Ws[KB][8][BN];
    __shared__ __align__(16) float Xd[KB][BM];
    __shared__ __align__(16) float Xsum[KB][BM];
    __shared__ __align__(16) float Wd[KB][BN];
    __shared__ __align__(16) float Wm[KB][BN];
    const u8* W = BUF(const u8, 0);
    const u32* xq = BUF(const u32, 1);
    float* y = BUF(float, 2);
    const float* res = BUF(const float, 3);
    const u32 k = p.w[0], cols = p.w[1], n0 = p.w[2], m = p.w[8], n = p.w[9];
    const bool has_res = p.w[3] != 0u;
    const u32 lid = threadIdx.x, tx = lid % 16u, ty = lid / 16u;
    const u32 c0 = blockIdx.x * BN, r0 = blockIdx.y * BM;
    const u32 nb = k >> 5, kw = k >> 2;
    const u64 db = (u64)m * kw, sb = db + (u64)m * nb;
    const u32 xr = lid / 2u, xh = lid % 2u, wc = lid / 4u, wj = lid % 4u;
    const bool x_in = r0 + xr < m, d_in = lid < BM && r0 + lid < m, w_in = c0 + wc < cols;
    float acc[8][4];
#pragma unroll
    for (u32 i = 0; i < 8u; i++)
#pragma unroll
        for (u32 j = 0; j < 4u; j++) acc[i][j] = 0.0f;
    uint4 fx[KB], fw[KB];
    float2 fd[KB];
    auto fetch = [&](u32 u0) {
#pragma unroll
        for (u32 bb = 0; bb < KB; bb++) {
            const u32 u = u0 + bb;
            fx[bb] = make_uint4(0u, 0u, 0u, 0u);
            fw[bb] = make_uint4(0u, 0u, 0u, 0u);
            fd[bb] = make_float2(0.0f, 0.0f);
            if (u < nb) {
                if (x_in) fx[bb] = *(const uint4*)(xq + (u64)(r0 + xr) * kw + 8u * u + 4u * xh);
                if (d_in)
                    fd[bb] = make_float2(__uint_as_float(xq[db + (u64)(r0 + lid) * nb + u]),
                                         __uint_as_float(xq[sb + (u64)(r0 + lid) * nb + u]));
                if (w_in) fw[bb] = Q8Tile<D>::fetch(W, nb, c0 + wc, u, wj);
            }
        }
    };
    fetch(0u);
    for (u32 u0 = 0; u0 < nb; u0 += KB) {
#pragma unroll
        for (u32 bb = 0; bb < KB; bb++) {
            Xs[bb][4u * xh][xr] = fx[bb].x;
            Xs[bb][4u * xh + 1u][xr] = fx[bb].y;
            Xs[bb][4u * xh + 2u][xr] = fx[bb].z;
            Xs[bb][4u * xh + 3u][xr] = fx[bb].w;
            if (lid < BM) {
                Xd[bb][lid] = fd[bb].x;
                Xsum[bb][lid] = fd[bb].y;
            }
            Q8Tile<D>::store(fw[bb], wj, wc, Ws[bb], Wd[bb], Wm[bb]);
        }
        __syncthreads();
        fetch(u0 + KB);
#pragma unroll
        for (u32 bb = 0; bb < KB; bb++) {
            int is[8][4];
#pragma unroll
            for (u32 i = 0; i < 8u; i++)
#pragma unroll
                for (u32 j = 0; j < 4u; j++) is[i][j] = 0;
#pragma unroll
            for (u32 w = 0; w < 8u; w++) {
                const int4 xa = *(const int4*)&Xs[bb][w][8u * ty];
                const int4 xb = *(const int4*)&Xs[bb][w][8u * ty + 4u];
                const int4 wv = *(const int4*)&Ws[bb][w][4u * tx];
                const int xs[8] = {xa.x, xa.y, xa.z, xa.w, xb.x, xb.y, xb.z, xb.w};
#pragma unroll
                for (u32 i = 0; i < 8u; i++) {
                    is[i][0] = __dp4a(xs[i], wv.x, is[i][0]);
                    is[i][1] = __dp4a(xs[i], wv.y, is[i][1]);
                    is[i][2] = __dp4a(xs[i], wv.z, is[i][2]);
                    is[i][3] = __dp4a(xs[i], wv.w, is[i][3]);
                }
            }
            const float4 dw = *(const float4*)&Wd[bb][4u * tx];
#pragma unroll
            for (u32 i = 0; i < 8u; i++) {
                const float dx = Xd[bb][8u * ty + i];
                acc[i][0] += (float)is[i][0] * (dx * dw.x);
                acc[i][1] += (float)is[i][1] * (dx * dw.y);
                acc[i][2] += (float)is[i][2] * (dx * dw.z);
                acc[i][3] += (float)is[i][3] * (dx * dw.w);
                if constexpr (D::BB == 20u) {  // Q4_1: + m_w·s_x
                    const float4 wm = *(const float4*)&Wm[bb][4u * tx];
                    const float sx = Xsum[bb][8u * ty + i];
                    acc[i][0] += wm.x * sx;
                    acc[i][1] += wm.y * sx;
                    acc[i][2] += wm.z * sx;
                    acc[i][3] += wm.w * sx;
                }
            }
        }
        __syncthreads();
    }
#pragma unroll
    for (u32 i = 0; i < 8u; i++) {
        const u32 r = r0 + 8u * ty + i;
        if (r >= m) break;
#pragma unroll
        for (u32 j = 0; j < 4u; j++) {
            const u32 c = c0 + 4u * tx + j;
            if (c < cols) {
                const u64 o = (u64)r * n + n0 + c;
                y[o] = has_res ? acc[i][j] + res[o] : acc[i][j];
            }
        }
    }
}

// The prefill GEMM on integer tensor cores (`_tc`, compute capability 8.0
// or later; exec.rs picks it, KILN_CUDA_MMA=0 keeps the one above): the
// same 128 × 64 tile, staging and scratch, but each 32-block's products are
// `mma.sync.m16n8k32` s8 × s8 → s32 — one instruction per 16 × 8 outputs
// and block, the exact integer sums the __dp4a kernel makes — then scaled
// by d_x·d_w (+ m_w·s_x for Q4_1) into f32 as above. Warp w owns rows
// (w % 4)·32.. and columns (w / 4)·32.. (2 × 4 mma tiles). The staged
// words are padded (+8 per row) so a fragment's 32 loads hit 32 banks.
template <class D>
__device__ void mul_mat_q8_gemm_tc(const Params& p, const Ptrs& b) {
    kiln_entry();  // this entry waits itself (kernels::SELF_WAITING)
#if __CUDA_ARCH__ >= 800
    constexpr u32 BM = 128u, BN = 64u, KB = 2u, PM = BM + 8u, PN = BN + 8u;
    __shared__ __align__(16) u32 Xs[KB][8][PM];
    __shared__ __align__(16) u32 Ws[KB][8][PN];
    __shared__ __align__(16) float Xd[KB][BM];
    __shared__ __align__(16) float Xsum[KB][BM];
    __shared__ __align__(16) float Wd[KB][BN];
    __shared__ __align__(16) float Wm[KB][BN];
    const u8* W = BUF(const u8, 0);
    const u32* xq = BUF(const u32, 1);
    float* y = BUF(float, 2);
    const float* res = BUF(const float, 3);
    const u32 k = p.w[0], cols = p.w[1], n0 = p.w[2], m = p.w[8], n = p.w[9];
    const bool has_res = p.w[3] != 0u;
    const u32 lid = threadIdx.x, warp = lid / 32u, lane = lid % 32u;
    const u32 g = lane >> 2, t = lane & 3u;
    const u32 wr = (warp % 4u) * 32u, wc0 = (warp / 4u) * 32u;
    const u32 c0 = blockIdx.x * BN, r0 = blockIdx.y * BM;
    const u32 nb = k >> 5, kw = k >> 2;
    const u64 db = (u64)m * kw, sb = db + (u64)m * nb;
    const u32 xr = lid / 2u, xh = lid % 2u, wc = lid / 4u, wj = lid % 4u;
    const bool x_in = r0 + xr < m, d_in = lid < BM && r0 + lid < m, w_in = c0 + wc < cols;
    // acc[mi][ni][e]: rows wr + 16·mi + g (+8 for e ≥ 2), columns
    // wc0 + 8·ni + 2t (+1 for odd e).
    float acc[2][4][4];
#pragma unroll
    for (u32 i = 0; i < 2u; i++)
#pragma unroll
        for (u32 j = 0; j < 4u; j++)
#pragma unroll
            for (u32 e = 0; e < 4u; e++) acc[i][j][e] = 0.0f;
    uint4 fx[KB], fw[KB];
    float2 fd[KB];
    auto fetch = [&](u32 u0) {
#pragma unroll
        for (u32 bb = 0; bb < KB; bb++) {
            const u32 u = u0 + bb;
            fx[bb] = make_uint4(0u, 0u, 0u, 0u);
            fw[bb] = make_uint4(0u, 0u, 0u, 0u);
            fd[bb] = make_float2(0.0f, 0.0f);
            if (u < nb) {
                if (x_in) fx[bb] = *(const uint4*)(xq + (u64)(r0 + xr) * kw + 8u * u + 4u * xh);
                if (d_in)
                    fd[bb] = make_float2(__uint_as_float(xq[db + (u64)(r0 + lid) * nb + u]),
                                         __uint_as_float(xq[sb + (u64)(r0 + lid) * nb + u]));
                if (w_in) fw[bb] = Q8Tile<D>::fetch(W, nb, c0 + wc, u, wj);
            }
        }
    };
    fetch(0u);
    for (u32 u0 = 0; u0 < nb; u0 += KB) {
#pragma unroll
        for (u32 bb = 0; bb < KB; bb++) {
            Xs[bb][4u * xh][xr] = fx[bb].x;
            Xs[bb][4u * xh + 1u][xr] = fx[bb].y;
            Xs[bb][4u * xh + 2u][xr] = fx[bb].z;
            Xs[bb][4u * xh + 3u][xr] = fx[bb].w;
            if (lid < BM) {
                Xd[bb][lid] = fd[bb].x;
                Xsum[bb][lid] = fd[bb].y;
            }
            Q8Tile<D>::store(fw[bb], wj, wc, Ws[bb], Wd[bb], Wm[bb]);
        }
        __syncthreads();
        fetch(u0 + KB);
#pragma unroll
        for (u32 bb = 0; bb < KB; bb++) {
            u32 a[2][4];
#pragma unroll
            for (u32 mi = 0; mi < 2u; mi++) {
                const u32 r = wr + 16u * mi + g;
                a[mi][0] = Xs[bb][t][r];
                a[mi][1] = Xs[bb][t][r + 8u];
                a[mi][2] = Xs[bb][t + 4u][r];
                a[mi][3] = Xs[bb][t + 4u][r + 8u];
            }
            float dx[2][2], sx[2][2];
#pragma unroll
            for (u32 mi = 0; mi < 2u; mi++)
#pragma unroll
                for (u32 h = 0; h < 2u; h++) {
                    dx[mi][h] = Xd[bb][wr + 16u * mi + 8u * h + g];
                    sx[mi][h] = Xsum[bb][wr + 16u * mi + 8u * h + g];
                }
#pragma unroll
            for (u32 ni = 0; ni < 4u; ni++) {
                const u32 c = wc0 + 8u * ni;
                const u32 b0 = Ws[bb][t][c + g], b1 = Ws[bb][t + 4u][c + g];
                const float2 dw = make_float2(Wd[bb][c + 2u * t], Wd[bb][c + 2u * t + 1u]);
#pragma unroll
                for (u32 mi = 0; mi < 2u; mi++) {
                    int d0, d1, d2, d3;
                    asm volatile(
                        "mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {%0,%1,%2,%3}, "
                        "{%4,%5,%6,%7}, {%8,%9}, {%10,%10,%10,%10};\n"
                        : "=r"(d0), "=r"(d1), "=r"(d2), "=r"(d3)
                        : "r"(a[mi][0]), "r"(a[mi][1]), "r"(a[mi][2]), "r"(a[mi][3]), "r"(b0),
                          "r"(b1), "r"(0));
                    acc[mi][ni][0] += (float)d0 * (dx[mi][0] * dw.x);
                    acc[mi][ni][1] += (float)d1 * (dx[mi][0] * dw.y);
                    acc[mi][ni][2] += (float)d2 * (dx[mi][1] * dw.x);
                    acc[mi][ni][3] += (float)d3 * (dx[mi][1] * dw.y);
                    if constexpr (D::BB == 20u) {  // Q4_1: + m_w·s_x
                        const float mw0 = Wm[bb][c + 2u * t], mw1 = Wm[bb][c + 2u * t + 1u];
                        acc[mi][ni][0] += mw0 * sx[mi][0];
                        acc[mi][ni][1] += mw1 * sx[mi][0];
                        acc[mi][ni][2] += mw0 * sx[mi][1];
                        acc[mi][ni][3] += mw1 * sx[mi][1];
                    }
                }
            }
        }
        __syncthreads();
    }
#pragma unroll
    for (u32 mi = 0; mi < 2u; mi++)
#pragma unroll
        for (u32 ni = 0; ni < 4u; ni++)
#pragma unroll
            for (u32 e = 0; e < 4u; e++) {
                const u32 r = r0 + wr + 16u * mi + g + (e >= 2u ? 8u : 0u);
                const u32 c = c0 + wc0 + 8u * ni + 2u * t + (e & 1u);
                if (r < m && c < cols) {
                    const u64 o = (u64)r * n + n0 + c;
                    y[o] = has_res ? acc[mi][ni][e] + res[o] : acc[mi][ni][e];
                }
            }
#endif
}

extern "C" __global__ void mul_mat_q8_gemm_q4_0(Params p, Ptrs b) { mul_mat_q8_gemm<DQ4_0>(p, b); }
extern "C" __global__ void mul_mat_q8_gemm_q4_1(Params p, Ptrs b) { mul_mat_q8_gemm<DQ4_1>(p, b); }
extern "C" __global__ void mul_mat_q8_gemm_q8_0(Params p, Ptrs b) { mul_mat_q8_gemm<DQ8_0>(p, b); }
extern "C" __global__ void __launch_bounds__(256) mul_mat_q8_gemm_q4_0_tc(Params p, Ptrs b) { mul_mat_q8_gemm_tc<DQ4_0>(p, b); }
extern "C" __global__ void __launch_bounds__(256) mul_mat_q8_gemm_q4_1_tc(Params p, Ptrs b) { mul_mat_q8_gemm_tc<DQ4_1>(p, b); }
extern "C" __global__ void __launch_bounds__(256) mul_mat_q8_gemm_q8_0_tc(Params p, Ptrs b) { mul_mat_q8_gemm_tc<DQ8_0>(p, b); }
extern "C" __global__ void mul_mat_q8_q4_0(Params p, Ptrs b) { mul_mat_q8<DQ4_0, false>(p, b); }
extern "C" __global__ void mul_mat_q8_q4_1(Params p, Ptrs b) { mul_mat_q8<DQ4_1, false>(p, b); }
extern "C" __global__ void mul_mat_q8_q8_0(Params p, Ptrs b) { mul_mat_q8<DQ8_0, false>(p, b); }
extern "C" __global__ void mul_mat_q8_local_q4_0(Params p, Ptrs b) { mul_mat_q8<DQ4_0, true>(p, b); }
extern "C" __global__ void mul_mat_q8_local_q4_1(Params p, Ptrs b) { mul_mat_q8<DQ4_1, true>(p, b); }
extern "C" __global__ void mul_mat_q8_local_q8_0(Params p, Ptrs b) { mul_mat_q8<DQ8_0, true>(p, b); }
extern "C" __global__ void mul_mat_q8_wb_q4_0(Params p, Ptrs b) { mul_mat_q8<DQ4_0, false, true>(p, b); }
extern "C" __global__ void mul_mat_q8_wb_q4_1(Params p, Ptrs b) { mul_mat_q8<DQ4_1, false, true>(p, b); }
extern "C" __global__ void mul_mat_q8_local_wb_q4_0(Params p, Ptrs b) { mul_mat_q8<DQ4_0, true, true>(p, b); }
extern "C" __global__ void mul_mat_q8_local_wb_q4_1(Params p, Ptrs b) { mul_mat_q8<DQ4_1, true, true>(p, b); }
