//! Q4_1: 32 weights in 20 bytes (5 bits/weight), ggml's `block_q4_1`.
//!
//! | offset | bytes | field          | meaning                                              |
//! |--------|-------|----------------|------------------------------------------------------|
//! | 0      | 2     | `d: f16`       | block scale, little-endian                           |
//! | 2      | 2     | `m: f16`       | block minimum (offset), little-endian                |
//! | 4      | 16    | `qs: [u8; 16]` | byte `4+j`: low nibble = elem `j`, high = elem `j+16` |
//!
//! Dequantize (`dequantize_row_q4_1`): `y[j] = lo * d + m`,
//! `y[j+16] = hi * d + m` in `f32` (multiply, then add: no fused multiply-add).
//!
//! Quantize (`quantize_row_q4_1_ref`, bit-identical to gguf-py):
//! `d = (max - min) / 15`, `id = 1/d` (0 when `d == 0`), `m = min`,
//! `q = min(15, (int8)((x - min)*id + 0.5))` (truncation toward zero).

use super::{block_bytes, block_bytes_mut, block_elems, block_elems_mut, check_finite};
use super::{f16_le, min_max, scale_f16};
use crate::dtype::DType;
use crate::error::Result;

/// Elements per block.
pub const BLOCK_ELEMS: usize = 32;
/// Bytes per block.
pub const BLOCK_BYTES: usize = 20;

/// Decodes one 20-byte block into 32 floats.
pub fn dequantize_block(block: &[u8], out: &mut [f32]) -> Result<()> {
    let b: &[u8; BLOCK_BYTES] = block_bytes(DType::Q4_1, block)?;
    let y: &mut [f32; BLOCK_ELEMS] = block_elems_mut(DType::Q4_1, out)?;
    let d = f16_le(b[0], b[1]);
    let m = f16_le(b[2], b[3]);
    let (lo, hi) = y.split_at_mut(16);
    for ((y0, y1), &q) in lo.iter_mut().zip(hi.iter_mut()).zip(&b[4..]) {
        *y0 = f32::from(q & 0x0F) * d + m;
        *y1 = f32::from(q >> 4) * d + m;
    }
    Ok(())
}

/// Encodes 32 finite floats into one 20-byte block.
pub fn quantize_block(x: &[f32], out: &mut [u8]) -> Result<()> {
    let x: &[f32; BLOCK_ELEMS] = block_elems(DType::Q4_1, x)?;
    let b: &mut [u8; BLOCK_BYTES] = block_bytes_mut(DType::Q4_1, out)?;
    check_finite(DType::Q4_1, x)?;
    let (min, max) = min_max(x);
    let d = (max - min) / 15.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    let [d0, d1] = scale_f16(DType::Q4_1, "d", d)?;
    let [m0, m1] = scale_f16(DType::Q4_1, "m", min)?;
    b[..4].copy_from_slice(&[d0, d1, m0, m1]);
    let quant = |v: f32| (((v - min) * id + 0.5) as i8).clamp(0, 15) as u8;
    let (lo, hi) = x.split_at(16);
    for ((q, &v0), &v1) in b[4..].iter_mut().zip(lo).zip(hi) {
        *q = quant(v0) | (quant(v1) << 4);
    }
    Ok(())
}
