// quant/f32.wgsl — plain f32 rows. w4(row, k, g) = elements 4g..4g+3 of row
// `row` of a [rows, k] matrix (zero past k). Mirrors quant::dequantize(F32).
fn w1(e: u32) -> f32 {
    return bitcast<f32>(W[e]);
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
