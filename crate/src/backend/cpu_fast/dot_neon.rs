//! The integer tiles and the f32 dot product on aarch64 NEON (see [`super`]
//! for the layout). NEON is part of the aarch64 baseline; the Armv8.2 dot
//! product (`sdot`, `DOT = true`) is chosen at run time where the CPU has
//! it, else bytes are widened by `smull` and pair-added.

use super::{Q4_0, Q4_1, QK, XRow, block_bytes, f16_at};
use core::arch::aarch64::*;

/// `Σ a·b` in f32 (two 4-lane accumulators, fused multiply-add).
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let main = n / 8 * 8;
    // SAFETY: NEON is baseline on aarch64; every load reads [i, i + 8) with
    // i + 8 ≤ main ≤ both lengths.
    let mut s = unsafe {
        let (mut s0, mut s1) = (vdupq_n_f32(0.0), vdupq_n_f32(0.0));
        let mut i = 0;
        while i < main {
            s0 = vfmaq_f32(
                s0,
                vld1q_f32(a.as_ptr().add(i)),
                vld1q_f32(b.as_ptr().add(i)),
            );
            s1 = vfmaq_f32(
                s1,
                vld1q_f32(a.as_ptr().add(i + 4)),
                vld1q_f32(b.as_ptr().add(i + 4)),
            );
            i += 8;
        }
        vaddvq_f32(vaddq_f32(s0, s1))
    };
    for i in main..n {
        s += a[i] * b[i];
    }
    s
}

/// `Σ a·b` over 16 signed bytes as four i32 lanes, without `sdot`.
#[inline(always)]
unsafe fn dot16_widen(a: int8x16_t, b: int8x16_t) -> int32x4_t {
    // SAFETY: register-only NEON (baseline). |a·b| ≤ 128·127 fits i16.
    unsafe {
        let lo = vmull_s8(vget_low_s8(a), vget_low_s8(b));
        let hi = vmull_high_s8(a, b);
        vaddq_s32(vpaddlq_s16(lo), vpaddlq_s16(hi))
    }
}

/// `acc + Σ a·b` by `sdot` (inline assembly: the `vdotq_s32` intrinsic is
/// not stable Rust yet).
#[inline]
#[target_feature(enable = "dotprod")]
unsafe fn dot16_sdot(acc: int32x4_t, a: int8x16_t, b: int8x16_t) -> int32x4_t {
    let mut r = acc;
    // SAFETY: registers only; the caller's CPU has the dot product.
    unsafe {
        core::arch::asm!(
            "sdot {r:v}.4s, {a:v}.16b, {b:v}.16b",
            r = inout(vreg) r,
            a = in(vreg) a,
            b = in(vreg) b,
            options(pure, nomem, nostack),
        );
    }
    r
}

/// `R` weight rows × `C` tokens.
///
/// # Safety
/// The caller checked the bounds (`tile_fits`); with `DOT` the CPU has the
/// dot-product extension.
#[inline(always)]
#[allow(clippy::needless_range_loop)] // fixed-size tiles, indexed by design
unsafe fn tile_body<const FMT: u8, const R: usize, const C: usize, const DOT: bool>(
    w: &[u8],
    rb: usize,
    x: &[XRow<'_>; C],
) -> [[f32; C]; R] {
    let nb = x[0].d.len();
    let bb = block_bytes(FMT);
    // SAFETY: every pointer below stays inside the blocks `tile_fits`
    // checked (a Q4 block's 16 quant bytes end at its end, a Q8_0 block's
    // two 16-byte halves too; x blocks are QK bytes).
    unsafe {
        let mut acc = [[vdupq_n_f32(0.0); C]; R];
        let mut bias = [[0f32; C]; R];
        let mask = vdupq_n_u8(0x0F);
        for b in 0..nb {
            let mut xv = [[vdupq_n_s8(0); 2]; C];
            for c in 0..C {
                let q = x[c].q.as_ptr().add(b * QK);
                xv[c] = [vld1q_s8(q), vld1q_s8(q.add(16))];
            }
            for r in 0..R {
                let blk = &w[r * rb + b * bb..][..bb];
                let d = f16_at(blk, 0);
                let (w0, w1, m) = if FMT == Q4_0 || FMT == Q4_1 {
                    let q = vld1q_u8(blk.as_ptr().add(if FMT == Q4_1 { 4 } else { 2 }));
                    let lo = vreinterpretq_s8_u8(vandq_u8(q, mask));
                    let hi = vreinterpretq_s8_u8(vshrq_n_u8::<4>(q));
                    let m = if FMT == Q4_1 {
                        f16_at(blk, 2)
                    } else {
                        -8.0 * d
                    };
                    (lo, hi, m)
                } else {
                    let p = blk.as_ptr().add(2) as *const i8;
                    (vld1q_s8(p), vld1q_s8(p.add(16)), 0.0)
                };
                for c in 0..C {
                    let s = if DOT {
                        dot16_sdot(dot16_sdot(vdupq_n_s32(0), w0, xv[c][0]), w1, xv[c][1])
                    } else {
                        vaddq_s32(dot16_widen(w0, xv[c][0]), dot16_widen(w1, xv[c][1]))
                    };
                    let scale = vdupq_n_f32(d * x[c].d[b]);
                    acc[r][c] = vfmaq_f32(acc[r][c], vcvtq_f32_s32(s), scale);
                    bias[r][c] += m * x[c].s[b];
                }
            }
        }
        let mut out = [[0f32; C]; R];
        for r in 0..R {
            for c in 0..C {
                out[r][c] = vaddvq_f32(acc[r][c]) + bias[r][c];
            }
        }
        out
    }
}

/// [`tile_body`] without `sdot`.
///
/// # Safety
/// The caller checked the bounds.
pub unsafe fn tile_neon<const FMT: u8, const R: usize, const C: usize>(
    w: &[u8],
    rb: usize,
    x: &[XRow<'_>; C],
) -> [[f32; C]; R] {
    // SAFETY: as the caller vouched.
    unsafe { tile_body::<FMT, R, C, false>(w, rb, x) }
}

/// [`tile_body`] with `sdot`.
///
/// # Safety
/// The caller checked the bounds and that the CPU has `dotprod`.
#[target_feature(enable = "dotprod")]
pub unsafe fn tile_dot<const FMT: u8, const R: usize, const C: usize>(
    w: &[u8],
    rb: usize,
    x: &[XRow<'_>; C],
) -> [[f32; C]; R] {
    // SAFETY: as the caller vouched.
    unsafe { tile_body::<FMT, R, C, true>(w, rb, x) }
}
