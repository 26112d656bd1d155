//! Q2_K: 256 weights in 84 bytes (2.625 bits/weight), ggml's `block_q2_K`.
//!
//! | offset | bytes | field              | meaning                                           |
//! |--------|-------|--------------------|---------------------------------------------------|
//! | 0      | 16    | `scales: [u8; 16]` | per sub-block of 16: low nibble scale, high min   |
//! | 16     | 64    | `qs: [u8; 64]`     | 2 bits per weight, laid out as Q3_K's `qs`        |
//! | 80     | 2     | `d: f16`           | super-block scale of the scales                   |
//! | 82     | 2     | `dmin: f16`        | super-block scale of the mins                     |
//!
//! Element `e` (`n = e/128`, `j = (e%128)/32`, `l = e%32`): `q =
//! (qs[32n + l] >> 2j) & 3` of sub-block `s = 8n + 2j + l/16`.
//!
//! Dequantize (`dequantize_row_q2_K`): `y = (d * (scales[s] & 15)) * q -
//! dmin * (scales[s] >> 4)` in `f32`.
//!
//! Quantize (`quantize_row_q2_K_ref`): each sub-block of 16 is fitted by
//! `make_qkx2_quants` (nmax 3, weights |x|, absolute error), scales and mins
//! are quantized to 4 bits against the largest of each, and the quants are
//! recomputed against the stored values.

use super::q4_k::{Fit, make_qkx2_quants};
use super::{block_bytes, block_bytes_mut, block_elems, block_elems_mut, check_finite};
use super::{f16_le, nearest_int, pack_2bit, scale_f16, too_large};
use crate::dtype::DType;
use crate::error::Result;

/// Elements per block.
pub const BLOCK_ELEMS: usize = 256;
/// Bytes per block.
pub const BLOCK_BYTES: usize = 84;

const FIT: Fit = Fit {
    nmax: 3,
    rmin: -0.5,
    nstep: 15,
    mad: true,
};

/// Decodes one 84-byte block into 256 floats.
pub fn dequantize_block(block: &[u8], out: &mut [f32]) -> Result<()> {
    let b: &[u8; BLOCK_BYTES] = block_bytes(DType::Q2_K, block)?;
    let y: &mut [f32; BLOCK_ELEMS] = block_elems_mut(DType::Q2_K, out)?;
    let (d, dmin) = (f16_le(b[80], b[81]), f16_le(b[82], b[83]));
    for (e, v) in y.iter_mut().enumerate() {
        let (n, r) = (e / 128, e % 128);
        let (j, l) = (r / 32, r % 32);
        let sc = b[8 * n + 2 * j + l / 16];
        let q = (b[16 + 32 * n + l] >> (2 * j)) & 3;
        let (dl, ml) = (d * f32::from(sc & 15), dmin * f32::from(sc >> 4));
        *v = dl * f32::from(q) - ml;
    }
    Ok(())
}

/// Encodes 256 finite floats into one 84-byte block.
pub fn quantize_block(x: &[f32], out: &mut [u8]) -> Result<()> {
    let x: &[f32; BLOCK_ELEMS] = block_elems(DType::Q2_K, x)?;
    let b: &mut [u8; BLOCK_BYTES] = block_bytes_mut(DType::Q2_K, out)?;
    check_finite(DType::Q2_K, x)?;
    let mut big_l = [0u8; BLOCK_ELEMS];
    let (mut scales, mut mins) = ([0.0f32; 16], [0.0f32; 16]);
    let (mut max_scale, mut max_min) = (0.0f32, 0.0f32);
    for (j, (xs, ls)) in x
        .chunks_exact(16)
        .zip(big_l.chunks_exact_mut(16))
        .enumerate()
    {
        let w: Vec<f32> = xs.iter().map(|v| v.abs()).collect();
        let (scale, min) = make_qkx2_quants(xs, &w, ls, FIT);
        if !(scale.is_finite() && min.is_finite()) {
            return Err(too_large(DType::Q2_K));
        }
        (scales[j], mins[j]) = (scale, min);
        if scale > max_scale {
            max_scale = scale;
        }
        if min > max_min {
            max_min = min;
        }
    }
    b.fill(0);
    let dh = if max_scale > 0.0 {
        let iscale = 15.0 / max_scale;
        for (j, &s) in scales.iter().enumerate() {
            b[j] = nearest_int(iscale * s) as u8;
        }
        scale_f16(DType::Q2_K, "d", max_scale / 15.0)?
    } else {
        [0, 0]
    };
    let mh = if max_min > 0.0 {
        let iscale = 15.0 / max_min;
        for (j, &m) in mins.iter().enumerate() {
            b[j] |= (nearest_int(iscale * m) as u8) << 4;
        }
        scale_f16(DType::Q2_K, "dmin", max_min / 15.0)?
    } else {
        [0, 0]
    };
    let (d_all, dmin_all) = (f16_le(dh[0], dh[1]), f16_le(mh[0], mh[1]));
    for (j, (xs, ls)) in x
        .chunks_exact(16)
        .zip(big_l.chunks_exact_mut(16))
        .enumerate()
    {
        let d = d_all * f32::from(b[j] & 15);
        if d == 0.0 {
            continue;
        }
        let dm = dmin_all * f32::from(b[j] >> 4);
        for (q, &v) in ls.iter_mut().zip(xs) {
            *q = nearest_int((v + dm) / d).clamp(0, 3) as u8;
        }
    }
    pack_2bit(|e| big_l[e], &mut b[16..80]);
    b[80..82].copy_from_slice(&dh);
    b[82..84].copy_from_slice(&mh);
    Ok(())
}
