// quant/f32.wgsl — plain f32 rows. w4(row, k, g) = elements 4g..4g+3 of row
// `row` of a [rows, k] matrix (zero past k). Mirrors quant::dequantize(F32).
fn w1(e: u32) -> f32 {
    return bitcast<f32>(W[e]);
}
#include "quant/plain.wgsl"

#include "quant/dot32.wgsl"
