// quant/q5_1.wgsl — block_q5_1 (24 bytes, 32 weights), mirrors quant/q5_1.rs:
//   [0..2) d: f16   [2..4) m: f16   [4..8) qh: u32 (bit j: the fifth bit of elem j)   [8..24) qs
//   q[j] = (qs[j] & 15) | bit j·16,  q[j+16] = (qs[j] >> 4) | bit (j+16)·16,  y = d·q + m
// Blocks are 4-byte aligned (24 bytes): every field is one or more whole words.

fn w4(row: u32, k: u32, g: u32) -> vec4<f32> {
    let e = 4u * g;
    let blk = row * (k >> 5u) + (e >> 5u);
    let w = blk * 6u;
    let j = e & 31u;
    let dm = unpack2x16float(W[w]);
    let qh = W[w + 1u];
    let q = W[w + 2u + ((j & 15u) >> 2u)];
    return dm.x * (nib4(q, select(0u, 4u, j >= 16u)) + 16.0 * bit4(qh, j)) + vec4<f32>(dm.y);
}

#include "quant/dot32.wgsl"
