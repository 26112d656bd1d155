//! Q8_0: 32 weights in 34 bytes (8.5 bits/weight), ggml's `block_q8_0`.
//!
//! | offset | bytes | field          | meaning                             |
//! |--------|-------|----------------|-------------------------------------|
//! | 0      | 2     | `d: f16`       | block scale, little-endian          |
//! | 2      | 32    | `qs: [i8; 32]` | quant of element `j` at byte `2+j`  |
//!
//! Dequantize (`dequantize_row_q8_0`): `y[j] = qs[j] * d` in `f32`.
//!
//! Quantize (`quantize_row_q8_0_ref`, bit-identical to gguf-py):
//! `amax = max |x|`, `d = amax / 127`, `id = 1/d` (0 when `d == 0`),
//! `qs[j] = round(x[j] * id)` rounding halves away from zero; `d` is stored as
//! `f16` (nearest even) but `qs` uses the unrounded `f32` `id`, as ggml does.

use super::{block_bytes, block_bytes_mut, block_elems, block_elems_mut, check_finite};
use super::{f16_le, scale_f16};
use crate::dtype::DType;
use crate::error::Result;

/// Elements per block.
pub const BLOCK_ELEMS: usize = 32;
/// Bytes per block.
pub const BLOCK_BYTES: usize = 34;

/// Decodes one 34-byte block into 32 floats.
pub fn dequantize_block(block: &[u8], out: &mut [f32]) -> Result<()> {
    let b: &[u8; BLOCK_BYTES] = block_bytes(DType::Q8_0, block)?;
    let y: &mut [f32; BLOCK_ELEMS] = block_elems_mut(DType::Q8_0, out)?;
    let d = f16_le(b[0], b[1]);
    for (y, &q) in y.iter_mut().zip(&b[2..]) {
        *y = f32::from(q as i8) * d;
    }
    Ok(())
}

/// Encodes 32 finite floats into one 34-byte block.
pub fn quantize_block(x: &[f32], out: &mut [u8]) -> Result<()> {
    let x: &[f32; BLOCK_ELEMS] = block_elems(DType::Q8_0, x)?;
    let b: &mut [u8; BLOCK_BYTES] = block_bytes_mut(DType::Q8_0, out)?;
    check_finite(DType::Q8_0, x)?;
    let amax = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let d = amax / 127.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    let [d0, d1] = scale_f16(DType::Q8_0, "d", d)?;
    b[0] = d0;
    b[1] = d1;
    for (q, &v) in b[2..].iter_mut().zip(x) {
        // `f32::round` rounds halves away from zero, like C's `roundf`; |v*id| <= 127.
        *q = ((v * id).round() as i8) as u8;
    }
    Ok(())
}
