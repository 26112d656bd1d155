// rope.cuh — RoPE's frequency and the rotation of one element, shared by
// rope.cu and attention.cu (the twin of shaders/common/rope.wgsl). The rope
// parameter words sit at rope.cu's indices plus `o`: n_rot 3, neox 4, base 6,
// scaled 7, factor 8, low 9, high 10, orig_ctx 11, has_factors 12,
// inverse 14. θ_j and the angle are f32 products (as HF and the oracle);
// CUDA's sinf/cosf reduce any argument exactly.

__device__ float rope_inv_freq(const Params& p, u32 j, u32 o) {
    float inv = 1.0f / powf(PF(6 + o), (float)(2u * j) / (float)p.w[3 + o]);
    if (p.w[7 + o] == 0u) return inv;
    float factor = PF(8 + o), low = PF(9 + o), high = PF(10 + o);
    float old = (float)p.w[11 + o];
    float low_wl = old / low, high_wl = old / high;
    float wl = 6.2831855f / inv;
    if (wl < high_wl) return inv;
    if (wl > low_wl) return inv / factor;
    float blend = (old / wl - low) / (high - low);
    return (1.0f - blend) * inv / factor + blend * inv;
}

// Element c of the head at x + xb rotated at `pos` (the pair formula of
// rope.cu's rope, one element at a time); fac: the divisors or null.
__device__ float rope_rotated(const Params& p, const float* x, const float* fac, u64 xb, u32 c,
                              float pos, u32 o) {
    const u32 n_rot = p.w[3 + o], half_rot = n_rot / 2u;
    if (c >= n_rot) return x[xb + c];
    u32 j = c / 2u, a = 2u * j, bb = a + 1u;
    bool first = (c & 1u) == 0u;
    if (p.w[4 + o] != 0u) {
        first = c < half_rot;
        j = first ? c : c - half_rot;
        a = j;
        bb = j + half_rot;
    }
    float inv = rope_inv_freq(p, j, o);
    if (p.w[12 + o] != 0u) inv = inv / fac[j];
    float s, co;
    sincosf(pos * inv, &s, &co);
    if (p.w[14 + o] != 0u) s = -s;
    float x0 = x[xb + a], x1 = x[xb + bb];
    return first ? x0 * co - x1 * s : x0 * s + x1 * co;
}
