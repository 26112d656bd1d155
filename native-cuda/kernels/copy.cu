// copy.cu — data movement, the twin of shaders/copy.wgsl (ops/copy.rs).
// strided_{f32,f16,bf16}: y[dst_off + Σ i_k·ds_k] = x[src_off + Σ i_k·ss_k]
//   over a 4-D region; params n, _, _, _, dims[4], ss[4], ds[4], src_off,
//   dst_off; bindings 0 x, 1 y (f32). Copy/cast-to-f32, transpose, concat.
//   strided4_*: four consecutive elements per thread (copy.wgsl's VEC4).
// to_half_{f16,bf16}: contiguous f32 → halves (round to nearest even), one
//   thread per pair; params n; bindings 0 x, 1 y.
// write_cache_{f32,f16}: dst[h, pos+t, :] = src[t, h, :] into [hkv, cap, d];
//   params t, h, d, cap, pos_sym, col0, ld (src rows of ld values, head 0 at
//   column col0); bindings 0 src, 1 dst (in place), 2 syms.
// 256 threads per block.
#include "common.cuh"

template <int SRC>  // 0 f32, 1 f16, 2 bf16
__device__ __forceinline__ float src_at(const Ptrs& b, u64 s) {
    if (SRC == 0) return BUF(const float, 0)[s];
    if (SRC == 1) return h2f(BUF(const u16, 0)[s]);
    return bf2f(BUF(const u16, 0)[s]);
}

// PER 4 (copy.wgsl's VEC4: dims[3] % 4 == 0, unit innermost strides): four
// consecutive elements per thread, all loaded before any is stored.
template <int SRC, int PER>
__device__ void strided(const Params& p, const Ptrs& b) {
    u32 e = (wg_index() * 256u + threadIdx.x) * PER;
    if (e >= p.w[0]) return;
    const u32 d0 = p.w[4], d1 = p.w[5], d2 = p.w[6], d3 = p.w[7];
    (void)d0;
    u32 i3 = e % d3, i2 = (e / d3) % d2, i1 = (e / (d3 * d2)) % d1, i0 = e / (d3 * d2 * d1);
    u64 s = (u64)p.w[16] + (u64)i0 * p.w[8] + (u64)i1 * p.w[9] + (u64)i2 * p.w[10] + (u64)i3 * p.w[11];
    u64 d = (u64)p.w[17] + (u64)i0 * p.w[12] + (u64)i1 * p.w[13] + (u64)i2 * p.w[14] + (u64)i3 * p.w[15];
    float v[PER];
#pragma unroll
    for (int j = 0; j < PER; j++) v[j] = src_at<SRC>(b, s + j);
#pragma unroll
    for (int j = 0; j < PER; j++) BUF(float, 1)[d + j] = v[j];
}

extern "C" __global__ void strided_f32(Params p, Ptrs b) { strided<0, 1>(p, b); }
extern "C" __global__ void strided_f16(Params p, Ptrs b) { strided<1, 1>(p, b); }
extern "C" __global__ void strided_bf16(Params p, Ptrs b) { strided<2, 1>(p, b); }
extern "C" __global__ void strided4_f32(Params p, Ptrs b) { strided<0, 4>(p, b); }
extern "C" __global__ void strided4_f16(Params p, Ptrs b) { strided<1, 4>(p, b); }
extern "C" __global__ void strided4_bf16(Params p, Ptrs b) { strided<2, 4>(p, b); }

template <bool BF16>
__device__ void to_half(const Params& p, const Ptrs& b) {
    u32 w = wg_index() * 256u + threadIdx.x;
    u32 e = 2u * w, n = p.w[0];
    if (e >= n) return;
    const float* x = BUF(const float, 0);
    u32 lo = BF16 ? f2bf(x[e]) : (u32)f2h(x[e]);
    u32 hi = 0u;
    if (e + 1u < n) hi = BF16 ? f2bf(x[e + 1u]) : (u32)f2h(x[e + 1u]);
    // The output holds n halves; a trailing odd half is written alone.
    u16* y = BUF(u16, 1);
    y[e] = (u16)lo;
    if (e + 1u < n) y[e + 1u] = (u16)hi;
}

extern "C" __global__ void to_half_f16(Params p, Ptrs b) { to_half<false>(p, b); }
extern "C" __global__ void to_half_bf16(Params p, Ptrs b) { to_half<true>(p, b); }

template <bool F16>
__device__ void write_cache(const Params& p, const Ptrs& b) {
    const u32 t = p.w[0], h = p.w[1], d = p.w[2], cap = p.w[3];
    u32 i = wg_index() * 256u + threadIdx.x;
    u32 e = F16 ? 2u * i : i;
    if (e >= t * h * d) return;
    u32 c = e % d, hh = (e / d) % h, ti = e / (d * h);
    u32 pos = BUF(const u32, 2)[p.w[4]];
    u64 o = ((u64)hh * cap + pos + ti) * d + c;
    u64 se = (u64)ti * p.w[6] + p.w[5] + (u64)hh * d + c;
    const float* src = BUF(const float, 0);
    if (F16) {
        u16* dst = BUF(u16, 1);
        dst[o] = f2h(src[se]);
        dst[o + 1u] = f2h(src[se + 1u]);
    } else {
        BUF(float, 1)[o] = src[se];
    }
}

extern "C" __global__ void write_cache_f32(Params p, Ptrs b) { write_cache<false>(p, b); }
extern "C" __global__ void write_cache_f16(Params p, Ptrs b) { write_cache<true>(p, b); }
