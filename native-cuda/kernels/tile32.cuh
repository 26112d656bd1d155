// tile32.cuh — the 32×32 output tile of the tiled GEMMs (mul_mat.cu's
// mul_mat, conv2d.cu), the twin of shaders/common/tile32.wgsl: both operand
// tiles in shared memory ([32][33]) staged by a 16×16 block (row lr, group
// of 4 along K lg); each thread accumulates a 2×2 output block over the
// tile's 32 K. Callers put __syncthreads() around tile_mac.

__device__ __forceinline__ void tile_store(float* xs, float* ws, u32 lr, u32 lg, float4 xv, float4 wv) {
    float* xd = &xs[lr * 33u + lg * 4u];
    float* wd = &ws[lr * 33u + lg * 4u];
    xd[0] = xv.x; xd[1] = xv.y; xd[2] = xv.z; xd[3] = xv.w;
    wd[0] = wv.x; wd[1] = wv.y; wd[2] = wv.z; wd[3] = wv.w;
}

// acc += x rows tm, tm+1 times weight rows tn, tn+1 over the staged 32 K.
__device__ __forceinline__ void tile_mac(const float* xs, const float* ws, u32 tm, u32 tn, float acc[4]) {
#pragma unroll 8
    for (u32 kk = 0; kk < 32u; kk++) {
        float a0 = xs[tm * 33u + kk], a1 = xs[(tm + 1u) * 33u + kk];
        float b0 = ws[tn * 33u + kk], b1 = ws[(tn + 1u) * 33u + kk];
        acc[0] += a0 * b0;
        acc[1] += a0 * b1;
        acc[2] += a1 * b0;
        acc[3] += a1 * b1;
    }
}
