// quant/kscale.wgsl — the 6-bit (scale, min) of sub-block s (0..8) of a
// Q4_K / Q5_K super-block at byte `off` (its 12 packed bytes at off + 4), as
// ggml's get_scale_min_k4 (quant/q4_k.rs documents the packing).
fn kq_scale_min(off: u32, s: u32) -> vec2<f32> {
    let sb = off + 4u;
    if (s < 4u) {
        return vec2<f32>(f32(b8(sb + s) & 63u), f32(b8(sb + s + 4u) & 63u));
    }
    let sc = (b8(sb + s + 4u) & 0xfu) | ((b8(sb + s - 4u) >> 6u) << 4u);
    let m = (b8(sb + s + 4u) >> 4u) | ((b8(sb + s) >> 6u) << 4u);
    return vec2<f32>(f32(sc), f32(m));
}
