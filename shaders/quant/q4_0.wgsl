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

#include "quant/dot32.wgsl"
