// quant/dot32.wgsl — the generic dot32 (a 32-weight unit against a row of x,
// through w4), for decoders without a block-specialised one. Only kernels
// that provide x4 (#define HAS_X4) get it.
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
