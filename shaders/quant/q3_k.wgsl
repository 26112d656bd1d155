// quant/q3_k.wgsl — block_q3_K (110 bytes, 256 weights), mirrors quant/q3_k.rs:
//   [0..32) hmask  [32..96) qs: 2 bits per weight  [96..108) scales: 16 × 6 bits
//   [108..110) d: f16
//   Element e: n = e/128, j = (e%128)/32, l = e%32, sub-block s = 8n + 2j + l/16;
//   q = ((qs[32n + l] >> 2j) & 3) − (bit 4n + j of hmask[l] ? 0 : 4),
//   y = (d·(sc[s] − 32))·q. Blocks start at even offsets (b32 reads).
fn w4(row: u32, k: u32, g: u32) -> vec4<f32> {
    let e0 = 4u * g;
    let blk = row * (k >> 8u) + (e0 >> 8u);
    let off = blk * 110u;
    let e = e0 & 255u;
    let n = e >> 7u;
    let j = (e & 127u) >> 5u;
    let l = e & 31u;
    let s = 8u * n + 2u * j + (l >> 4u);
    let sb = off + 96u;
    let lo = select(b8(sb + s - 8u) >> 4u, b8(sb + s) & 15u, s < 8u);
    let hi = (b8(sb + 8u + (s & 3u)) >> (2u * (s >> 2u))) & 3u;
    let dl = f16at(off + 108u) * f32(i32(lo | (hi << 4u)) - 32);
    let q = b32(off + 32u + 32u * n + l) >> (2u * j);
    let h = b32(off + l) >> (4u * n + j);
    let low = vec4<f32>(f32(q & 3u), f32((q >> 8u) & 3u), f32((q >> 16u) & 3u), f32((q >> 24u) & 3u));
    let high = vec4<f32>(f32(h & 1u), f32((h >> 8u) & 1u), f32((h >> 16u) & 1u), f32((h >> 24u) & 1u));
    return dl * (low - 4.0 * (vec4<f32>(1.0) - high));
}

#include "quant/dot32.wgsl"
