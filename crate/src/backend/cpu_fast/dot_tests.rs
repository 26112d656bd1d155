//! Tests of [`super`]: every tile set this CPU runs against dequantized
//! products, the self-test, bounds.

use super::*;
use crate::quant;

#[test]
fn the_selected_tiles_pass_the_self_test() {
    tiles_self_test().unwrap();
}

/// The 4×4 block (weight rows × tokens) computed with each tile shape.
fn tiles_of(t: &Tiles, w: &[u8], rb: usize, x: &[XRow<'_>; 4]) -> Vec<[[f32; 4]; 4]> {
    let mut by = vec![[[0f32; 4]; 4]; 4];
    for r in 0..4 {
        by[0][r] = (t.r1c4)(&w[r * rb..], rb, x)[0];
        for c in 0..4 {
            by[1][r][c] = (t.r1c1)(&w[r * rb..], rb, &[x[c]])[0][0];
            by[2][r][c] = (t.r4c1)(w, rb, &[x[c]])[r][0];
        }
    }
    for r in [0, 2] {
        let two = (t.r2c4)(&w[r * rb..], rb, x);
        by[3][r] = two[0];
        by[3][r + 1] = two[1];
    }
    by
}

/// Every tile against the f64 product of the dequantized weights and
/// the dequantized 8-bit activations: they compute the same sum, so
/// the only difference is f32 rounding.
/// Every tile set this CPU can run for `dt`: the portable one, the
/// selected one, and each SIMD level the CPU has.
fn all_sets(dt: DType) -> Vec<(&'static str, &'static Tiles)> {
    let mut sets = vec![
        ("portable", portable_tiles(dt).unwrap()),
        ("selected", q8_tiles(dt).unwrap()),
    ];
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
        let i = format_index(dt).unwrap();
        let (a, v) = (AVX2_ALL[i], VNNI_ALL[i]);
        sets.push(("avx2", a));
        if is_x86_feature_detected!("avx512vnni") && is_x86_feature_detected!("avx512vl") {
            sets.push(("vnni", v));
        }
    }
    #[cfg(target_arch = "aarch64")]
    {
        let i = format_index(dt).unwrap();
        sets.push(("neon", NEON_ALL[i]));
        if std::arch::is_aarch64_feature_detected!("dotprod") {
            sets.push(("neon+dotprod", NEON_DOT_ALL[i]));
        }
    }
    sets
}

/// aarch64 always has NEON: the kernels must not fall back to portable.
#[cfg(target_arch = "aarch64")]
#[test]
fn aarch64_selects_neon() {
    if std::env::var_os("KILN_CPU_PORTABLE").is_none() {
        eprintln!("kernels: {}", simd_level());
        assert!(simd_level().starts_with("neon"), "{}", simd_level());
    }
}

/// Every tile against the f64 product of the dequantized weights and
/// the dequantized 8-bit activations: they compute the same sum, so
/// the only difference is f32 rounding.
#[test]
fn integer_tiles_match_dequantized_products() {
    let k = 256 * 2;
    let mut rng = crate::rng::Rng::new(11);
    let xs: Vec<f32> = (0..4 * k).map(|_| rng.normal() * 2.0).collect();
    let w: Vec<f32> = (0..4 * k).map(|_| rng.normal()).collect();
    let mut xq = Q8Rows::default();
    xq.quantize(&xs);
    let nb = k / QK;
    let rows: Vec<XRow<'_>> = (0..4)
        .map(|i| {
            let (q, d, s) = xq.row(i, nb);
            XRow { q, d, s }
        })
        .collect();
    let x = [rows[0], rows[1], rows[2], rows[3]];
    let xdq: Vec<f64> = (0..4 * k)
        .map(|i| xq.q[i] as f64 * xq.d[i / QK] as f64)
        .collect();
    for dt in FORMATS {
        let rb = dt.row_bytes(k).unwrap();
        let wb: Vec<u8> = w
            .chunks(k)
            .flat_map(|r| quant::quantize(dt, r).unwrap())
            .collect();
        let wd = quant::dequantize(dt, &wb, 4 * k).unwrap();
        for (name, t) in all_sets(dt) {
            for (v, got) in tiles_of(t, &wb, rb, &x).into_iter().enumerate() {
                for r in 0..4 {
                    for c in 0..4 {
                        let pairs = wd[r * k..(r + 1) * k].iter().zip(&xdq[c * k..(c + 1) * k]);
                        let want: f64 = pairs.clone().map(|(a, b)| *a as f64 * b).sum();
                        let scale: f64 = pairs.map(|(a, b)| (*a as f64 * b).abs()).sum();
                        let g = got[r][c] as f64;
                        assert!(
                            (g - want).abs() <= 1e-5 * scale,
                            "{dt} {name} layout {v} [{r}][{c}]: {g} vs {want}"
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn short_operands_give_nan_not_a_read_past_the_end() {
    let mut xq = Q8Rows::default();
    xq.quantize(&[1.0; 64]);
    let (q, d, s) = xq.row(0, 2);
    let x = [XRow { q, d, s }];
    for dt in [
        DType::Q4_0,
        DType::Q4_1,
        DType::Q5_0,
        DType::Q5_1,
        DType::Q8_0,
    ] {
        let t = q8_tiles(dt).unwrap();
        assert!((t.r1c1)(&[0u8; 10], 40, &x)[0][0].is_nan(), "{dt}");
        assert!((t.r4c1)(&[0u8; 80], 40, &x)[3][0].is_nan(), "{dt}");
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
        #[cfg(target_arch = "aarch64")]
        let all = [portable::dot(&a, &b), dot_f32(&a, &b), neon::dot(&a, &b)];
        #[cfg(not(target_arch = "aarch64"))]
        let all = [portable::dot(&a, &b), dot_f32(&a, &b)];
        for got in all {
            assert!((got as f64 - want).abs() <= 1e-6 * scale.max(1.0), "n={n}");
        }
    }
}
