//! Q4_0: 32 weights in 18 bytes (4.5 bits/weight), ggml's `block_q4_0`.
//!
//! | offset | bytes | field          | meaning                                              |
//! |--------|-------|----------------|------------------------------------------------------|
//! | 0      | 2     | `d: f16`       | block scale, little-endian                           |
//! | 2      | 16    | `qs: [u8; 16]` | byte `2+j`: low nibble = elem `j`, high = elem `j+16` |
//!
//! Dequantize (`dequantize_row_q4_0`): `y[j] = (lo - 8) * d`,
//! `y[j+16] = (hi - 8) * d` in `f32`.
//!
//! Quantize (`quantize_row_q4_0_ref`, bit-identical to gguf-py): `max` is the
//! element of largest magnitude *with its sign* (first one on ties),
//! `d = max / -8`, `id = 1/d` (0 when `d == 0`),
//! `q = min(15, (int8)(x*id + 8.5))` (truncation toward zero). So `max` itself
//! maps to quant 0 = `-8*d`, using the asymmetric end of the range exactly.

use super::{block_bytes, block_bytes_mut, block_elems, block_elems_mut, check_finite};
use super::{f16_le, scale_f16};
use crate::dtype::DType;
use crate::error::Result;

/// Elements per block.
pub const BLOCK_ELEMS: usize = 32;
/// Bytes per block.
pub const BLOCK_BYTES: usize = 18;

/// Decodes one 18-byte block into 32 floats.
pub fn dequantize_block(block: &[u8], out: &mut [f32]) -> Result<()> {
    let b: &[u8; BLOCK_BYTES] = block_bytes(DType::Q4_0, block)?;
    let y: &mut [f32; BLOCK_ELEMS] = block_elems_mut(DType::Q4_0, out)?;
    let d = f16_le(b[0], b[1]);
    let (lo, hi) = y.split_at_mut(16);
    for ((y0, y1), &q) in lo.iter_mut().zip(hi.iter_mut()).zip(&b[2..]) {
        *y0 = f32::from((q & 0x0F) as i8 - 8) * d;
        *y1 = f32::from((q >> 4) as i8 - 8) * d;
    }
    Ok(())
}

/// Encodes 32 finite floats into one 18-byte block.
pub fn quantize_block(x: &[f32], out: &mut [u8]) -> Result<()> {
    let x: &[f32; BLOCK_ELEMS] = block_elems(DType::Q4_0, x)?;
    let b: &mut [u8; BLOCK_BYTES] = block_bytes_mut(DType::Q4_0, out)?;
    check_finite(DType::Q4_0, x)?;
    let mut amax = 0.0f32;
    let mut max = 0.0f32;
    for &v in x {
        if amax < v.abs() {
            amax = v.abs();
            max = v;
        }
    }
    let d = max / -8.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    let [d0, d1] = scale_f16(DType::Q4_0, "d", d)?;
    b[0] = d0;
    b[1] = d1;
    let quant = |v: f32| ((v * id + 8.5) as i8).clamp(0, 15) as u8;
    let (lo, hi) = x.split_at(16);
    for ((q, &v0), &v1) in b[2..].iter_mut().zip(lo).zip(hi) {
        *q = quant(v0) | (quant(v1) << 4);
    }
    Ok(())
}
