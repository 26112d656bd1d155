// quant/q4_k.wgsl — block_q4_K (144 bytes, 256 weights), mirrors quant/q4_k.rs:
//   [0..2) d: f16  [2..4) dmin: f16  [4..16) scales: 8 × (6-bit scale, 6-bit min)
//   packed as ggml's get_scale_min_k4   [16..144) qs: 128 bytes
//   Element e: chunk c = e/64, sub-block s = 2c + (e%64 >= 32), byte
//   qs[32c + e%32], low nibble for the first 32 of a chunk, high for the next.
//   y = d·sc[s]·q − dmin·m[s]
#include "quant/kscale.wgsl"

fn w4(row: u32, k: u32, g: u32) -> vec4<f32> {
    let e0 = 4u * g;
    let blk = row * (k >> 8u) + (e0 >> 8u);
    let off = blk * 144u;
    let e = e0 & 255u;
    let c = e >> 6u;
    let hi = (e & 63u) >= 32u;
    let s = 2u * c + select(0u, 1u, hi);
    let dm = unpack2x16float(W[off >> 2u]);
    let sm = kq_scale_min(off, s);
    let q = W[(off + 16u + 32u * c + (e & 31u)) >> 2u];
    return (dm.x * sm.x) * nib4(q, select(0u, 4u, hi)) - vec4<f32>(dm.y * sm.y);
}

#include "quant/dot32.wgsl"
