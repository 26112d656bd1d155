// quant/bf16.wgsl — bfloat16 rows: the upper half of an f32. Mirrors
// quant::dequantize(BF16).
fn w1(e: u32) -> f32 {
    return bitcast<f32>(((W[e >> 1u] >> ((e & 1u) << 4u)) & 0xffffu) << 16u);
}
#include "quant/plain.wgsl"

#include "quant/dot32.wgsl"
