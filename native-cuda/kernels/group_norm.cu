// group_norm.cu — group norm over NHWC activations with optional scale-shift
// and SiLU, the twin of shaders/group_norm.wgsl (ops/group_norm.rs).
// Params: n (pixels per sample), c, groups, batch, eps, silu, has_ss, chunks,
// chunk_len. Bindings: 0 x [B, N, C], 1 gamma [C], 2 beta [C], 3 ss [B, 2C]
// (x when absent), 4 y, 5 part (scratch). Twins of group_norm.wgsl's
// entries: group_norm_main (a block per (sample, group); small groups) and,
// for large groups, three that read memory in order:
// group_norm_stats (a block per (sample, chunk of chunk_len pixels): per
// channel, the chunk's mean and squared deviations via sums of x − x₀),
// group_norm_finish (a block per (sample, group): Chan et al.'s pairwise
// merge, per thread then as a tree, into mean and 1/sqrt(var + eps), then
// per channel the affine y = (x − mean)·a + o with γ, β and the scale-shift
// folded in: three [B][C] planes after the chunk stats in `part`), and
// group_norm_apply (a thread per 4 channels of a pixel).
#include "common.cuh"

extern "C" __global__ void group_norm_stats(Params p, Ptrs b) {
    __shared__ float ss_s[256], ss_q[256];
    const u32 n = p.w[0], c = p.w[1], batch = p.w[3], chunks = p.w[7], len = p.w[8];
    const u32 id = wg_index();
    if (id >= batch * chunks) return;
    const float* x = BUF(const float, 0);
    float* part = BUF(float, 5);
    const u32 s_ = id / chunks, chunk = id % chunks;
    const u32 p0 = chunk * len, p1 = min(n, p0 + len);
    const float np = (float)(p1 - p0);
    const u32 cw = min(c, 256u), per = 256u / cw, lane = threadIdx.x / cw;
    for (u32 cb = 0; cb < c; cb += cw) {
        const u32 ch = cb + threadIdx.x % cw;
        float s = 0.0f, q = 0.0f;
        if (lane < per && ch < c) {
            const float* xr = x + (u64)s_ * n * c + ch;
            const float x0 = xr[(u64)p0 * c];
            // Four pixels' loads in flight per step, summed in pixel order.
            u32 px = p0 + lane;
            for (; px + 3u * per < p1; px += 4u * per) {
                const float v[4] = {xr[(u64)px * c], xr[(u64)(px + per) * c],
                                    xr[(u64)(px + 2u * per) * c], xr[(u64)(px + 3u * per) * c]};
#pragma unroll
                for (int j = 0; j < 4; j++) {
                    const float d = v[j] - x0;
                    s += d;
                    q += d * d;
                }
            }
            for (; px < p1; px += per) {
                const float d = xr[(u64)px * c] - x0;
                s += d;
                q += d * d;
            }
        }
        ss_s[threadIdx.x] = s;
        ss_q[threadIdx.x] = q;
        __syncthreads();
        if (threadIdx.x < cw && ch < c) {
            for (u32 j = 1; j < per; j++) {
                s += ss_s[threadIdx.x + j * cw];
                q += ss_q[threadIdx.x + j * cw];
            }
            const u64 o = 2u * (((u64)s_ * chunks + chunk) * c + ch);
            part[o] = x[((u64)s_ * n + p0) * c + ch] + s / np;
            part[o + 1u] = fmaxf(q - s * s / np, 0.0f);
        }
        __syncthreads();
    }
}

extern "C" __global__ void group_norm_finish(Params p, Ptrs b) {
    __shared__ float mg_n[256], mg_m[256], mg_q[256];
    const u32 n = p.w[0], c = p.w[1], groups = p.w[2], batch = p.w[3], chunks = p.w[7],
              len = p.w[8];
    const u32 i = wg_index(), lid = threadIdx.x;
    if (i >= batch * groups) return;
    float* part = BUF(float, 5);
    const u32 s_ = i / groups, g = i % groups, cg = c / groups;
    float cnt = 0.0f, mean = 0.0f, m2 = 0.0f;
    for (u32 it = lid; it < chunks * cg; it += 256u) {
        const u32 chunk = it / cg;
        const float np = (float)(min(n, (chunk + 1u) * len) - chunk * len);
        const u64 o = 2u * (((u64)s_ * chunks + chunk) * c + g * cg + it % cg);
        const float nt = cnt + np, d = part[o] - mean;
        mean += d * np / nt;
        m2 += part[o + 1u] + d * d * cnt * np / nt;
        cnt = nt;
    }
    mg_n[lid] = cnt;
    mg_m[lid] = mean;
    mg_q[lid] = m2;
    __syncthreads();
    for (u32 s = 128u; s > 0u; s /= 2u) {
        if (lid < s && mg_n[lid + s] > 0.0f) {
            const float na = mg_n[lid], nb = mg_n[lid + s], nt = na + nb;
            const float d = mg_m[lid + s] - mg_m[lid];
            mg_m[lid] = mg_m[lid] + d * nb / nt;
            mg_q[lid] = mg_q[lid] + mg_q[lid + s] + d * d * na * nb / nt;
            mg_n[lid] = nt;
        }
        __syncthreads();
    }
    // Every thread reads the group's (mean, 1/σ) and folds γ, β and the
    // scale-shift into one affine per channel: y = (x − mean)·a + o.
    const float inv = 1.0f / sqrtf(mg_q[0] / mg_n[0] + PF(4));
    const float* gamma = BUF(const float, 1);
    const float* beta = BUF(const float, 2);
    const float* ss = BUF(const float, 3);
    const u64 bc = (u64)batch * c;
    float* st = part + 2u * (u64)batch * chunks * c + (u64)s_ * c;
    for (u32 j = lid; j < cg; j += 256u) {
        const u32 ch = g * cg + j;
        float a = inv * gamma[ch], o = beta[ch];
        if (p.w[6] != 0u) {
            const float k = 1.0f + ss[(u64)s_ * 2u * c + ch];
            a *= k;
            o = o * k + ss[(u64)s_ * 2u * c + c + ch];
        }
        st[ch] = mg_m[0];
        st[ch + bc] = a;
        st[ch + 2u * bc] = o;
    }
}

// group_norm.wgsl `main`: a block per (sample, group) — the mean, then the
// squared deviations, then the output, each a pass over the group's values
// (channel-major within the group). One launch instead of three where a
// group is small (ops/group_norm.rs: SMALL_GROUP values).
extern "C" __global__ void group_norm_main(Params p, Ptrs b) {
    const u32 n = p.w[0], c = p.w[1], groups = p.w[2], batch = p.w[3];
    const u32 id = wg_index(), lid = threadIdx.x;
    if (id >= batch * groups) return;
    const float* x = BUF(const float, 0);
    const float* gamma = BUF(const float, 1);
    const float* beta = BUF(const float, 2);
    const float* ss = BUF(const float, 3);
    float* y = BUF(float, 4);
    const u32 s_ = id / groups, g = id % groups, cg = c / groups, count = n * cg;
    const u64 base = (u64)s_ * n * c + g * cg;
    float acc = 0.0f;
    for (u32 e = lid; e < count; e += 256u) acc += x[base + (u64)(e / cg) * c + e % cg];
    const float mean = block_sum<256>(acc) / (float)count;
    acc = 0.0f;
    for (u32 e = lid; e < count; e += 256u) {
        const float d = x[base + (u64)(e / cg) * c + e % cg] - mean;
        acc += d * d;
    }
    const float inv = 1.0f / sqrtf(block_sum<256>(acc) / (float)count + PF(4));
    for (u32 e = lid; e < count; e += 256u) {
        const u64 i = base + (u64)(e / cg) * c + e % cg;
        const u32 ch = g * cg + e % cg;
        float v = (x[i] - mean) * inv * gamma[ch] + beta[ch];
        if (p.w[6] != 0u) v = v * (1.0f + ss[(u64)s_ * 2u * c + ch]) + ss[(u64)s_ * 2u * c + c + ch];
        if (p.w[5] != 0u) v = v / (1.0f + expf(-v));
        y[i] = v;
    }
}

// VEC consecutive channels of one pixel per thread (4 when C % 4 == 0, as
// group_norm.wgsl's apply and the plan's grid): (x − mean)·a + o (+ SiLU)
// with finish's per-channel affine, every value loaded before any is stored;
// 32-bit index math when the tensor allows (64-bit division is slow).
template <class I>
__device__ __forceinline__ void gn_apply(const Params& p, const Ptrs& b, I i0, u32 vec) {
    const u32 n = p.w[0], c = p.w[1], batch = p.w[3], chunks = p.w[7];
    const I nc = (I)n * c;
    const float* __restrict__ x = BUF(const float, 0);
    float* __restrict__ y = BUF(float, 4);
    const float* part = BUF(const float, 5);
    const u64 bc = (u64)batch * c;
    const float* m = part + 2u * (u64)batch * chunks * c + (u64)(i0 / nc) * c + (u32)(i0 % c);
    const bool silu = p.w[5] != 0u;
    if (vec == 4u) {
        // One 16-byte load and store where both tensors allow it (i0 % 4 == 0).
        const bool wide = (((u64)x | (u64)y) & 15u) == 0u;
        float v[4];
        if (wide) {
            const float4 q = *reinterpret_cast<const float4*>(x + i0);
            v[0] = q.x, v[1] = q.y, v[2] = q.z, v[3] = q.w;
        } else {
#pragma unroll
            for (int e = 0; e < 4; e++) v[e] = x[i0 + e];
        }
#pragma unroll
        for (int e = 0; e < 4; e++) {
            v[e] = (v[e] - m[e]) * m[bc + e] + m[2u * bc + e];
            if (silu) v[e] = v[e] / (1.0f + expf(-v[e]));
        }
        if (wide) {
            *reinterpret_cast<float4*>(y + i0) = make_float4(v[0], v[1], v[2], v[3]);
        } else {
#pragma unroll
            for (int e = 0; e < 4; e++) y[i0 + e] = v[e];
        }
    } else {
        const float v = (x[i0] - m[0]) * m[bc] + m[2u * bc];
        y[i0] = silu ? v / (1.0f + expf(-v)) : v;
    }
}

extern "C" __global__ void group_norm_apply(Params p, Ptrs b) {
    const u32 n = p.w[0], c = p.w[1], batch = p.w[3];
    const u32 vec = c % 4u == 0u ? 4u : 1u;
    const u64 total = (u64)batch * n * c, i0 = ((u64)wg_index() * 256u + threadIdx.x) * vec;
    if (i0 >= total) return;
    if (total <= 0xffffffffull) gn_apply<u32>(p, b, (u32)i0, vec);
    else gn_apply<u64>(p, b, i0, vec);
}
