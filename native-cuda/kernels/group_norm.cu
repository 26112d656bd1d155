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
// merge, per thread then as a tree, into mean and 1/sqrt(var + eps)), and
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
            const float x0 = x[((u64)s_ * n + p0) * c + ch];
            for (u32 px = p0 + lane; px < p1; px += per) {
                const float d = x[((u64)s_ * n + px) * c + ch] - x0;
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
    if (lid == 0u) {
        const u64 st = 2u * (u64)batch * chunks * c + 2u * i;
        part[st] = mg_m[0];
        part[st + 1u] = 1.0f / sqrtf(mg_q[0] / mg_n[0] + PF(4));
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
// group_norm.wgsl's apply and the plan's grid), 32-bit index math when the
// tensor allows (64-bit division is slow), the group stepped per channel.
template <class I>
__device__ __forceinline__ void gn_apply(const Params& p, const Ptrs& b, I i0, u32 vec) {
    const u32 n = p.w[0], c = p.w[1], groups = p.w[2], batch = p.w[3], chunks = p.w[7];
    const I nc = (I)n * c;
    const float* x = BUF(const float, 0);
    const float* gamma = BUF(const float, 1);
    const float* beta = BUF(const float, 2);
    const float* ss = BUF(const float, 3);
    float* y = BUF(float, 4);
    const float* part = BUF(const float, 5);
    const u32 s_ = (u32)(i0 / nc), ch0 = (u32)(i0 % c), cg = c / groups;
    u32 g = ch0 / cg, r = ch0 % cg;
    const float* st0 = part + 2u * (u64)batch * chunks * c + 2u * (u64)s_ * groups;
    const float* sc = ss + (u64)s_ * 2u * c;
    for (u32 e = 0; e < vec; e++) {
        const u32 ch = ch0 + e;
        float v = (x[i0 + e] - st0[2u * g]) * st0[2u * g + 1u] * gamma[ch] + beta[ch];
        if (p.w[6] != 0u) v = v * (1.0f + sc[ch]) + sc[c + ch];
        if (p.w[5] != 0u) v = v / (1.0f + expf(-v));
        y[i0 + e] = v;
        if (++r == cg) {
            r = 0u;
            g++;
        }
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
