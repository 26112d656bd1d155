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
// A whole block against row m of x: the block's 18 bytes (at an even
// offset) come from 5 aligned word loads instead of two per 4 weights
// (in bounds: buffers are padded to a multiple of 4 bytes), d applied once.
fn dot32(row: u32, k: u32, u: u32, m: u32) -> f32 {
    let off = (row * (k >> 5u) + u) * 18u;
    let o = off >> 2u;
    // mid: the block starts mid-word (d in the high half, the quants aligned).
    let mid = (off & 2u) != 0u;
    let a0 = W[o];
    let a1 = W[o + 1u];
    let a2 = W[o + 2u];
    let a3 = W[o + 3u];
    let a4 = W[o + 4u];
    let g = 8u * u;
    let s = (q4pair(span_word(a0, a1, mid), x4(m, g), x4(m, g + 4u))
        + q4pair(span_word(a1, a2, mid), x4(m, g + 1u), x4(m, g + 5u)))
        + (q4pair(span_word(a2, a3, mid), x4(m, g + 2u), x4(m, g + 6u))
        + q4pair(span_word(a3, a4, mid), x4(m, g + 3u), x4(m, g + 7u)));
    return unpack2x16float(select(a0 & 0xffffu, a0 >> 16u, mid)).x * s;
}

// Σ (nibble − 8)·x over one quant word: low nibbles against xa (elements
// 4j..4j+3 of the block), high nibbles against xb (16 + 4j..).
fn q4pair(q: u32, xa: vec4<f32>, xb: vec4<f32>) -> f32 {
    return dot(nib4(q, 0u) - vec4<f32>(8.0), xa) + dot(nib4(q, 4u) - vec4<f32>(8.0), xb);
}
#endif
