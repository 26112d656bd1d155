// quant/q2_k.wgsl — block_q2_K (84 bytes, 256 weights), mirrors quant/q2_k.rs:
//   [0..16) scales: low nibble scale, high nibble min, per sub-block of 16
//   [16..80) qs: 2 bits per weight (as Q3_K's)  [80..82) d: f16  [82..84) dmin: f16
//   Element e: n = e/128, j = (e%128)/32, l = e%32, sub-block s = 8n + 2j + l/16;
//   q = (qs[32n + l] >> 2j) & 3,  y = (d·(sc & 15))·q − dmin·(sc >> 4).
//   Blocks are 4-byte aligned (84 bytes).
fn w4(row: u32, k: u32, g: u32) -> vec4<f32> {
    let e0 = 4u * g;
    let blk = row * (k >> 8u) + (e0 >> 8u);
    let off = blk * 84u;
    let e = e0 & 255u;
    let n = e >> 7u;
    let j = (e & 127u) >> 5u;
    let l = e & 31u;
    let sc = b8(off + 8u * n + 2u * j + (l >> 4u));
    let dm = unpack2x16float(W[(off + 80u) >> 2u]);
    let q = W[(off + 16u + 32u * n + l) >> 2u] >> (2u * j);
    let qv = vec4<f32>(f32(q & 3u), f32((q >> 8u) & 3u), f32((q >> 16u) & 3u), f32((q >> 24u) & 3u));
    return (dm.x * f32(sc & 15u)) * qv - vec4<f32>(dm.y * f32(sc >> 4u));
}

#include "quant/dot32.wgsl"
