// quant.cuh — weight decoders, one per dtype, mirroring shaders/quant/*.wgsl
// and crate/src/quant/*.rs byte for byte (GGUF block layouts, little-endian).
// Each decoder is a struct with
//   w4(W, row, k, g): elements 4g..4g+3 of row `row` of a [rows, k] matrix
//                     (zero past k), as float4;
//   dot32(W, row, k, u, x): 32 weights of unit u against x (a row of
//                     activations of length k, zero past k).
// Products that the CPU reference rounds separately use __fmul_rn/__fadd_rn,
// so decoded weights are bit-identical to quant::dequantize.

__device__ __forceinline__ float f16at(const u8* p) { return h2f((u16)(p[0] | (p[1] << 8))); }

__device__ __forceinline__ float4 xs4(const float* x, u32 k, u32 g) {
    u32 c = 4u * g;
    if (c + 3u < k) return make_float4(x[c], x[c + 1], x[c + 2], x[c + 3]);
    float r[4] = {0.f, 0.f, 0.f, 0.f};
    for (u32 i = 0; i < 4u; i++)
        if (c + i < k) r[i] = x[c + i];
    return make_float4(r[0], r[1], r[2], r[3]);
}

// Asks L2 for weight rows [r0, r1) of a [rows, k] matrix, one 128-byte line
// per thread in turn. GEMVs issue it before they wait for the grid before
// them (kiln_entry): weights never depend on it, so under programmatic
// dependent launch they stream in while that grid finishes.
template <class D>
__device__ __forceinline__ void prefetch_rows(const u8* W, u32 r0, u32 r1, u32 k) {
    const u64 rb = (u64)(k / D::BS) * D::BB;
    const u8* a = W + (u64)r0 * rb;
    const u64 bytes = (u64)(r1 > r0 ? r1 - r0 : 0u) * rb;
    const u32 nt = blockDim.x * blockDim.y;
    const u32 t = threadIdx.y * blockDim.x + threadIdx.x;
    for (u64 o = (u64)t * 128u; o < bytes; o += (u64)nt * 128u)
        asm volatile("prefetch.global.L2 [%0];" ::"l"(a + o));
}

// Generic dot32 through w4 (the float formats and the K-quants).
template <class D>
__device__ __forceinline__ float dot32_w4(const u8* W, u32 row, u32 k, u32 u, const float* x) {
    float s = 0.0f;
    for (u32 j = 0; j < 8u; j++) s += dot4(D::w4(W, row, k, 8u * u + j), xs4(x, k, 8u * u + j));
    return s;
}

// quant/f32.wgsl — plain f32 rows.
struct DF32 {
    static constexpr u32 BS = 1u, BB = 4u;  // elements, bytes per block
    static __device__ __forceinline__ float4 w4(const u8* W, u32 row, u32 k, u32 g) {
        const float* w = (const float*)W + (u64)row * k;
        u32 c = 4u * g;
        float r[4] = {0.f, 0.f, 0.f, 0.f};
        for (u32 i = 0; i < 4u; i++)
            if (c + i < k) r[i] = w[c + i];
        return make_float4(r[0], r[1], r[2], r[3]);
    }
    static __device__ __forceinline__ float dot32(const u8* W, u32 row, u32 k, u32 u, const float* x) {
        return dot32_w4<DF32>(W, row, k, u, x);
    }
};

// quant/f16.wgsl — IEEE half rows.
struct DF16 {
    static constexpr u32 BS = 1u, BB = 2u;  // elements, bytes per block
    static __device__ __forceinline__ float4 w4(const u8* W, u32 row, u32 k, u32 g) {
        const u16* w = (const u16*)W + (u64)row * k;
        u32 c = 4u * g;
        float r[4] = {0.f, 0.f, 0.f, 0.f};
        for (u32 i = 0; i < 4u; i++)
            if (c + i < k) r[i] = h2f(w[c + i]);
        return make_float4(r[0], r[1], r[2], r[3]);
    }
    static __device__ __forceinline__ float dot32(const u8* W, u32 row, u32 k, u32 u, const float* x) {
        return dot32_w4<DF16>(W, row, k, u, x);
    }
};

// quant/bf16.wgsl — bfloat16 rows (the upper half of an f32).
struct DBF16 {
    static constexpr u32 BS = 1u, BB = 2u;  // elements, bytes per block
    static __device__ __forceinline__ float4 w4(const u8* W, u32 row, u32 k, u32 g) {
        const u16* w = (const u16*)W + (u64)row * k;
        u32 c = 4u * g;
        float r[4] = {0.f, 0.f, 0.f, 0.f};
        for (u32 i = 0; i < 4u; i++)
            if (c + i < k) r[i] = bf2f(w[c + i]);
        return make_float4(r[0], r[1], r[2], r[3]);
    }
    static __device__ __forceinline__ float dot32(const u8* W, u32 row, u32 k, u32 u, const float* x) {
        return dot32_w4<DBF16>(W, row, k, u, x);
    }
};

// quant/q8_0.wgsl — block_q8_0 (34 bytes, 32 weights):
//   [0..2) d: f16   [2..34) qs: 32 × i8   y[j] = d · qs[j]
struct DQ8_0 {
    static constexpr u32 BS = 32u, BB = 34u;  // elements, bytes per block
    static __device__ __forceinline__ float4 w4(const u8* W, u32 row, u32 k, u32 g) {
        u32 e = 4u * g;
        const u8* blk = W + ((u64)row * (k >> 5) + (e >> 5)) * 34u;
        float d = f16at(blk);
        const u8* q = blk + 2u + (e & 31u);
        return make_float4(d * (float)(signed char)q[0], d * (float)(signed char)q[1],
                           d * (float)(signed char)q[2], d * (float)(signed char)q[3]);
    }
    // A whole block against x: the scale applied once (as q8_0.wgsl's dot32).
    static __device__ __forceinline__ float dot32(const u8* W, u32 row, u32 k, u32 u, const float* x) {
        const u8* blk = W + ((u64)row * (k >> 5) + u) * 34u;
        const signed char* q = (const signed char*)(blk + 2);
        const float* xu = x + 32u * u;
        float s = 0.0f;
        for (u32 j = 0; j < 32u; j++) s += (float)q[j] * xu[j];
        return f16at(blk) * s;
    }
};

// quant/q4_0.wgsl — block_q4_0 (18 bytes): [0..2) d: f16  [2..18) qs
//   y[j] = d·((qs[j] & 15) − 8),  y[j+16] = d·((qs[j] >> 4) − 8)
struct DQ4_0 {
    static constexpr u32 BS = 32u, BB = 18u;  // elements, bytes per block
    static __device__ __forceinline__ float4 w4(const u8* W, u32 row, u32 k, u32 g) {
        u32 e = 4u * g;
        const u8* blk = W + ((u64)row * (k >> 5) + (e >> 5)) * 18u;
        float d = f16at(blk);
        u32 j = e & 31u;
        const u8* q = blk + 2u + (j & 15u);
        u32 sh = j >= 16u ? 4u : 0u;
        float r[4];
        for (int i = 0; i < 4; i++) r[i] = (float)((int)((q[i] >> sh) & 15u) - 8) * d;
        return make_float4(r[0], r[1], r[2], r[3]);
    }
    static __device__ __forceinline__ float dot32(const u8* W, u32 row, u32 k, u32 u, const float* x) {
        const u8* blk = W + ((u64)row * (k >> 5) + u) * 18u;
        const float* xu = x + 32u * u;
        float s = 0.0f;
        for (u32 j = 0; j < 16u; j++) {
            u32 q = blk[2 + j];
            s += (float)((int)(q & 15u) - 8) * xu[j] + (float)((int)(q >> 4) - 8) * xu[j + 16];
        }
        return f16at(blk) * s;
    }
};

// quant/q4_1.wgsl — block_q4_1 (20 bytes): [0..2) d  [2..4) m  [4..20) qs
//   y[j] = d·(qs[j] & 15) + m,  y[j+16] = d·(qs[j] >> 4) + m
struct DQ4_1 {
    static constexpr u32 BS = 32u, BB = 20u;  // elements, bytes per block
    static __device__ __forceinline__ float4 w4(const u8* W, u32 row, u32 k, u32 g) {
        u32 e = 4u * g;
        const u8* blk = W + ((u64)row * (k >> 5) + (e >> 5)) * 20u;
        float d = f16at(blk), m = f16at(blk + 2);
        u32 j = e & 31u;
        const u8* q = blk + 4u + (j & 15u);
        u32 sh = j >= 16u ? 4u : 0u;
        float r[4];
        for (int i = 0; i < 4; i++) r[i] = __fadd_rn(__fmul_rn((float)((q[i] >> sh) & 15u), d), m);
        return make_float4(r[0], r[1], r[2], r[3]);
    }
    // d and m once per block, Σx folded into the offset term (as q4_1.wgsl).
    static __device__ __forceinline__ float dot32(const u8* W, u32 row, u32 k, u32 u, const float* x) {
        const u8* blk = W + ((u64)row * (k >> 5) + u) * 20u;
        const float* xu = x + 32u * u;
        float sq = 0.0f, sx = 0.0f;
        for (u32 j = 0; j < 16u; j++) {
            u32 q = blk[4 + j];
            sq += (float)(q & 15u) * xu[j] + (float)(q >> 4) * xu[j + 16];
            sx += xu[j] + xu[j + 16];
        }
        return f16at(blk) * sq + f16at(blk + 2) * sx;
    }
};

// quant/q5_0.wgsl — block_q5_0 (22 bytes): [0..2) d  [2..6) qh  [6..22) qs
//   q = nibble | (bit j of qh)·16,  y = d·(q − 16)
struct DQ5_0 {
    static constexpr u32 BS = 32u, BB = 22u;  // elements, bytes per block
    static __device__ __forceinline__ float4 w4(const u8* W, u32 row, u32 k, u32 g) {
        u32 e = 4u * g;
        const u8* blk = W + ((u64)row * (k >> 5) + (e >> 5)) * 22u;
        float d = f16at(blk);
        u32 qh = blk[2] | (blk[3] << 8) | (blk[4] << 16) | ((u32)blk[5] << 24);
        u32 j = e & 31u;
        const u8* q = blk + 6u + (j & 15u);
        u32 sh = j >= 16u ? 4u : 0u;
        float r[4];
        for (u32 i = 0; i < 4u; i++)
            r[i] = (float)((int)(((q[i] >> sh) & 15u) | (((qh >> (j + i)) & 1u) << 4)) - 16) * d;
        return make_float4(r[0], r[1], r[2], r[3]);
    }
    static __device__ __forceinline__ float dot32(const u8* W, u32 row, u32 k, u32 u, const float* x) {
        return dot32_w4<DQ5_0>(W, row, k, u, x);
    }
};

// quant/q5_1.wgsl — block_q5_1 (24 bytes): [0..2) d  [2..4) m  [4..8) qh  [8..24) qs
//   q = nibble | (bit j of qh)·16,  y = d·q + m
struct DQ5_1 {
    static constexpr u32 BS = 32u, BB = 24u;  // elements, bytes per block
    static __device__ __forceinline__ float4 w4(const u8* W, u32 row, u32 k, u32 g) {
        u32 e = 4u * g;
        const u8* blk = W + ((u64)row * (k >> 5) + (e >> 5)) * 24u;
        float d = f16at(blk), m = f16at(blk + 2);
        u32 qh = blk[4] | (blk[5] << 8) | (blk[6] << 16) | ((u32)blk[7] << 24);
        u32 j = e & 31u;
        const u8* q = blk + 8u + (j & 15u);
        u32 sh = j >= 16u ? 4u : 0u;
        float r[4];
        for (u32 i = 0; i < 4u; i++)
            r[i] = __fadd_rn(__fmul_rn((float)(((q[i] >> sh) & 15u) | (((qh >> (j + i)) & 1u) << 4)), d), m);
        return make_float4(r[0], r[1], r[2], r[3]);
    }
    static __device__ __forceinline__ float dot32(const u8* W, u32 row, u32 k, u32 u, const float* x) {
        return dot32_w4<DQ5_1>(W, row, k, u, x);
    }
};

// quant/q2_k.wgsl — block_q2_K (84 bytes, 256 weights):
//   [0..16) scales (low nibble scale, high min)  [16..80) qs  [80..82) d  [82..84) dmin
//   q = (qs[32n + l] >> 2j) & 3,  y = (d·(sc & 15))·q − dmin·(sc >> 4)
struct DQ2_K {
    static constexpr u32 BS = 256u, BB = 84u;  // elements, bytes per block
    static __device__ __forceinline__ float4 w4(const u8* W, u32 row, u32 k, u32 g) {
        u32 e0 = 4u * g;
        const u8* blk = W + ((u64)row * (k >> 8) + (e0 >> 8)) * 84u;
        u32 e = e0 & 255u, n = e >> 7, j = (e & 127u) >> 5, l = e & 31u;
        u32 sc = blk[8u * n + 2u * j + (l >> 4)];
        float dl = __fmul_rn(f16at(blk + 80), (float)(sc & 15u));
        float ml = __fmul_rn(f16at(blk + 82), (float)(sc >> 4));
        float r[4];
        for (u32 i = 0; i < 4u; i++)
            r[i] = __fsub_rn(__fmul_rn(dl, (float)((blk[16u + 32u * n + l + i] >> (2u * j)) & 3u)), ml);
        return make_float4(r[0], r[1], r[2], r[3]);
    }
    static __device__ __forceinline__ float dot32(const u8* W, u32 row, u32 k, u32 u, const float* x) {
        return dot32_w4<DQ2_K>(W, row, k, u, x);
    }
};

// quant/q3_k.wgsl — block_q3_K (110 bytes, 256 weights):
//   [0..32) hmask  [32..96) qs  [96..108) scales (16 × 6 bits)  [108..110) d
//   q = ((qs[32n + l] >> 2j) & 3) − (hmask bit ? 0 : 4),  y = (d·(sc − 32))·q
struct DQ3_K {
    static constexpr u32 BS = 256u, BB = 110u;  // elements, bytes per block
    static __device__ __forceinline__ float4 w4(const u8* W, u32 row, u32 k, u32 g) {
        u32 e0 = 4u * g;
        const u8* blk = W + ((u64)row * (k >> 8) + (e0 >> 8)) * 110u;
        u32 e = e0 & 255u, n = e >> 7, j = (e & 127u) >> 5, l = e & 31u;
        u32 s = 8u * n + 2u * j + (l >> 4);
        const u8* sb = blk + 96;
        u32 lo = s < 8u ? (sb[s] & 15u) : (sb[s - 8] >> 4);
        u32 hi = (sb[8 + (s & 3u)] >> (2u * (s >> 2))) & 3u;
        float dl = __fmul_rn(f16at(blk + 108), (float)((int)(lo | (hi << 4)) - 32));
        float r[4];
        for (u32 i = 0; i < 4u; i++) {
            int q = (int)((blk[32u + 32u * n + l + i] >> (2u * j)) & 3u) - (((blk[l + i] >> (4u * n + j)) & 1u) ? 0 : 4);
            r[i] = __fmul_rn(dl, (float)q);
        }
        return make_float4(r[0], r[1], r[2], r[3]);
    }
    static __device__ __forceinline__ float dot32(const u8* W, u32 row, u32 k, u32 u, const float* x) {
        return dot32_w4<DQ3_K>(W, row, k, u, x);
    }
};

// quant/kscale.wgsl — the 6-bit (scale, min) of sub-block s of a Q4_K / Q5_K
// super-block from its 12 packed bytes sb (ggml's get_scale_min_k4).
__device__ __forceinline__ void kq_scale_min(const u8* sb, u32 s, u32& sc, u32& mn) {
    if (s < 4u) {
        sc = sb[s] & 63u;
        mn = sb[s + 4] & 63u;
    } else {
        sc = (sb[s + 4] & 0xfu) | ((sb[s - 4] >> 6) << 4);
        mn = (sb[s + 4] >> 4) | ((sb[s] >> 6) << 4);
    }
}

// quant/q4_k.wgsl — block_q4_K (144 bytes, 256 weights):
//   [0..2) d  [2..4) dmin  [4..16) scales (get_scale_min_k4)  [16..144) qs
//   element e: chunk c = e/64, sub-block s = 2c + (e%64 >= 32), byte
//   qs[32c + e%32] (low nibble first 32 of a chunk, high the next);
//   y = (d·sc[s])·q − dmin·m[s]
struct DQ4_K {
    static constexpr u32 BS = 256u, BB = 144u;  // elements, bytes per block
    static __device__ __forceinline__ float4 w4(const u8* W, u32 row, u32 k, u32 g) {
        u32 e0 = 4u * g;
        const u8* blk = W + ((u64)row * (k >> 8) + (e0 >> 8)) * 144u;
        u32 e = e0 & 255u, c = e >> 6;
        bool hi = (e & 63u) >= 32u;
        u32 s = 2u * c + (hi ? 1u : 0u);
        u32 sc, mn;
        kq_scale_min(blk + 4, s, sc, mn);
        float d1 = __fmul_rn(f16at(blk), (float)sc);
        float m1 = __fmul_rn(f16at(blk + 2), (float)mn);
        const u8* q = blk + 16u + 32u * c + (e & 31u);
        u32 sh = hi ? 4u : 0u;
        float r[4];
        for (int i = 0; i < 4; i++) r[i] = __fsub_rn(__fmul_rn(d1, (float)((q[i] >> sh) & 15u)), m1);
        return make_float4(r[0], r[1], r[2], r[3]);
    }
    static __device__ __forceinline__ float dot32(const u8* W, u32 row, u32 k, u32 u, const float* x) {
        return dot32_w4<DQ4_K>(W, row, k, u, x);
    }
};

// quant/q5_k.wgsl — block_q5_K (176 bytes, 256 weights):
//   [0..2) d  [2..4) dmin  [4..16) scales (as Q4_K)  [16..48) qh  [48..176) qs
//   q = nibble (as Q4_K) + 16·bit s of qh[e%32];  y = (d·sc[s])·q − dmin·m[s]
struct DQ5_K {
    static constexpr u32 BS = 256u, BB = 176u;  // elements, bytes per block
    static __device__ __forceinline__ float4 w4(const u8* W, u32 row, u32 k, u32 g) {
        u32 e0 = 4u * g;
        const u8* blk = W + ((u64)row * (k >> 8) + (e0 >> 8)) * 176u;
        u32 e = e0 & 255u, c = e >> 6, l = e & 31u;
        bool hi = (e & 63u) >= 32u;
        u32 s = 2u * c + (hi ? 1u : 0u);
        u32 sc, mn;
        kq_scale_min(blk + 4, s, sc, mn);
        float d1 = __fmul_rn(f16at(blk), (float)sc);
        float m1 = __fmul_rn(f16at(blk + 2), (float)mn);
        const u8* qh = blk + 16u + l;
        const u8* q = blk + 48u + 32u * c + l;
        u32 sh = hi ? 4u : 0u;
        float r[4];
        for (int i = 0; i < 4; i++)
            r[i] = __fsub_rn(__fmul_rn(d1, (float)(((q[i] >> sh) & 15u) + (((qh[i] >> s) & 1u) << 4))), m1);
        return make_float4(r[0], r[1], r[2], r[3]);
    }
    static __device__ __forceinline__ float dot32(const u8* W, u32 row, u32 k, u32 u, const float* x) {
        return dot32_w4<DQ5_K>(W, row, k, u, x);
    }
};

// quant/q6_k.wgsl — block_q6_K (210 bytes, 256 weights):
//   [0..128) ql  [128..192) qh  [192..208) scales: i8  [208..210) d
//   element e: n = e/128, l = e%128, r = l/32, i = l%32:
//   lo = ql[64n + i + 32(r&1)] nibble (r>>1), hi = (qh[32n + i] >> 2r) & 3,
//   q = (lo | hi<<4) − 32, y = (d · scales[8n + i/16 + 2r]) · q
struct DQ6_K {
    static constexpr u32 BS = 256u, BB = 210u;  // elements, bytes per block
    static __device__ __forceinline__ float4 w4(const u8* W, u32 row, u32 k, u32 g) {
        u32 e0 = 4u * g;
        const u8* blk = W + ((u64)row * (k >> 8) + (e0 >> 8)) * 210u;
        u32 e = e0 & 255u, n = e >> 7, l = e & 127u, r = l >> 5, i = l & 31u;
        const u8* ql = blk + 64u * n + i + 32u * (r & 1u);
        const u8* qh = blk + 128u + 32u * n + i;
        float sc = (float)(signed char)blk[192u + 8u * n + (i >> 4) + 2u * r];
        float ds = __fmul_rn(f16at(blk + 208), sc);
        float out[4];
        for (int t = 0; t < 4; t++) {
            u32 lo = (ql[t] >> (4u * (r >> 1))) & 15u;
            u32 hi = (qh[t] >> (2u * r)) & 3u;
            out[t] = __fmul_rn(ds, (float)((int)(lo | (hi << 4)) - 32));
        }
        return make_float4(out[0], out[1], out[2], out[3]);
    }
    static __device__ __forceinline__ float dot32(const u8* W, u32 row, u32 k, u32 u, const float* x) {
        return dot32_w4<DQ6_K>(W, row, k, u, x);
    }
};

// quant/kvalues.wgsl — ggml's kvalues_iq4nl.
__device__ __constant__ float KVALUES_IQ4NL[16] = {-127.f, -104.f, -83.f, -65.f, -49.f, -35.f, -22.f, -10.f,
                                                   1.f,    13.f,   25.f,  38.f,  53.f,  69.f,  89.f,  113.f};

// quant/iq4_nl.wgsl — block_iq4_nl (18 bytes): [0..2) d  [2..18) qs;  y = d·kvalues[q]
struct DIQ4_NL {
    static constexpr u32 BS = 32u, BB = 18u;  // elements, bytes per block
    static __device__ __forceinline__ float4 w4(const u8* W, u32 row, u32 k, u32 g) {
        u32 e = 4u * g;
        const u8* blk = W + ((u64)row * (k >> 5) + (e >> 5)) * 18u;
        float d = f16at(blk);
        u32 j = e & 31u;
        const u8* q = blk + 2u + (j & 15u);
        u32 sh = j >= 16u ? 4u : 0u;
        float r[4];
        for (int i = 0; i < 4; i++) r[i] = __fmul_rn(d, KVALUES_IQ4NL[(q[i] >> sh) & 15u]);
        return make_float4(r[0], r[1], r[2], r[3]);
    }
    static __device__ __forceinline__ float dot32(const u8* W, u32 row, u32 k, u32 u, const float* x) {
        return dot32_w4<DIQ4_NL>(W, row, k, u, x);
    }
};

// quant/iq4_xs.wgsl — block_iq4_xs (136 bytes, 256 weights): [0..2) d  [2..4) scales_h
//   [4..8) scales_l  [8..136) qs;  y = (d·(ls − 32))·kvalues[q]
struct DIQ4_XS {
    static constexpr u32 BS = 256u, BB = 136u;  // elements, bytes per block
    static __device__ __forceinline__ float4 w4(const u8* W, u32 row, u32 k, u32 g) {
        u32 e0 = 4u * g;
        const u8* blk = W + ((u64)row * (k >> 8) + (e0 >> 8)) * 136u;
        u32 e = e0 & 255u, ib = e >> 5, j = e & 31u;
        u32 sh = blk[2] | (blk[3] << 8);
        u32 ls = ((blk[4 + ib / 2] >> (4u * (ib % 2u))) & 15u) | (((sh >> (2u * ib)) & 3u) << 4);
        float dl = __fmul_rn(f16at(blk), (float)((int)ls - 32));
        const u8* q = blk + 8u + 16u * ib + (j & 15u);
        u32 s = j >= 16u ? 4u : 0u;
        float r[4];
        for (int i = 0; i < 4; i++) r[i] = __fmul_rn(dl, KVALUES_IQ4NL[(q[i] >> s) & 15u]);
        return make_float4(r[0], r[1], r[2], r[3]);
    }
    static __device__ __forceinline__ float dot32(const u8* W, u32 row, u32 k, u32 u, const float* x) {
        return dot32_w4<DIQ4_XS>(W, row, k, u, x);
    }
};
