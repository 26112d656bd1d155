//! Q4_K: 256 weights in 144 bytes (4.5 bits/weight), ggml's `block_q4_K`.
//!
//! A super-block of 256 is split into 8 sub-blocks of 32, each with a 6-bit
//! scale `sc` and a 6-bit min `m`, themselves scaled by the super-block `d` and
//! `dmin`.
//!
//! | offset | bytes | field              | meaning                                      |
//! |--------|-------|--------------------|----------------------------------------------|
//! | 0      | 2     | `d: f16`           | super-block scale of the sub-block scales    |
//! | 2      | 2     | `dmin: f16`        | super-block scale of the sub-block mins      |
//! | 4      | 12    | `scales: [u8; 12]` | 8 scales + 8 mins, 6 bits each (below)       |
//! | 16     | 128   | `qs: [u8; 128]`    | 4-bit quants (below)                         |
//!
//! `scales` packing (ggml `get_scale_min_k4`; `s[i]` is `scales[i]`): for
//! sub-block `j < 4`, `sc = s[j] & 63`, `m = s[j+4] & 63`; for `j >= 4`,
//! `sc = (s[j+4] & 0xF) | ((s[j-4] >> 6) << 4)`, `m = (s[j+4] >> 4) | ((s[j] >> 6) << 4)`.
//! Bit by bit (`sc[j]`, `m[j]` are sub-block `j`'s 6-bit scale and min):
//!
//! | bytes  | bits 0..6 (0..4 for bytes 8..12) | bits 6..8 (4..8 for bytes 8..12) |
//! |--------|----------------------------------|----------------------------------|
//! | 0..4   | `sc[0..4]`                       | `sc[4..8] >> 4`                  |
//! | 4..8   | `m[0..4]`                        | `m[4..8] >> 4`                   |
//! | 8..12  | `sc[4..8] & 0xF`                 | `m[4..8] & 0xF`                  |
//!
//! `qs`: the 256 elements form 4 chunks of 64; chunk `c` uses bytes
//! `32c..32c+32` of `qs`: element `64c + l` is the low nibble of byte `32c + l`
//! (sub-block `2c`), element `64c + 32 + l` the high nibble (sub-block `2c+1`).
//!
//! Dequantize (`dequantize_row_q4_K`): `y = (d*sc) * q - (dmin*m)` in `f32`.
//!
//! Quantize (`quantize_row_q4_K_ref`): each sub-block is fitted by
//! `make_qkx2_quants` (weighted least squares over 21 candidate scales, weights
//! `sqrt(mean x^2) + |x|`) to `x ~ scale*q - min`; the 8 scales and mins are
//! quantized to 6 bits against `d = max_scale/63`, `dmin = max_min/63`, and the
//! nibbles are then recomputed against the *quantized* scales.

use super::{block_bytes, block_bytes_mut, block_elems, block_elems_mut, check_finite};
use super::{f16_le, nearest_int, scale_f16, too_large};
use crate::dtype::DType;
use crate::error::Result;

/// Elements per block.
pub const BLOCK_ELEMS: usize = 256;
/// Bytes per block.
pub const BLOCK_BYTES: usize = 144;

/// ggml's `get_scale_min_k4`: 6-bit (scale, min) of sub-block `j` (0..8).
#[inline]
pub fn get_scale_min_k4(j: usize, s: &[u8; 12]) -> (u8, u8) {
    if j < 4 {
        (s[j] & 63, s[j + 4] & 63)
    } else {
        (
            (s[j + 4] & 0x0F) | ((s[j - 4] >> 6) << 4),
            (s[j + 4] >> 4) | ((s[j] >> 6) << 4),
        )
    }
}

fn scales_of(b: &[u8; BLOCK_BYTES]) -> [u8; 12] {
    let mut s = [0u8; 12];
    s.copy_from_slice(&b[4..16]);
    s
}

/// Decodes one 144-byte block into 256 floats.
pub fn dequantize_block(block: &[u8], out: &mut [f32]) -> Result<()> {
    let b: &[u8; BLOCK_BYTES] = block_bytes(DType::Q4_K, block)?;
    let y: &mut [f32; BLOCK_ELEMS] = block_elems_mut(DType::Q4_K, out)?;
    let d = f16_le(b[0], b[1]);
    let dmin = f16_le(b[2], b[3]);
    let s = scales_of(b);
    for (c, (ys, qs)) in y
        .chunks_exact_mut(64)
        .zip(b[16..].chunks_exact(32))
        .enumerate()
    {
        let (sc1, m1) = get_scale_min_k4(2 * c, &s);
        let (sc2, m2) = get_scale_min_k4(2 * c + 1, &s);
        let (d1, m1) = (d * f32::from(sc1), dmin * f32::from(m1));
        let (d2, m2) = (d * f32::from(sc2), dmin * f32::from(m2));
        let (lo, hi) = ys.split_at_mut(32);
        for ((y0, y1), &q) in lo.iter_mut().zip(hi.iter_mut()).zip(qs) {
            *y0 = d1 * f32::from(q & 0x0F) - m1;
            *y1 = d2 * f32::from(q >> 4) - m2;
        }
    }
    Ok(())
}

/// The arguments of ggml's `make_qkx2_quants` that differ between the
/// K-quants with a min: Q4_K (`nmax = 15`, `rmin = -1`, `nstep = 20`), Q5_K
/// (31, -0.5, 15, squared error) and Q2_K (3, -0.5, 15, absolute error:
/// `mad`); `rdelta = 0.1` for all.
#[derive(Clone, Copy)]
pub(super) struct Fit {
    pub nmax: i32,
    pub rmin: f32,
    pub nstep: i32,
    pub mad: bool,
}

pub(super) const Q4_K_FIT: Fit = Fit {
    nmax: 15,
    rmin: -1.0,
    nstep: 20,
    mad: false,
};

/// ggml's `make_qkx2_quants` with `fit`'s arguments over `x.len()` values
/// (at most 32). Fits `x ~ scale*l - min_off` with `l` in 0..=nmax and
/// returns `(scale, min_off)`, `min_off >= 0`; `l` gets the chosen quants.
/// Float operations are in ggml's order.
pub(super) fn make_qkx2_quants(x: &[f32], w: &[f32], l: &mut [u8], fit: Fit) -> (f32, f32) {
    let nmax = fit.nmax;
    let (rmin, rdelta, nstep) = (fit.rmin, 0.1f32, fit.nstep);
    let err = |d: f32| if fit.mad { d.abs() } else { d * d };
    let n = x.len();
    let mut min = x[0];
    let mut max = x[0];
    let mut sum_w = w[0];
    let mut sum_x = sum_w * x[0];
    for i in 1..n {
        if x[i] < min {
            min = x[i];
        }
        if x[i] > max {
            max = x[i];
        }
        sum_w += w[i];
        sum_x += w[i] * x[i];
    }
    if min > 0.0 {
        min = 0.0;
    }
    if max == min {
        l.fill(0);
        return (0.0, -min);
    }
    let quant = |iscale: f32, v: f32, min: f32| nearest_int(iscale * (v - min)).clamp(0, nmax);
    let mut iscale = nmax as f32 / (max - min);
    let mut scale = 1.0 / iscale;
    let mut best_error = 0.0f32;
    for i in 0..n {
        let q = quant(iscale, x[i], min);
        l[i] = q as u8;
        let diff = scale * q as f32 + min - x[i];
        best_error += w[i] * err(diff);
    }
    let mut laux = [0u8; 32];
    for is in 0..=nstep {
        iscale = (rmin + rdelta * is as f32 + nmax as f32) / (max - min);
        let (mut sum_l, mut sum_l2, mut sum_xl) = (0.0f32, 0.0f32, 0.0f32);
        for i in 0..n {
            let q = quant(iscale, x[i], min);
            laux[i] = q as u8;
            let lf = q as f32;
            sum_l += w[i] * lf;
            sum_l2 += w[i] * lf * lf;
            sum_xl += w[i] * lf * x[i];
        }
        let det = sum_w * sum_l2 - sum_l * sum_l;
        if det > 0.0 {
            let mut this_scale = (sum_w * sum_xl - sum_x * sum_l) / det;
            let mut this_min = (sum_l2 * sum_x - sum_l * sum_xl) / det;
            if this_min > 0.0 {
                this_min = 0.0;
                this_scale = sum_xl / sum_l2;
            }
            let mut cur_error = 0.0f32;
            for i in 0..n {
                let diff = this_scale * f32::from(laux[i]) + this_min - x[i];
                cur_error += w[i] * err(diff);
            }
            if cur_error < best_error {
                l.copy_from_slice(&laux[..n]);
                best_error = cur_error;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    (scale, -min)
}

/// A super-block fitted as `quantize_row_q4_K_ref` / `quantize_row_q5_K_ref`
/// do: the f16 `d` and `dmin` bytes, the packed 6-bit scales and mins, and
/// each element's quant (0..=nmax) against the scales the decoder will see.
pub(super) struct KFit {
    pub d: [u8; 2],
    pub dmin: [u8; 2],
    pub scales: [u8; 12],
    pub quants: [[u8; 32]; 8],
}

/// Fits 256 finite floats (see [`KFit`]); errors name `dtype`.
pub(super) fn fit_super_block(x: &[f32; 256], fit: Fit, dtype: DType) -> Result<KFit> {
    let mut big_l = [[0u8; 32]; 8];
    let mut scales = [0.0f32; 8];
    let mut mins = [0.0f32; 8];
    let mut max_scale = 0.0f32;
    let mut max_min = 0.0f32;
    for (j, xs) in x.chunks_exact(32).enumerate() {
        let mut xj = [0.0f32; 32];
        xj.copy_from_slice(xs);
        let sum_x2 = xj.iter().fold(0.0f32, |s, v| s + v * v);
        let av_x = (sum_x2 / 32.0).sqrt();
        let w = xj.map(|v| av_x + v.abs());
        let (scale, min) = make_qkx2_quants(&xj, &w, &mut big_l[j], fit);
        if !(scale.is_finite() && min.is_finite()) {
            return Err(too_large(dtype));
        }
        scales[j] = scale;
        mins[j] = min;
        if scale > max_scale {
            max_scale = scale;
        }
        if min > max_min {
            max_min = min;
        }
    }

    let inv_scale = if max_scale > 0.0 {
        63.0 / max_scale
    } else {
        0.0
    };
    let inv_min = if max_min > 0.0 { 63.0 / max_min } else { 0.0 };
    let mut s = [0u8; 12];
    for j in 0..8 {
        let ls = nearest_int(inv_scale * scales[j]).clamp(0, 63) as u8;
        let lm = nearest_int(inv_min * mins[j]).clamp(0, 63) as u8;
        if j < 4 {
            s[j] = ls;
            s[j + 4] = lm;
        } else {
            s[j + 4] = (ls & 0x0F) | ((lm & 0x0F) << 4);
            s[j - 4] |= (ls >> 4) << 6;
            s[j] |= (lm >> 4) << 6;
        }
    }
    let dh = scale_f16(dtype, "d", max_scale / 63.0)?;
    let mh = scale_f16(dtype, "dmin", max_min / 63.0)?;
    let (d_all, dmin_all) = (f16_le(dh[0], dh[1]), f16_le(mh[0], mh[1]));

    // Requantize against the scales the decoder will actually see.
    for (j, (xs, lj)) in x.chunks_exact(32).zip(big_l.iter_mut()).enumerate() {
        let (sc, m) = get_scale_min_k4(j, &s);
        let d = d_all * f32::from(sc);
        if d == 0.0 {
            continue;
        }
        let dm = dmin_all * f32::from(m);
        for (q, &v) in lj.iter_mut().zip(xs) {
            *q = nearest_int((v + dm) / d).clamp(0, fit.nmax) as u8;
        }
    }
    Ok(KFit {
        d: dh,
        dmin: mh,
        scales: s,
        quants: big_l,
    })
}

/// Encodes 256 finite floats into one 144-byte block.
pub fn quantize_block(x: &[f32], out: &mut [u8]) -> Result<()> {
    let x: &[f32; BLOCK_ELEMS] = block_elems(DType::Q4_K, x)?;
    let b: &mut [u8; BLOCK_BYTES] = block_bytes_mut(DType::Q4_K, out)?;
    check_finite(DType::Q4_K, x)?;
    let f = fit_super_block(x, Q4_K_FIT, DType::Q4_K)?;
    b[0..2].copy_from_slice(&f.d);
    b[2..4].copy_from_slice(&f.dmin);
    b[4..16].copy_from_slice(&f.scales);
    for (c, qs) in b[16..].chunks_exact_mut(32).enumerate() {
        let (lo, hi) = (&f.quants[2 * c], &f.quants[2 * c + 1]);
        for ((q, &a), &h) in qs.iter_mut().zip(lo).zip(hi) {
            *q = a | (h << 4);
        }
    }
    Ok(())
}
