// mul_mat_back.cu — the gradients of y = x · Wᵀ, the twin of
// shaders/mul_mat_back.wgsl (ops/matmul_back.rs).
// Params: m, n, k, n0 (first weight row of this chunk), rows, accumulate.
// mul_mat_input_grad_<w> (INPUT_GRAD + W_<DTYPE>): dx[m, k] (+)= Σ_n dy[m, n]
//   · W[n, k], W in any dtype decoded four weights at a time (quant.cuh w4).
//   Bindings: 0 W (rows n0..n0+rows), 1 dy [m, n], 2 dx [m, k].
// mul_mat_weight_grad (WEIGHT_GRAD): dW[n, k] = Σ_m dy[m, n] · x[m, k] (f32).
//   Bindings: 0 dy [m, n], 1 x [m, k], 2 dW [n, k].
// Blocks of 64; each thread owns 4 rows of the output × 4 consecutive
// columns (16 f32 accumulators), one thread per (4-row block, column group),
// folded by ops::grid.
// mul_mat_input_grad_tiled_<w> (INPUT_GRAD + TILED): the same product as a
//   tiled GEMM, 16×16 threads per 32(m)×32(k) tile of dx, each a 2×2 block;
//   the reduction over weight rows advances 32 at a time with dy's tile and
//   the decoded weight tile (transposed, [k][n]) in shared memory
//   (tile32.cuh). Grid (ceil(k/32), ceil(m/32)).
#include "common.cuh"
#include "quant.cuh"
#include "tile32.cuh"
#include "tile64.cuh"

template <class D>
__device__ void input_grad_tiled(const Params& p, const Ptrs& b) {
    __shared__ float xs[32 * 33];
    __shared__ float ws[32 * 33];
    const u8* W = BUF(const u8, 0);
    const float* dy = BUF(const float, 1);
    float* dx = BUF(float, 2);
    const u32 m = p.w[0], n = p.w[1], k = p.w[2], n0 = p.w[3], rows = p.w[4];
    const u32 c0 = blockIdx.x * 32u, m0 = blockIdx.y * 32u;
    const u32 lid = threadIdx.y * 16u + threadIdx.x;
    const u32 lr = lid / 8u, lg = lid % 8u;
    float acc[4] = {0.f, 0.f, 0.f, 0.f};
    for (u32 r0 = 0; r0 < rows; r0 += 32u) {
        for (u32 i = 0; i < 4u; i++) {
            u32 r = r0 + 4u * lg + i;
            xs[lr * 33u + 4u * lg + i] =
                (m0 + lr < m && r < rows) ? dy[(u64)(m0 + lr) * n + n0 + r] : 0.f;
        }
        float4 wv = make_float4(0.f, 0.f, 0.f, 0.f);
        u32 g = c0 / 4u + lg;
        if (r0 + lr < rows && 4u * g < k) wv = D::w4(W, r0 + lr, k, g);
        ws[(4u * lg + 0u) * 33u + lr] = wv.x;
        ws[(4u * lg + 1u) * 33u + lr] = wv.y;
        ws[(4u * lg + 2u) * 33u + lr] = wv.z;
        ws[(4u * lg + 3u) * 33u + lr] = wv.w;
        __syncthreads();
        tile_mac(xs, ws, threadIdx.y * 2u, threadIdx.x * 2u, acc);
        __syncthreads();
    }
    for (u32 i = 0; i < 2u; i++) {
        for (u32 j = 0; j < 2u; j++) {
            u32 mm = m0 + threadIdx.y * 2u + i, c = c0 + threadIdx.x * 2u + j;
            if (mm < m && c < k) {
                u64 o = (u64)mm * k + c;
                dx[o] = p.w[5] != 0u ? dx[o] + acc[i * 2u + j] : acc[i * 2u + j];
            }
        }
    }
}

// INPUT_GRAD + TILE64: 64(m)×64(k) tiles of dx, 4×4 per thread, weight rows
// 16 at a time (tile64.cuh). Grid (ceil(k/64), ceil(m/64)).
template <class D>
__device__ void input_grad64(const Params& p, const Ptrs& b) {
    __shared__ float xs[64 * 17];
    __shared__ float ws[64 * 17];
    const u8* W = BUF(const u8, 0);
    const float* dy = BUF(const float, 1);
    float* dx = BUF(float, 2);
    const u32 m = p.w[0], n = p.w[1], k = p.w[2], n0 = p.w[3], rows = p.w[4];
    const u32 c0 = blockIdx.x * 64u, m0 = blockIdx.y * 64u;
    const u32 tx = threadIdx.x, ty = threadIdx.y, lid = ty * 16u + tx;
    const u32 lr = lid / 4u, lg = lid % 4u, wr = lid / 16u, wg = lid % 16u;
    float acc[16];
#pragma unroll
    for (u32 i = 0; i < 16u; i++) acc[i] = 0.f;
    for (u32 r0 = 0; r0 < rows; r0 += 16u) {
        for (u32 i = 0; i < 4u; i++) {
            u32 r = r0 + 4u * lg + i;
            xs[lr * 17u + 4u * lg + i] =
                (m0 + lr < m && r < rows) ? dy[(u64)(m0 + lr) * n + n0 + r] : 0.f;
        }
        float4 wv = make_float4(0.f, 0.f, 0.f, 0.f);
        u32 g = c0 / 4u + wg;
        if (r0 + wr < rows && 4u * g < k) wv = D::w4(W, r0 + wr, k, g);
        ws[(4u * wg + 0u) * 17u + wr] = wv.x;
        ws[(4u * wg + 1u) * 17u + wr] = wv.y;
        ws[(4u * wg + 2u) * 17u + wr] = wv.z;
        ws[(4u * wg + 3u) * 17u + wr] = wv.w;
        __syncthreads();
        tile64_mac(xs, ws, tx, ty, acc);
        __syncthreads();
    }
tile64_each(m0, c0, m, k, acc, [&](u32 mm, u32 c, float v) {
        u64 o = (u64)mm * k + c;
        dx[o] = p.w[5] != 0u ? dx[o] + v : v;
    });
}

template <class D>
__device__ void input_grad(const Params& p, const Ptrs& b) {
    const u8* W = BUF(const u8, 0);
    const float* dy = BUF(const float, 1);
    float* dx = BUF(float, 2);
    const u32 m = p.w[0], n = p.w[1], k = p.w[2], n0 = p.w[3], rows = p.w[4];
    const u32 ng = (k + 3u) / 4u;
    const u32 idx = wg_index() * 64u + threadIdx.x;
    const u32 g = idx % ng, m0 = (idx / ng) * 4u;
    if (m0 >= m) return;
    const u32 mc = min(4u, m - m0);
    float4 acc[4];
#pragma unroll
    for (u32 i = 0; i < 4u; i++) acc[i] = make_float4(0.f, 0.f, 0.f, 0.f);
    for (u32 r = p.w[6]; r < p.w[6] + rows; r++) {  // rows from `first`
        float4 w = D::w4(W, r, k, g);
        u32 col = n0 + r;
#pragma unroll
        for (u32 i = 0; i < 4u; i++) {
            if (i < mc) {
                float d = dy[(u64)(m0 + i) * n + col];
                acc[i].x += d * w.x;
                acc[i].y += d * w.y;
                acc[i].z += d * w.z;
                acc[i].w += d * w.w;
            }
        }
    }
#pragma unroll
    for (u32 i = 0; i < 4u; i++) {
        if (i < mc) {
            float a[4] = {acc[i].x, acc[i].y, acc[i].z, acc[i].w};
            for (u32 c = 0; c < 4u; c++) {
                u32 kk = 4u * g + c;
                if (kk < k) {
                    u64 o = (u64)(m0 + i) * k + kk;
                    dx[o] = p.w[5] != 0u ? dx[o] + a[c] : a[c];
                }
            }
        }
    }
}

extern "C" __global__ void mul_mat_input_grad_f32(Params p, Ptrs b) { input_grad<DF32>(p, b); }
extern "C" __global__ void mul_mat_input_grad_f16(Params p, Ptrs b) { input_grad<DF16>(p, b); }
extern "C" __global__ void mul_mat_input_grad_bf16(Params p, Ptrs b) { input_grad<DBF16>(p, b); }
extern "C" __global__ void mul_mat_input_grad_q8_0(Params p, Ptrs b) { input_grad<DQ8_0>(p, b); }
extern "C" __global__ void mul_mat_input_grad_q4_0(Params p, Ptrs b) { input_grad<DQ4_0>(p, b); }
extern "C" __global__ void mul_mat_input_grad_q4_1(Params p, Ptrs b) { input_grad<DQ4_1>(p, b); }
extern "C" __global__ void mul_mat_input_grad_q5_0(Params p, Ptrs b) { input_grad<DQ5_0>(p, b); }
extern "C" __global__ void mul_mat_input_grad_q5_1(Params p, Ptrs b) { input_grad<DQ5_1>(p, b); }
extern "C" __global__ void mul_mat_input_grad_q2_k(Params p, Ptrs b) { input_grad<DQ2_K>(p, b); }
extern "C" __global__ void mul_mat_input_grad_q3_k(Params p, Ptrs b) { input_grad<DQ3_K>(p, b); }
extern "C" __global__ void mul_mat_input_grad_q4_k(Params p, Ptrs b) { input_grad<DQ4_K>(p, b); }
extern "C" __global__ void mul_mat_input_grad_q5_k(Params p, Ptrs b) { input_grad<DQ5_K>(p, b); }
extern "C" __global__ void mul_mat_input_grad_q6_k(Params p, Ptrs b) { input_grad<DQ6_K>(p, b); }
extern "C" __global__ void mul_mat_input_grad_iq4_nl(Params p, Ptrs b) { input_grad<DIQ4_NL>(p, b); }
extern "C" __global__ void mul_mat_input_grad_iq4_xs(Params p, Ptrs b) { input_grad<DIQ4_XS>(p, b); }

extern "C" __global__ void mul_mat_input_grad_tiled_f32(Params p, Ptrs b) { input_grad_tiled<DF32>(p, b); }
extern "C" __global__ void mul_mat_input_grad_tiled_f16(Params p, Ptrs b) { input_grad_tiled<DF16>(p, b); }
extern "C" __global__ void mul_mat_input_grad_tiled_bf16(Params p, Ptrs b) { input_grad_tiled<DBF16>(p, b); }
extern "C" __global__ void mul_mat_input_grad_tiled_q8_0(Params p, Ptrs b) { input_grad_tiled<DQ8_0>(p, b); }
extern "C" __global__ void mul_mat_input_grad_tiled_q4_0(Params p, Ptrs b) { input_grad_tiled<DQ4_0>(p, b); }
extern "C" __global__ void mul_mat_input_grad_tiled_q4_1(Params p, Ptrs b) { input_grad_tiled<DQ4_1>(p, b); }
extern "C" __global__ void mul_mat_input_grad_tiled_q5_0(Params p, Ptrs b) { input_grad_tiled<DQ5_0>(p, b); }
extern "C" __global__ void mul_mat_input_grad_tiled_q5_1(Params p, Ptrs b) { input_grad_tiled<DQ5_1>(p, b); }
extern "C" __global__ void mul_mat_input_grad_tiled_q2_k(Params p, Ptrs b) { input_grad_tiled<DQ2_K>(p, b); }
extern "C" __global__ void mul_mat_input_grad_tiled_q3_k(Params p, Ptrs b) { input_grad_tiled<DQ3_K>(p, b); }
extern "C" __global__ void mul_mat_input_grad_tiled_q4_k(Params p, Ptrs b) { input_grad_tiled<DQ4_K>(p, b); }
extern "C" __global__ void mul_mat_input_grad_tiled_q5_k(Params p, Ptrs b) { input_grad_tiled<DQ5_K>(p, b); }
extern "C" __global__ void mul_mat_input_grad_tiled_q6_k(Params p, Ptrs b) { input_grad_tiled<DQ6_K>(p, b); }
extern "C" __global__ void mul_mat_input_grad_tiled_iq4_nl(Params p, Ptrs b) { input_grad_tiled<DIQ4_NL>(p, b); }
extern "C" __global__ void mul_mat_input_grad_tiled_iq4_xs(Params p, Ptrs b) { input_grad_tiled<DIQ4_XS>(p, b); }

// Σ over rows m0, m0 + step, … of dy[m, n0..n0+nc] · x[m, 4g..4g+3]
// (rows_dot in the WGSL).
__device__ void rows_dot(const Params& p, const float* dy, const float* x, u32 m0, u32 step,
                         u32 g, u32 n0, u32 nc, float4 acc[4]) {
    const u32 m = p.w[0], n = p.w[1], k = p.w[2];
#pragma unroll
    for (u32 i = 0; i < 4u; i++) acc[i] = make_float4(0.f, 0.f, 0.f, 0.f);
    for (u32 mm = m0; mm < m; mm += step) {
        float4 xv = xs4(x + (u64)mm * k, k, g);
#pragma unroll
        for (u32 i = 0; i < 4u; i++) {
            if (i < nc) {
                float d = dy[(u64)mm * n + n0 + i];
                acc[i].x += d * xv.x;
                acc[i].y += d * xv.y;
                acc[i].z += d * xv.z;
                acc[i].w += d * xv.w;
            }
        }
    }
}

// dW rows n0..n0+nc, columns 4g..4g+3 (store_dw in the WGSL).
__device__ void store_dw(const Params& p, float* dw, u32 n0, u32 nc, u32 g, const float4 acc[4]) {
    const u32 k = p.w[2];
    for (u32 i = 0; i < nc; i++) {
        float a[4] = {acc[i].x, acc[i].y, acc[i].z, acc[i].w};
        for (u32 c = 0; c < 4u; c++) {
            u32 kk = 4u * g + c;
            if (kk < k) dw[(u64)(n0 + i) * k + kk] = a[c];
        }
    }
}

extern "C" __global__ void mul_mat_weight_grad(Params p, Ptrs b) {
    const u32 n = p.w[1], k = p.w[2];
    const u32 ng = (k + 3u) / 4u;
    const u32 idx = wg_index() * 64u + threadIdx.x;
    const u32 g = idx % ng, n0 = (idx / ng) * 4u;
    if (n0 >= n) return;
    const u32 nc = min(4u, n - n0);
    float4 acc[4];
    rows_dot(p, BUF(const float, 0), BUF(const float, 1), 0u, 1u, g, n0, nc, acc);
    store_dw(p, BUF(float, 2), n0, nc, g, acc);
}

// mul_mat_weight_grad_split (WEIGHT_GRAD + SPLIT_M): a block of 64 threads
// per 4×4 block of dW; thread t takes rows t, t+64, … of m, and the 64
// partial blocks are summed in shared memory in tree order (as the WGSL).
// Grid: one block per 4×4 output block, folded by ops::grid.
extern "C" __global__ void mul_mat_weight_grad_split(Params p, Ptrs b) {
    __shared__ float4 part[256];
    const float* dy = BUF(const float, 0);
    const float* x = BUF(const float, 1);
    float* dw = BUF(float, 2);
    const u32 n = p.w[1], k = p.w[2];
    const u32 ng = (k + 3u) / 4u;
    const u32 blk = wg_index(), lid = threadIdx.x;
    const u32 g = blk % ng, n0 = (blk / ng) * 4u;
    const u32 nc = n0 < n ? min(4u, n - n0) : 0u;
    float4 acc[4];
    rows_dot(p, dy, x, lid, 64u, g, n0, nc, acc);
#pragma unroll
    for (u32 i = 0; i < 4u; i++) part[lid * 4u + i] = acc[i];
    __syncthreads();
    for (u32 s = 32u; s > 0u; s >>= 1u) {
        if (lid < s) {
#pragma unroll
            for (u32 i = 0; i < 4u; i++) {
                float4 a = part[lid * 4u + i], c = part[(lid + s) * 4u + i];
                part[lid * 4u + i] = make_float4(a.x + c.x, a.y + c.y, a.z + c.z, a.w + c.w);
            }
        }
        __syncthreads();
    }
    if (lid == 0u) store_dw(p, dw, n0, nc, g, part);
}
extern "C" __global__ void mul_mat_input_grad64_f32(Params p, Ptrs b) { input_grad64<DF32>(p, b); }
extern "C" __global__ void mul_mat_input_grad64_f16(Params p, Ptrs b) { input_grad64<DF16>(p, b); }
extern "C" __global__ void mul_mat_input_grad64_bf16(Params p, Ptrs b) { input_grad64<DBF16>(p, b); }
extern "C" __global__ void mul_mat_input_grad64_q8_0(Params p, Ptrs b) { input_grad64<DQ8_0>(p, b); }
extern "C" __global__ void mul_mat_input_grad64_q4_0(Params p, Ptrs b) { input_grad64<DQ4_0>(p, b); }
extern "C" __global__ void mul_mat_input_grad64_q4_1(Params p, Ptrs b) { input_grad64<DQ4_1>(p, b); }
extern "C" __global__ void mul_mat_input_grad64_q5_0(Params p, Ptrs b) { input_grad64<DQ5_0>(p, b); }
extern "C" __global__ void mul_mat_input_grad64_q5_1(Params p, Ptrs b) { input_grad64<DQ5_1>(p, b); }
extern "C" __global__ void mul_mat_input_grad64_q2_k(Params p, Ptrs b) { input_grad64<DQ2_K>(p, b); }
extern "C" __global__ void mul_mat_input_grad64_q3_k(Params p, Ptrs b) { input_grad64<DQ3_K>(p, b); }
extern "C" __global__ void mul_mat_input_grad64_q4_k(Params p, Ptrs b) { input_grad64<DQ4_K>(p, b); }
extern "C" __global__ void mul_mat_input_grad64_q5_k(Params p, Ptrs b) { input_grad64<DQ5_K>(p, b); }
extern "C" __global__ void mul_mat_input_grad64_q6_k(Params p, Ptrs b) { input_grad64<DQ6_K>(p, b); }
extern "C" __global__ void mul_mat_input_grad64_iq4_nl(Params p, Ptrs b) { input_grad64<DIQ4_NL>(p, b); }
extern "C" __global__ void mul_mat_input_grad64_iq4_xs(Params p, Ptrs b) { input_grad64<DIQ4_XS>(p, b); }
