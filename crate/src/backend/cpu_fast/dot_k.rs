//! Integer-dot tiles for the K-quants most GGUF files use (Q4_K_M is Q4_K
//! plus Q6_K): super-blocks of 256 weights against the same 8-bit
//! activation blocks of 32 as the other formats ([`super::dot`]), so each of
//! a super-block's eight activation blocks meets its own sub-block scales:
//!
//! * Q4_K: sub-blocks of 32 with 6-bit scale and min: `d·sc·Σ(q·x) −
//!   dmin·m·(d_x·Σx)`, the min applied through the activation block's `s`.
//! * Q6_K: sub-blocks of 16 with i8 scales and 6-bit values offset by 32:
//!   the values become signed bytes, and one 32-wide product's two halves
//!   take their two scales (lanes 0–3 and 4–7 of the i32 sums).

use super::dot::{QK, XRow, f16_at, tile_fits};
use crate::quant::q4_k::get_scale_min_k4;

pub(super) const Q4_K: u8 = 3;
pub(super) const Q6_K: u8 = 4;

fn scales12(blk: &[u8]) -> [u8; 12] {
    let mut s = [0u8; 12];
    s.copy_from_slice(&blk[4..16]);
    s
}

/// A Q6_K value: 4 low bits from `ql`, 2 high bits from `qh`, minus 32.
#[inline]
fn q6(ql: u8, high_nibble: bool, qh: u8, shift: u32) -> i32 {
    let lo = if high_nibble { ql >> 4 } else { ql & 15 };
    (lo | (((qh >> shift) & 3) << 4)) as i32 - 32
}

/// The portable K tile (the oracle for the SIMD ones).
pub(super) fn portable_k<const FMT: u8, const R: usize, const C: usize>(
    w: &[u8],
    rb: usize,
    x: &[XRow<'_>; C],
) -> [[f32; C]; R] {
    let mut out = [[f32::NAN; C]; R];
    if !tile_fits(FMT, w, rb, R, x) {
        return out;
    }
    let nsb = x[0].d.len() / 8;
    for (r, o) in out.iter_mut().enumerate() {
        for (c, xr) in x.iter().enumerate() {
            let mut sum = 0f32;
            for sb in 0..nsb {
                let xq = |b: usize, l: usize| xr.q[(sb * 8 + b) * QK + l] as i32;
                if FMT == Q4_K {
                    let blk = &w[r * rb + sb * 144..][..144];
                    let (d, dmin, s) = (f16_at(blk, 0), f16_at(blk, 2), scales12(blk));
                    for j in 0..4 {
                        let q = &blk[16 + 32 * j..48 + 32 * j];
                        for (half, b) in [(0, 2 * j), (1, 2 * j + 1)] {
                            let (sc, m) = get_scale_min_k4(b, &s);
                            let isum: i32 = (0..32)
                                .map(|l| if half == 0 { q[l] & 15 } else { q[l] >> 4 } as i32 * xq(b, l))
                                .sum();
                            let (xd, xs) = (xr.d[sb * 8 + b], xr.s[sb * 8 + b]);
                            sum += d * sc as f32 * xd * isum as f32 - dmin * m as f32 * xs;
                        }
                    }
                } else {
                    let blk = &w[r * rb + sb * 210..][..210];
                    let d = f16_at(blk, 208);
                    for h in 0..2 {
                        let (ql, qh) =
                            (&blk[64 * h..64 * h + 64], &blk[128 + 32 * h..160 + 32 * h]);
                        for t in 0..4 {
                            let b = 4 * h + t;
                            let mut isum = [0i32; 2];
                            for l in 0..32 {
                                let v = q6(ql[l + 32 * (t % 2)], t >= 2, qh[l], 2 * t as u32);
                                isum[l / 16] += v * xq(b, l);
                            }
                            let sc = |i: usize| blk[192 + 8 * h + 2 * t + i] as i8 as f32;
                            sum += d
                                * xr.d[sb * 8 + b]
                                * (sc(0) * isum[0] as f32 + sc(1) * isum[1] as f32);
                        }
                    }
                }
            }
            o[c] = sum;
        }
    }
    out
}

#[cfg(target_arch = "x86_64")]
pub(super) fn x86_k<const FMT: u8, const R: usize, const C: usize, const VNNI: bool>(
    w: &[u8],
    rb: usize,
    x: &[XRow<'_>; C],
) -> [[f32; C]; R] {
    if !tile_fits(FMT, w, rb, R, x) {
        return [[f32::NAN; C]; R];
    }
    // SAFETY: handed out by `q8_tiles` only after `level()` found AVX2,
    // FMA and F16C (and AVX512-VNNI/VL for VNNI = true); `tile_fits`
    // checked every super-block the kernel reads.
    unsafe {
        if VNNI {
            x86::tile_vnni::<FMT, R, C>(w, rb, x)
        } else {
            x86::tile_avx2::<FMT, R, C>(w, rb, x)
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::super::dot::x86::{f16, hsum, mul_u8i8};
    use super::{Q4_K, QK, XRow, get_scale_min_k4};
    use std::arch::x86_64::*;

    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn tile_avx2<const FMT: u8, const R: usize, const C: usize>(
        w: &[u8],
        rb: usize,
        x: &[XRow<'_>; C],
    ) -> [[f32; C]; R] {
        // SAFETY: forwarded from the caller.
        unsafe { tile::<FMT, R, C, false>(w, rb, x) }
    }

    #[target_feature(enable = "avx2,fma,f16c,avx512vnni,avx512vl")]
    pub unsafe fn tile_vnni<const FMT: u8, const R: usize, const C: usize>(
        w: &[u8],
        rb: usize,
        x: &[XRow<'_>; C],
    ) -> [[f32; C]; R] {
        // SAFETY: forwarded from the caller.
        unsafe { tile::<FMT, R, C, true>(w, rb, x) }
    }

    #[inline(always)]
    unsafe fn tile<const FMT: u8, const R: usize, const C: usize, const VNNI: bool>(
        w: &[u8],
        rb: usize,
        x: &[XRow<'_>; C],
    ) -> [[f32; C]; R] {
        let nsb = x[0].d.len() / 8;
        let bytes = if FMT == Q4_K { 144 } else { 210 };
        let mut bias = [[0f32; C]; R];
        // SAFETY: super-block sb of weight row r is w[r·rb + sb·bytes..]
        // [..bytes] and activation block b of row c is x[c].q[32b..32b+32],
        // all in bounds (`tile_fits`); d and s have nsb·8 entries.
        unsafe {
            let mut acc = [[_mm256_setzero_ps(); C]; R];
            let m4 = _mm256_set1_epi8(0x0F);
            let m2 = _mm256_set1_epi8(3);
            let o32 = _mm256_set1_epi8(32);
            // Macros, not closures: a closure's intrinsics would not inherit
            // the calling function's target features.
            macro_rules! xload {
                ($c:expr, $b:expr) => {
                    _mm256_loadu_si256(x[$c].q.as_ptr().add($b * QK) as *const __m256i)
                };
            }
            macro_rules! high {
                ($qh:expr, $sh:literal) => {
                    _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16($qh, $sh), m2), 4)
                };
            }
            for sb in 0..nsb {
                for r in 0..R {
                    let blk = w.as_ptr().add(r * rb + sb * bytes);
                    _mm_prefetch::<_MM_HINT_T0>(blk.wrapping_add(2 * R * rb) as *const i8);
                    _mm_prefetch::<_MM_HINT_T0>(blk.wrapping_add(2 * R * rb + 128) as *const i8);
                    if FMT == Q4_K {
                        let (d, dmin) = (f16(blk), f16(blk.add(2)));
                        let mut s = [0u8; 12];
                        std::ptr::copy_nonoverlapping(blk.add(4), s.as_mut_ptr(), 12);
                        for j in 0..4 {
                            let (sc1, mn1) = get_scale_min_k4(2 * j, &s);
                            let (sc2, mn2) = get_scale_min_k4(2 * j + 1, &s);
                            let q = _mm256_loadu_si256(blk.add(16 + 32 * j) as *const __m256i);
                            let lo = _mm256_and_si256(q, m4);
                            let hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
                            let (b1, b2) = (sb * 8 + 2 * j, sb * 8 + 2 * j + 1);
                            for c in 0..C {
                                let (d1, d2) =
                                    (*x[c].d.get_unchecked(b1), *x[c].d.get_unchecked(b2));
                                let p1 = _mm256_cvtepi32_ps(mul_u8i8::<VNNI>(lo, xload!(c, b1)));
                                let p2 = _mm256_cvtepi32_ps(mul_u8i8::<VNNI>(hi, xload!(c, b2)));
                                acc[r][c] = _mm256_fmadd_ps(
                                    _mm256_set1_ps(d * sc1 as f32 * d1),
                                    p1,
                                    acc[r][c],
                                );
                                acc[r][c] = _mm256_fmadd_ps(
                                    _mm256_set1_ps(d * sc2 as f32 * d2),
                                    p2,
                                    acc[r][c],
                                );
                                bias[r][c] -= dmin
                                    * (mn1 as f32 * *x[c].s.get_unchecked(b1)
                                        + mn2 as f32 * *x[c].s.get_unchecked(b2));
                            }
                        }
                    } else {
                        let d = f16(blk.add(208));
                        for h in 0..2 {
                            let ql0 = _mm256_loadu_si256(blk.add(64 * h) as *const __m256i);
                            let ql1 = _mm256_loadu_si256(blk.add(64 * h + 32) as *const __m256i);
                            let qh = _mm256_loadu_si256(blk.add(128 + 32 * h) as *const __m256i);
                            let vals = [
                                _mm256_or_si256(_mm256_and_si256(ql0, m4), high!(qh, 0)),
                                _mm256_or_si256(_mm256_and_si256(ql1, m4), high!(qh, 2)),
                                _mm256_or_si256(
                                    _mm256_and_si256(_mm256_srli_epi16(ql0, 4), m4),
                                    high!(qh, 4),
                                ),
                                _mm256_or_si256(
                                    _mm256_and_si256(_mm256_srli_epi16(ql1, 4), m4),
                                    high!(qh, 6),
                                ),
                            ];
                            for (t, v) in vals.iter().enumerate() {
                                let wv = _mm256_sub_epi8(*v, o32);
                                let aw = _mm256_sign_epi8(wv, wv);
                                let sc = blk.add(192 + 8 * h + 2 * t);
                                let (s0, s1) = (*sc as i8 as f32, *sc.add(1) as i8 as f32);
                                let b = sb * 8 + 4 * h + t;
                                for c in 0..C {
                                    let dx = d * *x[c].d.get_unchecked(b);
                                    let p =
                                        mul_u8i8::<VNNI>(aw, _mm256_sign_epi8(xload!(c, b), wv));
                                    let scale =
                                        _mm256_set_m128(_mm_set1_ps(dx * s1), _mm_set1_ps(dx * s0));
                                    acc[r][c] =
                                        _mm256_fmadd_ps(scale, _mm256_cvtepi32_ps(p), acc[r][c]);
                                }
                            }
                        }
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
    }
}
