// tile64.cuh — the 64×64 output tile of the large GEMMs (mul_mat.cu's
// mul_mat64, mul_mat_back.cu's input_grad64), the twin of
// shaders/common/tile64.wgsl: both operand tiles in shared memory as
// [64][17] (16 along the reduction, padded); thread (tx, ty) of a 16×16
// block accumulates rows ty + 16i × columns tx + 16j. Callers stage the
// tiles and put __syncthreads() around tile64_mac.

__device__ __forceinline__ void tile64_mac(const float* xs, const float* ws, u32 tx, u32 ty,
                                           float acc[16]) {
#pragma unroll 4
    for (u32 kk = 0; kk < 16u; kk++) {
        float a[4], bw[4];
#pragma unroll
        for (u32 i = 0; i < 4u; i++) {
            a[i] = xs[(ty + 16u * i) * 17u + kk];
            bw[i] = ws[(tx + 16u * i) * 17u + kk];
        }
#pragma unroll
        for (u32 i = 0; i < 4u; i++)
#pragma unroll
            for (u32 j = 0; j < 4u; j++) acc[i * 4u + j] += a[i] * bw[j];
    }
}

// Stores a thread's 4 x values and 4 weights (row lr, group lg of 4).
__device__ __forceinline__ void tile64_store(float* xs, float* ws, u32 lr, u32 lg, float4 xv,
                                             float4 wv) {
    float* xd = &xs[lr * 17u + lg * 4u];
    float* wd = &ws[lr * 17u + lg * 4u];
    xd[0] = xv.x; xd[1] = xv.y; xd[2] = xv.z; xd[3] = xv.w;
    wd[0] = wv.x; wd[1] = wv.y; wd[2] = wv.z; wd[3] = wv.w;
}

// Calls f(row, column, value) for the thread's 4×4 block of the tile at
// (m0, c0) that lies below (m, cols).
template <class F>
__device__ __forceinline__ void tile64_each(u32 m0, u32 c0, u32 m, u32 cols, const float acc[16],
                                            F f) {
#pragma unroll
    for (u32 i = 0; i < 4u; i++)
#pragma unroll
        for (u32 j = 0; j < 4u; j++) {
            u32 mm = m0 + threadIdx.y + 16u * i, c = c0 + threadIdx.x + 16u * j;
            if (mm < m && c < cols) f(mm, c, acc[i * 4u + j]);
        }
}
