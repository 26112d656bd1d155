// common.cuh — shared by every kernel of kiln-cuda (prepended by the loader;
// NVRTC sees no system headers). Mirrors the WGSL conventions:
//   * every kernel is `extern "C" __global__ void NAME(Params p, Ptrs b)`;
//   * `p.w[i]` are the dispatch's uniform words exactly as ops::*::wgsl
//     writes them (f32 values as bits), `b.p[j]` the device address of WGSL
//     binding j + 1 (same order as the Dispatch's `bindings`);
//   * the grid is the Dispatch's workgroup grid, the block the WGSL
//     workgroup size, and `blockIdx.x + blockIdx.y * gridDim.x` the folded
//     workgroup index (ops::grid).

typedef unsigned int u32;
typedef unsigned short u16;
typedef unsigned char u8;
typedef unsigned long long u64;

struct Params {
    u32 w[32];
};
struct Ptrs {
    u64 p[8];
};

#define PF(i) __uint_as_float(p.w[i])

// Programmatic dependent launch (sm_90+). The loader (kernels::source) makes
// this the first statement of every entry, and the executor can launch with
// programmatic stream serialization (sm_90+ unless KILN_CUDA_PDL=0): an entry waits
// until the grid before it has finished and its writes are visible, then
// lets the next grid start launching, so the next kernel's launch and block
// scheduling overlap this one instead of following it. Without the launch
// attribute both instructions are no-ops; before sm_90 they are compiled out.
__device__ __forceinline__ void kiln_entry() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.wait;" ::: "memory");
    asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

// Holds the stream for `p.w[0]` microseconds (profiling: every launch after
// it is queued before the GPU reaches it, so event deltas are GPU time).
extern "C" __global__ void kiln_hold(Params p, Ptrs b) {
    u64 t0, t;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t0));
    do {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 700
        __nanosleep(1000);
#endif
        asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
    } while (t - t0 < (u64)p.w[0] * 1000ull);
}
#define BUF(T, j) ((T*)b.p[j])

__device__ __forceinline__ u32 wg_index() { return blockIdx.x + blockIdx.y * gridDim.x; }

// IEEE half <-> f32 through PTX (round to nearest even; no cuda_fp16.h).
__device__ __forceinline__ float h2f(u16 h) {
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
    return f;
}
__device__ __forceinline__ u16 f2h(float f) {
    u16 h;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f));
    return h;
}
__device__ __forceinline__ float bf2f(u16 h) { return __uint_as_float(((u32)h) << 16); }
// f32 -> bf16 bits, round to nearest even (as copy.wgsl and the half crate).
__device__ __forceinline__ u32 f2bf(float v) {
    u32 x = __float_as_uint(v);
    return ((x + 0x7fffu + ((x >> 16) & 1u)) >> 16) & 0xffffu;
}

// Warp-wide butterfly reductions: every lane gets the same (deterministic) result.
__device__ __forceinline__ float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ __forceinline__ float warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

// Block-wide sum/max for a 1-D block of WG threads (as common/reduce.wgsl
// with SUBGROUPS: per-warp partials added in warp order). Uniform control
// flow only; every thread gets the result.
template <int WG>
__device__ float block_sum(float v) {
    __shared__ float red[WG / 32];
    v = warp_sum(v);
    if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = v;
    __syncthreads();
    float t = 0.0f;
    for (int i = 0; i < WG / 32; i++) t += red[i];
    __syncthreads();
    return t;
}
template <int WG>
__device__ float block_max(float v) {
    __shared__ float red[WG / 32];
    v = warp_max(v);
    if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = v;
    __syncthreads();
    float t = -3.0e38f;
    for (int i = 0; i < WG / 32; i++) t = fmaxf(t, red[i]);
    __syncthreads();
    return t;
}

__device__ __forceinline__ float dot4(float4 a, float4 b) {
    return a.x * b.x + a.y * b.y + a.z * b.z + a.w * b.w;
}
