// quant/q8_0.wgsl — block_q8_0 (34 bytes, 32 weights), mirrors quant/q8_0.rs:
//   [0..2)  d: f16      [2..34) qs: 32 × i8      y[j] = d · qs[j]
// w4(row, k, g): elements 4g..4g+3 of the row (k is a multiple of 32).
fn w4(row: u32, k: u32, g: u32) -> vec4<f32> {
    let e = 4u * g;
    let blk = row * (k >> 5u) + (e >> 5u);
    let off = blk * 34u;
    return f16at(off) * i8x4(b32(off + 2u + (e & 31u)));
}


#if HAS_X4
// A whole block against row m of x: the 34 bytes (at an even offset) from 9
// aligned word loads instead of two per 4 weights, the scale applied once.
fn dot32(row: u32, k: u32, u: u32, m: u32) -> f32 {
    let off = (row * (k >> 5u) + u) * 34u;
    let o = off >> 2u;
    let mid = (off & 2u) != 0u;
    let g = 8u * u;
    var lo = W[o];
    let d = unpack2x16float(select(lo & 0xffffu, lo >> 16u, mid)).x;
    var sq = 0.0;
    for (var j = 0u; j < 8u; j++) {
        let hi = W[o + j + 1u];
        sq += dot(i8x4(span_word(lo, hi, mid)), x4(m, g + j));
        lo = hi;
    }
    return d * sq;
}
#endif
