// quant/kvalues.wgsl — ggml's kvalues_iq4nl (quant/iq4.rs KVALUES): the
// 16 levels IQ4_NL and IQ4_XS index, as one vec4 per 4 indices.
const KVALUES = array<f32, 16>(-127.0, -104.0, -83.0, -65.0, -49.0, -35.0, -22.0, -10.0, 1.0, 13.0,
                               25.0, 38.0, 53.0, 69.0, 89.0, 113.0);

// The levels of the 4 nibbles (shift 0: low, 4: high) of the bytes of q.
fn kv4(q: u32, shift: u32) -> vec4<f32> {
    let v = (q >> shift) & 0x0f0f0f0fu;
    return vec4<f32>(KVALUES[v & 0xffu], KVALUES[(v >> 8u) & 0xffu], KVALUES[(v >> 16u) & 0xffu],
                     KVALUES[v >> 24u]);
}
