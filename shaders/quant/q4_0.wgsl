// quant/q4_0.wgsl — block_q4_0 (18 bytes, 32 weights), mirrors quant/q4_0.rs:
//   [0..2) d: f16   [2..18) qs: 16 bytes
//   y[j] = d·((qs[j] & 15) − 8),  y[j+16] = d·((qs[j] >> 4) − 8),  j < 16
fn w4(row: u32, k: u32, g: u32) -> vec4<f32> {
    let e = 4u * g;
    let blk = row * (k >> 5u) + (e >> 5u);
    let off = blk * 18u;
    let j = e & 31u;
    let q = b32(off + 2u + (j & 15u));
    return f16at(off) * (nib4(q, select(0u, 4u, j >= 16u)) - vec4<f32>(8.0));
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
