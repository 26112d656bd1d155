// quant/bf16.wgsl — bfloat16 rows: the upper half of an f32. Mirrors
// quant::dequantize(BF16).
fn w1(e: u32) -> f32 {
    return bitcast<f32>(((W[e >> 1u] >> ((e & 1u) << 4u)) & 0xffffu) << 16u);
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
