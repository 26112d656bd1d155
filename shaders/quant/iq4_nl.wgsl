// quant/iq4_nl.wgsl — block_iq4_nl (18 bytes, 32 weights), mirrors quant/iq4.rs:
//   [0..2) d: f16   [2..18) qs: 16 bytes (low nibble elem j, high elem j+16)
//   y = d·kvalues[q]. Blocks start at even offsets (b32 reads).
#include "quant/kvalues.wgsl"

fn w4(row: u32, k: u32, g: u32) -> vec4<f32> {
    let e = 4u * g;
    let blk = row * (k >> 5u) + (e >> 5u);
    let off = blk * 18u;
    let j = e & 31u;
    let q = b32(off + 2u + (j & 15u));
    return f16at(off) * kv4(q, select(0u, 4u, j >= 16u));
}

#include "quant/dot32.wgsl"
