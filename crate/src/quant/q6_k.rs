//! Q6_K: 256 weights in 210 bytes (6.5625 bits/weight), ggml's `block_q6_K`.
//!
//! A super-block of 256 is split into 16 sub-blocks of 16, each with a signed
//! 8-bit scale; quants are 6-bit, stored as 4 low bits (`ql`) + 2 high bits (`qh`),
//! and biased by 32.
//!
//! | offset | bytes | field              | meaning                                  |
//! |--------|-------|--------------------|------------------------------------------|
//! | 0      | 128   | `ql: [u8; 128]`    | low 4 bits of each quant                 |
//! | 128    | 64    | `qh: [u8; 64]`     | high 2 bits of each quant                |
//! | 192    | 16    | `scales: [i8; 16]` | sub-block scales; sub-block `i` = elems `16i..16i+16` |
//! | 208    | 2     | `d: f16`           | super-block scale, little-endian         |
//!
//! The block is two halves of 128 elements; half `h` uses `ql[64h..64h+64]`,
//! `qh[32h..32h+32]`. Within a half, for `l` in 0..32 (`L = ql`, `H = qh[l]`):
//!
//! | element      | low 4 bits        | high 2 bits      |
//! |--------------|-------------------|------------------|
//! | `128h + l`      | `L[l] & 0xF`      | `H & 3`          |
//! | `128h + l + 32` | `L[l + 32] & 0xF` | `(H >> 2) & 3`   |
//! | `128h + l + 64` | `L[l] >> 4`       | `(H >> 4) & 3`   |
//! | `128h + l + 96` | `L[l + 32] >> 4`  | `(H >> 6) & 3`   |
//!
//! Dequantize (`dequantize_row_q6_K`): `q = (low | high << 4) - 32` in -32..=31,
//! `y = (d * scales[e / 16]) * q` in `f32`.
//!
//! Quantize (`quantize_row_q6_K_ref`): each sub-block's scale comes from
//! `make_qx_quants` (x²-weighted least squares over 19 candidate scales, using
//! the asymmetric -32 end for the element of largest magnitude); the 16 scales
//! are quantized to `i8` against `d = max_scale / -128`, and the quants are then
//! recomputed against the *quantized* scales.

use super::{block_bytes, block_bytes_mut, block_elems, block_elems_mut, check_finite};
use super::{f16_le, nearest_int, scale_f16, too_large};
use crate::dtype::DType;
use crate::error::Result;

/// Elements per block.
pub const BLOCK_ELEMS: usize = 256;
/// Bytes per block.
pub const BLOCK_BYTES: usize = 210;

/// ggml's `GROUP_MAX_EPS`: a sub-block below this magnitude is all zero.
const GROUP_MAX_EPS: f32 = 1e-15;

/// Decodes one 210-byte block into 256 floats.
pub fn dequantize_block(block: &[u8], out: &mut [f32]) -> Result<()> {
    let b: &[u8; BLOCK_BYTES] = block_bytes(DType::Q6_K, block)?;
    let y: &mut [f32; BLOCK_ELEMS] = block_elems_mut(DType::Q6_K, out)?;
    let d = f16_le(b[208], b[209]);
    let sc = |i: usize| f32::from(b[192 + i] as i8);
    for h in 0..2 {
        let (ql, qh, ys) = (
            &b[64 * h..64 * h + 64],
            &b[128 + 32 * h..160 + 32 * h],
            128 * h,
        );
        for l in 0..32 {
            let is = 8 * h + l / 16;
            let hb = qh[l];
            let q1 = ((ql[l] & 0x0F) | ((hb & 3) << 4)) as i8 - 32;
            let q2 = ((ql[l + 32] & 0x0F) | (((hb >> 2) & 3) << 4)) as i8 - 32;
            let q3 = ((ql[l] >> 4) | (((hb >> 4) & 3) << 4)) as i8 - 32;
            let q4 = ((ql[l + 32] >> 4) | (((hb >> 6) & 3) << 4)) as i8 - 32;
            y[ys + l] = d * sc(is) * f32::from(q1);
            y[ys + l + 32] = d * sc(is + 2) * f32::from(q2);
            y[ys + l + 64] = d * sc(is + 4) * f32::from(q3);
            y[ys + l + 96] = d * sc(is + 6) * f32::from(q4);
        }
    }
    Ok(())
}

/// ggml's `make_qx_quants(16, 32, x, L, rmse_type = 1, NULL)`: x²-weighted fit of
/// `x ~ scale * l` with `l` in -32..=31; writes `l + 32` to `big_l` and returns
/// `scale` (negative when the largest-magnitude element is positive). Float
/// operations are in ggml's order.
fn make_qx_quants(x: &[f32; 16], big_l: &mut [u8; 16]) -> f32 {
    const NMAX: i32 = 32;
    let mut max = 0.0f32;
    let mut amax = 0.0f32;
    for &v in x {
        if v.abs() > amax {
            amax = v.abs();
            max = v;
        }
    }
    if amax < GROUP_MAX_EPS {
        *big_l = [0; 16];
        return 0.0;
    }
    let quant = |iscale: f32, v: f32| nearest_int(iscale * v).clamp(-NMAX, NMAX - 1);
    // Weighted sums for one candidate inverse scale (weights x², ggml's order).
    let sums = |iscale: f32| {
        let (mut sumlx, mut suml2) = (0.0f32, 0.0f32);
        for &v in x {
            let l = quant(iscale, v) as f32;
            let w = v * v;
            sumlx += w * v * l;
            suml2 += w * l * l;
        }
        (sumlx, suml2)
    };
    let fill = |iscale: f32, big_l: &mut [u8; 16]| {
        for (q, &v) in big_l.iter_mut().zip(x) {
            *q = (quant(iscale, v) + NMAX) as u8;
        }
    };
    let iscale = -(NMAX as f32) / max;
    fill(iscale, big_l);
    let (sumlx, suml2) = sums(iscale);
    let mut scale = if suml2 != 0.0 { sumlx / suml2 } else { 0.0 };
    let mut best = scale * sumlx;
    for is in -9..=9 {
        if is == 0 {
            continue;
        }
        let iscale = -(NMAX as f32 + 0.1 * is as f32) / max;
        let (sumlx, suml2) = sums(iscale);
        if suml2 > 0.0 && sumlx * sumlx > best * suml2 {
            fill(iscale, big_l);
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    scale
}

/// Encodes 256 finite floats into one 210-byte block.
pub fn quantize_block(x: &[f32], out: &mut [u8]) -> Result<()> {
    let x: &[f32; BLOCK_ELEMS] = block_elems(DType::Q6_K, x)?;
    let b: &mut [u8; BLOCK_BYTES] = block_bytes_mut(DType::Q6_K, out)?;
    check_finite(DType::Q6_K, x)?;

    let mut big_l = [[0u8; 16]; 16];
    let mut scales = [0.0f32; 16];
    let mut max_scale = 0.0f32;
    let mut max_abs_scale = 0.0f32;
    for (ib, xs) in x.chunks_exact(16).enumerate() {
        let mut xb = [0.0f32; 16];
        xb.copy_from_slice(xs);
        let scale = make_qx_quants(&xb, &mut big_l[ib]);
        if !scale.is_finite() {
            // x² overflowed (|x| > 1.8e19): far beyond what an f16 `d` can reach.
            return Err(too_large(DType::Q6_K));
        }
        scales[ib] = scale;
        if scale.abs() > max_abs_scale {
            max_abs_scale = scale.abs();
            max_scale = scale;
        }
    }
    if max_abs_scale < GROUP_MAX_EPS {
        // All (near) zero: ggml writes an all-zero block (d = +0.0).
        *b = [0; BLOCK_BYTES];
        return Ok(());
    }

    let iscale = -128.0 / max_scale;
    let dh = scale_f16(DType::Q6_K, "d", 1.0 / iscale)?;
    let d_all = f16_le(dh[0], dh[1]);
    let mut sc = [0i8; 16];
    for (s, &scale) in sc.iter_mut().zip(&scales) {
        *s = nearest_int(iscale * scale).clamp(-128, 127) as i8;
    }

    // Requantize against the scales the decoder will actually see.
    for ((lj, xs), &s) in big_l.iter_mut().zip(x.chunks_exact(16)).zip(&sc) {
        let d = d_all * f32::from(s);
        if d == 0.0 {
            continue;
        }
        for (q, &v) in lj.iter_mut().zip(xs) {
            *q = (nearest_int(v / d).clamp(-32, 31) + 32) as u8;
        }
    }

    let q = |e: usize| big_l[e / 16][e % 16];
    for h in 0..2 {
        for l in 0..32 {
            let j = 128 * h + l;
            let (q1, q2, q3, q4) = (q(j), q(j + 32), q(j + 64), q(j + 96));
            b[64 * h + l] = (q1 & 0x0F) | ((q3 & 0x0F) << 4);
            b[64 * h + l + 32] = (q2 & 0x0F) | ((q4 & 0x0F) << 4);
            b[128 + 32 * h + l] =
                (q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6);
        }
    }
    for (o, &s) in b[192..208].iter_mut().zip(&sc) {
        *o = s as u8;
    }
    b[208..210].copy_from_slice(&dh);
    Ok(())
}
