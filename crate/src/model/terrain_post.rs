//! Terrain diffusion around the network: what `terrain_diffusion/generator.py` 0.4.2 does
//! before and after its one-step UNet call, plus image and `.npy` output. A terrain is one
//! row-major `[H, W]` `f32` slice, in model space (`[-1, 1]`) or in metres.
//!
//! * generate, resize mode ([`auto_size_mode`]): noise · 80 at 128² → UNet → [`resize_output`];
//!   tile mode: [`Tiler`] over a canvas of noise · 80, then [`to_heights`].
//! * vary: source [`clean_heightfield`], σ = [`sigma_for_strength`], noise · σ plus
//!   [`native_source`] (resize mode) or [`canvas_source`] (tile mode). Strength 0 runs no
//!   model: the source is only resized and zero-floored.
//!
//! Arithmetic follows numpy 2 promotion (f32 elementwise, f64 where an f64 scalar promotes),
//! so resize, blending and model → heights match the package bit for bit.

use png::{BitDepth, ColorType};
use std::f64::consts::FRAC_1_SQRT_2;
use thiserror::Error;

/// The UNet's native (and tile) edge in pixels.
pub const NATIVE_SIZE: usize = 128;
/// Difficulty classes: the label of difficulty `d` is `(d - 1) / 99`.
pub const NUM_CLASSES: u32 = 100;
/// Heights span `[0, HEIGHT_RANGE]` metres (exact in f32).
pub const HEIGHT_RANGE: f64 = 22.168_640_136_718_75;
/// Scale of the asinh height companding.
pub const ASINH_SCALE: f64 = 0.1;
/// The sampler's noise range (generator.py); the network's own EDM
/// constants live in its config (`unet::Edm`).
pub const SIGMA_MIN: f64 = 0.002;
pub const SIGMA_MAX: f64 = 80.0;
/// Default overlap of neighbouring tiles.
pub const TILE_OVERLAP: usize = 32;
/// Floor of the 1-D Hann blend window (whose endpoints are 0).
pub const BLEND_FLOOR: f32 = 1.0e-3;
/// Floor of the accumulated blend weight.
pub const WEIGHT_FLOOR: f32 = 1.0e-12;
const RANGE_F32: f32 = HEIGHT_RANGE as f32;

#[derive(Debug, Error, Clone, PartialEq)]
pub enum TerrainPostError {
    #[error("difficulty {0} is outside 1..={NUM_CLASSES}")]
    Difficulty(u32),
    #[error("strength {0} is outside [0, 1]")]
    Strength(f32),
    #[error("tile overlap {0} must be below {NATIVE_SIZE}")]
    Overlap(usize),
    #[error("{0}: expected {1} elements, got {2}")]
    Length(&'static str, usize, usize),
    #[error("{0}: unusable shape {1:?}")]
    Shape(&'static str, Vec<usize>),
    #[error("tile origin {0:?} is not one of the tiler's origins")]
    TileOrigin((usize, usize)),
    #[error("max_height must be finite and positive, got {0}")]
    MaxHeight(f32),
    #[error("png encoding: {0}")]
    Png(String),
    #[error("malformed .npy: {0}")]
    Npy(&'static str),
    #[error(".npy dtype {0:?} is not supported (only '<f4' and '<f8')")]
    NpyDtype(String),
}

pub type Result<T> = std::result::Result<T, TerrainPostError>;

fn check_len(what: &'static str, expected: usize, got: usize) -> Result<()> {
    let err = TerrainPostError::Length(what, expected, got);
    if expected == got { Ok(()) } else { Err(err) }
}

/// `h · w`, which must be non-zero and not overflow.
fn area(what: &'static str, (h, w): (usize, usize)) -> Result<usize> {
    let n = h.checked_mul(w).filter(|&n| n > 0);
    n.ok_or_else(|| TerrainPostError::Shape(what, vec![h, w]))
}

/// `asinh(HEIGHT_RANGE / ASINH_SCALE)` = 6.094416…, the companding normaliser.
pub fn normalizer() -> f64 {
    (HEIGHT_RANGE / ASINH_SCALE).asinh()
}

/// The UNet's difficulty input for difficulty 1..=100: `f32((d - 1) / 99)`.
pub fn label(difficulty: u32) -> Result<f32> {
    if !(1..=NUM_CLASSES).contains(&difficulty) {
        return Err(TerrainPostError::Difficulty(difficulty));
    }
    Ok((f64::from(difficulty - 1) / f64::from(NUM_CLASSES - 1)) as f32)
}

/// Variation noise level `0.002 · (80 / 0.002)^strength` (0.5 → 0.4, 1 → 80).
pub fn sigma_for_strength(strength: f32) -> Result<f32> {
    if !(0.0..=1.0).contains(&strength) {
        return Err(TerrainPostError::Strength(strength));
    }
    Ok((SIGMA_MIN * (SIGMA_MAX / SIGMA_MIN).powf(f64::from(strength))) as f32)
}

/// Subtracts the minimum (found skipping NaNs) so the lowest point is 0.
pub fn zero_floor(values: &mut [f32]) {
    let min = values.iter().fold(f32::INFINITY, |m, &v| m.min(v));
    if min.is_finite() {
        values.iter_mut().for_each(|v| *v -= min);
    }
}

/// Model space → metres (`_from_model_space`): `u = clip((v + 1)/2, 0, 1)` in f32, then
/// `clip(0.1 · sinh(u · asinh(221.686…)), 0, HEIGHT_RANGE)` in f64, stored f32; then
/// [`zero_floor`] when `floor` (the package's `zero_floor=True`).
pub fn to_heights(model: &[f32], floor: bool) -> Vec<f32> {
    let norm = normalizer();
    let height = |&v: &f32| {
        let unit = ((v + 1.0) * 0.5).clamp(0.0, 1.0);
        (ASINH_SCALE * (f64::from(unit) * norm).sinh()).clamp(0.0, HEIGHT_RANGE) as f32
    };
    let mut heights: Vec<f32> = model.iter().map(height).collect();
    if floor {
        zero_floor(&mut heights);
    }
    heights
}

/// Metres → model space (`_to_model_space`): [`zero_floor`], clip to `HEIGHT_RANGE`, `/ 0.1`
/// (f32), then `2 · asinh(·) / asinh(221.686…) − 1` in f64, stored f32.
pub fn to_model_space(heights: &[f32]) -> Vec<f32> {
    let norm = normalizer();
    let mut values = heights.to_vec();
    zero_floor(&mut values);
    let model = |&h: &f32| {
        let scaled = h.clamp(0.0, RANGE_F32) / ASINH_SCALE as f32;
        (f64::from(scaled).asinh() / norm * 2.0 - 1.0) as f32
    };
    values.iter().map(model).collect()
}

/// `io._clean_heightfield` for loaded sources: values that are not finite or have
/// `|v| >= 1e20` become the minimum of the valid ones (0 when none is valid).
pub fn clean_heightfield(values: &mut [f32]) {
    let valid = |v: f32| v.is_finite() && v.abs() < 1.0e20;
    let valid_values = values.iter().filter(|v| valid(**v));
    let min = valid_values.fold(f32::INFINITY, |m, &v| m.min(v));
    let fill = if min.is_finite() { min } else { 0.0 };
    for v in values.iter_mut().filter(|v| !valid(**v)) {
        *v = fill;
    }
}

/// One axis of `_resize`: `x = (j + 0.5)·in/out − 0.5` in f32 clipped to `[0, in − 1]`,
/// taps `floor(x)` and `min(floor(x) + 1, in − 1)`, weight `x − floor(x)` in f64.
fn resize_taps(input: usize, output: usize) -> Vec<(usize, usize, f64)> {
    let tap = |j: usize| {
        let x = (j as f32 + 0.5) * input as f32 / output as f32 - 0.5;
        let x = x.clamp(0.0, (input - 1) as f32);
        let x0 = x.floor() as usize;
        (x0, (x0 + 1).min(input - 1), f64::from(x) - x0 as f64)
    };
    (0..output).map(tap).collect()
}

/// Half-pixel bilinear resize (`_resize`): horizontal then vertical pass, each
/// `a·(1 − w) + b·w` in f64, stored f32. The same size returns a copy.
pub fn resize_bilinear(src: &[f32], from: (usize, usize), to: (usize, usize)) -> Result<Vec<f32>> {
    check_len("resize source", area("resize source", from)?, src.len())?;
    area("resize target", to)?;
    if from == to {
        return Ok(src.to_vec());
    }
    let (xs, ow) = (resize_taps(from.1, to.1), to.1);
    let mut horizontal = Vec::with_capacity(from.0 * ow);
    for row in src.chunks_exact(from.1) {
        for &(x0, x1, w) in &xs {
            horizontal.push(f64::from(row[x0]) * (1.0 - w) + f64::from(row[x1]) * w);
        }
    }
    let mut out = Vec::with_capacity(to.0 * ow);
    for (y0, y1, w) in resize_taps(from.0, to.0) {
        for x in 0..ow {
            let (a, b) = (horizontal[y0 * ow + x], horizontal[y1 * ow + x]);
            out.push((a * (1.0 - w) + b * w) as f32);
        }
    }
    Ok(out)
}

/// Resize-mode output (`_resize_output`): heights without floor → resize → clip to
/// `[0, HEIGHT_RANGE]` → [`zero_floor`] when `floor`.
pub fn resize_output(
    model: &[f32],
    from: (usize, usize),
    to: (usize, usize),
    floor: bool,
) -> Result<Vec<f32>> {
    let mut out = resize_bilinear(&to_heights(model, false), from, to)?;
    out.iter_mut().for_each(|v| *v = v.clamp(0.0, RANGE_F32));
    if floor {
        zero_floor(&mut out);
    }
    Ok(out)
}

/// Variation in resize mode: the term added to the 128² noise,
/// `clip(resize(to_model_space(source), 128²), −1, 1)`.
pub fn native_source(source: &[f32], from: (usize, usize)) -> Result<Vec<f32>> {
    let native = (NATIVE_SIZE, NATIVE_SIZE);
    let mut out = resize_bilinear(&to_model_space(source), from, native)?;
    out.iter_mut().for_each(|v| *v = v.clamp(-1.0, 1.0));
    Ok(out)
}

/// Variation in tile mode: the term added to the noisy canvas, model space resized to the
/// output size and then again to the canvas size (not clipped, unlike [`native_source`]).
pub fn canvas_source(
    source: &[f32],
    from: (usize, usize),
    output: (usize, usize),
    canvas: (usize, usize),
) -> Result<Vec<f32>> {
    let at_output = resize_bilinear(&to_model_space(source), from, output)?;
    resize_bilinear(&at_output, output, canvas)
}

/// How an `H×W` request is produced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SizeMode {
    /// Generate at 128² and resize ([`resize_output`]).
    Resize,
    /// Blend overlapping 128² tiles of a canvas ([`Tiler`]).
    Tile,
}

/// Size mode "auto": tile when `max(H, W) > 128`, else resize.
pub fn auto_size_mode(height: usize, width: usize) -> SizeMode {
    let tile = height.max(width) > NATIVE_SIZE;
    if tile {
        SizeMode::Tile
    } else {
        SizeMode::Resize
    }
}

/// Tile origins along an axis of `len`: `range(0, len − 128 + 1, 128 − 32)` plus `len − 128`
/// if not already last; `[0]` when `len <= 128`.
pub fn tile_starts(len: usize) -> Vec<usize> {
    starts(len, TILE_OVERLAP)
}

/// [`tile_starts`] with another overlap (below 128, or `step_by` would get 0).
fn starts(len: usize, overlap: usize) -> Vec<usize> {
    let Some(last) = len.checked_sub(NATIVE_SIZE).filter(|&l| l > 0) else {
        return vec![0];
    };
    let mut out: Vec<usize> = (0..=last).step_by(NATIVE_SIZE - overlap).collect();
    if out.last() != Some(&last) {
        out.push(last);
    }
    out
}

/// `max(np.hanning(128), 1e-3)` in f32: `0.5 + 0.5·cos(π·n/127)`, `n = −127, −125, …, 127`.
pub fn blend_window_1d() -> Vec<f32> {
    let m = NATIVE_SIZE as f64;
    let angle = |k: usize| std::f64::consts::PI * (1.0 - m + 2.0 * k as f64) / (m - 1.0);
    let hann = |k: usize| ((0.5 + 0.5 * angle(k).cos()) as f32).max(BLEND_FLOOR);
    (0..NATIVE_SIZE).map(hann).collect()
}

/// The 128×128 tile weight `outer(b, b)` of [`blend_window_1d`] (f32 products).
pub fn blend_window() -> Vec<f32> {
    let b = blend_window_1d();
    let row = |&r: &f32| b.iter().map(move |&c| r * c);
    b.iter().flat_map(row).collect()
}

/// Tiled generation of one `H×W` terrain (`_generate_tiled`). Fill a [`Tiler::canvas_size`]
/// canvas with noise · σ (plus [`canvas_source`] when varying), denoise the [`Tiler::extract`]
/// of every origin (same σ and label), [`Tiler::accumulate`] each result; [`Tiler::finish`]
/// gives the model-space `H×W` crop for [`to_heights`]. Accumulating in [`Tiler::origins`]
/// order reproduces the package's f32 sums exactly.
#[derive(Clone, Debug)]
pub struct Tiler {
    output: (usize, usize),
    canvas: (usize, usize),
    origins: Vec<(usize, usize)>,
    window: Vec<f32>,
    sum: Vec<f32>,
    weight: Vec<f32>,
}

impl Tiler {
    /// A tiler for a `height×width` output with the default overlap.
    pub fn new(height: usize, width: usize) -> Result<Self> {
        Self::with_overlap(height, width, TILE_OVERLAP)
    }

    pub fn with_overlap(height: usize, width: usize, overlap: usize) -> Result<Self> {
        if overlap >= NATIVE_SIZE {
            return Err(TerrainPostError::Overlap(overlap));
        }
        area("tiled output", (height, width))?;
        let canvas = (height.max(NATIVE_SIZE), width.max(NATIVE_SIZE));
        let n = area("tile canvas", canvas)?;
        let (ys, xs) = (starts(canvas.0, overlap), starts(canvas.1, overlap));
        let row = |&y: &usize| xs.iter().map(move |&x| (y, x));
        let origins = ys.iter().flat_map(row).collect();
        let (output, window) = ((height, width), blend_window());
        let (sum, weight) = (vec![0.0; n], vec![0.0; n]);
        Ok(Self {
            output,
            canvas,
            origins,
            window,
            sum,
            weight,
        })
    }

    /// `(max(H, 128), max(W, 128))`.
    pub fn canvas_size(&self) -> (usize, usize) {
        self.canvas
    }

    /// Tile origins `(y, x)` in the package's order (y-major).
    pub fn origins(&self) -> &[(usize, usize)] {
        &self.origins
    }

    /// Canvas offsets of the tile rows at `origin`.
    fn rows(&self, origin: (usize, usize)) -> Result<impl Iterator<Item = usize> + use<>> {
        if !self.origins.contains(&origin) {
            return Err(TerrainPostError::TileOrigin(origin));
        }
        let ((y, x), cw) = (origin, self.canvas.1);
        Ok((y..y + NATIVE_SIZE).map(move |r| r * cw + x))
    }

    /// The 128×128 tile at `origin` of a canvas (`canvas_size()`, row-major).
    pub fn extract(&self, canvas: &[f32], origin: (usize, usize)) -> Result<Vec<f32>> {
        check_len("tile canvas", self.sum.len(), canvas.len())?;
        let tile = self
            .rows(origin)?
            .flat_map(|at| &canvas[at..at + NATIVE_SIZE]);
        Ok(tile.copied().collect())
    }

    /// Adds `tile · window` to the sums and `window` to the weights at `origin`.
    pub fn accumulate(&mut self, origin: (usize, usize), tile: &[f32]) -> Result<()> {
        check_len("denoised tile", NATIVE_SIZE * NATIVE_SIZE, tile.len())?;
        for (r, at) in self.rows(origin)?.enumerate() {
            for c in 0..NATIVE_SIZE {
                let w = self.window[r * NATIVE_SIZE + c];
                self.sum[at + c] += tile[r * NATIVE_SIZE + c] * w;
                self.weight[at + c] += w;
            }
        }
        Ok(())
    }

    /// `Σ tile·w / max(Σ w, 1e-12)` cropped to the output size (model space).
    pub fn finish(&self) -> Vec<f32> {
        let ((h, w), cw) = (self.output, self.canvas.1);
        let value = |i: usize| self.sum[i] / self.weight[i].max(WEIGHT_FLOOR);
        let row = |r: usize| (r * cw..r * cw + w).map(value);
        (0..h).flat_map(row).collect()
    }
}

/// Hillshade z-factor (metres per pixel are scaled by it): 22 m of relief across 128 px,
/// 0.17 m/px, shades as a 35° slope.
pub const HILLSHADE_Z: f64 = 4.0;
/// Brightness factor of slopes facing away from the sun.
const AMBIENT: f64 = 0.35;
/// Hypsometric stops `(t, rgb)`: low green → olive → brown → grey → white.
const RAMP: [(f64, [f64; 3]); 5] = [
    (0.0, [70.0, 128.0, 70.0]),
    (0.3, [160.0, 165.0, 95.0]),
    (0.6, [145.0, 105.0, 65.0]),
    (0.85, [165.0, 160.0, 155.0]),
    (1.0, [255.0, 255.0, 255.0]),
];

fn ramp(t: f64) -> [f64; 3] {
    let above = RAMP.iter().position(|s| t <= s.0);
    let i = above.unwrap_or(RAMP.len() - 1).max(1);
    let ((t0, c0), (t1, c1)) = (RAMP[i - 1], RAMP[i]);
    let f = ((t - t0) / (t1 - t0)).clamp(0.0, 1.0);
    std::array::from_fn(|k| c0[k] + (c1[k] - c0[k]) * f)
}

/// Shaded relief as RGBA8 `[h, w, 4]` (alpha 255) of heights in metres.
///
/// * Colour: `t = (v − min)/(max − min)` over the image (0 when flat or not finite) through
///   the stops green 0, olive 0.3, brown 0.6, grey 0.85, white 1 (linear between).
/// * Slope: Horn's 3×3 gradient (edges repeat), pixel = 1 unit, heights × [`HILLSHADE_Z`]:
///   `gx = ((c+2f+i) − (a+2d+g))/8` (east), `gy = ((g+2h+i) − (a+2b+c))/8` (south); normal
///   `n = (−Z·gx, Z·gy, 1)` in (east, north, up); light `L = (−cos α/√2, cos α/√2, sin α)`,
///   α = 45°; `s = max(0, n̂·L)`.
/// * Pixel: `rgb = ramp(t) · min(0.35 + 0.65·s / sin α, 1.2)`, rounded and clamped to 0..=255:
///   flat ground keeps its ramp colour, slopes facing north-west brighten, others darken.
pub fn shaded_relief_rgba(heights: &[f32], h: usize, w: usize) -> Result<Vec<u8>> {
    let n = area("shaded relief", (h, w))?;
    check_len("shaded relief", n, heights.len())?;
    let finite = heights.iter().filter(|v| v.is_finite());
    let (lo, hi) = finite.fold((f32::MAX, f32::MIN), |(a, b), &v| (a.min(v), b.max(v)));
    let (lo, span) = (f64::from(lo), f64::from(hi) - f64::from(lo));
    let (sin_alt, diag) = (FRAC_1_SQRT_2, FRAC_1_SQRT_2 * FRAC_1_SQRT_2); // α = 45°
    let mut out = Vec::with_capacity(h * w * 4);
    for (r, c) in (0..h).flat_map(|r| (0..w).map(move |c| (r, c))) {
        let k = |dr: isize, dc: isize| {
            let rr = r.saturating_add_signed(dr).min(h - 1);
            f64::from(heights[rr * w + c.saturating_add_signed(dc).min(w - 1)])
        };
        let gx = (k(-1, 1) + 2.0 * k(0, 1) + k(1, 1) - k(-1, -1) - 2.0 * k(0, -1) - k(1, -1)) / 8.0;
        let gy = (k(1, -1) + 2.0 * k(1, 0) + k(1, 1) - k(-1, -1) - 2.0 * k(-1, 0) - k(-1, 1)) / 8.0;
        let (nx, ny) = (-HILLSHADE_Z * gx, HILLSHADE_Z * gy);
        let s = (-nx * diag + ny * diag + sin_alt) / (nx * nx + ny * ny + 1.0).sqrt();
        let s = if s.is_finite() { s.max(0.0) } else { sin_alt };
        let shade = (AMBIENT + (1.0 - AMBIENT) * s / sin_alt).min(1.2);
        let t = (k(0, 0) - lo) / span;
        let rgb = ramp(if t.is_finite() { t } else { 0.0 });
        out.extend(rgb.map(|ch| (ch * shade).round().clamp(0.0, 255.0) as u8));
        out.push(255);
    }
    Ok(out)
}

fn encode_png(data: &[u8], w: usize, h: usize, format: (ColorType, BitDepth)) -> Result<Vec<u8>> {
    let (Ok(pw), Ok(ph)) = (u32::try_from(w), u32::try_from(h)) else {
        return Err(TerrainPostError::Shape("png", vec![h, w]));
    };
    let err = |e: png::EncodingError| TerrainPostError::Png(e.to_string());
    let mut bytes = Vec::new();
    let mut encoder = png::Encoder::new(&mut bytes, pw, ph);
    encoder.set_color(format.0);
    encoder.set_depth(format.1);
    let mut writer = encoder.write_header().map_err(err)?;
    writer.write_image_data(data).map_err(err)?;
    writer.finish().map_err(err)?;
    Ok(bytes)
}

/// An 8-bit RGBA PNG of `[h, w, 4]` bytes.
pub fn encode_png_rgba(rgba: &[u8], w: usize, h: usize) -> Result<Vec<u8>> {
    let n = area("png rgba", (h, w))?.saturating_mul(4);
    check_len("png rgba bytes", n, rgba.len())?;
    encode_png(rgba, w, h, (ColorType::Rgba, BitDepth::Eight))
}

/// A 16-bit grayscale PNG, `round(clip(v / max_height, 0, 1) · 65535)` (NaN → 0). A fixed
/// scale (the package's `save_terrain` stretches each file's min..max instead).
pub fn encode_png_gray16(heights: &[f32], w: usize, h: usize, max_height: f32) -> Result<Vec<u8>> {
    check_len("png gray16", area("png gray16", (h, w))?, heights.len())?;
    if !(max_height.is_finite() && max_height > 0.0) {
        return Err(TerrainPostError::MaxHeight(max_height));
    }
    let level = |&v: &f32| (f64::from(v / max_height).clamp(0.0, 1.0) * 65535.0).round() as u16;
    let mut data = Vec::with_capacity(heights.len() * 2);
    for v in heights {
        data.extend(level(v).to_be_bytes());
    }
    encode_png(&data, w, h, (ColorType::Grayscale, BitDepth::Sixteen))
}

const NPY_MAGIC: &[u8] = b"\x93NUMPY";

/// A NumPy `.npy` v1.0 file, `'<f4'` C order, byte-identical to `np.save` (room for the first
/// axis to grow to 21 digits, header padded to 64 bytes).
pub fn encode_npy_f32(data: &[f32], shape: &[usize]) -> Result<Vec<u8>> {
    let count = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
    check_len("npy data", count.unwrap_or(usize::MAX), data.len())?;
    let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
    let comma = if dims.len() == 1 { "," } else { "" };
    let tuple = format!("({}{comma})", dims.join(", "));
    let dict = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {tuple}, }}");
    let growth = 21usize.saturating_sub(dims.first().map_or(0, String::len));
    let unpadded = NPY_MAGIC.len() + 4 + dict.len() + growth + 1;
    let header = format!("{dict}{:pad$}\n", "", pad = growth + 64 - unpadded % 64);
    let too_long = |_| TerrainPostError::Shape("npy header", shape.to_vec());
    let hlen = u16::try_from(header.len()).map_err(too_long)?;
    let mut out = [NPY_MAGIC, &[1, 0], &hlen.to_le_bytes(), header.as_bytes()].concat();
    out.extend(data.iter().flat_map(|v| v.to_le_bytes()));
    Ok(out)
}

/// Reads a `.npy` file (format 1–3) holding a C-order `'<f4'` or `'<f8'` array `[H, W]` or
/// `[N, H, W]` without zero dimensions; `'<f8'` is narrowed to f32. Anything else, including
/// truncated or malformed files, is an error.
pub fn decode_npy_f32(bytes: &[u8]) -> Result<(Vec<f32>, Vec<usize>)> {
    let bad = TerrainPostError::Npy;
    let rest = bytes.strip_prefix(NPY_MAGIC).ok_or(bad("no magic"))?;
    let len_size = match rest.get(..2) {
        Some([1, 0]) => 2,
        Some([2 | 3, 0]) => 4,
        _ => return Err(bad("unsupported format version")),
    };
    let len_bytes = rest.get(2..2 + len_size).ok_or(bad("truncated header"))?;
    let hlen = len_bytes.iter().rfold(0, |a, &b| a << 8 | usize::from(b));
    let split = rest[2 + len_size..].split_at_checked(hlen);
    let (header, payload) = split.ok_or(bad("truncated header"))?;
    let text = std::str::from_utf8(header).map_err(|_| bad("header is not text"))?;
    let text: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    let body = text.strip_prefix('{').and_then(|t| t.strip_suffix('}'));
    let body = body.ok_or(bad("header is not a dict"))?;
    let field = |key: &str| body.split_once(&format!("'{key}':")).map(|(_, v)| v);
    let quoted = field("descr").and_then(|v| v.strip_prefix('\'')?.split_once('\''));
    let descr = quoted.ok_or(bad("no descr"))?.0;
    match field("fortran_order") {
        Some(v) if v.starts_with("False") => {}
        Some(v) if v.starts_with("True") => return Err(bad("Fortran order is not supported")),
        _ => return Err(bad("no fortran_order")),
    }
    let dims = field("shape").and_then(|v| v.strip_prefix('(')?.split_once(')'));
    let dims = dims.ok_or(bad("no shape"))?.0.split(',');
    let shape: std::result::Result<Vec<usize>, _> =
        dims.filter(|d| !d.is_empty()).map(str::parse).collect();
    let shape = shape.map_err(|_| bad("bad shape"))?;
    if !(2..=3).contains(&shape.len()) || shape.contains(&0) {
        return Err(TerrainPostError::Shape(
            "npy array, not [H, W] or [N, H, W]",
            shape,
        ));
    }
    let item: usize = match descr {
        "<f4" => 4,
        "<f8" => 8,
        _ => return Err(TerrainPostError::NpyDtype(descr.to_string())),
    };
    let size = shape.iter().try_fold(item, |a, &d| a.checked_mul(d));
    let size = size.ok_or(bad("shape overflows"))?;
    check_len("npy payload bytes", size, payload.len())?;
    let data = if item == 4 {
        let f4 = |b: &[u8]| f32::from_le_bytes(std::array::from_fn(|i| b[i]));
        payload.chunks_exact(4).map(f4).collect()
    } else {
        let f8 = |b: &[u8]| f64::from_le_bytes(std::array::from_fn(|i| b[i])) as f32;
        payload.chunks_exact(8).map(f8).collect()
    };
    Ok((data, shape))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/terrain/");

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(format!("{FIXTURES}{name}")).unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    fn reference(key: &str) -> Value {
        let json = fixture("postprocess_reference.json");
        serde_json::from_slice::<Value>(&json).unwrap()[key].take()
    }

    /// The numbers of a nested JSON array, row-major.
    fn floats(v: &Value) -> Vec<f32> {
        match v {
            Value::Array(items) => items.iter().flat_map(floats).collect(),
            other => vec![other.as_f64().expect("number") as f32],
        }
    }

    fn num(v: &Value) -> f32 {
        v.as_f64().expect("number") as f32
    }

    fn bin(name: &str) -> Vec<f32> {
        let f4 = |b: &[u8]| f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        fixture(name).chunks_exact(4).map(f4).collect()
    }

    /// Each `(key, value)` of a JSON object, the key parsed.
    fn entries<K: std::str::FromStr>(v: &Value) -> Vec<(K, Value)> {
        let parse = |(k, v): (&String, &Value)| (k.parse().ok().expect("key"), v.clone());
        v.as_object().expect("object").iter().map(parse).collect()
    }

    #[test]
    fn constants_labels_and_sigmas_match_reference() {
        let c = reference("constants");
        let norm = c["normalizer_asinh(height_range/asinh_scale)"].as_f64();
        assert_eq!(
            (norm, c["height_range"].as_f64()),
            (Some(normalizer()), Some(HEIGHT_RANGE))
        );
        assert_eq!(f64::from(RANGE_F32), HEIGHT_RANGE);
        for (d, want) in entries::<u32>(&reference("difficulty_label")) {
            assert_eq!(label(d), Ok(num(&want)), "label {d}");
        }
        assert_eq!(label(0), Err(TerrainPostError::Difficulty(0)));
        assert!(label(101).is_err());
        for (s, want) in entries::<f32>(&reference("strength_to_sigma")) {
            let (got, want) = (sigma_for_strength(s).unwrap(), num(&want));
            assert!((got - want).abs() <= 1e-6 * want, "{s}: {got} vs {want}");
        }
        for bad in [-0.01, 1.01, f32::NAN] {
            assert!(sigma_for_strength(bad).is_err(), "strength {bad}");
        }
    }

    #[test]
    fn tiling_geometry_matches_reference() {
        for (len, want) in entries::<usize>(&reference("tile_starts_overlap32")) {
            let want: Vec<usize> = floats(&want).iter().map(|&v| v as usize).collect();
            assert_eq!(tile_starts(len), want, "len {len}");
        }
        assert_eq!(starts(300, 0), [0, 128, 172]);
        let b = blend_window_1d();
        assert_eq!(b, floats(&reference("blend_1d_hann128_floored")));
        assert_eq!(blend_window()[5 * 128 + 70], b[5] * b[70]);
        assert_eq!(auto_size_mode(128, 128), SizeMode::Resize);
        assert_eq!(auto_size_mode(64, 129), SizeMode::Tile);
    }

    #[test]
    fn height_mapping_matches_generator() {
        let want = bin("post/heights_from_real_denoised.s4.bin");
        let fm = reference("from_model_space");
        for (s, model) in bin("real/denoised.bin").chunks_exact(128 * 128).enumerate() {
            let heights = to_heights(model, true);
            let rows = heights.chunks_exact(128).step_by(4);
            let strided: Vec<f32> = rows.flat_map(|r| r.iter().step_by(4)).copied().collect();
            assert_eq!(strided, want[s * 1024..][..1024], "sample {s}");
            let sum: f64 = heights.iter().map(|&v| f64::from(v)).sum();
            let mean = fm["stats"][s]["mean"].as_f64().unwrap();
            assert!((sum / heights.len() as f64 - mean).abs() < 1e-6);
            let max = heights.iter().fold(0.0, |m: f32, &v| m.max(v));
            assert_eq!(max, num(&fm["stats"][s]["max"]));
        }
        for (v, want) in entries::<f32>(&fm["points"]) {
            assert_eq!(to_heights(&[v], false), [num(&want)], "point {v}");
        }
        let tm = reference("to_model_space");
        let got = to_model_space(&floats(&tm["input_6x8"]));
        for (g, w) in got.iter().zip(floats(&tm["output_6x8"])) {
            // numpy's f32 arcsinh is not correctly rounded; we compute it in f64.
            assert!((g - w).abs() <= 2e-7, "to_model_space {g} vs {w}");
        }
        let mut dirty = [f32::NAN, 3.0, 1e21, -2.0, f32::INFINITY];
        clean_heightfield(&mut dirty);
        assert_eq!(dirty, [-2.0, 3.0, -2.0, -2.0, -2.0]);
    }

    #[test]
    fn resize_matches_generator() {
        let r = reference("bilinear_resize_half_pixel");
        let src = floats(&r["input_6x8"]);
        let sizes = [
            ("to_4x11", (4, 11)),
            ("to_9x5", (9, 5)),
            ("input_6x8", (6, 8)),
        ];
        for (key, to) in sizes {
            let got = resize_bilinear(&src, (6, 8), to).unwrap();
            assert_eq!(got, floats(&r[key]), "{key}");
        }
        assert!(resize_bilinear(&src, (6, 7), (4, 4)).is_err());
        assert!(resize_bilinear(&src, (6, 8), (0, 4)).is_err());
        let out = resize_output(&[-1.0, 1.0, 0.0, 0.5], (2, 2), (3, 3), true).unwrap();
        let min = out.iter().fold(1.0, |m: f32, &v| m.min(v));
        assert_eq!((out.len(), min), (9, 0.0));
        let native = native_source(&src, (6, 8)).unwrap();
        assert!(native.len() == 128 * 128 && native.iter().all(|v| v.abs() <= 1.0));
        let canvas = canvas_source(&src, (6, 8), (100, 300), (128, 300)).unwrap();
        assert_eq!(canvas.len(), 128 * 300);
    }

    #[test]
    fn tiler_blends_back_to_the_canvas() {
        for (h, w) in [(200, 300), (100, 300), (60, 90), (129, 128)] {
            let mut tiler = Tiler::new(h, w).unwrap();
            let (ch, cw) = tiler.canvas_size();
            assert_eq!((ch, cw), (h.max(128), w.max(128)));
            let count = tile_starts(ch).len() * tile_starts(cw).len();
            assert_eq!(tiler.origins().len(), count);
            let canvas: Vec<f32> = (0..ch * cw).map(|i| (i as f32 * 0.37).sin()).collect();
            for (y, x) in tiler.origins().to_vec() {
                let tile = tiler.extract(&canvas, (y, x)).unwrap();
                assert_eq!(tile[129], canvas[(y + 1) * cw + x + 1]);
                tiler.accumulate((y, x), &tile).unwrap(); // an identity "denoiser"
            }
            let crop = canvas.chunks_exact(cw).take(h).flat_map(|row| &row[..w]);
            for (got, want) in tiler.finish().iter().zip(crop) {
                assert!((got - want).abs() < 1e-6, "{h}x{w}: {got} vs {want}");
            }
        }
        let mut tiler = Tiler::new(200, 300).unwrap();
        assert_eq!(tiler.origins()[..4], [(0, 0), (0, 96), (0, 172), (72, 0)]);
        assert!(tiler.accumulate((0, 1), &[0.0; 128 * 128]).is_err());
        assert!(tiler.accumulate((0, 0), &[0.0; 100]).is_err());
        assert!(tiler.extract(&[0.0; 10], (0, 0)).is_err());
        let overlap = Tiler::with_overlap(300, 300, 128).err();
        assert_eq!(overlap, Some(TerrainPostError::Overlap(128)));
        assert!(Tiler::new(0, 5).is_err());
    }

    /// A `.npy` v1.0 file with this header dict, padded as `np.save` pads its own.
    fn npy(dict: &str, payload: &[u8]) -> Vec<u8> {
        let header = format!("{dict}{:pad$}\n", "", pad = 64 - (11 + dict.len()) % 64);
        let len = (header.len() as u16).to_le_bytes();
        [b"\x93NUMPY\x01\x00", &len[..], header.as_bytes(), payload].concat()
    }

    fn dict(descr: &str, fortran: &str, shape: &str) -> String {
        format!("{{'descr': '{descr}', 'fortran_order': {fortran}, 'shape': {shape}, }}")
    }

    #[test]
    fn npy_round_trips_like_numpy() {
        let data: Vec<f32> = (0..6).map(|i| i as f32 * 1.5 - 2.0).collect();
        let bytes = encode_npy_f32(&data, &[2, 3]).unwrap();
        // np.save of a (2, 3) float32 array: a 118-byte header, the data from byte 128.
        let header = format!("{:<80}", dict("<f4", "False", "(2, 3)"));
        assert_eq!(bytes[..128], npy(&header, &[]));
        assert_eq!(decode_npy_f32(&bytes), Ok((data.clone(), vec![2, 3])));
        let cube: Vec<f32> = (0..24).map(|i| i as f32).collect();
        let bytes = encode_npy_f32(&cube, &[2, 3, 4]).unwrap();
        assert_eq!(decode_npy_f32(&bytes), Ok((cube, vec![2, 3, 4])));
        assert!(encode_npy_f32(&data, &[4, 2]).is_err());
        let wide: Vec<u8> = data
            .iter()
            .flat_map(|v| f64::from(*v).to_le_bytes())
            .collect();
        let f8 = npy(&dict("<f8", "False", "(2,3)").replace(' ', ""), &wide);
        assert_eq!(decode_npy_f32(&f8), Ok((data, vec![2, 3])));
    }

    #[test]
    fn malformed_npy_is_an_error() {
        let good = encode_npy_f32(&[1.0; 6], &[2, 3]).unwrap();
        for cut in 0..good.len() {
            assert!(decode_npy_f32(&good[..cut]).is_err(), "truncated at {cut}");
        }
        let f4 = |shape: &str| dict("<f4", "False", shape);
        let cases = [
            (dict(">f4", "False", "(2, 3)"), "dtype \">f4\""),
            (dict("<i4", "False", "(2, 3)"), "dtype \"<i4\""),
            (dict("<f4", "True", "(2, 3)"), "Fortran order"),
            (f4("(6,)"), "shape [6]"),
            (f4("(1, 2, 3, 1)"), "shape [1, 2, 3, 1]"),
            (f4("(0, 3)"), "shape [0, 3]"),
            (f4("(2, x)"), "bad shape"),
            (f4("(99999999999, 99999999999)"), "overflows"),
            (f4("(3, 3)"), "expected 36 elements, got 24"),
            (
                "{'descr': '<f4', 'shape': (2, 3)}".into(),
                "no fortran_order",
            ),
            ("['descr']".into(), "not a dict"),
        ];
        for (header, want) in cases {
            let err = decode_npy_f32(&npy(&header, &good[128..])).unwrap_err();
            assert!(err.to_string().contains(want), "{header}: {err}");
        }
        let mut v9 = good.clone();
        v9[6] = 9;
        assert!(decode_npy_f32(&v9).is_err());
        for i in 0..good.len() {
            let mut flipped = good.clone();
            flipped[i] ^= 0xA5;
            let _ = decode_npy_f32(&flipped); // an error or a value, never a panic
        }
    }

    fn decode_png(bytes: &[u8]) -> (png::OutputInfo, Vec<u8>) {
        let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
        let mut reader = decoder.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        (reader.next_frame(&mut buf).unwrap(), buf)
    }

    #[test]
    fn png_outputs_decode() {
        let (h, w) = (6, 10);
        let heights: Vec<f32> = (0..h * w).map(|i| i as f32 * 0.1 - 0.5).collect();
        let (info, buf) = decode_png(&encode_png_gray16(&heights, w, h, 5.0).unwrap());
        assert_eq!((info.width, info.height), (10, 6));
        let format = (info.color_type, info.bit_depth);
        assert_eq!(format, (ColorType::Grayscale, BitDepth::Sixteen));
        let level = |i: usize| u16::from_be_bytes([buf[2 * i], buf[2 * i + 1]]);
        assert_eq!((level(0), level(15), level(59)), (0, 13107, 65535));
        let rgba = shaded_relief_rgba(&heights, h, w).unwrap();
        let (info, buf) = decode_png(&encode_png_rgba(&rgba, w, h).unwrap());
        assert_eq!((info.width, info.height, buf == rgba), (10, 6, true));
        let format = (info.color_type, info.bit_depth);
        assert_eq!(format, (ColorType::Rgba, BitDepth::Eight));
        assert!(encode_png_rgba(&rgba, w + 1, h).is_err());
        assert!(encode_png_gray16(&heights, w, h, 0.0).is_err());
        assert!(encode_png_gray16(&heights, w, h - 1, 1.0).is_err());
    }

    #[test]
    fn shaded_relief_lights_the_north_west() {
        let flat = shaded_relief_rgba(&[2.0; 16], 4, 4).unwrap();
        assert!(flat.chunks_exact(4).all(|p| p == [70, 128, 70, 255]));
        // A ridge along the anti-diagonal: its north-west face is lit, its south-east face not.
        let n = 32;
        let ridge = |i: usize| 3.0 - ((i / n + i % n) as f32 - 31.0).abs() * 0.2;
        let heights: Vec<f32> = (0..n * n).map(ridge).collect();
        let rgba = shaded_relief_rgba(&heights, n, n).unwrap();
        let lum = |i: usize| rgba[i * 4..][..3].iter().fold(0, |a, &v| a + u32::from(v));
        let (lit, dark) = (lum(8 * n + 8), lum(24 * n + 24));
        assert!(lit > dark + 60, "{lit} vs {dark}");
        assert!(shaded_relief_rgba(&[f32::NAN; 4], 2, 2).is_ok());
        assert!(shaded_relief_rgba(&[1.0; 4], 2, 3).is_err());
    }
}
