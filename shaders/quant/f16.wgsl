// quant/f16.wgsl — IEEE half rows read as u32 pairs (no shader-f16 needed:
// unpack2x16float widens to f32). Mirrors quant::dequantize(F16).
fn w1(e: u32) -> f32 {
    return unpack2x16float(W[e >> 1u] >> ((e & 1u) << 4u)).x;
}
fn w4(row: u32, k: u32, g: u32) -> vec4<f32> {
    let base = row * k;
    var r = vec4<f32>(0.0);
    for (var i = 0u; i < 4u; i++) {
        let c = 4u * g + i;
        if (c < k) {
            r[i] = w1(base + c);
        }
    }
    return r;
}
