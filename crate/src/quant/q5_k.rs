//! Q5_K: 256 weights in 176 bytes (5.5 bits/weight), ggml's `block_q5_K`:
//! Q4_K's super-block (`d`, `dmin`, the same 6-bit scales and mins of 8
//! sub-blocks of 32, see [`super::q4_k`]) with a fifth bit per weight.
//!
//! | offset | bytes | field              | meaning                                      |
//! |--------|-------|--------------------|----------------------------------------------|
//! | 0      | 2     | `d: f16`           | super-block scale of the sub-block scales    |
//! | 2      | 2     | `dmin: f16`        | super-block scale of the sub-block mins      |
//! | 4      | 12    | `scales: [u8; 12]` | 8 scales + 8 mins, 6 bits each (as Q4_K)     |
//! | 16     | 32    | `qh: [u8; 32]`     | fifth bits (below)                           |
//! | 48     | 128   | `qs: [u8; 128]`    | low 4 bits, laid out as Q4_K's `qs`          |
//!
//! Chunk `c` of 64 elements (sub-blocks `2c`, `2c+1`): element `64c + l`
//! is the low nibble of `qs[32c + l]` plus 16 if bit `2c` of `qh[l]` is set;
//! element `64c + 32 + l` the high nibble plus 16 if bit `2c + 1` is set.
//!
//! Dequantize (`dequantize_row_q5_K`): `y = (d*sc) * q - (dmin*m)` in `f32`.
//!
//! Quantize (`quantize_row_q5_K_ref`): Q4_K's fit with `make_qkx2_quants`'
//! Q5_K arguments (`nmax = 31`, `rmin = -0.5`, `nstep = 15`).

use super::q4_k::{Fit, fit_super_block, get_scale_min_k4};
use super::{block_bytes, block_bytes_mut, block_elems, block_elems_mut, check_finite, f16_le};
use crate::dtype::DType;
use crate::error::Result;

/// Elements per block.
pub const BLOCK_ELEMS: usize = 256;
/// Bytes per block.
pub const BLOCK_BYTES: usize = 176;

const FIT: Fit = Fit {
    nmax: 31,
    rmin: -0.5,
    nstep: 15,
    mad: false,
};

/// Decodes one 176-byte block into 256 floats.
pub fn dequantize_block(block: &[u8], out: &mut [f32]) -> Result<()> {
    let b: &[u8; BLOCK_BYTES] = block_bytes(DType::Q5_K, block)?;
    let y: &mut [f32; BLOCK_ELEMS] = block_elems_mut(DType::Q5_K, out)?;
    let d = f16_le(b[0], b[1]);
    let dmin = f16_le(b[2], b[3]);
    let mut s = [0u8; 12];
    s.copy_from_slice(&b[4..16]);
    let qh = &b[16..48];
    for (c, (ys, qs)) in y
        .chunks_exact_mut(64)
        .zip(b[48..].chunks_exact(32))
        .enumerate()
    {
        let (sc1, m1) = get_scale_min_k4(2 * c, &s);
        let (sc2, m2) = get_scale_min_k4(2 * c + 1, &s);
        let (d1, m1) = (d * f32::from(sc1), dmin * f32::from(m1));
        let (d2, m2) = (d * f32::from(sc2), dmin * f32::from(m2));
        let (u1, u2) = (1u8 << (2 * c), 2u8 << (2 * c));
        let (lo, hi) = ys.split_at_mut(32);
        for (((y0, y1), &q), &h) in lo.iter_mut().zip(hi.iter_mut()).zip(qs).zip(qh) {
            let q0 = (q & 0x0F) + if h & u1 != 0 { 16 } else { 0 };
            let q1 = (q >> 4) + if h & u2 != 0 { 16 } else { 0 };
            *y0 = d1 * f32::from(q0) - m1;
            *y1 = d2 * f32::from(q1) - m2;
        }
    }
    Ok(())
}

/// Encodes 256 finite floats into one 176-byte block.
pub fn quantize_block(x: &[f32], out: &mut [u8]) -> Result<()> {
    let x: &[f32; BLOCK_ELEMS] = block_elems(DType::Q5_K, x)?;
    let b: &mut [u8; BLOCK_BYTES] = block_bytes_mut(DType::Q5_K, out)?;
    check_finite(DType::Q5_K, x)?;
    let f = fit_super_block(x, FIT, DType::Q5_K)?;
    b[0..2].copy_from_slice(&f.d);
    b[2..4].copy_from_slice(&f.dmin);
    b[4..16].copy_from_slice(&f.scales);
    b[16..48].fill(0);
    for c in 0..4 {
        let (lo, hi) = (&f.quants[2 * c], &f.quants[2 * c + 1]);
        for l in 0..32 {
            let (a, h) = (lo[l], hi[l]);
            b[16 + l] |= ((a >> 4) << (2 * c)) | ((h >> 4) << (2 * c + 1));
            b[48 + 32 * c + l] = (a & 0x0F) | ((h & 0x0F) << 4);
        }
    }
    Ok(())
}
