//! Round-trip accuracy, edge cases and bad-input handling of the CPU quantizers.
//! Byte-exactness against gguf-py lives in `tests/quant_gguf.rs`.

use super::*;

/// splitmix64: tiny, seedable, good enough for test data.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in (0, 1].
    fn uniform(&mut self) -> f64 {
        ((self.next_u64() >> 11) + 1) as f64 / (1u64 << 53) as f64
    }
    /// Standard normal (Box-Muller).
    fn normal(&mut self) -> f32 {
        let (u1, u2) = (self.uniform(), self.uniform());
        ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
    }
    fn normals(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| self.normal()).collect()
    }
}

/// `||y - x|| / ||x||`.
fn rms_rel_err(x: &[f32], y: &[f32]) -> f64 {
    let num: f64 = x.iter().zip(y).map(|(a, b)| f64::from(a - b).powi(2)).sum();
    let den: f64 = x.iter().map(|a| f64::from(*a).powi(2)).sum();
    (num / den).sqrt()
}

fn round_trip(dtype: DType, x: &[f32]) -> Vec<f32> {
    let bytes = quantize(dtype, x).unwrap();
    assert_eq!(bytes.len(), dtype.row_bytes(x.len()).unwrap());
    dequantize(dtype, &bytes, x.len()).unwrap()
}

const ALL_FLOAT_WEIGHTS: [DType; 14] = [
    DType::F16,
    DType::BF16,
    DType::Q8_0,
    DType::Q4_0,
    DType::Q4_1,
    DType::Q5_0,
    DType::Q5_1,
    DType::Q2_K,
    DType::Q3_K,
    DType::Q4_K,
    DType::Q5_K,
    DType::Q6_K,
    DType::IQ4_NL,
    DType::IQ4_XS,
];

/// (dtype, bound, measured): see [`round_trip_error_on_normal_data`].
const ROUND_TRIP: [(DType, f64, f64); 14] = [
    (DType::F16, 2.7e-4, 2.1e-4),
    (DType::BF16, 2.1e-3, 1.67e-3),
    (DType::Q8_0, 0.0067, 0.00534),
    (DType::Q4_0, 0.107, 0.0851),
    (DType::Q4_1, 0.098, 0.0779),
    (DType::Q5_0, 0.054, 0.0426),
    (DType::Q5_1, 0.048, 0.0376),
    (DType::Q2_K, 0.37, 0.295),
    (DType::Q3_K, 0.19, 0.151),
    (DType::Q4_K, 0.089, 0.0711),
    (DType::Q5_K, 0.045, 0.0359),
    (DType::Q6_K, 0.022, 0.0177),
    (DType::IQ4_NL, 0.096, 0.0761),
    (DType::IQ4_XS, 0.096, 0.0767),
];

/// Round-trip RMS relative error `||y - x|| / ||x||` on 64 Ki standard normals
/// (splitmix64 seed 42).
///
/// Each bound is the figure measured when it was set (third column; seeds 1, 2, 3
/// agree to within 1%) plus ~25% headroom, so a real regression fails but
/// harmless float reordering does not. Rough theory, σ = 1, rounding error of
/// step s has rms s/√12:
/// * F16 / BF16: 11 / 8 significand bits → ≈ 2e-4 / 1.7e-3.
/// * Q8_0: s = amax/127 with amax ≈ 2.1 over 32 normals → ≈ 0.5%.
/// * Q4_0: s = amax/8 → ≈ 8.5% (the signed max uses one end of the range only).
/// * Q4_1: s = (max - min)/15 → ≈ 7.8%.
/// * Q4_K: least-squares fit per 32 (better than Q4_1's min/max), but 6-bit
///   sub-block scales → ≈ 7.1%.
/// * Q6_K: s ≈ amax/32 per 16 elements, 8-bit sub-block scales → ≈ 1.8%.
/// * Q5_0 / Q5_1 / Q5_K: one bit more than Q4_0 / Q4_1 / Q4_K → about half
///   their error (4.3%, 3.8%, 3.6%).
/// * Q3_K / Q2_K: 3 and 2 bits per weight → 15% and 30%.
/// * IQ4_NL / IQ4_XS: 16 non-uniform levels, denser near zero, fitted per 32
///   → 7.6%, between Q4_K and Q4_1.

#[test]
fn round_trip_error_on_normal_data() {
    let x = Rng(42).normals(65536);
    let table = ROUND_TRIP;
    let errs: Vec<f64> = table
        .iter()
        .map(|(dtype, _, _)| rms_rel_err(&x, &round_trip(*dtype, &x)))
        .collect();
    for ((dtype, bound, measured), err) in table.iter().zip(&errs) {
        eprintln!("{dtype}: rms rel err {err:.5} (bound {bound}, measured {measured})");
    }
    for ((dtype, bound, _), err) in table.iter().zip(&errs) {
        assert!(err < bound, "{dtype}: rms rel err {err} >= {bound}");
    }
    assert_eq!(round_trip(DType::F32, &x), x);
}

/// Block scales are per block, so the error is scale-free: data at 1e-3 and at
/// 1e3 round-trip as well as at 1 (within f16 scale range).
#[test]
fn round_trip_error_is_scale_free() {
    let base = Rng(7).normals(4096);
    for dtype in ALL_FLOAT_WEIGHTS {
        let e1 = rms_rel_err(&base, &round_trip(dtype, &base));
        for s in [1e-3f32, 1e3] {
            let x: Vec<f32> = base.iter().map(|v| v * s).collect();
            let e = rms_rel_err(&x, &round_trip(dtype, &x));
            assert!(e < e1 * 1.25 + 1e-6, "{dtype} at scale {s}: {e} vs {e1}");
        }
    }
}

#[test]
fn all_zero_blocks_decode_to_exact_zero() {
    for dtype in ALL_FLOAT_WEIGHTS {
        let x = vec![0.0f32; 512];
        let y = round_trip(dtype, &x);
        assert!(y.iter().all(|v| *v == 0.0), "{dtype}: {:?}", &y[..8]);
    }
}

#[test]
fn constant_blocks_round_trip_closely() {
    for c in [0.7f32, -0.7, 3.25, -1e-2] {
        let x = vec![c; 512];
        for dtype in ALL_FLOAT_WEIGHTS {
            let y = round_trip(dtype, &x);
            // f16 scale rounding (2^-11 relative) dominates; 6-bit sub-scales of the
            // K formats add at most a few 1e-3.
            let tol = if matches!(dtype, DType::BF16) {
                4e-3
            } else {
                1e-2
            };
            for v in &y {
                assert!((v - c).abs() <= tol * c.abs(), "{dtype} const {c}: got {v}");
            }
        }
    }
}

/// Two huge values among unit normals, both in the first 256 elements (one
/// K-quant super-block; 32-blocks 2 and 6). Each sets its block's scale, so it
/// must survive almost exactly and nothing may become non-finite. The other
/// elements of those blocks are crushed (for Q4_K the whole super-block is: its
/// other sub-block scales round to 0 against a 6-bit max of 1000/15), so only
/// the clean data after the first 256 elements is checked for accuracy.
#[test]
fn single_huge_outlier_survives() {
    let mut x = Rng(3).normals(768);
    x[77] = 1000.0;
    x[200] = -1000.0;
    for dtype in ALL_FLOAT_WEIGHTS {
        let y = round_trip(dtype, &x);
        assert!(
            y.iter().all(|v| v.is_finite()),
            "{dtype}: non-finite output"
        );
        // Q3_K's and IQ4_XS's 6-bit signed sub-block scales run -32..=31
        // against the largest: of two outliers of opposite sign, one gets
        // 31/32 of its scale (ggml's formats; Kiln's bytes equal ggml's).
        let tol = if matches!(dtype, DType::Q3_K | DType::IQ4_XS) {
            0.035
        } else {
            0.02
        };
        for i in [77, 200] {
            let rel = ((y[i] - x[i]) / x[i]).abs();
            assert!(rel < tol, "{dtype}: outlier {} -> {} ({rel})", x[i], y[i]);
        }
        // As on normal data, with the 2- and 3-bit formats' own bounds.
        let bound = ROUND_TRIP
            .iter()
            .find(|r| r.0 == dtype)
            .map_or(0.15, |r| r.1.max(0.15));
        let err = rms_rel_err(&x[256..], &y[256..]);
        assert!(err < bound, "{dtype}: clean data err {err}");
    }
}

#[test]
fn q8_0_rounds_ties_away_from_zero() {
    // amax 127 gives d = 1 exactly, so x*id = x and ties are exact.
    let mut x: Vec<f32> = (0..32).map(|i| i as f32 - 15.5).collect();
    x[0] = 127.0;
    let b = quantize(DType::Q8_0, &x).unwrap();
    assert_eq!(&b[..2], &half::f16::ONE.to_le_bytes());
    assert_eq!(b[2 + 1] as i8, -15); // -14.5 -> -15
    assert_eq!(b[2 + 16] as i8, 1); // 0.5 -> 1
    assert_eq!(b[2 + 31] as i8, 16); // 15.5 -> 16
}

#[test]
fn nearest_int_matches_ggml_magic_number_trick() {
    // ggml: val = f + 12582912.f; bits & 0x7fffff - 0x400000 (valid for |f| < 2^22).
    let ggml = |f: f32| ((f + 12_582_912.0).to_bits() & 0x007f_ffff) as i32 - 0x0040_0000;
    let mut rng = Rng(11);
    let mut vals: Vec<f32> = (-40..=40).map(|i| i as f32 * 0.25).collect();
    vals.extend((0..2000).map(|_| rng.normal() * 100.0));
    vals.extend([4_194_303.0, -4_194_303.0, 1e-30, -0.0]);
    for v in vals {
        assert_eq!(nearest_int(v), ggml(v), "{v}");
    }
}

#[test]
fn wrong_byte_lengths_are_errors() {
    for dtype in DType::WEIGHTS {
        let n = 512;
        let good = dtype.row_bytes(n).unwrap();
        for len in [0, 1, good - 1, good + 1, good * 2] {
            let bytes = vec![0u8; len];
            let err = dequantize(dtype, &bytes, n).unwrap_err();
            assert!(
                matches!(err, KilnError::ByteLength { .. }),
                "{dtype} {len}: {err}"
            );
            let mut out = vec![0.0; n];
            assert!(dequantize_into(dtype, &bytes, &mut out).is_err());
        }
    }
    // Absurd element counts fail cleanly instead of overflowing or allocating.
    assert!(dequantize(DType::F32, &[], usize::MAX).is_err());
    assert!(dequantize(DType::Q4_K, &[0; 144], usize::MAX - 255).is_err());
}

#[test]
fn misaligned_lengths_are_errors() {
    for dtype in DType::WEIGHTS.into_iter().filter(|d| d.is_quantized()) {
        let bs = dtype.block_size();
        for n in [1, bs - 1, bs + 1, 3 * bs / 2] {
            let e = quantize(dtype, &vec![1.0; n]).unwrap_err();
            assert!(
                matches!(e, KilnError::BlockMisaligned { .. }),
                "{dtype}: {e}"
            );
            let e = dequantize(dtype, &vec![0; dtype.block_bytes()], n).unwrap_err();
            assert!(
                matches!(e, KilnError::BlockMisaligned { .. }),
                "{dtype}: {e}"
            );
        }
    }
}

#[test]
fn u32_is_unsupported() {
    let e = dequantize(DType::U32, &[0; 8], 2).unwrap_err();
    assert!(matches!(e, KilnError::UnsupportedDType { .. }), "{e}");
    let e = quantize(DType::U32, &[1.0, 2.0]).unwrap_err();
    assert!(matches!(e, KilnError::UnsupportedDType { .. }), "{e}");
}

#[test]
fn non_finite_input_is_rejected_by_block_formats() {
    for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        let mut x = Rng(5).normals(512);
        x[300] = bad;
        for dtype in [
            DType::Q8_0,
            DType::Q4_0,
            DType::Q4_1,
            DType::Q4_K,
            DType::Q6_K,
        ] {
            let e = quantize(dtype, &x).unwrap_err();
            assert!(matches!(e, KilnError::BadParam { .. }), "{dtype}: {e}");
            assert!(e.to_string().contains("element 300"), "{e}");
        }
        // Float formats convert it, as IEEE does.
        let y = round_trip(DType::F16, &x);
        assert_eq!(y[300].is_nan(), bad.is_nan());
        assert_eq!(
            round_trip(DType::BF16, &x)[300].to_bits() >> 16,
            y[300].to_bits() >> 16
        );
    }
}

#[test]
fn scales_beyond_f16_range_are_rejected() {
    // Q8_0: d = 1e7/127 > 65504; Q4_1: m = -1e5.
    let e = quantize(DType::Q8_0, &[1e7; 32]).unwrap_err();
    assert!(e.to_string().contains("block 0"), "{e}");
    let mut x = vec![0.0f32; 32];
    x[3] = -1e5;
    assert!(quantize(DType::Q4_1, &x).is_err());
    for dtype in [DType::Q4_0, DType::Q4_K, DType::Q6_K] {
        let x = vec![3e38f32; dtype.block_size()];
        assert!(quantize(dtype, &x).is_err(), "{dtype}");
    }
}

/// Arbitrary bytes (NaN/inf/subnormal scales included) never panic.
#[test]
fn garbage_bytes_never_panic() {
    let mut rng = Rng(9);
    for dtype in DType::WEIGHTS {
        let n = 1024;
        for round in 0..8 {
            let mut bytes: Vec<u8> = (0..dtype.row_bytes(n).unwrap())
                .map(|_| rng.next_u64() as u8)
                .collect();
            if round == 0 {
                bytes.fill(0xFF); // f16 NaN scales, max nibbles
            }
            let y = dequantize(dtype, &bytes, n).unwrap();
            assert_eq!(y.len(), n);
        }
    }
}

#[test]
fn block_functions_check_slice_lengths() {
    type Pair = (DequantFn, QuantFn, usize, usize);
    let fns: [Pair; 5] = [
        (q8_0::dequantize_block, q8_0::quantize_block, 32, 34),
        (q4_0::dequantize_block, q4_0::quantize_block, 32, 18),
        (q4_1::dequantize_block, q4_1::quantize_block, 32, 20),
        (q4_k::dequantize_block, q4_k::quantize_block, 256, 144),
        (q6_k::dequantize_block, q6_k::quantize_block, 256, 210),
    ];
    for (deq, quant, ne, nb) in fns {
        let x = Rng(1).normals(ne);
        let mut b = vec![0u8; nb];
        quant(&x, &mut b).unwrap();
        let mut y = vec![0.0f32; ne];
        deq(&b, &mut y).unwrap();
        assert!(deq(&b[1..], &mut y).is_err());
        assert!(deq(&b, &mut y[1..]).is_err());
        assert!(quant(&x[1..], &mut b).is_err());
        assert!(quant(&x, &mut vec![0u8; nb + 1]).is_err());
    }
}

#[test]
fn empty_input_is_fine() {
    for dtype in DType::WEIGHTS {
        assert!(quantize(dtype, &[]).unwrap().is_empty());
        assert!(dequantize(dtype, &[], 0).unwrap().is_empty());
    }
}
