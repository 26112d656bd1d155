// quant/iq4_xs.wgsl — block_iq4_xs (136 bytes, 256 weights), mirrors quant/iq4.rs:
//   [0..2) d: f16  [2..4) scales_h: 2 bits per sub-block  [4..8) scales_l: 4 bits each
//   [8..136) qs: 16 bytes per sub-block of 32 (as IQ4_NL's)
//   y = (d·(ls − 32))·kvalues[q], ls = scales_l nibble | scales_h bits << 4.
//   Blocks are 4-byte aligned (136 bytes).
#include "quant/kvalues.wgsl"

fn w4(row: u32, k: u32, g: u32) -> vec4<f32> {
    let e0 = 4u * g;
    let blk = row * (k >> 8u) + (e0 >> 8u);
    let w = blk * 34u;
    let e = e0 & 255u;
    let ib = e >> 5u;
    let j = e & 31u;
    let dh = W[w];
    let d = unpack2x16float(dh).x;
    let lo = (W[w + 1u] >> (8u * (ib >> 1u) + 4u * (ib & 1u))) & 15u;
    let hi = (dh >> (16u + 2u * ib)) & 3u;
    let dl = d * f32(i32(lo | (hi << 4u)) - 32);
    let q = W[w + 2u + 4u * ib + ((j & 15u) >> 2u)];
    return dl * kv4(q, select(0u, 4u, j >= 16u));
}

#include "quant/dot32.wgsl"
