// quant/plain.wgsl — w4 for one-element-per-slot types: the including
// decoder defines w1(e), the e-th element of W as f32. Rows may have any
// length k (odd ones too): elements past k read as zero.
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
