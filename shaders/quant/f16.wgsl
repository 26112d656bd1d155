// quant/f16.wgsl — IEEE half rows read as u32 pairs (no shader-f16 needed:
// unpack2x16float widens to f32). Mirrors quant::dequantize(F16).
fn w1(e: u32) -> f32 {
    return unpack2x16float(W[e >> 1u] >> ((e & 1u) << 4u)).x;
}
#include "quant/plain.wgsl"

#include "quant/dot32.wgsl"
