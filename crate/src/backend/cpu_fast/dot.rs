//! Dot products, the fast CPU backend's inner loops: f32·f32, and block
//! weights (Q4_0 / Q4_1 / Q8_0) · activations quantized to 8 bits.
//!
//! Each has a portable version (plain Rust over fixed-width lane arrays,
//! which LLVM vectorizes for any target, wasm SIMD128 included) and, on
//! x86-64, an AVX2+FMA one chosen at run time. The portable versions are
//! the ones every target can fall back to, so the tests run both.
//!
//! Activations for the integer path are quantized like llama.cpp's Q8_1:
//! per block of 32, `d = max|x| / 127`, `q = round(x / d)`, and `s = d·Σq`
//! (which lets Q4_1's minimum and Q4_0's offset of 8 be applied once per
//! block instead of per element).

use std::sync::OnceLock;

use crate::dtype::DType;

pub const QK: usize = 32;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Level {
    Portable,
    #[cfg(target_arch = "x86_64")]
    Avx2,
}

fn level() -> Level {
    static LEVEL: OnceLock<Level> = OnceLock::new();
    *LEVEL.get_or_init(|| {
        if std::env::var_os("KILN_CPU_PORTABLE").is_some() {
            return Level::Portable;
        }
        #[cfg(target_arch = "x86_64")]
        if is_x86_feature_detected!("avx2")
            && is_x86_feature_detected!("fma")
            && is_x86_feature_detected!("f16c")
        {
            return Level::Avx2;
        }
        Level::Portable
    })
}

/// The instruction set the kernels use on this machine.
pub fn simd_level() -> &'static str {
    match level() {
        Level::Portable if cfg!(target_arch = "wasm32") => "wasm",
        Level::Portable => "portable",
        #[cfg(target_arch = "x86_64")]
        Level::Avx2 => "avx2",
    }
}

/// Activation rows quantized to 8 bits per block of [`QK`].
#[derive(Default)]
pub(crate) struct Q8Rows {
    pub q: Vec<i8>,
    /// Per block: the scale `d`.
    pub d: Vec<f32>,
    /// Per block: `d·Σq`.
    pub s: Vec<f32>,
}

impl Q8Rows {
    /// Quantizes `x` (rows of `k`, a multiple of [`QK`]).
    pub fn quantize(&mut self, x: &[f32]) {
        let nb = x.len() / QK;
        self.q.resize(nb * QK, 0);
        self.d.resize(nb, 0.0);
        self.s.resize(nb, 0.0);
        for (b, xb) in x.chunks_exact(QK).enumerate() {
            let amax = xb.iter().fold(0f32, |m, v| m.max(v.abs()));
            let d = amax / 127.0;
            let id = if d > 0.0 { 1.0 / d } else { 0.0 };
            let mut sum = 0i32;
            for (q, v) in self.q[b * QK..][..QK].iter_mut().zip(xb) {
                let r = (v * id).round() as i32;
                *q = r as i8;
                sum += r;
            }
            self.d[b] = d;
            self.s[b] = d * sum as f32;
        }
    }

    /// Row `i` of rows with `nb` blocks each: (q, d, s).
    pub fn row(&self, i: usize, nb: usize) -> (&[i8], &[f32], &[f32]) {
        (
            &self.q[i * nb * QK..(i + 1) * nb * QK],
            &self.d[i * nb..(i + 1) * nb],
            &self.s[i * nb..(i + 1) * nb],
        )
    }
}

/// One weight row (its block bytes) · one quantized activation row.
pub(crate) type Q8Dot = fn(&[u8], &[i8], &[f32], &[f32]) -> f32;

/// The integer-dot kernel for weights of `dtype`, where there is one.
pub(crate) fn q8_dot(dtype: DType) -> Option<Q8Dot> {
    let portable: Q8Dot = match dtype {
        DType::Q4_0 => portable::q4_0,
        DType::Q4_1 => portable::q4_1,
        DType::Q8_0 => portable::q8_0,
        _ => return None,
    };
    Some(match level() {
        Level::Portable => portable,
        #[cfg(target_arch = "x86_64")]
        Level::Avx2 => match dtype {
            DType::Q4_0 => x86::q4_0,
            DType::Q4_1 => x86::q4_1,
            _ => x86::q8_0,
        },
    })
}

/// `Σ a·b` in f32 (eight partial sums).
#[inline]
pub(crate) fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
    match level() {
        Level::Portable => portable::dot(a, b),
        #[cfg(target_arch = "x86_64")]
        Level::Avx2 => x86::dot(a, b),
    }
}

/// `y += a·x`.
#[inline]
pub(crate) fn axpy(y: &mut [f32], a: f32, x: &[f32]) {
    for (y, x) in y.iter_mut().zip(x) {
        *y += a * x;
    }
}

fn f16_at(b: &[u8], i: usize) -> f32 {
    half::f16::from_le_bytes([b[i], b[i + 1]]).to_f32()
}

pub(crate) mod portable {
    use super::{QK, f16_at};

    pub fn dot(a: &[f32], b: &[f32]) -> f32 {
        let mut acc = [0f32; 8];
        let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
        let (ra, rb) = (ca.remainder(), cb.remainder());
        for (x, y) in ca.zip(cb) {
            for l in 0..8 {
                acc[l] += x[l] * y[l];
            }
        }
        let mut s =
            ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
        for (x, y) in ra.iter().zip(rb) {
            s += x * y;
        }
        s
    }

    /// Σ over one block of nibbles (low half: elements 0..16, high: 16..32).
    #[inline]
    fn nibble_dot(qs: &[u8], xq: &[i8]) -> i32 {
        let mut acc = [0i32; 16];
        for j in 0..16 {
            acc[j] = (qs[j] & 15) as i32 * xq[j] as i32 + (qs[j] >> 4) as i32 * xq[j + 16] as i32;
        }
        acc.iter().sum()
    }

    pub fn q4_0(w: &[u8], xq: &[i8], xd: &[f32], xs: &[f32]) -> f32 {
        let mut sum = 0f32;
        for (b, (blk, xb)) in w.chunks_exact(18).zip(xq.chunks_exact(QK)).enumerate() {
            let (d, Some(dx), Some(sx)) = (f16_at(blk, 0), xd.get(b), xs.get(b)) else {
                break;
            };
            sum += d * (dx * nibble_dot(&blk[2..18], xb) as f32 - 8.0 * sx);
        }
        sum
    }

    pub fn q4_1(w: &[u8], xq: &[i8], xd: &[f32], xs: &[f32]) -> f32 {
        let mut sum = 0f32;
        for (b, (blk, xb)) in w.chunks_exact(20).zip(xq.chunks_exact(QK)).enumerate() {
            let (Some(dx), Some(sx)) = (xd.get(b), xs.get(b)) else {
                break;
            };
            let (d, m) = (f16_at(blk, 0), f16_at(blk, 2));
            sum += d * dx * nibble_dot(&blk[4..20], xb) as f32 + m * sx;
        }
        sum
    }

    pub fn q8_0(w: &[u8], xq: &[i8], xd: &[f32], _xs: &[f32]) -> f32 {
        let mut sum = 0f32;
        for (b, (blk, xb)) in w.chunks_exact(34).zip(xq.chunks_exact(QK)).enumerate() {
            let Some(dx) = xd.get(b) else { break };
            let mut acc = [0i32; 32];
            for j in 0..32 {
                acc[j] = blk[2 + j] as i8 as i32 * xb[j] as i32;
            }
            sum += f16_at(blk, 0) * dx * acc.iter().sum::<i32>() as f32;
        }
        sum
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::QK;
    use std::arch::x86_64::*;

    // The safe wrappers below are only handed out by `q8_dot` / `dot_f32`
    // after `level()` found AVX2, FMA and F16C on this CPU.

    pub fn dot(a: &[f32], b: &[f32]) -> f32 {
        // SAFETY: AVX2/FMA present (see above); indices stay in bounds.
        unsafe { dot_avx2(a, b) }
    }

    pub fn q4_0(w: &[u8], xq: &[i8], xd: &[f32], xs: &[f32]) -> f32 {
        // SAFETY: as above; `nibbles` bounds every access by its arguments.
        unsafe { nibbles::<18, false>(w, xq, xd, xs) }
    }

    pub fn q4_1(w: &[u8], xq: &[i8], xd: &[f32], xs: &[f32]) -> f32 {
        // SAFETY: as above.
        unsafe { nibbles::<20, true>(w, xq, xd, xs) }
    }

    pub fn q8_0(w: &[u8], xq: &[i8], xd: &[f32], _xs: &[f32]) -> f32 {
        // SAFETY: as above.
        unsafe { bytes(w, xq, xd) }
    }

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn hsum(v: __m256) -> f32 {
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_movehdup_ps(s));
        _mm_cvtss_f32(s)
    }

    #[inline]
    #[target_feature(enable = "f16c")]
    unsafe fn f16(p: *const u8) -> f32 {
        // SAFETY: the caller passes a pointer to two readable bytes.
        unsafe {
            let h = u16::from_le_bytes([*p, *p.add(1)]) as i32;
            _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(h)))
        }
    }

    #[target_feature(enable = "avx2,fma")]
    unsafe fn dot_avx2(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let (mut a0, mut a1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
        let mut i = 0;
        // SAFETY: every load reads i..i+8 (or +16) < n.
        unsafe {
            while i + 16 <= n {
                a0 = _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i)), a0);
                a1 = _mm256_fmadd_ps(
                    _mm256_loadu_ps(pa.add(i + 8)),
                    _mm256_loadu_ps(pb.add(i + 8)),
                    a1,
                );
                i += 16;
            }
            if i + 8 <= n {
                a0 = _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i)), a0);
                i += 8;
            }
            let mut s = hsum(_mm256_add_ps(a0, a1));
            while i < n {
                s += *pa.add(i) * *pb.add(i);
                i += 1;
            }
            s
        }
    }

    /// Q4_0 (`BYTES` = 18, value = nibble − 8) and Q4_1 (20, d·nibble + m).
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn nibbles<const BYTES: usize, const MIN: bool>(
        w: &[u8],
        xq: &[i8],
        xd: &[f32],
        xs: &[f32],
    ) -> f32 {
        let nb = (w.len() / BYTES)
            .min(xq.len() / QK)
            .min(xd.len())
            .min(xs.len());
        let qoff = if MIN { 4 } else { 2 };
        let mask = _mm_set1_epi8(0x0F);
        let ones = _mm256_set1_epi16(1);
        let mut acc = _mm256_setzero_ps();
        let mut bias = 0f32;
        // SAFETY: block b reads w[b·BYTES..(b+1)·BYTES] and xq[32b..32b+32],
        // in bounds for b < nb.
        unsafe {
            for b in 0..nb {
                let blk = w.as_ptr().add(b * BYTES);
                let d = f16(blk);
                let q = _mm_loadu_si128(blk.add(qoff) as *const __m128i);
                let lo = _mm_and_si128(q, mask);
                let hi = _mm_and_si128(_mm_srli_epi16(q, 4), mask);
                let wv = _mm256_set_m128i(hi, lo);
                let xv = _mm256_loadu_si256(xq.as_ptr().add(b * QK) as *const __m256i);
                let p = _mm256_madd_epi16(_mm256_maddubs_epi16(wv, xv), ones);
                acc = _mm256_fmadd_ps(
                    _mm256_set1_ps(d * *xd.get_unchecked(b)),
                    _mm256_cvtepi32_ps(p),
                    acc,
                );
                bias += if MIN { f16(blk.add(2)) } else { -8.0 * d } * *xs.get_unchecked(b);
            }
            hsum(acc) + bias
        }
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn bytes(w: &[u8], xq: &[i8], xd: &[f32]) -> f32 {
        let nb = (w.len() / 34).min(xq.len() / QK).min(xd.len());
        let ones = _mm256_set1_epi16(1);
        let mut acc = _mm256_setzero_ps();
        // SAFETY: block b reads w[34b..34b+34] and xq[32b..32b+32].
        unsafe {
            for b in 0..nb {
                let blk = w.as_ptr().add(b * 34);
                let wv = _mm256_loadu_si256(blk.add(2) as *const __m256i);
                let xv = _mm256_loadu_si256(xq.as_ptr().add(b * QK) as *const __m256i);
                let aw = _mm256_sign_epi8(wv, wv);
                let sx = _mm256_sign_epi8(xv, wv);
                let p = _mm256_madd_epi16(_mm256_maddubs_epi16(aw, sx), ones);
                acc = _mm256_fmadd_ps(
                    _mm256_set1_ps(f16(blk) * *xd.get_unchecked(b)),
                    _mm256_cvtepi32_ps(p),
                    acc,
                );
            }
            hsum(acc)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant;

    /// Every kernel against the f64 product of the dequantized weights and
    /// the dequantized 8-bit activations: they compute the same sum, so the
    /// only difference is f32 rounding.
    #[test]
    fn integer_dots_match_dequantized_products() {
        let k = 32 * 7;
        let mut rng = crate::rng::Rng::new(11);
        let x: Vec<f32> = (0..k).map(|_| rng.normal() * 2.0).collect();
        let w: Vec<f32> = (0..k).map(|_| rng.normal()).collect();
        let mut xq = Q8Rows::default();
        xq.quantize(&x);
        let xdq: Vec<f64> = (0..k)
            .map(|i| xq.q[i] as f64 * xq.d[i / QK] as f64)
            .collect();
        for dt in [DType::Q4_0, DType::Q4_1, DType::Q8_0] {
            let wb = quant::quantize(dt, &w).unwrap();
            let wd = quant::dequantize(dt, &wb, k).unwrap();
            let want: f64 = wd.iter().zip(&xdq).map(|(a, b)| *a as f64 * b).sum();
            let scale: f64 = wd
                .iter()
                .zip(&xdq)
                .map(|(a, b)| (*a as f64 * b).abs())
                .sum();
            let kernels: [(&str, Q8Dot); 2] = [
                (
                    "portable",
                    match dt {
                        DType::Q4_0 => portable::q4_0,
                        DType::Q4_1 => portable::q4_1,
                        _ => portable::q8_0,
                    },
                ),
                ("selected", q8_dot(dt).unwrap()),
            ];
            for (name, f) in kernels {
                let got = f(&wb, &xq.q, &xq.d, &xq.s) as f64;
                assert!(
                    (got - want).abs() <= 1e-5 * scale,
                    "{dt} {name}: {got} vs {want}"
                );
            }
        }
    }

    #[test]
    fn f32_dots_match_f64() {
        let mut rng = crate::rng::Rng::new(5);
        for n in [0, 1, 7, 8, 15, 16, 17, 64, 100] {
            let a: Vec<f32> = (0..n).map(|_| rng.normal()).collect();
            let b: Vec<f32> = (0..n).map(|_| rng.normal()).collect();
            let want: f64 = a.iter().zip(&b).map(|(x, y)| *x as f64 * *y as f64).sum();
            let scale: f64 = a
                .iter()
                .zip(&b)
                .map(|(x, y)| (*x as f64 * *y as f64).abs())
                .sum();
            for got in [portable::dot(&a, &b), dot_f32(&a, &b)] {
                assert!((got as f64 - want).abs() <= 1e-6 * scale.max(1.0), "n={n}");
            }
        }
    }
}
