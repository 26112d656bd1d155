// cross_entropy.cu — softmax cross-entropy over rows of logits, the twin of
// shaders/cross_entropy.wgsl (ops/cross_entropy.rs). labels[r] ≥ vocab
// (0xFFFFFFFF) masks row r.
// cross_entropy_loss (LOSS): out[r] = logsumexp(z_r) − z_r[label_r] (0 when
//   masked).
// cross_entropy_grad: out[r, v] = scale·(softmax(z_r)_v − [v = label_r]),
//   scale = scale_buf[0], 0 when masked.
// Params: rows, vocab. Bindings: 0 logits [rows, vocab], 1 labels [rows] u32,
// 2 scale [1] f32 (logits itself for the loss), 3 out.
// One block of 256 per row, folded by ops::grid; f32 sums, warp-shuffle
// reductions.
#include "common.cuh"

template <bool LOSS>
__device__ void cross_entropy(const Params& p, const Ptrs& b) {
    const u32 rows = p.w[0], vocab = p.w[1];
    u32 row = wg_index();
    if (row >= rows) return;
    const float* z = BUF(const float, 0) + (u64)row * vocab;
    const u32 label = BUF(const u32, 1)[row];
    const bool masked = label >= vocab;
    float* out = BUF(float, 3);
    float mx = -3.0e38f;
    for (u32 i = threadIdx.x; i < vocab; i += 256u) mx = fmaxf(mx, z[i]);
    mx = block_max<256>(mx);
    float s = 0.0f;
    for (u32 i = threadIdx.x; i < vocab; i += 256u) s += expf(z[i] - mx);
    s = block_sum<256>(s);
    if (LOSS) {
        if (threadIdx.x == 0u) out[row] = masked ? 0.0f : logf(s) + mx - z[label];
    } else {
        const float k = masked ? 0.0f : BUF(const float, 2)[0];
        const float inv = 1.0f / s;
        float* o = out + (u64)row * vocab;
        for (u32 i = threadIdx.x; i < vocab; i += 256u) {
            float v = expf(z[i] - mx) * inv;
            if (i == label) v -= 1.0f;
            o[i] = k * v;
        }
    }
}

extern "C" __global__ void cross_entropy_loss(Params p, Ptrs b) { cross_entropy<true>(p, b); }
extern "C" __global__ void cross_entropy_grad(Params p, Ptrs b) { cross_entropy<false>(p, b); }
