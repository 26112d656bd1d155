//! Dot products, the fast CPU backend's inner loops: f32·f32, and block
//! weights (Q4_0 / Q4_1 / Q8_0 here, Q4_K / Q6_K in [`super::dot_k`]) ·
//! activations quantized to 8 bits.
//!
//! Each has a portable version (plain Rust over fixed-width lane arrays,
//! which LLVM vectorizes for any target, wasm SIMD128 included) and, on
//! x86-64, an AVX2+FMA one chosen at run time; on aarch64 NEON ones
//! (Q4_0 / Q4_1 / Q8_0 and f32; `sdot` where the CPU has it). The portable versions are
//! the ones every target can fall back to, so the tests run both.
//!
//! Activations for the integer path are quantized like llama.cpp's Q8_1:
//! per block of 32, `d = max|x| / 127`, `q = round(x / d)`, and `s = d·Σq`
//! (which lets Q4_1's minimum and Q4_0's offset of 8 be applied once per
//! block instead of per element).

use std::sync::OnceLock;

#[cfg(target_arch = "x86_64")]
use super::dot_k::x86_k;
use super::dot_k::{self, portable_k};

use crate::dtype::DType;

pub const QK: usize = 32;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Level {
    Portable,
    #[cfg(target_arch = "x86_64")]
    Avx2,
    /// AVX2 plus AVX512-VNNI's `vpdpbusd` on 256-bit vectors.
    #[cfg(target_arch = "x86_64")]
    Vnni,
    /// aarch64 NEON (baseline there).
    #[cfg(target_arch = "aarch64")]
    Neon,
    /// NEON plus the Armv8.2 dot product (`sdot`).
    #[cfg(target_arch = "aarch64")]
    NeonDot,
}

pub(super) fn level() -> Level {
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
            let vnni =
                is_x86_feature_detected!("avx512vnni") && is_x86_feature_detected!("avx512vl");
            if vnni && std::env::var_os("KILN_CPU_NO_VNNI").is_none() {
                return Level::Vnni;
            }
            return Level::Avx2;
        }
        #[cfg(target_arch = "aarch64")]
        {
            let dot = std::arch::is_aarch64_feature_detected!("dotprod")
                && std::env::var_os("KILN_CPU_NO_DOTPROD").is_none();
            return if dot { Level::NeonDot } else { Level::Neon };
        }
        #[allow(unreachable_code)]
        Level::Portable
    })
}

/// The instruction set the kernels use on this machine.
pub fn simd_level() -> &'static str {
    match level() {
        Level::Portable if cfg!(all(target_arch = "wasm32", target_feature = "simd128")) => {
            "wasm-simd128"
        }
        Level::Portable if cfg!(target_arch = "wasm32") => "wasm",
        Level::Portable => "portable",
        #[cfg(target_arch = "x86_64")]
        Level::Avx2 => "avx2",
        #[cfg(target_arch = "x86_64")]
        Level::Vnni => "avx2+avx512vnni",
        #[cfg(target_arch = "aarch64")]
        Level::Neon => "neon",
        #[cfg(target_arch = "aarch64")]
        Level::NeonDot => "neon+dotprod",
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

/// One quantized activation row: per-block values, scales and `d·Σq`.
#[derive(Clone, Copy)]
pub(crate) struct XRow<'a> {
    pub q: &'a [i8],
    pub d: &'a [f32],
    pub s: &'a [f32],
}

/// `R` consecutive weight rows (`rb` bytes apart) · `C` activation rows:
/// `out[r][c]`.
pub(crate) type Tile<const R: usize, const C: usize> =
    fn(&[u8], usize, &[XRow<'_>; C]) -> [[f32; C]; R];

/// The integer-dot tiles of one weight format: decode uses 4×1 (four
/// weight rows share each activation block), prefill 2×4 (each decoded
/// weight block serves four tokens); the others cover the edges.
pub(crate) struct Tiles {
    pub r4c1: Tile<4, 1>,
    pub r1c1: Tile<1, 1>,
    pub r2c4: Tile<2, 4>,
    pub r1c4: Tile<1, 4>,
}

/// Weight formats with integer kernels: Q4_0, Q4_1, Q8_0.
const Q4_0: u8 = 0;
const Q4_1: u8 = 1;
const Q8_0: u8 = 2;
// 3 and 4: the K-quants (`dot_k`).
const Q5_0: u8 = 5;
const Q5_1: u8 = 6;

const fn block_bytes(fmt: u8) -> usize {
    match fmt {
        Q4_0 => 18,
        Q4_1 => 20,
        Q5_0 => 22,
        Q5_1 => 24,
        dot_k::Q4_K => 144,
        dot_k::Q6_K => 210,
        _ => 34,
    }
}

/// Activation blocks per weight block (8 for the K-quants' super-blocks).
const fn blocks_per(fmt: u8) -> usize {
    if fmt == dot_k::Q4_K || fmt == dot_k::Q6_K {
        8
    } else {
        1
    }
}

/// Whether a tile's operands are long enough for the blocks it reads.
pub(super) fn tile_fits<const C: usize>(
    fmt: u8,
    w: &[u8],
    rb: usize,
    rows: usize,
    x: &[XRow<'_>; C],
) -> bool {
    let nb = x[0].d.len();
    let row = nb / blocks_per(fmt) * block_bytes(fmt);
    nb.is_multiple_of(blocks_per(fmt))
        && rb >= row
        && w.len() >= (rows - 1) * rb + row
        && x.iter()
            .all(|r| r.d.len() == nb && r.s.len() >= nb && r.q.len() >= nb * QK)
}

macro_rules! tiles {
    ($f:ident, $fmt:expr $(, $extra:tt)*) => {
        Tiles {
            r4c1: $f::<{ $fmt }, 4, 1 $(, $extra)*>,
            r1c1: $f::<{ $fmt }, 1, 1 $(, $extra)*>,
            r2c4: $f::<{ $fmt }, 2, 4 $(, $extra)*>,
            r1c4: $f::<{ $fmt }, 1, 4 $(, $extra)*>,
        }
    };
}

static PORTABLE: [Tiles; 3] = [
    tiles!(portable_tile, Q4_0),
    tiles!(portable_tile, Q4_1),
    tiles!(portable_tile, Q8_0),
];
#[cfg(target_arch = "x86_64")]
static AVX2: [Tiles; 3] = [
    tiles!(x86_tile, Q4_0, false),
    tiles!(x86_tile, Q4_1, false),
    tiles!(x86_tile, Q8_0, false),
];
#[cfg(target_arch = "x86_64")]
static VNNI: [Tiles; 3] = [
    tiles!(x86_tile, Q4_0, true),
    tiles!(x86_tile, Q4_1, true),
    tiles!(x86_tile, Q8_0, true),
];

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
static WASM: [Tiles; 3] = [
    tiles!(wasm_tile, Q4_0),
    tiles!(wasm_tile, Q4_1),
    tiles!(wasm_tile, Q8_0),
];

#[cfg(target_arch = "aarch64")]
static NEON: [Tiles; 3] = [
    tiles!(neon_tile, Q4_0, false),
    tiles!(neon_tile, Q4_1, false),
    tiles!(neon_tile, Q8_0, false),
];
#[cfg(target_arch = "aarch64")]
static NEON_DOT: [Tiles; 3] = [
    tiles!(neon_tile, Q4_0, true),
    tiles!(neon_tile, Q4_1, true),
    tiles!(neon_tile, Q8_0, true),
];

static PORTABLE_5: [Tiles; 2] = [tiles!(portable_tile, Q5_0), tiles!(portable_tile, Q5_1)];
#[cfg(target_arch = "x86_64")]
static AVX2_5: [Tiles; 2] = [tiles!(x86_tile, Q5_0, false), tiles!(x86_tile, Q5_1, false)];
#[cfg(target_arch = "x86_64")]
static VNNI_5: [Tiles; 2] = [tiles!(x86_tile, Q5_0, true), tiles!(x86_tile, Q5_1, true)];

static PORTABLE_K: [Tiles; 2] = [
    tiles!(portable_k, dot_k::Q4_K),
    tiles!(portable_k, dot_k::Q6_K),
];
#[cfg(target_arch = "x86_64")]
static AVX2_K: [Tiles; 2] = [
    tiles!(x86_k, dot_k::Q4_K, false),
    tiles!(x86_k, dot_k::Q6_K, false),
];
#[cfg(target_arch = "x86_64")]
static VNNI_K: [Tiles; 2] = [
    tiles!(x86_k, dot_k::Q4_K, true),
    tiles!(x86_k, dot_k::Q6_K, true),
];

/// Per instruction set, the tiles of each of [`FORMATS`], in its order.
static PORTABLE_ALL: [&Tiles; 7] = [
    &PORTABLE[0],
    &PORTABLE[1],
    &PORTABLE_5[0],
    &PORTABLE_5[1],
    &PORTABLE[2],
    &PORTABLE_K[0],
    &PORTABLE_K[1],
];
#[cfg(target_arch = "x86_64")]
static AVX2_ALL: [&Tiles; 7] = [
    &AVX2[0], &AVX2[1], &AVX2_5[0], &AVX2_5[1], &AVX2[2], &AVX2_K[0], &AVX2_K[1],
];
#[cfg(target_arch = "x86_64")]
static VNNI_ALL: [&Tiles; 7] = [
    &VNNI[0], &VNNI[1], &VNNI_5[0], &VNNI_5[1], &VNNI[2], &VNNI_K[0], &VNNI_K[1],
];
/// wasm: SIMD128 tiles for Q4_0/Q4_1/Q8_0, the portable ones (which LLVM
/// vectorizes) for the rest.
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
static WASM_ALL: [&Tiles; 7] = [
    &WASM[0],
    &WASM[1],
    &PORTABLE_5[0],
    &PORTABLE_5[1],
    &WASM[2],
    &PORTABLE_K[0],
    &PORTABLE_K[1],
];

/// aarch64: NEON tiles for Q4_0/Q4_1/Q8_0, the portable ones (which LLVM
/// vectorizes for NEON) for the rest.
#[cfg(target_arch = "aarch64")]
static NEON_ALL: [&Tiles; 7] = [
    &NEON[0],
    &NEON[1],
    &PORTABLE_5[0],
    &PORTABLE_5[1],
    &NEON[2],
    &PORTABLE_K[0],
    &PORTABLE_K[1],
];
#[cfg(target_arch = "aarch64")]
static NEON_DOT_ALL: [&Tiles; 7] = [
    &NEON_DOT[0],
    &NEON_DOT[1],
    &PORTABLE_5[0],
    &PORTABLE_5[1],
    &NEON_DOT[2],
    &PORTABLE_K[0],
    &PORTABLE_K[1],
];

fn format_index(dtype: DType) -> Option<usize> {
    FORMATS.iter().position(|d| *d == dtype)
}

/// The portable tiles of a format (the tests' oracle).
pub(super) fn portable_tiles(dtype: DType) -> Option<&'static Tiles> {
    Some(PORTABLE_ALL[format_index(dtype)?])
}

/// The integer-dot tiles for weights of `dtype`, where there are some.
pub(crate) fn q8_tiles(dtype: DType) -> Option<&'static Tiles> {
    let i = format_index(dtype)?;
    Some(match level() {
        #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
        Level::Portable => WASM_ALL[i],
        #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
        Level::Portable => PORTABLE_ALL[i],
        #[cfg(target_arch = "x86_64")]
        Level::Avx2 => AVX2_ALL[i],
        #[cfg(target_arch = "x86_64")]
        Level::Vnni => VNNI_ALL[i],
        #[cfg(target_arch = "aarch64")]
        Level::Neon => NEON_ALL[i],
        #[cfg(target_arch = "aarch64")]
        Level::NeonDot => NEON_DOT_ALL[i],
    })
}

/// The portable tile (also the oracle for the SIMD ones in the tests).
fn portable_tile<const FMT: u8, const R: usize, const C: usize>(
    w: &[u8],
    rb: usize,
    x: &[XRow<'_>; C],
) -> [[f32; C]; R] {
    let mut out = [[f32::NAN; C]; R];
    if !tile_fits(FMT, w, rb, R, x) {
        return out;
    }
    let nb = x[0].d.len();
    let bb = block_bytes(FMT);
    for (r, o) in out.iter_mut().enumerate() {
        for (c, xr) in x.iter().enumerate() {
            let mut sum = 0f32;
            for b in 0..nb {
                let blk = &w[r * rb + b * bb..][..bb];
                let xb = &xr.q[b * QK..][..QK];
                let d = f16_at(blk, 0);
                sum += match FMT {
                    Q4_0 => {
                        d * (xr.d[b] * portable::nibble_dot(&blk[2..18], xb) as f32 - 8.0 * xr.s[b])
                    }
                    Q4_1 => {
                        d * xr.d[b] * portable::nibble_dot(&blk[4..20], xb) as f32
                            + f16_at(blk, 2) * xr.s[b]
                    }
                    Q5_0 => {
                        let qh = u32::from_le_bytes([blk[2], blk[3], blk[4], blk[5]]);
                        d * (xr.d[b] * portable::q5_dot(&blk[6..22], qh, xb) as f32
                            - 16.0 * xr.s[b])
                    }
                    Q5_1 => {
                        let qh = u32::from_le_bytes([blk[4], blk[5], blk[6], blk[7]]);
                        d * xr.d[b] * portable::q5_dot(&blk[8..24], qh, xb) as f32
                            + f16_at(blk, 2) * xr.s[b]
                    }
                    _ => d * xr.d[b] * portable::byte_dot(&blk[2..34], xb) as f32,
                };
            }
            o[c] = sum;
        }
    }
    out
}

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
fn wasm_tile<const FMT: u8, const R: usize, const C: usize>(
    w: &[u8],
    rb: usize,
    x: &[XRow<'_>; C],
) -> [[f32; C]; R] {
    if !tile_fits(FMT, w, rb, R, x) {
        return [[f32::NAN; C]; R];
    }
    wasm::tile::<FMT, R, C>(w, rb, x)
}

#[cfg(target_arch = "aarch64")]
fn neon_tile<const FMT: u8, const R: usize, const C: usize, const DOT: bool>(
    w: &[u8],
    rb: usize,
    x: &[XRow<'_>; C],
) -> [[f32; C]; R] {
    if !tile_fits(FMT, w, rb, R, x) {
        return [[f32::NAN; C]; R];
    }
    // SAFETY: `tile_fits` checked every block the kernel reads; the DOT
    // tiles are handed out by `q8_tiles` only after `level()` found
    // `dotprod`.
    unsafe {
        if DOT {
            neon::tile_dot::<FMT, R, C>(w, rb, x)
        } else {
            neon::tile_neon::<FMT, R, C>(w, rb, x)
        }
    }
}

/// The weight formats with integer-dot tiles.
pub const FORMATS: [DType; 7] = [
    DType::Q4_0,
    DType::Q4_1,
    DType::Q5_0,
    DType::Q5_1,
    DType::Q8_0,
    DType::Q4_K,
    DType::Q6_K,
];

/// Checks this machine's selected integer tiles against the portable ones
/// on pseudo-random blocks of every format (a self-test any target can run,
/// the browser's wasm SIMD128 kernels included: `tests/web.rs`).
pub fn tiles_self_test() -> Result<(), String> {
    let k = QK * 16;
    let mut rng = crate::rng::Rng::new(3);
    let xs: Vec<f32> = (0..4 * k).map(|_| rng.normal() * 3.0).collect();
    let mut xq = Q8Rows::default();
    xq.quantize(&xs);
    let rows: Vec<XRow<'_>> = (0..4)
        .map(|i| {
            let (q, d, s) = xq.row(i, k / QK);
            XRow { q, d, s }
        })
        .collect();
    let x = [rows[0], rows[1], rows[2], rows[3]];
    for dt in FORMATS {
        let w: Vec<f32> = (0..4 * k).map(|_| rng.normal()).collect();
        let wb: Vec<u8> = w
            .chunks(k)
            .flat_map(|r| crate::quant::quantize(dt, r).unwrap_or_default())
            .collect();
        let rb = dt.row_bytes(k).map_err(|e| e.to_string())?;
        let (p, t) = (
            portable_tiles(dt).ok_or("no tiles")?,
            q8_tiles(dt).ok_or("no tiles")?,
        );
        let pairs = [
            ((p.r2c4)(&wb, rb, &x)[1], (t.r2c4)(&wb, rb, &x)[1]),
            ((p.r1c4)(&wb, rb, &x)[0], (t.r1c4)(&wb, rb, &x)[0]),
            (
                [
                    (p.r4c1)(&wb, rb, &[x[2]])[3][0],
                    (p.r1c1)(&wb, rb, &[x[0]])[0][0],
                    0.0,
                    0.0,
                ],
                [
                    (t.r4c1)(&wb, rb, &[x[2]])[3][0],
                    (t.r1c1)(&wb, rb, &[x[0]])[0][0],
                    0.0,
                    0.0,
                ],
            ),
        ];
        for (want, got) in pairs {
            for (a, b) in want.iter().zip(&got) {
                // Same integer sums; the float sums differ in order only.
                let close = (a - b).abs() <= 1e-4 * a.abs().max(1.0);
                if !close || b.is_nan() {
                    return Err(format!("{dt} ({}): {b} vs portable {a}", simd_level()));
                }
            }
        }
    }
    Ok(())
}

#[cfg(target_arch = "x86_64")]
fn x86_tile<const FMT: u8, const R: usize, const C: usize, const VNNI: bool>(
    w: &[u8],
    rb: usize,
    x: &[XRow<'_>; C],
) -> [[f32; C]; R] {
    if !tile_fits(FMT, w, rb, R, x) {
        return [[f32::NAN; C]; R];
    }
    // SAFETY: handed out by `q8_tiles` only after `level()` found AVX2,
    // FMA and F16C (and AVX512-VNNI/VL for VNNI = true); `tile_fits`
    // checked every block the kernel reads.
    unsafe {
        if VNNI {
            x86::tile_vnni::<FMT, R, C>(w, rb, x)
        } else {
            x86::tile_avx2::<FMT, R, C>(w, rb, x)
        }
    }
}

/// `Σ a·b` in f32 (eight partial sums).
#[inline]
pub(crate) fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
    match level() {
        Level::Portable => portable::dot(a, b),
        #[cfg(target_arch = "x86_64")]
        Level::Avx2 | Level::Vnni => x86::dot(a, b),
        #[cfg(target_arch = "aarch64")]
        Level::Neon | Level::NeonDot => neon::dot(a, b),
    }
}

/// `y += a·x`.
#[inline]
pub(crate) fn axpy(y: &mut [f32], a: f32, x: &[f32]) {
    for (y, x) in y.iter_mut().zip(x) {
        *y += a * x;
    }
}

pub(super) fn f16_at(b: &[u8], i: usize) -> f32 {
    half::f16::from_le_bytes([b[i], b[i + 1]]).to_f32()
}

pub(crate) mod portable {
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
    pub fn nibble_dot(qs: &[u8], xq: &[i8]) -> i32 {
        let mut acc = [0i32; 16];
        for j in 0..16 {
            acc[j] = (qs[j] & 15) as i32 * xq[j] as i32 + (qs[j] >> 4) as i32 * xq[j + 16] as i32;
        }
        acc.iter().sum()
    }

    /// Σ over one Q5 block: nibbles plus the fifth bits of `qh` (bit j:
    /// element j), unsigned 0..31.
    #[inline]
    pub fn q5_dot(qs: &[u8], qh: u32, xq: &[i8]) -> i32 {
        let mut acc = [0i32; 16];
        for j in 0..16 {
            let lo = (qs[j] & 15) as i32 | (((qh >> j) & 1) << 4) as i32;
            let hi = (qs[j] >> 4) as i32 | (((qh >> (j + 16)) & 1) << 4) as i32;
            acc[j] = lo * xq[j] as i32 + hi * xq[j + 16] as i32;
        }
        acc.iter().sum()
    }

    /// Σ over one block of signed bytes.
    #[inline]
    pub fn byte_dot(qs: &[u8], xq: &[i8]) -> i32 {
        let mut acc = [0i32; 32];
        for j in 0..32 {
            acc[j] = qs[j] as i8 as i32 * xq[j] as i32;
        }
        acc.iter().sum()
    }
}

#[cfg(target_arch = "x86_64")]
pub(super) mod x86 {
    use super::{Q4_0, Q4_1, Q5_0, Q5_1, QK, XRow, block_bytes};
    use std::arch::x86_64::*;

    pub fn dot(a: &[f32], b: &[f32]) -> f32 {
        // SAFETY: only called after `level()` found AVX2 and FMA; every
        // load stays below min(a.len(), b.len()).
        unsafe { dot_avx2(a, b) }
    }

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    pub(in crate::backend::cpu_fast) unsafe fn hsum(v: __m256) -> f32 {
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_movehdup_ps(s));
        _mm_cvtss_f32(s)
    }

    #[inline]
    #[target_feature(enable = "f16c")]
    pub(in crate::backend::cpu_fast) unsafe fn f16(p: *const u8) -> f32 {
        // SAFETY: the caller passes a pointer to two readable bytes.
        unsafe {
            let h = u16::from_le_bytes([*p, *p.add(1)]) as i32;
            // Inserted into an explicit zero vector: LLVM otherwise loads
            // with `vpinsrw` into whatever register it picks, which merges
            // with that register's last value — a false dependency that
            // chained each block of a tile to the previous one's last
            // instruction (prefill tiles ran at ~1 instruction per cycle).
            _mm_cvtss_f32(_mm_cvtph_ps(_mm_insert_epi16::<0>(_mm_setzero_si128(), h)))
        }
    }

    #[target_feature(enable = "avx2,fma")]
    unsafe fn dot_avx2(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let (mut a0, mut a1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
        let mut i = 0;
        // SAFETY: every load reads i..i+8 (or +16) ≤ n.
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

    /// Byte j: 0x10 where bit j of `qh` is set (a Q5 block's fifth bits).
    #[inline(always)]
    unsafe fn fifth_bits(qh: u32) -> __m256i {
        // SAFETY: the tile functions that inline this enable AVX2.
        unsafe {
            // Byte j takes byte j/8 of qh (each 128-bit lane holds all four).
            let pick = _mm256_setr_epi8(
                0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3,
                3, 3, 3, 3,
            );
            let bytes = _mm256_shuffle_epi8(_mm256_set1_epi32(qh as i32), pick);
            let bit = _mm256_set1_epi64x(i64::from_le_bytes([1, 2, 4, 8, 16, 32, 64, 128]));
            let set = _mm256_cmpeq_epi8(_mm256_and_si256(bytes, bit), bit);
            _mm256_and_si256(set, _mm256_set1_epi8(0x10))
        }
    }

    /// 8 lanes of Σ u8·i8 over groups of four bytes.
    #[inline(always)]
    pub(in crate::backend::cpu_fast) unsafe fn mul_u8i8<const VNNI: bool>(
        w: __m256i,
        x: __m256i,
    ) -> __m256i {
        // SAFETY: the tile functions that inline this enable the features.
        unsafe {
            if VNNI {
                _mm256_dpbusd_epi32(_mm256_setzero_si256(), w, x)
            } else {
                _mm256_madd_epi16(_mm256_maddubs_epi16(w, x), _mm256_set1_epi16(1))
            }
        }
    }

    /// `R` weight rows × `C` activation rows. The caller checked that every
    /// block read is in bounds (`tile_fits`).
    #[inline(always)]
    unsafe fn tile<const FMT: u8, const R: usize, const C: usize, const VNNI: bool>(
        w: &[u8],
        rb: usize,
        x: &[XRow<'_>; C],
    ) -> [[f32; C]; R] {
        let nb = x[0].d.len();
        let bb = block_bytes(FMT);
        let mut bias = [[0f32; C]; R];
        // SAFETY: block b of weight row r is w[r·rb + b·bb..][..bb] and of
        // activation row c x[c].q[32b..32b+32], in bounds (`tile_fits`).
        unsafe {
            let mut acc = [[_mm256_setzero_ps(); C]; R];
            let mask = _mm_set1_epi8(0x0F);
            for b in 0..nb {
                let mut xv = [_mm256_setzero_si256(); C];
                let mut xd = [0f32; C];
                let mut xs = [0f32; C];
                for c in 0..C {
                    xv[c] = _mm256_loadu_si256(x[c].q.as_ptr().add(b * QK) as *const __m256i);
                    xd[c] = *x[c].d.get_unchecked(b);
                    xs[c] = *x[c].s.get_unchecked(b);
                }
                for r in 0..R {
                    let blk = w.as_ptr().add(r * rb + b * bb);
                    // The same block two tiles ahead: DRAM latency, not
                    // arithmetic, bounds a one-token product (this prefetch took a
                    // cold 3072×576 Q4_1 GEMV on one thread from 5.0 to 9.4 GB/s).
                    _mm_prefetch::<_MM_HINT_T0>(blk.wrapping_add(2 * R * rb) as *const i8);
                    let d = f16(blk);
                    if FMT == Q4_0 || FMT == Q4_1 {
                        let q = _mm_loadu_si128(
                            blk.add(if FMT == Q4_1 { 4 } else { 2 }) as *const __m128i
                        );
                        let lo = _mm_and_si128(q, mask);
                        let hi = _mm_and_si128(_mm_srli_epi16(q, 4), mask);
                        let wv = _mm256_set_m128i(hi, lo);
                        let m = if FMT == Q4_1 {
                            f16(blk.add(2))
                        } else {
                            -8.0 * d
                        };
                        for c in 0..C {
                            let p = _mm256_cvtepi32_ps(mul_u8i8::<VNNI>(wv, xv[c]));
                            acc[r][c] = _mm256_fmadd_ps(_mm256_set1_ps(d * xd[c]), p, acc[r][c]);
                            bias[r][c] += m * xs[c];
                        }
                    } else if FMT == Q5_0 || FMT == Q5_1 {
                        let qoff = if FMT == Q5_1 { 8 } else { 6 };
                        let q = _mm_loadu_si128(blk.add(qoff) as *const __m128i);
                        let lo = _mm_and_si128(q, mask);
                        let hi = _mm_and_si128(_mm_srli_epi16(q, 4), mask);
                        let qh = std::ptr::read_unaligned(blk.add(qoff - 4) as *const u32);
                        let wv =
                            _mm256_or_si256(_mm256_set_m128i(hi, lo), fifth_bits(u32::from_le(qh)));
                        let m = if FMT == Q5_1 {
                            f16(blk.add(2))
                        } else {
                            -16.0 * d
                        };
                        for c in 0..C {
                            let p = _mm256_cvtepi32_ps(mul_u8i8::<VNNI>(wv, xv[c]));
                            acc[r][c] = _mm256_fmadd_ps(_mm256_set1_ps(d * xd[c]), p, acc[r][c]);
                            bias[r][c] += m * xs[c];
                        }
                    } else {
                        let wv = _mm256_loadu_si256(blk.add(2) as *const __m256i);
                        let aw = _mm256_sign_epi8(wv, wv);
                        for c in 0..C {
                            let sx = _mm256_sign_epi8(xv[c], wv);
                            let p = _mm256_cvtepi32_ps(mul_u8i8::<VNNI>(aw, sx));
                            acc[r][c] = _mm256_fmadd_ps(_mm256_set1_ps(d * xd[c]), p, acc[r][c]);
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

#[cfg(target_arch = "aarch64")]
#[path = "dot_neon.rs"]
mod neon;
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
#[path = "dot_wasm.rs"]
mod wasm;

#[cfg(test)]
#[path = "dot_tests.rs"]
mod tests;
