// quant/bytes.wgsl — byte access to a weight buffer `W: array<u32>` (WGSL has
// no u8). Buffers are padded to a multiple of 4 bytes on upload, so every
// helper stays in bounds for in-bounds byte offsets.

// One byte at any offset.
fn b8(off: u32) -> u32 {
    return (W[off >> 2u] >> ((off & 3u) << 3u)) & 0xffu;
}

// A little-endian u16 at an even offset.
fn b16(off: u32) -> u32 {
    return (W[off >> 2u] >> ((off & 2u) << 3u)) & 0xffffu;
}

// A little-endian u32 at an even (not necessarily 4-aligned) offset.
fn b32(off: u32) -> u32 {
    let s = (off & 3u) << 3u;
    let lo = W[off >> 2u];
    if (s == 0u) {
        return lo;
    }
    return (lo >> s) | (W[(off >> 2u) + 1u] << (32u - s));
}

// An IEEE half at an even offset, widened to f32.
fn f16at(off: u32) -> f32 {
    return unpack2x16float(b16(off)).x;
}

// The four bytes of `q` as signed values.
fn i8x4(q: u32) -> vec4<f32> {
    let v = bitcast<vec4<i32>>(vec4<u32>(q << 24u, q << 16u, q << 8u, q)) >> vec4<u32>(24u);
    return vec4<f32>(v);
}

// Nibbles 0,2,4,6 (shift 0) or 1,3,5,7 (shift 4) of `q`: one per byte.
fn nib4(q: u32, shift: u32) -> vec4<f32> {
    let v = (q >> shift) & 0x0f0f0f0fu;
    return vec4<f32>(f32(v & 0xffu), f32((v >> 8u) & 0xffu), f32((v >> 16u) & 0xffu), f32(v >> 24u));
}

// Bits j .. j + 3 of `q` as 0.0 / 1.0 (the fifth bits of Q5_0 / Q5_1).
fn bit4(q: u32, j: u32) -> vec4<f32> {
    let h = (q >> j) & 15u;
    return vec4<f32>(f32(h & 1u), f32((h >> 1u) & 1u), f32((h >> 2u) & 1u), f32(h >> 3u));
}

// Bytes 2 + 4i .. 6 + 4i of a block at an even byte offset (quant word i
// after a Q4_0/Q8_0 block's 16-bit head), from the aligned words
// lo = W[o + i] and hi = W[o + i + 1] (o = offset / 4): hi itself when the
// block starts mid-word (`mid`: offset % 4 == 2), else lo's high half and
// hi's low half.
fn span_word(lo: u32, hi: u32, mid: bool) -> u32 {
    return select((lo >> 16u) | (hi << 16u), hi, mid);
}
