//! The integer tiles on wasm SIMD128 (see [`super`] for the layout).

use super::{Q4_0, Q4_1, QK, XRow, block_bytes, f16_at};
use core::arch::wasm32::*;

#[inline(always)]
fn hsum(v: v128) -> f32 {
    (f32x4_extract_lane::<0>(v) + f32x4_extract_lane::<1>(v))
        + (f32x4_extract_lane::<2>(v) + f32x4_extract_lane::<3>(v))
}

#[inline(always)]
fn load(b: &[u8]) -> v128 {
    let mut a = [0u8; 16];
    a.copy_from_slice(&b[..16]);
    u8x16(
        a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9], a[10], a[11], a[12], a[13],
        a[14], a[15],
    )
}

/// `R` weight rows × `C` tokens on SIMD128: bytes widened to i16 and
/// multiplied with `i32x4.dot_i16x8_s`. The caller checked the bounds.
pub fn tile<const FMT: u8, const R: usize, const C: usize>(
    w: &[u8],
    rb: usize,
    x: &[XRow<'_>; C],
) -> [[f32; C]; R] {
    let nb = x[0].d.len();
    let bb = block_bytes(FMT);
    let mut acc = [[f32x4_splat(0.0); C]; R];
    let mut bias = [[0f32; C]; R];
    let mask = u8x16_splat(0x0F);
    for b in 0..nb {
        let mut xv = [[i16x8_splat(0); 4]; C];
        for c in 0..C {
            let q: &[u8] = bytemuck::cast_slice(&x[c].q[b * QK..(b + 1) * QK]);
            let (lo, hi) = (load(q), load(&q[16..]));
            xv[c] = [
                i16x8_extend_low_i8x16(lo),
                i16x8_extend_high_i8x16(lo),
                i16x8_extend_low_i8x16(hi),
                i16x8_extend_high_i8x16(hi),
            ];
        }
        for r in 0..R {
            let blk = &w[r * rb + b * bb..][..bb];
            let d = f16_at(blk, 0);
            let (wv, m) = if FMT == Q4_0 || FMT == Q4_1 {
                let q = load(&blk[if FMT == Q4_1 { 4 } else { 2 }..]);
                let (lo, hi) = (v128_and(q, mask), u8x16_shr(q, 4));
                let wv = [
                    u16x8_extend_low_u8x16(lo),
                    u16x8_extend_high_u8x16(lo),
                    u16x8_extend_low_u8x16(hi),
                    u16x8_extend_high_u8x16(hi),
                ];
                (
                    wv,
                    if FMT == Q4_1 {
                        f16_at(blk, 2)
                    } else {
                        -8.0 * d
                    },
                )
            } else {
                let (q0, q1) = (load(&blk[2..]), load(&blk[18..]));
                let wv = [
                    i16x8_extend_low_i8x16(q0),
                    i16x8_extend_high_i8x16(q0),
                    i16x8_extend_low_i8x16(q1),
                    i16x8_extend_high_i8x16(q1),
                ];
                (wv, 0.0)
            };
            for c in 0..C {
                let s = i32x4_add(
                    i32x4_add(
                        i32x4_dot_i16x8(wv[0], xv[c][0]),
                        i32x4_dot_i16x8(wv[1], xv[c][1]),
                    ),
                    i32x4_add(
                        i32x4_dot_i16x8(wv[2], xv[c][2]),
                        i32x4_dot_i16x8(wv[3], xv[c][3]),
                    ),
                );
                let scale = f32x4_splat(d * x[c].d[b]);
                acc[r][c] = f32x4_add(acc[r][c], f32x4_mul(f32x4_convert_i32x4(s), scale));
                bias[r][c] += m * x[c].s[b];
            }
        }
    }
    let mut out = [[0f32; C]; R];
    for r in 0..R {
        for c in 0..C {
            out[r][c] = hsum(acc[r][c]) + bias[r][c];
        }
    }
    out
}
