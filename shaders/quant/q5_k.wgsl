// quant/q5_k.wgsl — block_q5_K (176 bytes, 256 weights), mirrors quant/q5_k.rs:
//   [0..2) d: f16  [2..4) dmin: f16  [4..16) scales (as Q4_K)  [16..48) qh: 32 bytes
//   [48..176) qs: 128 bytes (as Q4_K's)
//   Element e: chunk c = e/64, sub-block s = 2c + (e%64 >= 32), l = e%32:
//   q = nibble of qs[32c + l] (low for the first 32 of a chunk) + 16·bit s of qh[l],
//   y = d·sc[s]·q − dmin·m[s]
#include "quant/kscale.wgsl"

fn w4(row: u32, k: u32, g: u32) -> vec4<f32> {
    let e0 = 4u * g;
    let blk = row * (k >> 8u) + (e0 >> 8u);
    let off = blk * 176u;
    let e = e0 & 255u;
    let c = e >> 6u;
    let hi = (e & 63u) >= 32u;
    let s = 2u * c + select(0u, 1u, hi);
    let l = e & 31u;
    let dm = unpack2x16float(W[off >> 2u]);
    let sm = kq_scale_min(off, s);
    let h = W[(off + 16u + l) >> 2u] >> s;
    let hb = vec4<f32>(f32(h & 1u), f32((h >> 8u) & 1u), f32((h >> 16u) & 1u), f32((h >> 24u) & 1u));
    let q = W[(off + 48u + 32u * c + l) >> 2u];
    return (dm.x * sm.x) * (nib4(q, select(0u, 4u, hi)) + 16.0 * hb) - vec4<f32>(dm.y * sm.y);
}

#include "quant/dot32.wgsl"
