// common/weights.wgsl — picks the weight decoder for the W_<DTYPE> define.
// Requires the including shader to declare `W: array<u32>` (the weight rows).
// Every decoder provides w4(row, k, g) -> vec4<f32>: elements 4g..4g+3 of row
// `row` of a [rows, k] matrix, dequantized to f32 (zero past k).
#include "quant/bytes.wgsl"
#if W_F32
#include "quant/f32.wgsl"
#elif W_F16
#include "quant/f16.wgsl"
#elif W_BF16
#include "quant/bf16.wgsl"
#elif W_Q8_0
#include "quant/q8_0.wgsl"
#elif W_Q4_0
#include "quant/q4_0.wgsl"
#elif W_Q4_1
#include "quant/q4_1.wgsl"
#elif W_Q5_0
#include "quant/q5_0.wgsl"
#elif W_Q5_1
#include "quant/q5_1.wgsl"
#elif W_Q2_K
#include "quant/q2_k.wgsl"
#elif W_Q3_K
#include "quant/q3_k.wgsl"
#elif W_Q4_K
#include "quant/q4_k.wgsl"
#elif W_Q5_K
#include "quant/q5_k.wgsl"
#elif W_Q6_K
#include "quant/q6_k.wgsl"
#elif W_IQ4_NL
#include "quant/iq4_nl.wgsl"
#elif W_IQ4_XS
#include "quant/iq4_xs.wgsl"
#endif
