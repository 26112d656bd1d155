// gemv1_host.cpp — the CUDA twin's wide-load decode GEMV (kernels/gemv1.cuh)
// compiled as host C++ (device qualifiers and warp reductions stubbed; one
// "lane" walks every half-block), against ggml's dequantization of Q4_0,
// Q4_1 and Q8_0 blocks with random quants and scales, with and without the
// elementwise norm weight. Built and run by tests/gemv1_host.rs (g++), so the
// kernel's nibble order and scale handling are checked without a GPU.
// half_rows4 (4 rows in one pass) is checked the same way, its 32 lanes
// summed on the host.
// Usage: gemv1_host SEED; exit 0 when every sum is within 1e-5 of the sum of
// |terms| (f32 accumulation over 1088 terms).
#include <cstdio>
#include <cstdlib>
#include <cstdint>
#include <cstring>
#include <cmath>
#include <random>
#include <vector>
typedef unsigned int u32; typedef unsigned short u16; typedef unsigned char u8; typedef unsigned long long u64;
#define __device__
#define __forceinline__ inline
struct float4 { float x, y, z, w; };
struct float2 { float x, y; };
struct uint4 { u32 x, y, z, w; };
inline uint4 make_uint4(u32 a, u32 b, u32 c, u32 d) { return {a, b, c, d}; }
inline float4 make_float4(float a, float b, float c, float d) { return {a, b, c, d}; }
inline float2 make_float2(float a, float b) { return {a, b}; }
inline float h2f(u16 h) { _Float16 f; memcpy(&f, &h, 2); return (float)f; }
inline u16 f2h(float v) { _Float16 f = (_Float16)v; u16 h; memcpy(&h, &f, 2); return h; }
inline float warp_sum(float v) { return v; }
struct DQ4_0 { static constexpr u32 BS = 32u, BB = 18u; };
struct DQ4_1 { static constexpr u32 BS = 32u, BB = 20u; };
struct DQ8_0 { static constexpr u32 BS = 32u, BB = 34u; };
#define KILN_GEMV_HALF 1
#include "../kernels/gemv1.cuh"
int main(int argc, char** argv) {
  std::mt19937 rng(argc > 1 ? (u32)strtoul(argv[1], nullptr, 10) : 7u); std::uniform_real_distribution<float> U(-1, 1);
  const u32 k = 1088, nb = k / 32;
  std::vector<float> x(k), s(k);
  for (auto& v : x) v = U(rng);
  for (auto& v : s) v = U(rng);
  double worst = 0;
  for (int fmt = 0; fmt < 3; fmt++) {
    u32 bb = fmt == 0 ? 18 : fmt == 1 ? 20 : 34;
    std::vector<u8> W(2 * nb * bb + 16);
    for (auto& b : W) b = rng() & 255;
    std::vector<float> deq(2 * k);
    for (u32 r = 0; r < 2; r++) for (u32 u = 0; u < nb; u++) {
      u8* blk = &W[(r * nb + u) * bb];
      u16 d = f2h(U(rng) * 0.1f), m = f2h(U(rng) * 0.1f);
      memcpy(blk, &d, 2); if (fmt == 1) memcpy(blk + 2, &m, 2);
      float df = h2f(d), mf = h2f(m);
      for (u32 j = 0; j < 32; j++) {
        float w;
        if (fmt == 0) { u8 q = blk[2 + (j & 15)]; w = (float)((int)((j < 16 ? q : q >> 4) & 15) - 8) * df; }
        else if (fmt == 1) { u8 q = blk[4 + (j & 15)]; w = (float)((j < 16 ? q : q >> 4) & 15) * df + mf; }
        else { w = (float)(signed char)blk[2 + j] * df; }
        deq[r * k + u * 32 + j] = w;
      }
    }
    for (int nw = 0; nw < 2; nw++) for (u32 r = 0; r < 2; r++) {
      double ref = 0, mag = 0;
      for (u32 i = 0; i < k; i++) { double xv = x[i] * (nw ? s[i] : 1.0); ref += deq[r * k + i] * xv; mag += fabs(deq[r * k + i] * xv); }
      float got = 0;
      for (u32 hb = 0; hb < 2 * nb; hb++) {
        if (fmt == 0) got += nw ? Half<DQ4_0>::dot<true>(W.data(), r, k, hb, x.data(), s.data()) : Half<DQ4_0>::dot<false>(W.data(), r, k, hb, x.data(), s.data());
        if (fmt == 1) got += nw ? Half<DQ4_1>::dot<true>(W.data(), r, k, hb, x.data(), s.data()) : Half<DQ4_1>::dot<false>(W.data(), r, k, hb, x.data(), s.data());
        if (fmt == 2) got += nw ? Half<DQ8_0>::dot<true>(W.data(), r, k, hb, x.data(), s.data()) : Half<DQ8_0>::dot<false>(W.data(), r, k, hb, x.data(), s.data());
      }
      double e = fabs(got - ref) / mag; worst = fmax(worst, e);
      printf("fmt %d nw %d row %u: ref %.6f got %.6f rel-to-|terms| %.2e\n", fmt, nw, r, ref, got, e);
    }
    // half_rows4 (the XREG twin) over rows (0, 0, 1, 1) and (0, 1, 0, 1) —
    // any two of its four outputs differ in one of them: the 32 lanes' sums
    // (warp_sum is the identity here) equal each row's own.
    for (int nw = 0; nw < 2; nw++) {
      double ref[2], mag[2];
      for (u32 r = 0; r < 2; r++) {
        ref[r] = 0; mag[r] = 0;
        for (u32 i = 0; i < k; i++) { double xv = x[i] * (nw ? s[i] : 1.0); ref[r] += deq[r * k + i] * xv; mag[r] += fabs(deq[r * k + i] * xv); }
      }
      double e = 0;
      for (int pat = 0; pat < 2; pat++) {
        const u32 rv[4] = {0, (u32)pat, (u32)(1 - pat), 1};
        const uint4 rs = make_uint4(rv[0], rv[1], rv[2], rv[3]);
        float g4[4] = {0, 0, 0, 0};
        for (u32 lane = 0; lane < 32; lane++) {
          float4 v;
          if (fmt == 0) v = nw ? half_rows4<DQ4_0, true>(W.data(), rs, k, x.data(), s.data(), lane) : half_rows4<DQ4_0, false>(W.data(), rs, k, x.data(), s.data(), lane);
          if (fmt == 1) v = nw ? half_rows4<DQ4_1, true>(W.data(), rs, k, x.data(), s.data(), lane) : half_rows4<DQ4_1, false>(W.data(), rs, k, x.data(), s.data(), lane);
          if (fmt == 2) v = nw ? half_rows4<DQ8_0, true>(W.data(), rs, k, x.data(), s.data(), lane) : half_rows4<DQ8_0, false>(W.data(), rs, k, x.data(), s.data(), lane);
          g4[0] += v.x; g4[1] += v.y; g4[2] += v.z; g4[3] += v.w;
        }
        for (int i = 0; i < 4; i++) e = fmax(e, fabs(g4[i] - ref[rv[i]]) / mag[rv[i]]);
      }
      worst = fmax(worst, e);
      printf("fmt %d nw %d rows4: rel-to-|terms| %.2e\n", fmt, nw, e);
    }
  }
  printf("worst %.2e\n", worst);
  return worst < 1e-5 ? 0 : 1;
}
