// quant/q5_0.wgsl — block_q5_0 (22 bytes, 32 weights), mirrors quant/q5_0.rs:
//   [0..2) d: f16   [2..6) qh: u32 (bit j: the fifth bit of elem j)   [6..22) qs: 16 bytes
//   q[j] = (qs[j] & 15) | bit j·16,  q[j+16] = (qs[j] >> 4) | bit (j+16)·16,  y = d·(q − 16)
// Blocks start at even offsets only (22 bytes): qh and qs are read with b32.

fn w4(row: u32, k: u32, g: u32) -> vec4<f32> {
    let e = 4u * g;
    let blk = row * (k >> 5u) + (e >> 5u);
    let off = blk * 22u;
    let j = e & 31u;
    let qh = b32(off + 2u);
    let q = b32(off + 6u + (j & 15u));
    return f16at(off) * (nib4(q, select(0u, 4u, j >= 16u)) + 16.0 * bit4(qh, j) - vec4<f32>(16.0));
}

#include "quant/dot32.wgsl"
