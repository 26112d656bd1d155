//! Q3_K: 256 weights in 110 bytes (3.4375 bits/weight), ggml's `block_q3_K`.
//!
//! | offset | bytes | field              | meaning                                         |
//! |--------|-------|--------------------|-------------------------------------------------|
//! | 0      | 32    | `hmask: [u8; 32]`  | third (high) bits, set = no offset (below)       |
//! | 32     | 64    | `qs: [u8; 64]`     | low 2 bits, 4 per byte                          |
//! | 96     | 12    | `scales: [u8; 12]` | 16 signed 6-bit scales (below), stored + 32     |
//! | 108    | 2     | `d: f16`           | super-block scale                               |
//!
//! Element `e` (half `n = e/128`, `r = e%128`, `j = r/32`, `l = r%32`): low
//! bits `(qs[32n + l] >> 2j) & 3`, high bit `hmask[l]` bit `4n + j`;
//! `q = low - (high ? 0 : 4)` in -4..=3, of sub-block `s = 8n + 2j + l/16`.
//! Scale `s`: low 4 bits `scales[s] & 15` (s < 8) or `scales[s-8] >> 4`, high
//! 2 bits `(scales[8 + s%4] >> 2(s/4)) & 3`; `sc = that - 32`.
//!
//! Dequantize (`dequantize_row_q3_K`): `y = (d * sc) * q` in `f32`.
//!
//! Quantize (`quantize_row_q3_K_ref`): each sub-block of 16 is fitted by
//! `make_q3_quants` (nmax 4, rmse refinement weighted by x²), the 16 scales
//! are quantized to 6 bits against the largest, and the quants are then
//! recomputed against the stored scales.

use super::{block_bytes, block_bytes_mut, block_elems, block_elems_mut, check_finite};
use super::{f16_le, nearest_int, pack_2bit, scale_f16, too_large};
use crate::dtype::DType;
use crate::error::Result;

/// Elements per block.
pub const BLOCK_ELEMS: usize = 256;
/// Bytes per block.
pub const BLOCK_BYTES: usize = 110;

/// ggml's GROUP_MAX_EPS: a sub-block below it is all zero.
const GROUP_MAX_EPS: f32 = 1e-15;

/// The signed scale of sub-block `s` (0..16).
fn scale(sc: &[u8], s: usize) -> i32 {
    let lo = if s < 8 { sc[s] & 15 } else { sc[s - 8] >> 4 };
    let hi = (sc[8 + s % 4] >> (2 * (s / 4))) & 3;
    i32::from(lo | (hi << 4)) - 32
}

/// Decodes one 110-byte block into 256 floats.
pub fn dequantize_block(block: &[u8], out: &mut [f32]) -> Result<()> {
    let b: &[u8; BLOCK_BYTES] = block_bytes(DType::Q3_K, block)?;
    let y: &mut [f32; BLOCK_ELEMS] = block_elems_mut(DType::Q3_K, out)?;
    let d = f16_le(b[108], b[109]);
    let (hm, qs, sc) = (&b[0..32], &b[32..96], &b[96..108]);
    for (e, v) in y.iter_mut().enumerate() {
        let (n, r) = (e / 128, e % 128);
        let (j, l) = (r / 32, r % 32);
        let low = i32::from((qs[32 * n + l] >> (2 * j)) & 3);
        let high = hm[l] & (1 << (4 * n + j)) != 0;
        let q = low - if high { 0 } else { 4 };
        let dl = d * scale(sc, 8 * n + 2 * j + l / 16) as f32;
        *v = dl * q as f32;
    }
    Ok(())
}

/// ggml's `make_q3_quants(16, 4, x, L, true)`: the sub-block's scale, `l`
/// in 0..8 (biased by 4). Float operations in ggml's order.
fn make_q3_quants(x: &[f32], l: &mut [i8]) -> f32 {
    const NMAX: i32 = 4;
    let (mut max, mut amax) = (0.0f32, 0.0f32);
    for &v in x {
        if v.abs() > amax {
            amax = v.abs();
            max = v;
        }
    }
    if amax < GROUP_MAX_EPS {
        l.fill(0);
        return 0.0;
    }
    let iscale = -(NMAX as f32) / max;
    let (mut sumlx, mut suml2) = (0.0f32, 0.0f32);
    for (q, &v) in l.iter_mut().zip(x) {
        let li = nearest_int(iscale * v).clamp(-NMAX, NMAX - 1);
        *q = li as i8;
        let w = v * v;
        sumlx += w * v * li as f32;
        suml2 += w * li as f32 * li as f32;
    }
    for _ in 0..5 {
        let mut changed = 0;
        for (q, &v) in l.iter_mut().zip(x) {
            let w = v * v;
            let cur = f32::from(*q);
            let mut slx = sumlx - w * v * cur;
            if slx > 0.0 {
                let mut sl2 = suml2 - w * cur * cur;
                let new_l = nearest_int(v * sl2 / slx).clamp(-NMAX, NMAX - 1);
                if new_l != i32::from(*q) {
                    slx += w * v * new_l as f32;
                    sl2 += w * new_l as f32 * new_l as f32;
                    if sl2 > 0.0 && slx * slx * suml2 > sumlx * sumlx * sl2 {
                        *q = new_l as i8;
                        sumlx = slx;
                        suml2 = sl2;
                        changed += 1;
                    }
                }
            }
        }
        if changed == 0 {
            break;
        }
    }
    for q in l.iter_mut() {
        *q += NMAX as i8;
    }
    if suml2 > 0.0 { sumlx / suml2 } else { 0.0 }
}

/// Encodes 256 finite floats into one 110-byte block.
pub fn quantize_block(x: &[f32], out: &mut [u8]) -> Result<()> {
    let x: &[f32; BLOCK_ELEMS] = block_elems(DType::Q3_K, x)?;
    let b: &mut [u8; BLOCK_BYTES] = block_bytes_mut(DType::Q3_K, out)?;
    check_finite(DType::Q3_K, x)?;
    let mut big_l = [0i8; BLOCK_ELEMS];
    let mut scales = [0.0f32; 16];
    let (mut max_scale, mut amax) = (0.0f32, 0.0f32);
    for (j, (xs, ls)) in x
        .chunks_exact(16)
        .zip(big_l.chunks_exact_mut(16))
        .enumerate()
    {
        scales[j] = make_q3_quants(xs, ls);
        if !scales[j].is_finite() {
            return Err(too_large(DType::Q3_K));
        }
        if scales[j].abs() > amax {
            amax = scales[j].abs();
            max_scale = scales[j];
        }
    }
    b.fill(0);
    let mut sc = [0u8; 12];
    let dh = if max_scale != 0.0 {
        let iscale = -32.0 / max_scale;
        for (j, &s) in scales.iter().enumerate() {
            let l = (nearest_int(iscale * s).clamp(-32, 31) + 32) as u8;
            if j < 8 {
                sc[j] = l & 0xF;
            } else {
                sc[j - 8] |= (l & 0xF) << 4;
            }
            sc[j % 4 + 8] |= (l >> 4) << (2 * (j / 4));
        }
        scale_f16(DType::Q3_K, "d", 1.0 / iscale)?
    } else {
        [0, 0]
    };
    let d_all = f16_le(dh[0], dh[1]);
    for (j, (xs, ls)) in x
        .chunks_exact(16)
        .zip(big_l.chunks_exact_mut(16))
        .enumerate()
    {
        let d = d_all * scale(&sc, j) as f32;
        if d == 0.0 {
            continue;
        }
        for (q, &v) in ls.iter_mut().zip(xs) {
            *q = (nearest_int(v / d).clamp(-4, 3) + 4) as i8;
        }
    }
    // High bits: element e's in hmask[e % 32], bit e / 32.
    for (e, q) in big_l.iter_mut().enumerate() {
        if *q > 3 {
            b[e % 32] |= 1 << (e / 32);
            *q -= 4;
        }
    }
    pack_2bit(|e| big_l[e] as u8, &mut b[32..96]);
    b[96..108].copy_from_slice(&sc);
    b[108..110].copy_from_slice(&dh);
    Ok(())
}
