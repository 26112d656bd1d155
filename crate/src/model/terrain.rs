//! One-step terrain generation with the consistency UNet, as the PyPI
//! package's `TerrainGenerator` does it (docs/terrain-onnx.md, "generator.py"):
//! seeded noise at σ = 80, one denoising call, model space → metres; maps
//! larger than 128² from blended overlapping tiles of one noise canvas;
//! variations of an existing heightmap at σ(strength).
//!
//! The network runs at a fixed batch (compiled once); tiles and maps of every
//! request are packed into those batches. Noise comes from Kiln's seeded RNG
//! ([`crate::rng::Rng`]), not numpy's PCG64: the same seed gives the same map
//! on every Kiln backend (within the parity tolerance), not the package's map.

use super::terrain_post as post;
use super::unet::{Unet, UnetConfig, UnetOptions, UnetWeights};
use crate::backend::Backend;
use crate::loader::LoadError;
use crate::loader::onnx::OnnxModel;
use crate::rng::Rng;

const N: usize = post::NATIVE_SIZE;

/// What to generate.
#[derive(Clone, Debug)]
pub struct TerrainRequest {
    /// 1 (flat) … 100 (rugged).
    pub difficulty: u32,
    pub height: usize,
    pub width: usize,
    pub seed: u64,
    /// Maps to make (variants of the source when varying).
    pub count: usize,
    /// Vary this heightmap (metres, `[h, w]` row-major) instead of starting
    /// from noise alone.
    pub source: Option<(Vec<f32>, (usize, usize))>,
    /// Variation strength in [0, 1] (σ = 0.002·40000^strength).
    pub strength: f32,
}

impl Default for TerrainRequest {
    fn default() -> Self {
        TerrainRequest {
            difficulty: 50,
            height: N,
            width: N,
            seed: 0,
            count: 1,
            source: None,
            strength: 0.5,
        }
    }
}

/// A generated heightmap in metres, `[height, width]` row-major, minimum 0.
#[derive(Clone, Debug)]
pub struct Terrain {
    pub heights: Vec<f32>,
    pub height: usize,
    pub width: usize,
}

fn bad(detail: String) -> LoadError {
    LoadError::Kiln(crate::error::KilnError::BadInput {
        name: "terrain".into(),
        detail,
    })
}

impl From<post::TerrainPostError> for LoadError {
    fn from(e: post::TerrainPostError) -> Self {
        bad(e.to_string())
    }
}

/// The largest map side accepted (a 4096² map is 1,369 tiles).
pub const MAX_SIDE: usize = 4096;

pub struct TerrainGenerator {
    pub unet: Unet,
}

impl TerrainGenerator {
    /// Loads an ONNX export of the UNet (config inferred from it) onto
    /// `backend`, compiled for `batch` 128² tiles per call.
    pub fn load(
        model: OnnxModel,
        backend: &dyn Backend,
        batch: usize,
        opts: &UnetOptions,
    ) -> Result<TerrainGenerator, LoadError> {
        Self::load_with_config(model, None, backend, batch, opts)
    }

    /// [`TerrainGenerator::load`] with an explicit config (guided-diffusion
    /// JSON, [`UnetConfig::from_json`]) for exports whose settings cannot be
    /// inferred (legacy QKV layout, other EDM constants).
    pub fn load_with_config(
        model: OnnxModel,
        config: Option<UnetConfig>,
        backend: &dyn Backend,
        batch: usize,
        opts: &UnetOptions,
    ) -> Result<TerrainGenerator, LoadError> {
        let weights = UnetWeights::new(model)?;
        let cfg = match config {
            Some(c) => c,
            None => UnetConfig::from_onnx(&weights.model, &weights.prefix)?,
        };
        if cfg.in_channels != 1 || cfg.out_channels != 1 {
            return Err(LoadError::UnsupportedModel(format!(
                "terrain generation needs a 1-channel UNet, this one has {} → {}",
                cfg.in_channels, cfg.out_channels
            )));
        }
        let unet = Unet::load(&weights, &cfg, backend, batch.max(1), (N, N), opts)?;
        Ok(TerrainGenerator { unet })
    }

    /// Generates `req.count` maps. `progress(done, total)` is called after
    /// every network call (tiles done / tiles in all); returning false
    /// cancels (`LoadError::Cancelled`).
    pub fn generate(
        &mut self,
        req: &TerrainRequest,
        progress: &mut dyn FnMut(usize, usize) -> bool,
    ) -> Result<Vec<Terrain>, LoadError> {
        pollster::block_on(self.generate_async(req, progress))
    }

    /// [`TerrainGenerator::generate`] awaiting the device instead of blocking.
    pub async fn generate_async(
        &mut self,
        req: &TerrainRequest,
        progress: &mut dyn FnMut(usize, usize) -> bool,
    ) -> Result<Vec<Terrain>, LoadError> {
        let (h, w) = (req.height, req.width);
        if h == 0 || w == 0 || h > MAX_SIDE || w > MAX_SIDE || req.count == 0 || req.count > 1024 {
            return Err(bad(format!(
                "{h}×{w} × {} maps: sides must be 1..={MAX_SIDE}, count 1..=1024",
                req.count
            )));
        }
        let label = post::label(req.difficulty)?;
        let sigma = match &req.source {
            Some(_) => post::sigma_for_strength(req.strength)?,
            None => post::SIGMA_MAX as f32,
        };
        if let Some((src, (sh, sw))) = &req.source {
            if src.len() != sh * sw || *sh == 0 || *sw == 0 {
                return Err(bad(format!(
                    "source has {} values for {sh}×{sw}",
                    src.len()
                )));
            }
            if req.strength == 0.0 {
                // No model: the source resized and floored (as the package does).
                let mut out = post::resize_bilinear(src, (*sh, *sw), (h, w))?;
                post::zero_floor(&mut out);
                return Ok(vec![
                    Terrain {
                        heights: out,
                        height: h,
                        width: w
                    };
                    req.count
                ]);
            }
        }
        let mut rng = Rng::new(req.seed);
        match post::auto_size_mode(h, w) {
            post::SizeMode::Resize => {
                let add = match &req.source {
                    Some((src, from)) => Some(post::native_source(src, *from)?),
                    None => None,
                };
                let tiles: Vec<Vec<f32>> = (0..req.count)
                    .map(|_| noisy(&mut rng, N * N, sigma, add.as_deref()))
                    .collect();
                let out = self.denoise_all(&tiles, sigma, label, progress).await?;
                out.iter()
                    .map(|m| {
                        Ok(Terrain {
                            heights: post::resize_output(m, (N, N), (h, w), true)?,
                            height: h,
                            width: w,
                        })
                    })
                    .collect()
            }
            post::SizeMode::Tile => {
                let mut tilers = Vec::new();
                let mut tiles = Vec::new();
                for _ in 0..req.count {
                    let tiler = post::Tiler::new(h, w)?;
                    let (ch, cw) = tiler.canvas_size();
                    let add = match &req.source {
                        Some((src, from)) => {
                            Some(post::canvas_source(src, *from, (h, w), (ch, cw))?)
                        }
                        None => None,
                    };
                    let canvas = noisy(&mut rng, ch * cw, sigma, add.as_deref());
                    for o in tiler.origins() {
                        tiles.push(tiler.extract(&canvas, *o)?);
                    }
                    tilers.push(tiler);
                }
                let out = self.denoise_all(&tiles, sigma, label, progress).await?;
                let mut done = out.into_iter();
                tilers
                    .into_iter()
                    .map(|mut t| {
                        let origins = t.origins().to_vec();
                        for o in origins {
                            let tile = done.next().ok_or_else(|| bad("tile count".into()))?;
                            t.accumulate(o, &tile)?;
                        }
                        Ok(Terrain {
                            heights: post::to_heights(&t.finish(), true),
                            height: h,
                            width: w,
                        })
                    })
                    .collect()
            }
        }
    }

    /// Denoises 128² tiles in batches of the compiled size (the last batch
    /// padded), all at `sigma` with one label.
    async fn denoise_all(
        &mut self,
        tiles: &[Vec<f32>],
        sigma: f32,
        label: f32,
        progress: &mut dyn FnMut(usize, usize) -> bool,
    ) -> Result<Vec<Vec<f32>>, LoadError> {
        let b = self.unet.batch;
        let mut out = Vec::with_capacity(tiles.len());
        for chunk in tiles.chunks(b) {
            let mut x = Vec::with_capacity(b * N * N);
            for t in chunk {
                x.extend_from_slice(t);
            }
            x.resize(b * N * N, 0.0);
            let y = self
                .unet
                .denoise_async(&x, &vec![sigma; b], &vec![label; b])
                .await?;
            out.extend(y.chunks(N * N).take(chunk.len()).map(<[f32]>::to_vec));
            if !progress(out.len(), tiles.len()) {
                return Err(LoadError::Cancelled);
            }
        }
        Ok(out)
    }
}

/// `noise·σ (+ source)` for `n` pixels.
fn noisy(rng: &mut Rng, n: usize, sigma: f32, add: Option<&[f32]>) -> Vec<f32> {
    let mut v = rng.normals(n, sigma);
    if let Some(a) = add {
        for (x, s) in v.iter_mut().zip(a) {
            *x += s;
        }
    }
    v
}
