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


#if HAS_X4
// Dot product of 32 consecutive weights (unit u) with row m of x (via the
// kernel's x4), zero past k.
fn dot32(row: u32, k: u32, u: u32, m: u32) -> f32 {
    var s = 0.0;
    for (var j = 0u; j < 8u; j++) {
        s += dot(w4(row, k, 8u * u + j), x4(m, 8u * u + j));
    }
    return s;
}
#endif
