//! Q5_1: 32 weights in 24 bytes (6 bits/weight), ggml's `block_q5_1`.
//!
//! | offset | bytes | field          | meaning                                                  |
//! |--------|-------|----------------|----------------------------------------------------------|
//! | 0      | 2     | `d: f16`       | block scale, little-endian                               |
//! | 2      | 2     | `m: f16`       | block minimum (offset), little-endian                    |
//! | 4      | 4     | `qh: u32`      | bit `j`: the fifth (high) bit of elem `j`, little-endian |
//! | 8      | 16    | `qs: [u8; 16]` | byte `8+j`: low nibble = elem `j`, high = elem `j+16`     |
//!
//! Dequantize (`dequantize_row_q5_1`): `q = nibble | bit·16`, `y = q * d + m`
//! in `f32` (multiply, then add).
//!
//! Quantize (`quantize_row_q5_1_ref`, bit-identical to gguf-py):
//! `d = (max - min) / 31`, `id = 1/d` (0 when `d == 0`), `m = min`,
//! `q = min(31, (uint8)((x - min)*id + 0.5))`.

use super::{block_bytes, block_bytes_mut, block_elems, block_elems_mut, check_finite};
use super::{f16_le, min_max, q5_pack, q5_unpack, scale_f16};
use crate::dtype::DType;
use crate::error::Result;

/// Elements per block.
pub const BLOCK_ELEMS: usize = 32;
/// Bytes per block.
pub const BLOCK_BYTES: usize = 24;

/// Decodes one 24-byte block into 32 floats.
pub fn dequantize_block(block: &[u8], out: &mut [f32]) -> Result<()> {
    let b: &[u8; BLOCK_BYTES] = block_bytes(DType::Q5_1, block)?;
    let y: &mut [f32; BLOCK_ELEMS] = block_elems_mut(DType::Q5_1, out)?;
    let d = f16_le(b[0], b[1]);
    let m = f16_le(b[2], b[3]);
    let q = q5_unpack([b[4], b[5], b[6], b[7]], &b[8..]);
    for (v, &q) in y.iter_mut().zip(&q) {
        *v = q as f32 * d + m;
    }
    Ok(())
}

/// Encodes 32 finite floats into one 24-byte block.
pub fn quantize_block(x: &[f32], out: &mut [u8]) -> Result<()> {
    let x: &[f32; BLOCK_ELEMS] = block_elems(DType::Q5_1, x)?;
    let b: &mut [u8; BLOCK_BYTES] = block_bytes_mut(DType::Q5_1, out)?;
    check_finite(DType::Q5_1, x)?;
    let (min, max) = min_max(x);
    let d = (max - min) / 31.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    let [d0, d1] = scale_f16(DType::Q5_1, "d", d)?;
    let [m0, m1] = scale_f16(DType::Q5_1, "m", min)?;
    b[..4].copy_from_slice(&[d0, d1, m0, m1]);
    let q = x.map(|v| (((v - min) * id + 0.5) as u8).min(31) as u32);
    let qh = q5_pack(&q, &mut b[8..]);
    b[4..8].copy_from_slice(&qh);
    Ok(())
}
