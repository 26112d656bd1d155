// quant/q4_1.wgsl — block_q4_1 (20 bytes, 32 weights), mirrors quant/q4_1.rs:
//   [0..2) d: f16   [2..4) m: f16   [4..20) qs: 16 bytes
//   y[j] = d·(qs[j] & 15) + m,  y[j+16] = d·(qs[j] >> 4) + m,  j < 16
fn w4(row: u32, k: u32, g: u32) -> vec4<f32> {
    let e = 4u * g;
    let blk = row * (k >> 5u) + (e >> 5u);
    let off = blk * 20u;
    let j = e & 31u;
    let dm = unpack2x16float(W[off >> 2u]);
    let q = W[(off + 4u + (j & 15u)) >> 2u];
    return dm.x * nib4(q, select(0u, 4u, j >= 16u)) + vec4<f32>(dm.y);
}


#if HAS_X4
// A whole block against row m of x: d and m read once, Σx folded into the
// offset term (y = d·q + m  ⇒  Σ x·y = d·Σ x·q + m·Σ x).
fn dot32(row: u32, k: u32, u: u32, m: u32) -> f32 {
    let off = (row * (k >> 5u) + u) * 20u;
    let dm = unpack2x16float(W[off >> 2u]);
    var sq = 0.0;
    var sx = vec4<f32>(0.0);
    for (var j = 0u; j < 4u; j++) {
        let q = W[(off >> 2u) + 1u + j];
        let xa = x4(m, 8u * u + j);
        let xb = x4(m, 8u * u + 4u + j);
        sq += dot(nib4(q, 0u), xa) + dot(nib4(q, 4u), xb);
        sx += xa + xb;
    }
    return dm.x * sq + dm.y * (sx.x + sx.y + sx.z + sx.w);
}
#endif
