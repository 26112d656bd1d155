//! Q5_0: 32 weights in 22 bytes (5.5 bits/weight), ggml's `block_q5_0`.
//!
//! | offset | bytes | field          | meaning                                                  |
//! |--------|-------|----------------|----------------------------------------------------------|
//! | 0      | 2     | `d: f16`       | block scale, little-endian                               |
//! | 2      | 4     | `qh: u32`      | bit `j`: the fifth (high) bit of elem `j`, little-endian |
//! | 6      | 16    | `qs: [u8; 16]` | byte `6+j`: low nibble = elem `j`, high = elem `j+16`     |
//!
//! Dequantize (`dequantize_row_q5_0`): `q = nibble | bit·16`, `y = (q - 16) * d`
//! in `f32`.
//!
//! Quantize (`quantize_row_q5_0_ref`, bit-identical to gguf-py): `max` is the
//! element of largest magnitude (the first on ties), `d = max / -16`,
//! `id = 1/d` (0 when `d == 0`), `q = min(31, (int8)(x*id + 16.5))`
//! (truncation toward zero).

use super::{block_bytes, block_bytes_mut, block_elems, block_elems_mut, check_finite};
use super::{f16_le, q5_pack, q5_unpack, scale_f16};
use crate::dtype::DType;
use crate::error::Result;

/// Elements per block.
pub const BLOCK_ELEMS: usize = 32;
/// Bytes per block.
pub const BLOCK_BYTES: usize = 22;

/// Decodes one 22-byte block into 32 floats.
pub fn dequantize_block(block: &[u8], out: &mut [f32]) -> Result<()> {
    let b: &[u8; BLOCK_BYTES] = block_bytes(DType::Q5_0, block)?;
    let y: &mut [f32; BLOCK_ELEMS] = block_elems_mut(DType::Q5_0, out)?;
    let d = f16_le(b[0], b[1]);
    let q = q5_unpack([b[2], b[3], b[4], b[5]], &b[6..]);
    for (v, &q) in y.iter_mut().zip(&q) {
        *v = (q as i32 - 16) as f32 * d;
    }
    Ok(())
}

/// Encodes 32 finite floats into one 22-byte block.
pub fn quantize_block(x: &[f32], out: &mut [u8]) -> Result<()> {
    let x: &[f32; BLOCK_ELEMS] = block_elems(DType::Q5_0, x)?;
    let b: &mut [u8; BLOCK_BYTES] = block_bytes_mut(DType::Q5_0, out)?;
    check_finite(DType::Q5_0, x)?;
    let (mut amax, mut max) = (0.0f32, 0.0f32);
    for &v in x {
        if amax < v.abs() {
            amax = v.abs();
            max = v;
        }
    }
    let d = max / -16.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    let [d0, d1] = scale_f16(DType::Q5_0, "d", d)?;
    b[..2].copy_from_slice(&[d0, d1]);
    let q = x.map(|v| ((v * id + 16.5) as i8).clamp(0, 31) as u32);
    let qh = q5_pack(&q, &mut b[6..]);
    b[2..6].copy_from_slice(&qh);
    Ok(())
}
