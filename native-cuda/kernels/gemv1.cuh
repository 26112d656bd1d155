// gemv1.cuh — the one-token (m = 1) decode GEMV over 32-weight blocks with
// wide loads, for the benchmark formats (Q4_0, Q4_1, Q8_0): two lanes per
// block, each lane one half ("h") of it, its quants read as 16- or 32-bit
// words and x as float4s, the block scale applied once per half. Used by
// mul_mat_vec and mul_mat_fused (mul_mat.cu) when m = 1, k % 32 = 0 and x
// (and the norm weight) are 16-byte aligned; other formats and shapes keep
// the per-element decoders of quant.cuh. On unless KILN_GEMV_HALF=0 at NVRTC
// time (exec.rs: KILN_CUDA_GEMV=generic).
//
// Half h of a Q4_0/Q4_1 block is quant bytes [8h, 8h+8): elements 8h..8h+7
// (low nibbles) and 16+8h..16+8h+7 (high nibbles). Half h of a Q8_0 block is
// elements 16h..16h+15. `s` (NW) multiplies x elementwise (the RMSNorm
// weight; the 1/rms factor is applied to the finished sum).

#ifndef KILN_GEMV_HALF
#define KILN_GEMV_HALF 0
#endif

template <class D>
struct Half {
    static constexpr bool ok = false;
};

template <bool NW>
__device__ __forceinline__ float4 xs4a(const float* x, const float* s, u32 e) {
    float4 v = *(const float4*)(x + e);
    if (NW) {
        float4 w = *(const float4*)(s + e);
        v = make_float4(v.x * w.x, v.y * w.y, v.z * w.z, v.w * w.w);
    }
    return v;
}

__device__ __forceinline__ u32 ld2x16(const u8* p) {
    const u16* h = (const u16*)p;
    return (u32)h[0] | ((u32)h[1] << 16);
}

// Σ of 4 nibbles of each byte of two words: elements e0..e0+8 from the low
// nibbles, e0+16..e0+24 from the high ones.
template <bool NW>
__device__ __forceinline__ float nib16(u32 q0, u32 q1, const float* x, const float* s, u32 e0, float off,
                                       float& sx) {
    float4 a0 = xs4a<NW>(x, s, e0), a1 = xs4a<NW>(x, s, e0 + 4u);
    float4 b0 = xs4a<NW>(x, s, e0 + 16u), b1 = xs4a<NW>(x, s, e0 + 20u);
    sx += (a0.x + a0.y + a0.z + a0.w) + (a1.x + a1.y + a1.z + a1.w) + (b0.x + b0.y + b0.z + b0.w) +
          (b1.x + b1.y + b1.z + b1.w);
#define KN(q, i) ((float)(((q) >> (i)) & 15u) + off)
    return KN(q0, 0) * a0.x + KN(q0, 8) * a0.y + KN(q0, 16) * a0.z + KN(q0, 24) * a0.w +
           KN(q1, 0) * a1.x + KN(q1, 8) * a1.y + KN(q1, 16) * a1.z + KN(q1, 24) * a1.w +
           KN(q0, 4) * b0.x + KN(q0, 12) * b0.y + KN(q0, 20) * b0.z + KN(q0, 28) * b0.w +
           KN(q1, 4) * b1.x + KN(q1, 12) * b1.y + KN(q1, 20) * b1.z + KN(q1, 28) * b1.w;
#undef KN
}

// The 32-weight block that half-block hb of a row lies in (D::BB bytes each).
template <class D>
__device__ __forceinline__ const u8* half_block(const u8* W, u32 row, u32 k, u32 hb) {
    return W + ((u64)row * (k >> 5) + (hb >> 1)) * D::BB;
}

template <>
struct Half<DQ4_0> {
    static constexpr bool ok = true;
    template <bool NW>
    static __device__ __forceinline__ float dot(const u8* W, u32 row, u32 k, u32 hb, const float* x,
                                                const float* s) {
        const u32 u = hb >> 1, h = hb & 1u;
        const u8* blk = half_block<DQ4_0>(W, row, k, hb);
        const float d = h2f(*(const u16*)blk);
        const u32 q0 = ld2x16(blk + 2u + 8u * h), q1 = ld2x16(blk + 6u + 8u * h);
        float sx = 0.0f;
        return d * nib16<NW>(q0, q1, x, s, 32u * u + 8u * h, -8.0f, sx);
    }
};

template <>
struct Half<DQ4_1> {
    static constexpr bool ok = true;
    template <bool NW>
    static __device__ __forceinline__ float dot(const u8* W, u32 row, u32 k, u32 hb, const float* x,
                                                const float* s) {
        const u32 u = hb >> 1, h = hb & 1u;
        const u8* blk = half_block<DQ4_1>(W, row, k, hb);
        const u32 dm = *(const u32*)blk;
        // Blocks are 20 bytes: 4-byte aligned, not 8 (no uint2 loads).
        const u32* q = (const u32*)(blk + 4u + 8u * h);
        float sx = 0.0f;
        const float sq = nib16<NW>(q[0], q[1], x, s, 32u * u + 8u * h, 0.0f, sx);
        return h2f((u16)(dm & 0xffffu)) * sq + h2f((u16)(dm >> 16)) * sx;
    }
};

template <>
struct Half<DQ8_0> {
    static constexpr bool ok = true;
    template <bool NW>
    static __device__ __forceinline__ float dot(const u8* W, u32 row, u32 k, u32 hb, const float* x,
                                                const float* s) {
        const u32 u = hb >> 1, h = hb & 1u;
        const u8* blk = half_block<DQ8_0>(W, row, k, hb);
        const float d = h2f(*(const u16*)blk);
        const u8* q = blk + 2u + 16u * h;
        const u32 e = 32u * u + 16u * h;
        float acc = 0.0f;
#pragma unroll
        for (u32 i = 0; i < 4u; i++) {
            const u32 w = ld2x16(q + 4u * i);
            const float4 a = xs4a<NW>(x, s, e + 4u * i);
            acc += (float)(signed char)(w & 0xffu) * a.x + (float)(signed char)((w >> 8) & 0xffu) * a.y +
                   (float)(signed char)((w >> 16) & 0xffu) * a.z + (float)(signed char)(w >> 24) * a.w;
        }
        return d * acc;
    }
};

// Whether the wide-load path applies to a format that has it (callers test
// Half<D>::ok with `if constexpr`): m = 1, whole blocks, and x (and s when
// NW) 16-byte aligned.
__device__ __forceinline__ bool half_ok(u32 m, u32 k, const float* x, const float* s) {
    return KILN_GEMV_HALF && m == 1u && (k & 31u) == 0u &&
           (((u64)x | (u64)s) & 15ull) == 0ull;
}

// One row's dot product by one warp (every lane gets it).
template <class D, bool NW>
__device__ __forceinline__ float half_row(const u8* W, u32 row, u32 k, const float* x, const float* s,
                                          u32 lane) {
    float acc = 0.0f;
    const u32 nh = k >> 4;  // halves per row
    for (u32 hb = lane; hb < nh; hb += 32u) acc += Half<D>::template dot<NW>(W, row, k, hb, x, s);
    return warp_sum(acc);
}

// Two rows (GLU's gate and up) in one pass, loads interleaved.
template <class D, bool NW>
__device__ __forceinline__ float2 half_rows2(const u8* W, u32 r0, u32 r1, u32 k, const float* x,
                                             const float* s, u32 lane) {
    float a = 0.0f, b = 0.0f;
    const u32 nh = k >> 4;
    for (u32 hb = lane; hb < nh; hb += 32u) {
        a += Half<D>::template dot<NW>(W, r0, k, hb, x, s);
        b += Half<D>::template dot<NW>(W, r1, k, hb, x, s);
    }
    return make_float2(warp_sum(a), warp_sum(b));
}

// Four rows in one pass (the XREG twin, common/gemv_rows.wgsl): each lane's
// x loads serve the four rows (the same addresses, loaded once after
// inlining), and four rows' weight loads are in flight together.
template <class D, bool NW>
__device__ __forceinline__ float4 half_rows4(const u8* W, uint4 r, u32 k, const float* x, const float* s,
                                             u32 lane) {
    float a = 0.0f, b = 0.0f, c = 0.0f, d = 0.0f;
    const u32 nh = k >> 4;
    for (u32 hb = lane; hb < nh; hb += 32u) {
        a += Half<D>::template dot<NW>(W, r.x, k, hb, x, s);
        b += Half<D>::template dot<NW>(W, r.y, k, hb, x, s);
        c += Half<D>::template dot<NW>(W, r.z, k, hb, x, s);
        d += Half<D>::template dot<NW>(W, r.w, k, hb, x, s);
    }
    return make_float4(warp_sum(a), warp_sum(b), warp_sum(c), warp_sum(d));
}

