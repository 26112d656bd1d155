// get_rows.cu — embedding gather y[i, :] = W[ids[i], :] as f32, the twin of
// shaders/get_rows.wgsl (ops/embed.rs). Params: n, d, r0, rows, last.
// Bindings: 0 W (rows r0..r0+rows, any dtype), 1 ids [n] u32, 2 y [n, d] f32.
// 256 threads per block, one per group of 4 output elements.
#include "common.cuh"
#include "quant.cuh"

template <class D>
__device__ void get_rows(const Params& p, const Ptrs& b) {
    const u8* W = BUF(const u8, 0);
    const u32* ids = BUF(const u32, 1);
    float* y = BUF(float, 2);
    const u32 n = p.w[0], d = p.w[1], r0 = p.w[2], rows = p.w[3], last = p.w[4];
    u32 t = wg_index() * 256u + threadIdx.x;
    u32 ng = (d + 3u) / 4u;
    if (t >= n * ng) return;
    u32 i = t / ng, g = t % ng;
    u32 id = ids[i];
    float4 v = make_float4(0.f, 0.f, 0.f, 0.f);
    if (id >= r0 && id < r0 + rows) {
        v = D::w4(W, id - r0, d, g);
    } else if (!(last == 1u && id >= r0 + rows)) {
        return;
    }
    float vv[4] = {v.x, v.y, v.z, v.w};
    for (u32 j = 0; j < 4u; j++) {
        u32 c = 4u * g + j;
        if (c < d) y[(u64)i * d + c] = vv[j];
    }
}

extern "C" __global__ void get_rows_f32(Params p, Ptrs b) { get_rows<DF32>(p, b); }
extern "C" __global__ void get_rows_f16(Params p, Ptrs b) { get_rows<DF16>(p, b); }
extern "C" __global__ void get_rows_bf16(Params p, Ptrs b) { get_rows<DBF16>(p, b); }
extern "C" __global__ void get_rows_q8_0(Params p, Ptrs b) { get_rows<DQ8_0>(p, b); }
extern "C" __global__ void get_rows_q4_0(Params p, Ptrs b) { get_rows<DQ4_0>(p, b); }
extern "C" __global__ void get_rows_q4_1(Params p, Ptrs b) { get_rows<DQ4_1>(p, b); }
extern "C" __global__ void get_rows_q5_0(Params p, Ptrs b) { get_rows<DQ5_0>(p, b); }
extern "C" __global__ void get_rows_q5_1(Params p, Ptrs b) { get_rows<DQ5_1>(p, b); }
extern "C" __global__ void get_rows_q2_k(Params p, Ptrs b) { get_rows<DQ2_K>(p, b); }
extern "C" __global__ void get_rows_q3_k(Params p, Ptrs b) { get_rows<DQ3_K>(p, b); }
extern "C" __global__ void get_rows_q4_k(Params p, Ptrs b) { get_rows<DQ4_K>(p, b); }
extern "C" __global__ void get_rows_q5_k(Params p, Ptrs b) { get_rows<DQ5_K>(p, b); }
extern "C" __global__ void get_rows_q6_k(Params p, Ptrs b) { get_rows<DQ6_K>(p, b); }
extern "C" __global__ void get_rows_iq4_nl(Params p, Ptrs b) { get_rows<DIQ4_NL>(p, b); }
extern "C" __global__ void get_rows_iq4_xs(Params p, Ptrs b) { get_rows<DIQ4_XS>(p, b); }
