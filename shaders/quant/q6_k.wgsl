// quant/q6_k.wgsl — block_q6_K (210 bytes, 256 weights), mirrors quant/q6_k.rs:
//   [0..128) ql: low 4 bits   [128..192) qh: high 2 bits
//   [192..208) scales: 16 × i8   [208..210) d: f16
//   Element e: half n = e/128, l = e%128, quadrant r = l/32, i = l%32:
//   lo = ql[64n + i + 32(r&1)] nibble (r>>1), hi = (qh[32n + i] >> 2r) & 3,
//   q = (lo | hi<<4) − 32, y = d · scales[8n + i/16 + 2r] · q
fn w4(row: u32, k: u32, g: u32) -> vec4<f32> {
    let e0 = 4u * g;
    let blk = row * (k >> 8u) + (e0 >> 8u);
    let off = blk * 210u;
    let e = e0 & 255u;
    let n = e >> 7u;
    let l = e & 127u;
    let r = l >> 5u;
    let i = l & 31u;
    let lo = (b32(off + 64u * n + i + 32u * (r & 1u)) >> (4u * (r >> 1u))) & 0x0f0f0f0fu;
    let hi = (b32(off + 128u + 32u * n + i) >> (2u * r)) & 0x03030303u;
    let q = lo | (hi << 4u);
    let qv = vec4<f32>(f32(q & 0xffu), f32((q >> 8u) & 0xffu), f32((q >> 16u) & 0xffu), f32(q >> 24u));
    let sc = f32(bitcast<i32>(b8(off + 192u + 8u * n + (i >> 4u) + 2u * r) << 24u) >> 24u);
    return (f16at(off + 208u) * sc) * (qv - vec4<f32>(32.0));
}

#include "quant/dot32.wgsl"
