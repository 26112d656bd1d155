//! f32 register tiles shared by the convolution, spatial attention and f32
//! matrix-product kernels: one generic body per tile over a small SIMD
//! abstraction ([`Simd`]), instantiated for AVX2+FMA (x86-64, chosen at run
//! time), NEON (aarch64), wasm SIMD128 (no fused multiply-add there: `mul` then `add`) and
//! plain lane arrays (every other target, and the tests' second opinion).
//!
//! Two tile shapes:
//! * [`dot_grid`]: `y[r][c] = Σ x_r·w_c` with both operands contiguous
//!   along the reduction (NHWC convolutions, `x·Wᵀ`): 4 rows × 2 columns of
//!   vector accumulators, one horizontal sum per output at the end. The
//!   reduction may be split into equally spaced segments (a convolution's
//!   kernel rows), so the accumulators stay in registers across them.
//! * [`outer_grid`]: `y[r][j] = Σ_k a_r[k]·B[k][j]` with `B` row-major
//!   (attention's `Q·Kᵀ` on transposed keys, `P·V`): 4 rows × 2 vectors of
//!   columns, `a` broadcast, no horizontal sums.
//!
//! Both check every row's extent against its slice before any unchecked
//! load, so they are safe to call with any offsets.

#[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
use super::dot::{Level, level};

/// The reduction of one output: `n` segments of `len` values, segment `s`
/// of an x row at `s·xstep` past its start, of a w row at `s·wstep`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Segs {
    pub n: usize,
    pub len: usize,
    pub xstep: usize,
    pub wstep: usize,
}

impl Segs {
    /// One contiguous run of `len` values.
    pub fn one(len: usize) -> Segs {
        Segs {
            n: 1,
            len,
            xstep: 0,
            wstep: 0,
        }
    }

    /// Values read past a row's start (0 when there is nothing to read).
    fn span(&self, step: usize) -> usize {
        if self.n == 0 || self.len == 0 {
            0
        } else {
            (self.n - 1) * step + self.len
        }
    }
}

trait Simd {
    const L: usize;
    type V: Copy;
    unsafe fn zero() -> Self::V;
    unsafe fn load(p: *const f32) -> Self::V;
    unsafe fn splat(v: f32) -> Self::V;
    /// `a·b + c`.
    unsafe fn mul_add(a: Self::V, b: Self::V, c: Self::V) -> Self::V;
    unsafe fn store(p: *mut f32, v: Self::V);
    unsafe fn hsum(v: Self::V) -> f32;
}

/// Lane arrays that LLVM vectorizes for the target at hand.
struct Portable;

impl Simd for Portable {
    const L: usize = 4;
    type V = [f32; 4];
    #[inline(always)]
    unsafe fn zero() -> [f32; 4] {
        [0.0; 4]
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> [f32; 4] {
        // SAFETY: the caller passes 4 readable floats.
        unsafe { (p as *const [f32; 4]).read_unaligned() }
    }
    #[inline(always)]
    unsafe fn splat(v: f32) -> [f32; 4] {
        [v; 4]
    }
    #[inline(always)]
    unsafe fn mul_add(a: [f32; 4], b: [f32; 4], c: [f32; 4]) -> [f32; 4] {
        [
            a[0] * b[0] + c[0],
            a[1] * b[1] + c[1],
            a[2] * b[2] + c[2],
            a[3] * b[3] + c[3],
        ]
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: [f32; 4]) {
        // SAFETY: the caller passes 4 writable floats.
        unsafe { (p as *mut [f32; 4]).write_unaligned(v) }
    }
    #[inline(always)]
    unsafe fn hsum(v: [f32; 4]) -> f32 {
        (v[0] + v[1]) + (v[2] + v[3])
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    pub struct Avx2;

    impl super::Simd for Avx2 {
        const L: usize = 8;
        type V = __m256;
        #[inline(always)]
        unsafe fn zero() -> __m256 {
            unsafe { _mm256_setzero_ps() }
        }
        #[inline(always)]
        unsafe fn load(p: *const f32) -> __m256 {
            // SAFETY: the caller passes 8 readable floats.
            unsafe { _mm256_loadu_ps(p) }
        }
        #[inline(always)]
        unsafe fn splat(v: f32) -> __m256 {
            unsafe { _mm256_set1_ps(v) }
        }
        #[inline(always)]
        unsafe fn mul_add(a: __m256, b: __m256, c: __m256) -> __m256 {
            unsafe { _mm256_fmadd_ps(a, b, c) }
        }
        #[inline(always)]
        unsafe fn store(p: *mut f32, v: __m256) {
            // SAFETY: the caller passes 8 writable floats.
            unsafe { _mm256_storeu_ps(p, v) }
        }
        #[inline(always)]
        unsafe fn hsum(v: __m256) -> f32 {
            unsafe { super::super::dot::x86::hsum(v) }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    pub struct Avx512;

    impl super::Simd for Avx512 {
        const L: usize = 16;
        type V = __m512;
        #[inline(always)]
        unsafe fn zero() -> __m512 {
            unsafe { _mm512_setzero_ps() }
        }
        #[inline(always)]
        unsafe fn load(p: *const f32) -> __m512 {
            // SAFETY: the caller passes 16 readable floats.
            unsafe { _mm512_loadu_ps(p) }
        }
        #[inline(always)]
        unsafe fn splat(v: f32) -> __m512 {
            unsafe { _mm512_set1_ps(v) }
        }
        #[inline(always)]
        unsafe fn mul_add(a: __m512, b: __m512, c: __m512) -> __m512 {
            unsafe { _mm512_fmadd_ps(a, b, c) }
        }
        #[inline(always)]
        unsafe fn store(p: *mut f32, v: __m512) {
            // SAFETY: the caller passes 16 writable floats.
            unsafe { _mm512_storeu_ps(p, v) }
        }
        #[inline(always)]
        unsafe fn hsum(v: __m512) -> f32 {
            unsafe { _mm512_reduce_add_ps(v) }
        }
    }
}

#[cfg(target_arch = "aarch64")]
mod neon {
    use std::arch::aarch64::*;

    pub struct Neon;

    impl super::Simd for Neon {
        const L: usize = 4;
        type V = float32x4_t;
        #[inline(always)]
        unsafe fn zero() -> float32x4_t {
            unsafe { vdupq_n_f32(0.0) }
        }
        #[inline(always)]
        unsafe fn load(p: *const f32) -> float32x4_t {
            // SAFETY: the caller passes 4 readable floats.
            unsafe { vld1q_f32(p) }
        }
        #[inline(always)]
        unsafe fn splat(v: f32) -> float32x4_t {
            unsafe { vdupq_n_f32(v) }
        }
        #[inline(always)]
        unsafe fn mul_add(a: float32x4_t, b: float32x4_t, c: float32x4_t) -> float32x4_t {
            unsafe { vfmaq_f32(c, a, b) }
        }
        #[inline(always)]
        unsafe fn store(p: *mut f32, v: float32x4_t) {
            // SAFETY: the caller passes 4 writable floats.
            unsafe { vst1q_f32(p, v) }
        }
        #[inline(always)]
        unsafe fn hsum(v: float32x4_t) -> f32 {
            unsafe { vaddvq_f32(v) }
        }
    }
}

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod wasm {
    use core::arch::wasm32::*;

    pub struct Wasm;

    impl super::Simd for Wasm {
        const L: usize = 4;
        type V = v128;
        #[inline(always)]
        unsafe fn zero() -> v128 {
            f32x4_splat(0.0)
        }
        #[inline(always)]
        unsafe fn load(p: *const f32) -> v128 {
            // SAFETY: the caller passes 4 readable floats (unaligned loads
            // are allowed in wasm).
            unsafe { v128_load(p as *const v128) }
        }
        #[inline(always)]
        unsafe fn splat(v: f32) -> v128 {
            f32x4_splat(v)
        }
        #[inline(always)]
        unsafe fn mul_add(a: v128, b: v128, c: v128) -> v128 {
            f32x4_add(f32x4_mul(a, b), c)
        }
        #[inline(always)]
        unsafe fn store(p: *mut f32, v: v128) {
            // SAFETY: the caller passes 4 writable floats.
            unsafe { v128_store(p as *mut v128, v) }
        }
        #[inline(always)]
        unsafe fn hsum(v: v128) -> f32 {
            (f32x4_extract_lane::<0>(v) + f32x4_extract_lane::<1>(v))
                + (f32x4_extract_lane::<2>(v) + f32x4_extract_lane::<3>(v))
        }
    }
}

/// `R × C` dot products over `g`.
///
/// # Safety
/// Every x row `xs[r]` and w row `ws[c]` is readable for `g.span(xstep)` /
/// `g.span(wstep)` floats.
#[inline(always)]
#[allow(clippy::needless_range_loop)] // fixed-size tiles, indexed by design
unsafe fn dot_tile<S: Simd, const R: usize, const C: usize>(
    xs: [*const f32; R],
    ws: [*const f32; C],
    g: Segs,
) -> [[f32; C]; R] {
    // SAFETY: every offset below stays within the spans the caller vouched for.
    unsafe {
        let mut acc = [[S::zero(); C]; R];
        let mut tail = [[0f32; C]; R];
        let main = g.len / S::L * S::L;
        for s in 0..g.n {
            let (xo, wo) = (s * g.xstep, s * g.wstep);
            let mut i = 0;
            while i < main {
                let mut wv = [S::zero(); C];
                for c in 0..C {
                    wv[c] = S::load(ws[c].add(wo + i));
                }
                for r in 0..R {
                    let xv = S::load(xs[r].add(xo + i));
                    for c in 0..C {
                        acc[r][c] = S::mul_add(xv, wv[c], acc[r][c]);
                    }
                }
                i += S::L;
            }
            for i in main..g.len {
                for r in 0..R {
                    let xv = *xs[r].add(xo + i);
                    for c in 0..C {
                        tail[r][c] += xv * *ws[c].add(wo + i);
                    }
                }
            }
        }
        let mut out = [[0f32; C]; R];
        for r in 0..R {
            for c in 0..C {
                out[r][c] = S::hsum(acc[r][c]) + tail[r][c];
            }
        }
        out
    }
}

/// `y_r[0..CV·L] = Σ_k a_r[k] · b[k·bstep ..]`.
///
/// # Safety
/// `a[r]` is readable for `k` floats, `b` for `(k−1)·bstep + CV·L`, `y[r]`
/// writable for `CV·L`.
#[inline(always)]
#[allow(clippy::needless_range_loop)] // fixed-size tiles, indexed by design
unsafe fn outer_tile<S: Simd, const R: usize, const CV: usize>(
    a: [*const f32; R],
    b: *const f32,
    bstep: usize,
    k: usize,
    y: [*mut f32; R],
) {
    // SAFETY: as the caller vouched.
    unsafe {
        let mut acc = [[S::zero(); CV]; R];
        for kk in 0..k {
            let bp = b.add(kk * bstep);
            let mut bv = [S::zero(); CV];
            for (v, bv) in bv.iter_mut().enumerate() {
                *bv = S::load(bp.add(v * S::L));
            }
            for r in 0..R {
                let av = S::splat(*a[r].add(kk));
                for v in 0..CV {
                    acc[r][v] = S::mul_add(av, bv[v], acc[r][v]);
                }
            }
        }
        for r in 0..R {
            for v in 0..CV {
                S::store(y[r].add(v * S::L), acc[r][v]);
            }
        }
    }
}

type DotFn<const R: usize, const C: usize> =
    unsafe fn([*const f32; R], [*const f32; C], Segs) -> [[f32; C]; R];
type OuterFn<const R: usize> = unsafe fn([*const f32; R], *const f32, usize, usize, [*mut f32; R]);

/// One instruction set's tiles.
struct Tiles {
    lanes: usize,
    d42: DotFn<4, 2>,
    d41: DotFn<4, 1>,
    d12: DotFn<1, 2>,
    d11: DotFn<1, 1>,
    /// 4 rows × 2 vectors, 1 row × 2 vectors, 1 row × 1 vector.
    o42: OuterFn<4>,
    o12: OuterFn<1>,
    o11: OuterFn<1>,
}

macro_rules! tiles {
    ($s:ty $(, $feat:literal)?) => {{
        $(#[target_feature(enable = $feat)])?
        unsafe fn d<const R: usize, const C: usize>(
            xs: [*const f32; R],
            ws: [*const f32; C],
            g: Segs,
        ) -> [[f32; C]; R] {
            unsafe { dot_tile::<$s, R, C>(xs, ws, g) }
        }
        $(#[target_feature(enable = $feat)])?
        unsafe fn o<const R: usize, const CV: usize>(
            a: [*const f32; R],
            b: *const f32,
            bstep: usize,
            k: usize,
            y: [*mut f32; R],
        ) {
            unsafe { outer_tile::<$s, R, CV>(a, b, bstep, k, y) }
        }
        Tiles {
            lanes: <$s as Simd>::L,
            d42: d::<4, 2>,
            d41: d::<4, 1>,
            d12: d::<1, 2>,
            d11: d::<1, 1>,
            o42: o::<4, 2>,
            o12: o::<1, 2>,
            o11: o::<1, 1>,
        }
    }};
}

static PORTABLE: Tiles = tiles!(Portable);
#[cfg(target_arch = "x86_64")]
static AVX2: Tiles = tiles!(avx2::Avx2, "avx2,fma");
#[cfg(target_arch = "x86_64")]
static AVX512: Tiles = tiles!(avx512::Avx512, "avx512f,avx2,fma");

/// Whether the f32 tiles run on 512-bit vectors: AVX-512F present and not
/// turned off (`KILN_CPU_NO_AVX512=1`, for comparisons).
#[cfg(target_arch = "x86_64")]
pub(super) fn wide512() -> bool {
    static W: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *W.get_or_init(|| {
        is_x86_feature_detected!("avx512f") && std::env::var_os("KILN_CPU_NO_AVX512").is_none()
    })
}
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
static WASM: Tiles = tiles!(wasm::Wasm);
#[cfg(target_arch = "aarch64")]
static NEON: Tiles = tiles!(neon::Neon);

fn tiles(isa: Isa) -> &'static Tiles {
    if isa == Isa::Portable {
        return &PORTABLE;
    }
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    return &WASM;
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    match level() {
        Level::Portable => &PORTABLE,
        #[cfg(target_arch = "x86_64")]
        Level::Avx2 | Level::Vnni if isa == Isa::Wide && wide512() => &AVX512,
        #[cfg(target_arch = "x86_64")]
        Level::Avx2 | Level::Vnni => &AVX2,
        #[cfg(target_arch = "aarch64")]
        Level::Neon | Level::NeonDot => &NEON,
    }
}

/// Which tile set a grid runs: the machine's 256-bit best (AVX2+FMA, wasm
/// SIMD128), 512-bit vectors where AVX-512F exists (`Wide`; else the same
/// as `Best`), or the portable one (tests compare them). On a Sapphire
/// Rapids Xeon (2026-12-07) `Wide` made the terrain UNet's convolutions 9%
/// faster and SmolLM2's f32 prefill products 3% slower, so the convolution
/// takes it and the products do not.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum Isa {
    #[default]
    Best,
    Wide,
    Portable,
}

fn out_of_bounds(what: &str) -> crate::backend::BackendError {
    crate::backend::BackendError::Validation(format!("{what}: a row runs past its buffer"))
}

/// Rows of a matrix in a flat buffer: row `i` starts at `start + i·stride`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Rows {
    pub start: usize,
    pub stride: usize,
}

impl Rows {
    pub fn at(start: usize, stride: usize) -> Rows {
        Rows { start, stride }
    }

    /// Whether rows `0..count`, each `span` long, fit in `len` values.
    fn fit(&self, count: usize, span: usize, len: usize) -> bool {
        count == 0
            || (count - 1)
                .checked_mul(self.stride)
                .and_then(|o| o.checked_add(self.start))
                .and_then(|o| o.checked_add(span))
                .is_some_and(|e| e <= len)
    }
}

/// `y[r·ystride + c] = Σ_g x_r · w_c` for `r < m`, `c < n` (x rows `xr`,
/// w rows `wr`): 4×2 tiles, then the edges; for each pair of columns every
/// row, so a column pair's weights stay in cache while the rows stream by.
/// Results go straight to `y` (no per-output callback: in wasm that call
/// cost a fifth of a convolution's time).
#[allow(clippy::too_many_arguments)]
pub(crate) fn dot_grid(
    isa: Isa,
    x: &[f32],
    xr: Rows,
    m: usize,
    w: &[f32],
    wr: Rows,
    n: usize,
    g: Segs,
    y: &mut [f32],
    ystride: usize,
) -> Result<(), crate::backend::BackendError> {
    if !xr.fit(m, g.span(g.xstep), x.len()) {
        return Err(out_of_bounds("dot_grid x"));
    }
    if !wr.fit(n, g.span(g.wstep), w.len()) {
        return Err(out_of_bounds("dot_grid w"));
    }
    if !Rows::at(0, ystride).fit(m, n, y.len()) || (m > 1 && ystride < n) {
        return Err(out_of_bounds("dot_grid y"));
    }
    let t = tiles(isa);
    let (xp, wp, yp) = (x.as_ptr(), w.as_ptr(), y.as_mut_ptr());
    // SAFETY: every row's extent was checked above; pointers are only
    // formed for rows < m and columns < n, and y[r·ystride + c] for those.
    unsafe {
        let xrow = |r: usize| xp.add(xr.start + r * xr.stride);
        let wrow = |c: usize| wp.add(wr.start + c * wr.stride);
        let out = |r: usize, c: usize, v: f32| *yp.add(r * ystride + c) = v;
        let mut c = 0;
        while c < n {
            if c + 2 <= n {
                let wc = [wrow(c), wrow(c + 1)];
                let mut r = 0;
                while r + 4 <= m {
                    let o = (t.d42)([xrow(r), xrow(r + 1), xrow(r + 2), xrow(r + 3)], wc, g);
                    for (i, o) in o.iter().enumerate() {
                        out(r + i, c, o[0]);
                        out(r + i, c + 1, o[1]);
                    }
                    r += 4;
                }
                for r in r..m {
                    let o = (t.d12)([xrow(r)], wc, g);
                    out(r, c, o[0][0]);
                    out(r, c + 1, o[0][1]);
                }
                c += 2;
            } else {
                let wc = [wrow(c)];
                let mut r = 0;
                while r + 4 <= m {
                    let o = (t.d41)([xrow(r), xrow(r + 1), xrow(r + 2), xrow(r + 3)], wc, g);
                    for (i, o) in o.iter().enumerate() {
                        out(r + i, c, o[0]);
                    }
                    r += 4;
                }
                for r in r..m {
                    out(r, c, (t.d11)([xrow(r)], wc, g)[0][0]);
                }
                c += 1;
            }
        }
    }
    Ok(())
}

/// `y[r·ystride + j] = Σ_{kk<k} a_r[kk] · b[kk·bstep + j]` for `r < m`,
/// `j < n` (a rows `ar`).
#[allow(clippy::too_many_arguments)]
pub(crate) fn outer_grid(
    isa: Isa,
    a: &[f32],
    ar: Rows,
    m: usize,
    k: usize,
    b: &[f32],
    bstep: usize,
    n: usize,
    y: &mut [f32],
    ystride: usize,
) -> Result<(), crate::backend::BackendError> {
    if m == 0 || n == 0 {
        return Ok(());
    }
    if !ar.fit(m, k, a.len()) {
        return Err(out_of_bounds("outer_grid a"));
    }
    let b_need = if k == 0 { 0 } else { (k - 1) * bstep + n };
    let y_need = (m - 1) * ystride + n;
    if b_need > b.len() || y_need > y.len() || (m > 1 && ystride < n) {
        return Err(out_of_bounds("outer_grid b/y"));
    }
    let t = tiles(isa);
    let l = t.lanes;
    let (ap, bp, yp) = (a.as_ptr(), b.as_ptr(), y.as_mut_ptr());
    // SAFETY: a rows, b columns < n and y rows were checked above; the
    // vector tiles cover columns j..j + 2l (or + l) ≤ n.
    unsafe {
        let arow = |r: usize| ap.add(ar.start + r * ar.stride);
        let yr = |r: usize, j: usize| yp.add(r * ystride + j);
        let mut r = 0;
        while r < m {
            let four = r + 4 <= m;
            let mut j = 0;
            while j + 2 * l <= n {
                if four {
                    (t.o42)(
                        [arow(r), arow(r + 1), arow(r + 2), arow(r + 3)],
                        bp.add(j),
                        bstep,
                        k,
                        [yr(r, j), yr(r + 1, j), yr(r + 2, j), yr(r + 3, j)],
                    );
                } else {
                    (t.o12)([arow(r)], bp.add(j), bstep, k, [yr(r, j)]);
                }
                j += 2 * l;
            }
            let rows = if four { 4 } else { 1 };
            for rr in r..r + rows {
                let mut j = j;
                while j + l <= n {
                    (t.o11)([arow(rr)], bp.add(j), bstep, k, [yr(rr, j)]);
                    j += l;
                }
                for j in j..n {
                    let mut s = 0f32;
                    for kk in 0..k {
                        s += *arow(rr).add(kk) * *bp.add(kk * bstep + j);
                    }
                    *yr(rr, j) = s;
                }
            }
            r += rows;
        }
    }
    Ok(())
}

fn rand(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = crate::rng::Rng::new(seed);
    (0..n).map(|_| rng.range(-1.0, 1.0)).collect()
}

/// Both tile grids, on this machine's instruction set and the portable
/// one, against f64 sums at awkward shapes (edges of every tile, segment
/// tails, columns past the vectors): run by the unit tests natively and by
/// the browser test in wasm.
pub fn f32_tiles_self_test() -> Result<(), String> {
    for (m, n, segs, len, seed) in [(7, 5, 3, 13, 1), (4, 2, 1, 8, 2), (9, 3, 2, 37, 3)] {
        let (xstep, wstep) = (len + 3, len);
        let x = rand(3 + m * 50 + segs * xstep + len, seed);
        let w = rand(n * segs * wstep + 5, seed + 9);
        let g = Segs {
            n: segs,
            len,
            xstep,
            wstep,
        };
        for isa in [Isa::Best, Isa::Wide, Isa::Portable] {
            // Rows 50 apart, starting 3 in; outputs n + 1 apart.
            let ys = n + 1;
            let mut y = vec![f32::NAN; m * ys];
            dot_grid(
                isa,
                &x,
                Rows::at(3, 50),
                m,
                &w,
                Rows::at(0, segs * wstep),
                n,
                g,
                &mut y,
                ys,
            )
            .map_err(|e| e.to_string())?;
            for r in 0..m {
                for c in 0..n {
                    let mut s = 0f64;
                    for sg in 0..segs {
                        for i in 0..len {
                            s += x[3 + r * 50 + sg * xstep + i] as f64
                                * w[c * segs * wstep + sg * wstep + i] as f64;
                        }
                    }
                    if (y[r * ys + c] as f64 - s).abs() >= 1e-5 {
                        return Err(format!(
                            "dot_grid {isa:?} {m}×{n} at {r},{c}: {} vs {s}",
                            y[r * ys + c]
                        ));
                    }
                }
                if r + 1 < m && !y[r * ys + n].is_nan() {
                    return Err(format!(
                        "dot_grid {isa:?} wrote between rows {r} and {}",
                        r + 1
                    ));
                }
            }
        }
    }
    for (m, n, k, seed) in [(6, 37, 5, 4), (4, 16, 3, 5), (1, 3, 7, 6), (5, 40, 1, 7)] {
        let bstep = n + 2;
        let a = rand(m * (k + 1), seed);
        let b = rand(k * bstep, seed + 1);
        for isa in [Isa::Best, Isa::Wide, Isa::Portable] {
            let ys = n + 1;
            let mut y = vec![f32::NAN; m * ys];
            outer_grid(isa, &a, Rows::at(0, k + 1), m, k, &b, bstep, n, &mut y, ys)
                .map_err(|e| e.to_string())?;
            for r in 0..m {
                for j in 0..n {
                    let s: f64 = (0..k)
                        .map(|kk| a[r * (k + 1) + kk] as f64 * b[kk * bstep + j] as f64)
                        .sum();
                    if (y[r * ys + j] as f64 - s).abs() >= 1e-5 {
                        return Err(format!(
                            "outer_grid {isa:?} at {r},{j}: {} vs {s}",
                            y[r * ys + j]
                        ));
                    }
                }
                if !y[r * ys + n].is_nan() {
                    return Err(format!("outer_grid {isa:?} wrote past row {r}"));
                }
            }
        }
    }
    let e = exp_f32(1.5) as f64 / 1.5f64.exp() - 1.0;
    if e.abs() > 2.5e-7 || !exp_f32(f32::NAN).is_nan() {
        return Err(format!("exp_f32(1.5) off by {e:e}"));
    }
    Ok(())
}

/// `e^x` in f32 within 2 ulp, branch-free so that loops over slices
/// vectorize (libm's `expf` is a call per element, on wasm too): Cephes'
/// range reduction `x = n·ln2 + r`, |r| ≤ ln2/2, a degree-6 polynomial, and
/// `2^n` through the exponent bits. Saturates to ~1.2e-38 below −87.3 and
/// ~3.4e38 above 88.7; NaN stays NaN.
#[inline(always)]
pub(crate) fn exp_f32(x: f32) -> f32 {
    const LO: f32 = -87.336_54;
    const HI: f32 = 88.722_83;
    let x = x.clamp(LO, HI); // NaN stays NaN
    // Round to nearest by the 1.5·2²³ trick (no libm call): k's bits are
    // 0x4B40_0000 + n, so n comes out as an integer without a conversion.
    const MAGIC: f32 = 12_582_912.0;
    let k = x * std::f32::consts::LOG2_E + MAGIC;
    let n = k - MAGIC;
    let r = x - n * 0.693_359_4 - n * -2.121_944_4e-4;
    let mut p = 1.987_569_1e-4f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 0.166_666_65;
    p = p * r + 0.5;
    let e = p * r * r + r + 1.0;
    // n ∈ [−126, 128]: 2^n as two factors so n = 128 does not overflow
    // the exponent field.
    let ni = (k.to_bits() as i32).wrapping_sub(0x4B40_0000);
    let h = ni >> 1;
    let f = |m: i32| f32::from_bits((m.wrapping_add(127) as u32) << 23);
    e * f(h) * f(ni - h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_f32_is_within_2_ulp_and_keeps_nan() {
        let mut worst = 0f64;
        let mut x = -87.0f32;
        while x < 88.0 {
            let (got, want) = (exp_f32(x) as f64, (x as f64).exp());
            worst = worst.max((got - want).abs() / want);
            x += 0.0137;
        }
        assert!(worst < 2.5e-7, "relative error {worst}");
        assert!(exp_f32(f32::NAN).is_nan());
        assert!(exp_f32(-1000.0) < 1.3e-38 && exp_f32(1000.0) > 3e38);
        assert_eq!(exp_f32(0.0), 1.0);
    }

    #[test]
    fn f32_tiles_match_f64_sums_at_awkward_shapes() {
        f32_tiles_self_test().unwrap();
        let x = [0f32; 10];
        let mut y = [0f32; 3];
        let e = dot_grid(
            Isa::Best,
            &x,
            Rows::at(0, 4),
            3,
            &x,
            Rows::at(0, 0),
            1,
            Segs::one(4),
            &mut y,
            1,
        );
        assert!(e.is_err(), "a row past the end must be refused");
        let e = dot_grid(
            Isa::Best,
            &x,
            Rows::at(0, 1),
            3,
            &x,
            Rows::at(0, 0),
            1,
            Segs::one(4),
            &mut y[..2],
            1,
        );
        assert!(e.is_err(), "an output past the end must be refused");
    }
}
