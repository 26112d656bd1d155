// conv2d.cu — NHWC 2-D convolution as an implicit GEMM with fused bias and
// residual, the twin of shaders/conv2d.wgsl (ops/conv2d.rs).
// Params: m, n (Cout), k (kh·kw·Cin), n0, rows, has_res, h, w, cin, oh, ow,
// kh, kw, stride, pad. Bindings: 0 W (any dtype, rows n0..n0+rows), 1 x
// [B, H, W, Cin], 2 y [B, OH, OW, Cout], 3 bias [Cout], 4 res (x when absent).
// Blocks of 16×16, grid (ceil(rows/32), ceil(m/32)); 32×32 output tiles with
// the x tile gathered (im2col on the fly) and the W tile dequantized into
// shared memory, K 32 at a time; f32 accumulation.
#include "common.cuh"
#include "quant.cuh"
#include "tile32.cuh"
#include "tile64.cuh"

// Output pixel xm's im2col row when Cin % 4 == 0, gathered 4 channels (one
// tap) per 16-byte load with no division in the K loop: each of a thread's
// LA load slots keeps a cursor (ky, kx, ci) that `next` advances by the K
// slice (the twin of common/conv2d_gather.wgsl). Every conv kernel below
// gathers through it when Cin allows.
template <u32 LA>
struct ImRow {
    const float* xb;  // the pixel's sample
    int iy0, ix0;     // oy·stride − pad, ox·stride − pad
    bool valid;       // xm < m
    u32 ci[LA], kx[LA], ky[LA];

    // Slot j starts at K index kk0 + j·gap.
    __device__ __forceinline__ void init(const Params& p, const float* x, u32 xm, u32 kk0, u32 gap) {
        const u32 m = p.w[0], h = p.w[6], w = p.w[7], cin = p.w[8], oh = p.w[9], ow = p.w[10],
                  kw = p.w[12], stride = p.w[13], pad = p.w[14];
        valid = xm < m;
        const u32 pix = xm % (oh * ow);
        iy0 = (int)((pix / ow) * stride) - (int)pad;
        ix0 = (int)((pix % ow) * stride) - (int)pad;
        xb = x + (u64)(xm / (oh * ow)) * h * w * cin;
#pragma unroll
        for (u32 j = 0; j < LA; j++) {
            const u32 kk = kk0 + j * gap, t = kk / cin;
            ci[j] = kk % cin;
            kx[j] = t % kw;
            ky[j] = t / kw;
        }
    }

    // Slot j's 4 values (zeros outside the image and past K).
    __device__ __forceinline__ float4 load(const Params& p, u32 j) const {
        const u32 h = p.w[6], w = p.w[7], cin = p.w[8], kh = p.w[11];
        const int iy = iy0 + (int)ky[j], ix = ix0 + (int)kx[j];
        if (valid && ky[j] < kh && iy >= 0 && ix >= 0 && iy < (int)h && ix < (int)w)
            return *(const float4*)(xb + ((u64)iy * w + ix) * cin + ci[j]);
        return make_float4(0.f, 0.f, 0.f, 0.f);
    }

    // Every slot moves `step` along K.
    __device__ __forceinline__ void next(const Params& p, u32 step) {
        const u32 cin = p.w[8], kw = p.w[12];
#pragma unroll
        for (u32 j = 0; j < LA; j++) {
            ci[j] += step;
            while (ci[j] >= cin) {
                ci[j] -= cin;
                if (++kx[j] == kw) {
                    kx[j] = 0u;
                    ky[j]++;
                }
            }
        }
    }
};

// Group g of 4 along K of output pixel xm's im2col row (zeros outside the
// image, past m and past k). Params as below.
__device__ __forceinline__ float4 gather4(const Params& p, const float* x, u32 xm, u32 g) {
    const u32 m = p.w[0], k = p.w[2], h = p.w[6], w = p.w[7], cin = p.w[8], oh = p.w[9],
              ow = p.w[10], kw = p.w[12], stride = p.w[13], pad = p.w[14];
    float v[4] = {0.f, 0.f, 0.f, 0.f};
    if (xm < m) {
        const u32 pix = xm % (oh * ow), bi = xm / (oh * ow), oy = pix / ow, ox = pix % ow;
        for (u32 i = 0; i < 4u; i++) {
            u32 kk = 4u * g + i;
            if (kk >= k) break;
            u32 ci = kk % cin, t = kk / cin;
            int iy = (int)(oy * stride + t / kw) - (int)pad;
            int ix = (int)(ox * stride + t % kw) - (int)pad;
            if (iy >= 0 && ix >= 0 && iy < (int)h && ix < (int)w)
                v[i] = x[(((u64)bi * h + iy) * w + ix) * cin + ci];
        }
    }
    return make_float4(v[0], v[1], v[2], v[3]);
}

// The 32- and 64-tile kernels' x group g of pixel xm: through the cursor
// (which then moves `step` along K) when Cin % 4 == 0, else gathered.
__device__ __forceinline__ float4 gather_step(const Params& p, const float* x, ImRow<1>& row,
                                              bool vec, u32 xm, u32 g, u32 step) {
    if (!vec) return gather4(p, x, xm, g);
    const float4 v = row.load(p, 0u);
    row.next(p, step);
    return v;
}

template <class D>
__device__ void conv2d(const Params& p, const Ptrs& b) {
    __shared__ float xs[32 * 33];
    __shared__ float ws[32 * 33];
    const u8* W = BUF(const u8, 0);
    const float* x = BUF(const float, 1);
    float* y = BUF(float, 2);
    const float* bias = BUF(const float, 3);
    const float* res = BUF(const float, 4);
    const u32 m = p.w[0], n = p.w[1], k = p.w[2], n0 = p.w[3], rows = p.w[4];
    const u32 r0 = blockIdx.x * 32u, m0 = blockIdx.y * 32u;
    const u32 lid = threadIdx.y * 16u + threadIdx.x;
    const u32 lr = lid / 8u, lg = lid % 8u;
    const u32 xm = m0 + lr;
    const bool vec = p.w[8] % 4u == 0u;
    ImRow<1> row;
    if (vec) row.init(p, x, xm, 4u * lg, 0u);
    float acc[4] = {0.f, 0.f, 0.f, 0.f};
    for (u32 k0 = 0; k0 < k; k0 += 32u) {
        u32 g = k0 / 4u + lg;
        const float4 xv = gather_step(p, x, row, vec, xm, g, 32u);
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
            if (mm < m && r < rows) {
                u64 o = (u64)mm * n + n0 + r;
                float v = acc[i * 2u + j] + bias[n0 + r];
                if (p.w[5] != 0u) v += res[o];
                y[o] = v;
            }
        }
    }
}

// TILE64 (conv2d.wgsl): 64×64 tiles, 4×4 per thread, K by 16 (tile64.cuh).
template <class D>
__device__ void conv2d64(const Params& p, const Ptrs& b) {
    __shared__ float xs[64 * 17];
    __shared__ float ws[64 * 17];
    const u8* W = BUF(const u8, 0);
    const float* x = BUF(const float, 1);
    float* y = BUF(float, 2);
    const float* bias = BUF(const float, 3);
    const float* res = BUF(const float, 4);
    const u32 m = p.w[0], n = p.w[1], k = p.w[2], n0 = p.w[3], rows = p.w[4];
    const u32 r0 = blockIdx.x * 64u, m0 = blockIdx.y * 64u;
    const u32 tx = threadIdx.x, ty = threadIdx.y, lid = ty * 16u + tx;
    const u32 lr = lid / 4u, lg = lid % 4u;
    const u32 xm = m0 + lr;
    const bool vec = p.w[8] % 4u == 0u;
    ImRow<1> row;
    if (vec) row.init(p, x, xm, 4u * lg, 0u);
    float acc[16];
#pragma unroll
    for (u32 i = 0; i < 16u; i++) acc[i] = 0.f;
    for (u32 k0 = 0; k0 < k; k0 += 16u) {
        u32 g = k0 / 4u + lg;
        const float4 xv = gather_step(p, x, row, vec, xm, g, 16u);
        float4 wv = make_float4(0.f, 0.f, 0.f, 0.f);
        if (r0 + lr < rows && 4u * g < k) wv = D::w4(W, r0 + lr, k, g);
        tile64_store(xs, ws, lr, lg, xv, wv);
        __syncthreads();
        tile64_mac(xs, ws, tx, ty, acc);
        __syncthreads();
    }
tile64_each(m0, r0, m, rows, acc, [&](u32 mm, u32 r, float v) {
        u64 o = (u64)mm * n + n0 + r;
        v += bias[n0 + r];
        if (p.w[5] != 0u) v += res[o];
        y[o] = v;
    });
}

// The operand staging of conv2d_big and conv2d_big_tc (Cin % 4 == 0): per
// K slice each of the NT threads gathers LA groups of 4 of one pixel's
// im2col row (ImRow) and, below BK/4·BN, one group of 4 of a weight row into
// registers (`load`, issued before the current slice is multiplied), then
// stores them K-major into shared tiles of row strides SA and SB (`store`).
template <class D, u32 BM, u32 BN, u32 BK, u32 SA, u32 SB>
struct BigStage {
    static constexpr u32 NT = BM * BN / 32, LA = BM * BK / 4 / NT;
    ImRow<LA> row;
    u32 arow, ag, brow, bg, r0;
    bool bv;
    float4 xr[LA], wr;

    // kb: the first K of this block's slab.
    __device__ __forceinline__ void init(const Params& p, const float* x, u32 lid, u32 m0, u32 r0_,
                                         u32 kb) {
        r0 = r0_;
        arow = lid % BM;
        ag = lid / BM;
        row.init(p, x, m0 + arow, kb + 4u * ag, 4u * (NT / BM));
        brow = lid % BN;
        bg = lid / BN;
        bv = bg < BK / 4u && r0 + brow < p.w[4];
    }

    // The slice at k0 (slices are loaded in order).
    __device__ __forceinline__ void load(const Params& p, const u8* W, u32 k0) {
#pragma unroll
        for (u32 j = 0; j < LA; j++) xr[j] = row.load(p, j);
        row.next(p, BK);
        const u32 k = p.w[2];
        if (bv && k0 + 4u * bg < k) wr = D::w4(W, r0 + brow, k, k0 / 4u + bg);
        else wr = make_float4(0.f, 0.f, 0.f, 0.f);
    }

    __device__ __forceinline__ void store(float (*As)[SA], float (*Bs)[SB]) const {
#pragma unroll
        for (u32 j = 0; j < LA; j++) {
            const u32 g = ag + j * (NT / BM);
            As[4u * g][arow] = xr[j].x;
            As[4u * g + 1u][arow] = xr[j].y;
            As[4u * g + 2u][arow] = xr[j].z;
            As[4u * g + 3u][arow] = xr[j].w;
        }
        if (bg < BK / 4u) {
            Bs[4u * bg][brow] = wr.x;
            Bs[4u * bg + 1u][brow] = wr.y;
            Bs[4u * bg + 2u][brow] = wr.z;
            Bs[4u * bg + 3u][brow] = wr.w;
        }
    }
};

// The big kernels' output of (pixel mm, row r): y = v + bias (+ res), or with
// split K (p.w[15] slabs of p.w[16], blockIdx.z the slab) the slab's partial
// sum into binding 6 ([slabs][m][rows]) for conv2d_splitk_sum.
__device__ __forceinline__ void big_put(const Params& p, const Ptrs& b, u32 mm, u32 r, float v) {
    const u32 m = p.w[0], n = p.w[1], n0 = p.w[3], rows = p.w[4];
    if (p.w[15] > 1u) {
        BUF(float, 5)[((u64)blockIdx.z * m + mm) * rows + r] = v;
        return;
    }
    const u64 o = (u64)mm * n + n0 + r;
    v += BUF(const float, 3)[n0 + r];
    if (p.w[5] != 0u) v += BUF(const float, 4)[o];
    BUF(float, 2)[o] = v;
}

// conv2d.wgsl `splitk_sum`: y = Σ over slabs (in slab order) + bias (+ res).
extern "C" __global__ void conv2d_splitk_sum(Params p, Ptrs b) {
    const u32 m = p.w[0], n = p.w[1], n0 = p.w[3], rows = p.w[4], splits = p.w[15];
    const u64 i = (u64)wg_index() * 256u + threadIdx.x, total = (u64)m * rows;
    if (i >= total) return;
    const float* part = BUF(const float, 5);
    float v = 0.f;
    for (u32 s = 0; s < splits; s++) v += part[s * total + i];
    const u32 mm = (u32)(i / rows), r = (u32)(i % rows);
    const u64 o = (u64)mm * n + n0 + r;
    v += BUF(const float, 3)[n0 + r];
    if (p.w[5] != 0u) v += BUF(const float, 4)[o];
    BUF(float, 2)[o] = v;
}

// BIG (conv2d.wgsl `big`): Cin % 4 == 0 on GPUs with many output tiles.
// NT = BM·BN/32 threads; a BM×BN output tile (256×32; 128×64 with BN64;
// 128×32 and 128 threads with BM128), 8 rows ×
// 4 channels per thread; K by 8, the next slice's loads in flight while the
// current one is multiplied (two shared buffers, one barrier per slice).
// Shared tiles are K-major, so a thread reads its 8 rows and 4 channels
// with three 16-byte loads per K. Each thread gathers one output pixel's
// im2col row (its coordinates computed once): 4 input channels of one tap
// are one 16-byte load.
template <class D, int BM, int BN>
__device__ void conv2d_big(const Params& p, const Ptrs& b) {
    constexpr u32 BK = 8u;
    __shared__ __align__(16) float As[2][BK][BM];
    __shared__ __align__(16) float Bs[2][BK][BN];
    const u8* W = BUF(const u8, 0);
    const float* x = BUF(const float, 1);
    const u32 m = p.w[0], k = p.w[2], rows = p.w[4];
    const u32 lid = threadIdx.x;
    const u32 r0 = blockIdx.x * BN, m0 = blockIdx.y * BM;
    BigStage<D, BM, BN, BK, BM, BN> st;
    const u32 kb = blockIdx.z * p.w[16], ke = min(k, kb + p.w[16]);
    st.init(p, x, lid, m0, r0, kb);
    const u32 tn = lid % (BN / 4), tm = lid / (BN / 4);
    float acc[8][4];
#pragma unroll
    for (u32 i = 0; i < 8u; i++)
#pragma unroll
        for (u32 j = 0; j < 4u; j++) acc[i][j] = 0.f;
    st.load(p, W, kb);
    st.store(As[0], Bs[0]);
    __syncthreads();
    u32 buf = 0u;
    for (u32 k0 = kb; k0 < ke; k0 += BK) {
        const bool more = k0 + BK < ke;
        if (more) st.load(p, W, k0 + BK);
#pragma unroll
        for (u32 kk = 0; kk < BK; kk++) {
            const float4 a0 = *(const float4*)&As[buf][kk][tm * 8u];
            const float4 a1 = *(const float4*)&As[buf][kk][tm * 8u + 4u];
            const float4 bw = *(const float4*)&Bs[buf][kk][tn * 4u];
            const float a[8] = {a0.x, a0.y, a0.z, a0.w, a1.x, a1.y, a1.z, a1.w};
            const float bb[4] = {bw.x, bw.y, bw.z, bw.w};
#pragma unroll
            for (u32 i = 0; i < 8u; i++)
#pragma unroll
                for (u32 j = 0; j < 4u; j++) acc[i][j] = fmaf(a[i], bb[j], acc[i][j]);
        }
        if (more) st.store(As[buf ^ 1u], Bs[buf ^ 1u]);
        __syncthreads();
        buf ^= 1u;
    }
#pragma unroll
    for (u32 i = 0; i < 8u; i++) {
        const u32 mm = m0 + tm * 8u + i;
        if (mm >= m) break;
#pragma unroll
        for (u32 j = 0; j < 4u; j++) {
            const u32 r = r0 + tn * 4u + j;
            if (r < rows) big_put(p, b, mm, r, acc[i][j]);
        }
    }
}

// BIG on tensor cores (`_tc`, sm_80 and later; exec.rs picks it unless
// KILN_CUDA_TF32X3=0): the same tiles, grid and operand gathering as
// conv2d_big, K by 16, each warp one 32×32 piece of the tile as 2×4
// mma.m16n8k8 TF32 products. Each operand is split into two TF32 parts
// (v = hi + lo, both exact in f32) and the product is hi·hi + hi·lo + lo·hi
// ("3xTF32"): the dropped lo·lo term is below 2^-22 of |a·b|, so the result
// keeps f32 accuracy (the f32 path's parity bounds hold) at tensor-core speed.
__device__ __forceinline__ u32 tf32_bits(float v) {
    u32 r;
    asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(r) : "f"(v));
    return r;
}

__device__ __forceinline__ void tf32_split(float v, u32& hi, u32& lo) {
    hi = tf32_bits(v);
    lo = tf32_bits(v - __uint_as_float(hi));
}

__device__ __forceinline__ void mma_tf32(float (&d)[4], const u32 (&a)[4], u32 b0, u32 b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
        "{%8,%9}, {%0,%1,%2,%3};"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

template <class D, int BM, int BN>
__device__ void conv2d_big_tc(const Params& p, const Ptrs& b) {
#if __CUDA_ARCH__ >= 800
    constexpr u32 BK = 16u, SA = BM + 8, SB = BN + 8;
    // Row strides of BM + 8 and BN + 8 words put a fragment's 32 reads
    // ((k = lane % 4, row = lane / 4) and k + 4) in 32 different banks.
    __shared__ __align__(16) float As[2][BK][SA];
    __shared__ __align__(16) float Bs[2][BK][SB];
    const u8* W = BUF(const u8, 0);
    const float* x = BUF(const float, 1);
    const u32 m = p.w[0], k = p.w[2], rows = p.w[4];
    const u32 lid = threadIdx.x;
    const u32 r0 = blockIdx.x * BN, m0 = blockIdx.y * BM;
    BigStage<D, BM, BN, BK, SA, SB> st;
    const u32 kb = blockIdx.z * p.w[16], ke = min(k, kb + p.w[16]);
    st.init(p, x, lid, m0, r0, kb);
    const u32 warp = lid / 32u, lane = lid % 32u, gid = lane / 4u, tig = lane % 4u;
    const u32 wm = warp % (BM / 32u), wn = warp / (BM / 32u);
    float acc[2][4][4];
#pragma unroll
    for (u32 i = 0; i < 2u; i++)
#pragma unroll
        for (u32 j = 0; j < 4u; j++)
#pragma unroll
            for (u32 r = 0; r < 4u; r++) acc[i][j][r] = 0.f;
    st.load(p, W, kb);
    st.store(As[0], Bs[0]);
    __syncthreads();
    u32 buf = 0u;
    for (u32 k0 = kb; k0 < ke; k0 += BK) {
        const bool more = k0 + BK < ke;
        if (more) st.load(p, W, k0 + BK);
        // Tensor cores add into their f32 accumulator with truncation, so a
        // long K drifts: each slice's six products sum into `part` and
        // join `acc` with ordinary (round-to-nearest) adds.
        float part[2][4][4];
#pragma unroll
        for (u32 i = 0; i < 2u; i++)
#pragma unroll
            for (u32 j = 0; j < 4u; j++)
#pragma unroll
                for (u32 r = 0; r < 4u; r++) part[i][j][r] = 0.f;
#pragma unroll
        for (u32 ks = 0; ks < BK; ks += 8u) {
            u32 ah[2][4], al[2][4], bh[4][2], bl[4][2];
#pragma unroll
            for (u32 i = 0; i < 2u; i++) {
                const u32 row = wm * 32u + i * 16u + gid;
                tf32_split(As[buf][ks + tig][row], ah[i][0], al[i][0]);
                tf32_split(As[buf][ks + tig][row + 8u], ah[i][1], al[i][1]);
                tf32_split(As[buf][ks + tig + 4u][row], ah[i][2], al[i][2]);
                tf32_split(As[buf][ks + tig + 4u][row + 8u], ah[i][3], al[i][3]);
            }
#pragma unroll
            for (u32 j = 0; j < 4u; j++) {
                const u32 col = wn * 32u + j * 8u + gid;
                tf32_split(Bs[buf][ks + tig][col], bh[j][0], bl[j][0]);
                tf32_split(Bs[buf][ks + tig + 4u][col], bh[j][1], bl[j][1]);
            }
#pragma unroll
            for (u32 i = 0; i < 2u; i++)
#pragma unroll
                for (u32 j = 0; j < 4u; j++) {
                    mma_tf32(part[i][j], al[i], bh[j][0], bh[j][1]);
                    mma_tf32(part[i][j], ah[i], bl[j][0], bl[j][1]);
                    mma_tf32(part[i][j], ah[i], bh[j][0], bh[j][1]);
                }
        }
#pragma unroll
        for (u32 i = 0; i < 2u; i++)
#pragma unroll
            for (u32 j = 0; j < 4u; j++)
#pragma unroll
                for (u32 r = 0; r < 4u; r++) acc[i][j][r] += part[i][j][r];
        if (more) st.store(As[buf ^ 1u], Bs[buf ^ 1u]);
        __syncthreads();
        buf ^= 1u;
    }
#pragma unroll
    for (u32 i = 0; i < 2u; i++)
#pragma unroll
        for (u32 j = 0; j < 4u; j++)
#pragma unroll
            for (u32 e = 0; e < 4u; e++) {
                const u32 mm = m0 + wm * 32u + i * 16u + gid + 8u * (e / 2u);
                const u32 r = r0 + wn * 32u + j * 8u + 2u * tig + e % 2u;
                if (mm < m && r < rows) big_put(p, b, mm, r, acc[i][j][e]);
            }
#else
    __trap();
#endif
}

extern "C" __global__ void conv2d_f32(Params p, Ptrs b) { conv2d<DF32>(p, b); }
extern "C" __global__ void conv2d_f16(Params p, Ptrs b) { conv2d<DF16>(p, b); }
extern "C" __global__ void conv2d_bf16(Params p, Ptrs b) { conv2d<DBF16>(p, b); }
extern "C" __global__ void conv2d_q8_0(Params p, Ptrs b) { conv2d<DQ8_0>(p, b); }
extern "C" __global__ void conv2d_q4_0(Params p, Ptrs b) { conv2d<DQ4_0>(p, b); }
extern "C" __global__ void conv2d_q4_1(Params p, Ptrs b) { conv2d<DQ4_1>(p, b); }
extern "C" __global__ void conv2d_q5_0(Params p, Ptrs b) { conv2d<DQ5_0>(p, b); }
extern "C" __global__ void conv2d_q5_1(Params p, Ptrs b) { conv2d<DQ5_1>(p, b); }
extern "C" __global__ void conv2d_q2_k(Params p, Ptrs b) { conv2d<DQ2_K>(p, b); }
extern "C" __global__ void conv2d_q3_k(Params p, Ptrs b) { conv2d<DQ3_K>(p, b); }
extern "C" __global__ void conv2d_q4_k(Params p, Ptrs b) { conv2d<DQ4_K>(p, b); }
extern "C" __global__ void conv2d_q5_k(Params p, Ptrs b) { conv2d<DQ5_K>(p, b); }
extern "C" __global__ void conv2d_q6_k(Params p, Ptrs b) { conv2d<DQ6_K>(p, b); }
extern "C" __global__ void conv2d_iq4_nl(Params p, Ptrs b) { conv2d<DIQ4_NL>(p, b); }
extern "C" __global__ void conv2d_iq4_xs(Params p, Ptrs b) { conv2d<DIQ4_XS>(p, b); }
extern "C" __global__ void conv2d64_f32(Params p, Ptrs b) { conv2d64<DF32>(p, b); }
extern "C" __global__ void conv2d64_f16(Params p, Ptrs b) { conv2d64<DF16>(p, b); }
extern "C" __global__ void conv2d64_bf16(Params p, Ptrs b) { conv2d64<DBF16>(p, b); }
extern "C" __global__ void conv2d64_q8_0(Params p, Ptrs b) { conv2d64<DQ8_0>(p, b); }
extern "C" __global__ void conv2d64_q4_0(Params p, Ptrs b) { conv2d64<DQ4_0>(p, b); }
extern "C" __global__ void conv2d64_q4_1(Params p, Ptrs b) { conv2d64<DQ4_1>(p, b); }
extern "C" __global__ void conv2d64_q5_0(Params p, Ptrs b) { conv2d64<DQ5_0>(p, b); }
extern "C" __global__ void conv2d64_q5_1(Params p, Ptrs b) { conv2d64<DQ5_1>(p, b); }
extern "C" __global__ void conv2d64_q2_k(Params p, Ptrs b) { conv2d64<DQ2_K>(p, b); }
extern "C" __global__ void conv2d64_q3_k(Params p, Ptrs b) { conv2d64<DQ3_K>(p, b); }
extern "C" __global__ void conv2d64_q4_k(Params p, Ptrs b) { conv2d64<DQ4_K>(p, b); }
extern "C" __global__ void conv2d64_q5_k(Params p, Ptrs b) { conv2d64<DQ5_K>(p, b); }
extern "C" __global__ void conv2d64_q6_k(Params p, Ptrs b) { conv2d64<DQ6_K>(p, b); }
extern "C" __global__ void conv2d64_iq4_nl(Params p, Ptrs b) { conv2d64<DIQ4_NL>(p, b); }
extern "C" __global__ void conv2d64_iq4_xs(Params p, Ptrs b) { conv2d64<DIQ4_XS>(p, b); }
extern "C" __global__ void __launch_bounds__(256) conv2d_big_f32(Params p, Ptrs b) { conv2d_big<DF32, 256, 32>(p, b); }
extern "C" __global__ void __launch_bounds__(256) conv2d_big_f16(Params p, Ptrs b) { conv2d_big<DF16, 256, 32>(p, b); }
extern "C" __global__ void __launch_bounds__(256) conv2d_big_bf16(Params p, Ptrs b) { conv2d_big<DBF16, 256, 32>(p, b); }
extern "C" __global__ void __launch_bounds__(256) conv2d_big_q8_0(Params p, Ptrs b) { conv2d_big<DQ8_0, 256, 32>(p, b); }
extern "C" __global__ void __launch_bounds__(256) conv2d_big_q4_0(Params p, Ptrs b) { conv2d_big<DQ4_0, 256, 32>(p, b); }
extern "C" __global__ void __launch_bounds__(256) conv2d_big_q4_1(Params p, Ptrs b) { conv2d_big<DQ4_1, 256, 32>(p, b); }
extern "C" __global__ void __launch_bounds__(256) conv2d_big_q5_0(Params p, Ptrs b) { conv2d_big<DQ5_0, 256, 32>(p, b); }
extern "C" __global__ void __launch_bounds__(256) conv2d_big_q5_1(Params p, Ptrs b) { conv2d_big<DQ5_1, 256, 32>(p, b); }
extern "C" __global__ void __launch_bounds__(256) conv2d_big_q2_k(Params p, Ptrs b) { conv2d_big<DQ2_K, 256, 32>(p, b); }
extern "C" __global__ void __launch_bounds__(256) conv2d_big_q3_k(Params p, Ptrs b) { conv2d_big<DQ3_K, 256, 32>(p, b); }
extern "C" __global__ void __launch_bounds__(256) conv2d_big_q4_k(Params p, Ptrs b) { conv2d_big<DQ4_K, 256, 32>(p, b); }
extern "C" __global__ void __launch_bounds__(256) conv2d_big_q5_k(Params p, Ptrs b) { conv2d_big<DQ5_K, 256, 32>(p, b); }
extern "C" __global__ void __launch_bounds__(256) conv2d_big_q6_k(Params p, Ptrs b) { conv2d_big<DQ6_K, 256, 32>(p, b); }
extern "C" __global__ void __launch_bounds__(256) conv2d_big_iq4_nl(Params p, Ptrs b) { conv2d_big<DIQ4_NL, 256, 32>(p, b); }
extern "C" __global__ void __launch_bounds__(256) conv2d_big_iq4_xs(Params p, Ptrs b) { conv2d_big<DIQ4_XS, 256, 32>(p, b); }
extern "C" __global__ void __launch_bounds__(256) conv2d_big64_f32(Params p, Ptrs b) { conv2d_big<DF32, 128, 64>(p, b); }
extern "C" __global__ void __launch_bounds__(256) conv2d_big64_f16(Params p, Ptrs b) { conv2d_big<DF16, 128, 64>(p, b); }
extern "C" __global__ void __launch_bounds__(256) conv2d_big64_bf16(Params p, Ptrs b) { conv2d_big<DBF16, 128, 64>(p, b); }
extern "C" __global__ void __launch_bounds__(256) conv2d_big64_q8_0(Params p, Ptrs b) { conv2d_big<DQ8_0, 128, 64>(p, b); }
extern "C" __global__ void __launch_bounds__(256) conv2d_big64_q4_0(Params p, Ptrs b) { conv2d_big<DQ4_0, 128, 64>(p, b); }
extern "C" __global__ void __launch_bounds__(256) conv2d_big64_q4_1(Params p, Ptrs b) { conv2d_big<DQ4_1, 128, 64>(p, b); }
extern "C" __global__ void __launch_bounds__(256) conv2d_big64_q5_0(Params p, Ptrs b) { conv2d_big<DQ5_0, 128, 64>(p, b); }
extern "C" __global__ void __launch_bounds__(256) conv2d_big64_q5_1(Params p, Ptrs b) { conv2d_big<DQ5_1, 128, 64>(p, b); }
extern "C" __global__ void __launch_bounds__(256) conv2d_big64_q2_k(Params p, Ptrs b) { conv2d_big<DQ2_K, 128, 64>(p, b); }
extern "C" __global__ void __launch_bounds__(256) conv2d_big64_q3_k(Params p, Ptrs b) { conv2d_big<DQ3_K, 128, 64>(p, b); }
extern "C" __global__ void __launch_bounds__(256) conv2d_big64_q4_k(Params p, Ptrs b) { conv2d_big<DQ4_K, 128, 64>(p, b); }
extern "C" __global__ void __launch_bounds__(256) conv2d_big64_q5_k(Params p, Ptrs b) { conv2d_big<DQ5_K, 128, 64>(p, b); }
extern "C" __global__ void __launch_bounds__(256) conv2d_big64_q6_k(Params p, Ptrs b) { conv2d_big<DQ6_K, 128, 64>(p, b); }
extern "C" __global__ void __launch_bounds__(256) conv2d_big64_iq4_nl(Params p, Ptrs b) { conv2d_big<DIQ4_NL, 128, 64>(p, b); }
extern "C" __global__ void __launch_bounds__(256) conv2d_big64_iq4_xs(Params p, Ptrs b) { conv2d_big<DIQ4_XS, 128, 64>(p, b); }
extern "C" __global__ void __launch_bounds__(128) conv2d_big128_f32(Params p, Ptrs b) { conv2d_big<DF32, 128, 32>(p, b); }
extern "C" __global__ void __launch_bounds__(128) conv2d_big128_f16(Params p, Ptrs b) { conv2d_big<DF16, 128, 32>(p, b); }
extern "C" __global__ void __launch_bounds__(128) conv2d_big128_bf16(Params p, Ptrs b) { conv2d_big<DBF16, 128, 32>(p, b); }
extern "C" __global__ void __launch_bounds__(128) conv2d_big128_q8_0(Params p, Ptrs b) { conv2d_big<DQ8_0, 128, 32>(p, b); }
extern "C" __global__ void __launch_bounds__(128) conv2d_big128_q4_0(Params p, Ptrs b) { conv2d_big<DQ4_0, 128, 32>(p, b); }
extern "C" __global__ void __launch_bounds__(128) conv2d_big128_q4_1(Params p, Ptrs b) { conv2d_big<DQ4_1, 128, 32>(p, b); }
extern "C" __global__ void __launch_bounds__(128) conv2d_big128_q5_0(Params p, Ptrs b) { conv2d_big<DQ5_0, 128, 32>(p, b); }
extern "C" __global__ void __launch_bounds__(128) conv2d_big128_q5_1(Params p, Ptrs b) { conv2d_big<DQ5_1, 128, 32>(p, b); }
extern "C" __global__ void __launch_bounds__(128) conv2d_big128_q2_k(Params p, Ptrs b) { conv2d_big<DQ2_K, 128, 32>(p, b); }
extern "C" __global__ void __launch_bounds__(128) conv2d_big128_q3_k(Params p, Ptrs b) { conv2d_big<DQ3_K, 128, 32>(p, b); }
extern "C" __global__ void __launch_bounds__(128) conv2d_big128_q4_k(Params p, Ptrs b) { conv2d_big<DQ4_K, 128, 32>(p, b); }
extern "C" __global__ void __launch_bounds__(128) conv2d_big128_q5_k(Params p, Ptrs b) { conv2d_big<DQ5_K, 128, 32>(p, b); }
extern "C" __global__ void __launch_bounds__(128) conv2d_big128_q6_k(Params p, Ptrs b) { conv2d_big<DQ6_K, 128, 32>(p, b); }
extern "C" __global__ void __launch_bounds__(128) conv2d_big128_iq4_nl(Params p, Ptrs b) { conv2d_big<DIQ4_NL, 128, 32>(p, b); }
extern "C" __global__ void __launch_bounds__(128) conv2d_big128_iq4_xs(Params p, Ptrs b) { conv2d_big<DIQ4_XS, 128, 32>(p, b); }
extern "C" __global__ void __launch_bounds__(256) conv2d_big_f32_tc(Params p, Ptrs b) { conv2d_big_tc<DF32, 256, 32>(p, b); }
extern "C" __global__ void __launch_bounds__(256) conv2d_big_f16_tc(Params p, Ptrs b) { conv2d_big_tc<DF16, 256, 32>(p, b); }
extern "C" __global__ void __launch_bounds__(256) conv2d_big_bf16_tc(Params p, Ptrs b) { conv2d_big_tc<DBF16, 256, 32>(p, b); }
extern "C" __global__ void __launch_bounds__(256) conv2d_big_q8_0_tc(Params p, Ptrs b) { conv2d_big_tc<DQ8_0, 256, 32>(p, b); }
extern "C" __global__ void __launch_bounds__(256) conv2d_big_q4_0_tc(Params p, Ptrs b) { conv2d_big_tc<DQ4_0, 256, 32>(p, b); }
extern "C" __global__ void __launch_bounds__(256) conv2d_big_q4_1_tc(Params p, Ptrs b) { conv2d_big_tc<DQ4_1, 256, 32>(p, b); }
extern "C" __global__ void __launch_bounds__(256) conv2d_big_q5_0_tc(Params p, Ptrs b) { conv2d_big_tc<DQ5_0, 256, 32>(p, b); }
extern "C" __global__ void __launch_bounds__(256) conv2d_big_q5_1_tc(Params p, Ptrs b) { conv2d_big_tc<DQ5_1, 256, 32>(p, b); }
extern "C" __global__ void __launch_bounds__(256) conv2d_big_q2_k_tc(Params p, Ptrs b) { conv2d_big_tc<DQ2_K, 256, 32>(p, b); }
extern "C" __global__ void __launch_bounds__(256) conv2d_big_q3_k_tc(Params p, Ptrs b) { conv2d_big_tc<DQ3_K, 256, 32>(p, b); }
extern "C" __global__ void __launch_bounds__(256) conv2d_big_q4_k_tc(Params p, Ptrs b) { conv2d_big_tc<DQ4_K, 256, 32>(p, b); }
extern "C" __global__ void __launch_bounds__(256) conv2d_big_q5_k_tc(Params p, Ptrs b) { conv2d_big_tc<DQ5_K, 256, 32>(p, b); }
extern "C" __global__ void __launch_bounds__(256) conv2d_big_q6_k_tc(Params p, Ptrs b) { conv2d_big_tc<DQ6_K, 256, 32>(p, b); }
extern "C" __global__ void __launch_bounds__(256) conv2d_big_iq4_nl_tc(Params p, Ptrs b) { conv2d_big_tc<DIQ4_NL, 256, 32>(p, b); }
extern "C" __global__ void __launch_bounds__(256) conv2d_big_iq4_xs_tc(Params p, Ptrs b) { conv2d_big_tc<DIQ4_XS, 256, 32>(p, b); }
extern "C" __global__ void __launch_bounds__(256) conv2d_big64_f32_tc(Params p, Ptrs b) { conv2d_big_tc<DF32, 128, 64>(p, b); }
extern "C" __global__ void __launch_bounds__(256) conv2d_big64_f16_tc(Params p, Ptrs b) { conv2d_big_tc<DF16, 128, 64>(p, b); }
extern "C" __global__ void __launch_bounds__(256) conv2d_big64_bf16_tc(Params p, Ptrs b) { conv2d_big_tc<DBF16, 128, 64>(p, b); }
extern "C" __global__ void __launch_bounds__(256) conv2d_big64_q8_0_tc(Params p, Ptrs b) { conv2d_big_tc<DQ8_0, 128, 64>(p, b); }
extern "C" __global__ void __launch_bounds__(256) conv2d_big64_q4_0_tc(Params p, Ptrs b) { conv2d_big_tc<DQ4_0, 128, 64>(p, b); }
extern "C" __global__ void __launch_bounds__(256) conv2d_big64_q4_1_tc(Params p, Ptrs b) { conv2d_big_tc<DQ4_1, 128, 64>(p, b); }
extern "C" __global__ void __launch_bounds__(256) conv2d_big64_q5_0_tc(Params p, Ptrs b) { conv2d_big_tc<DQ5_0, 128, 64>(p, b); }
extern "C" __global__ void __launch_bounds__(256) conv2d_big64_q5_1_tc(Params p, Ptrs b) { conv2d_big_tc<DQ5_1, 128, 64>(p, b); }
extern "C" __global__ void __launch_bounds__(256) conv2d_big64_q2_k_tc(Params p, Ptrs b) { conv2d_big_tc<DQ2_K, 128, 64>(p, b); }
extern "C" __global__ void __launch_bounds__(256) conv2d_big64_q3_k_tc(Params p, Ptrs b) { conv2d_big_tc<DQ3_K, 128, 64>(p, b); }
extern "C" __global__ void __launch_bounds__(256) conv2d_big64_q4_k_tc(Params p, Ptrs b) { conv2d_big_tc<DQ4_K, 128, 64>(p, b); }
extern "C" __global__ void __launch_bounds__(256) conv2d_big64_q5_k_tc(Params p, Ptrs b) { conv2d_big_tc<DQ5_K, 128, 64>(p, b); }
extern "C" __global__ void __launch_bounds__(256) conv2d_big64_q6_k_tc(Params p, Ptrs b) { conv2d_big_tc<DQ6_K, 128, 64>(p, b); }
extern "C" __global__ void __launch_bounds__(256) conv2d_big64_iq4_nl_tc(Params p, Ptrs b) { conv2d_big_tc<DIQ4_NL, 128, 64>(p, b); }
extern "C" __global__ void __launch_bounds__(256) conv2d_big64_iq4_xs_tc(Params p, Ptrs b) { conv2d_big_tc<DIQ4_XS, 128, 64>(p, b); }
extern "C" __global__ void __launch_bounds__(128) conv2d_big128_f32_tc(Params p, Ptrs b) { conv2d_big_tc<DF32, 128, 32>(p, b); }
extern "C" __global__ void __launch_bounds__(128) conv2d_big128_f16_tc(Params p, Ptrs b) { conv2d_big_tc<DF16, 128, 32>(p, b); }
extern "C" __global__ void __launch_bounds__(128) conv2d_big128_bf16_tc(Params p, Ptrs b) { conv2d_big_tc<DBF16, 128, 32>(p, b); }
extern "C" __global__ void __launch_bounds__(128) conv2d_big128_q8_0_tc(Params p, Ptrs b) { conv2d_big_tc<DQ8_0, 128, 32>(p, b); }
extern "C" __global__ void __launch_bounds__(128) conv2d_big128_q4_0_tc(Params p, Ptrs b) { conv2d_big_tc<DQ4_0, 128, 32>(p, b); }
extern "C" __global__ void __launch_bounds__(128) conv2d_big128_q4_1_tc(Params p, Ptrs b) { conv2d_big_tc<DQ4_1, 128, 32>(p, b); }
extern "C" __global__ void __launch_bounds__(128) conv2d_big128_q5_0_tc(Params p, Ptrs b) { conv2d_big_tc<DQ5_0, 128, 32>(p, b); }
extern "C" __global__ void __launch_bounds__(128) conv2d_big128_q5_1_tc(Params p, Ptrs b) { conv2d_big_tc<DQ5_1, 128, 32>(p, b); }
extern "C" __global__ void __launch_bounds__(128) conv2d_big128_q2_k_tc(Params p, Ptrs b) { conv2d_big_tc<DQ2_K, 128, 32>(p, b); }
extern "C" __global__ void __launch_bounds__(128) conv2d_big128_q3_k_tc(Params p, Ptrs b) { conv2d_big_tc<DQ3_K, 128, 32>(p, b); }
extern "C" __global__ void __launch_bounds__(128) conv2d_big128_q4_k_tc(Params p, Ptrs b) { conv2d_big_tc<DQ4_K, 128, 32>(p, b); }
extern "C" __global__ void __launch_bounds__(128) conv2d_big128_q5_k_tc(Params p, Ptrs b) { conv2d_big_tc<DQ5_K, 128, 32>(p, b); }
extern "C" __global__ void __launch_bounds__(128) conv2d_big128_q6_k_tc(Params p, Ptrs b) { conv2d_big_tc<DQ6_K, 128, 32>(p, b); }
extern "C" __global__ void __launch_bounds__(128) conv2d_big128_iq4_nl_tc(Params p, Ptrs b) { conv2d_big_tc<DIQ4_NL, 128, 32>(p, b); }
extern "C" __global__ void __launch_bounds__(128) conv2d_big128_iq4_xs_tc(Params p, Ptrs b) { conv2d_big_tc<DIQ4_XS, 128, 32>(p, b); }
