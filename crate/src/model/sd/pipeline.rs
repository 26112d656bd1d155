//! The modules of a diffusers Stable-Diffusion folder, compiled and ready to
//! call: the text encoder (with its tokenizer), the UNet and the VAE decoder.
//! Host-side tensors are NCHW (as diffusers has them); the graphs run NHWC.

use std::path::Path;

use super::{ClipConfig, Component, Loaded, SdOptions, Unet2dConfig, VaeConfig, clip, unet, vae};
use crate::backend::Backend;
use crate::dtype::DType;
use crate::error::KilnError;
use crate::host::HostTensor;
use crate::loader::LoadError;
use crate::model::sd::weights::FileGetter;
use crate::model::unet::{nchw_to_nhwc, nhwc_to_nchw};
use crate::tokenizer::clip::ClipTokenizer;

fn bad(name: &str, detail: String) -> LoadError {
    LoadError::Kiln(KilnError::BadInput {
        name: name.into(),
        detail,
    })
}

fn read(dir: &Path, f: &str) -> Result<Vec<u8>, LoadError> {
    let p = dir.join(f);
    std::fs::read(&p).map_err(|e| LoadError::Io(format!("{}: {e}", p.display())))
}

/// Reads `tokenizer/` of a diffusers folder.
pub fn open_tokenizer(dir: &Path) -> Result<ClipTokenizer, LoadError> {
    let t = dir.join("tokenizer");
    let cfg = std::fs::read(t.join("tokenizer_config.json")).ok();
    ClipTokenizer::from_files(
        &read(&t, "vocab.json")?,
        &read(&t, "merges.txt")?,
        cfg.as_deref(),
    )
    .map_err(|e| LoadError::Tokenizer(e.to_string()))
}

/// The CLIP text encoder for `batch` prompts of the tokenizer's length.
pub struct TextEncoder {
    pub cfg: ClipConfig,
    pub graph: clip::ClipGraph,
    pub loaded: Loaded,
}

impl TextEncoder {
    pub fn load(
        c: &Component,
        backend: &dyn Backend,
        batch: usize,
        tokens: usize,
        opts: &SdOptions,
    ) -> Result<TextEncoder, LoadError> {
        let cfg = ClipConfig::from_json(&c.config)?;
        let graph = clip::build(&cfg, batch, tokens, opts)?;
        let loaded = Loaded::new(&graph.net, c, backend)?;
        Ok(TextEncoder { cfg, graph, loaded })
    }

    /// `[batch·tokens, hidden]` hidden states of `ids` (`batch·tokens` ids).
    pub fn encode(&mut self, ids: &[u32]) -> Result<Vec<f32>, LoadError> {
        pollster::block_on(self.encode_async(ids))
    }

    /// [`TextEncoder::encode`] awaiting the device.
    pub async fn encode_async(&mut self, ids: &[u32]) -> Result<Vec<f32>, LoadError> {
        let (b, t) = (self.graph.batch, self.graph.tokens);
        if ids.len() != b * t {
            return Err(bad(
                "text_encoder",
                format!("expects {b}×{t} ids, got {}", ids.len()),
            ));
        }
        if let Some(id) = ids.iter().find(|i| **i as usize >= self.cfg.vocab) {
            return Err(bad(
                "ids",
                format!(
                    "token id {id} is outside the vocabulary of {}",
                    self.cfg.vocab
                ),
            ));
        }
        let exe = self.loaded.exe.as_mut();
        exe.write(self.graph.ids, &HostTensor::from_u32(&[b * t], ids)?)?;
        self.loaded.run_read(self.graph.hidden).await
    }
}

/// The UNet for a fixed batch, latent size and text length.
pub struct SdUnet {
    pub cfg: Unet2dConfig,
    pub graph: unet::UnetGraph,
    pub loaded: Loaded,
}

impl SdUnet {
    #[allow(clippy::too_many_arguments)]
    pub fn load(
        c: &Component,
        backend: &dyn Backend,
        batch: usize,
        size: (usize, usize),
        text_tokens: usize,
        opts: &SdOptions,
    ) -> Result<SdUnet, LoadError> {
        let cfg = Unet2dConfig::from_json(&c.config)?;
        let graph = unet::build(&cfg, batch, size.0, size.1, text_tokens, opts)?;
        let loaded = Loaded::new(&graph.net, c, backend)?;
        Ok(SdUnet { cfg, graph, loaded })
    }

    /// One call: `sample` NCHW `[B, C, H, W]`, a timestep per sample and the
    /// text states `[B·T, D]` → NCHW model output.
    pub fn call(
        &mut self,
        sample: &[f32],
        timesteps: &[f32],
        context: &[f32],
    ) -> Result<Vec<f32>, LoadError> {
        pollster::block_on(self.call_async(sample, timesteps, context))
    }

    /// [`SdUnet::call`] awaiting the device.
    pub async fn call_async(
        &mut self,
        sample: &[f32],
        timesteps: &[f32],
        context: &[f32],
    ) -> Result<Vec<f32>, LoadError> {
        let g = &self.graph;
        let (b, (h, w)) = (g.batch, g.size);
        let (cin, cout) = (self.cfg.in_channels, self.cfg.out_channels);
        let d = self.cfg.cross_attention_dim;
        if sample.len() != b * cin * h * w
            || timesteps.len() != b
            || context.len() != b * g.text_tokens * d
        {
            return Err(bad(
                "unet",
                format!(
                    "expects {b} samples of {cin}×{h}×{w}, {b} timesteps and {b}×{}×{d} text states",
                    g.text_tokens
                ),
            ));
        }
        let exe = self.loaded.exe.as_mut();
        let nhwc = nchw_to_nhwc(sample, b, cin, h * w);
        exe.write(
            g.sample,
            &HostTensor::from_f32(&[b, h, w, cin], DType::F32, &nhwc)?,
        )?;
        exe.write(
            g.timestep,
            &HostTensor::from_f32(&[b], DType::F32, timesteps)?,
        )?;
        exe.write(
            g.context,
            &HostTensor::from_f32(&[b * g.text_tokens, d], DType::F32, context)?,
        )?;
        let y = self.loaded.run_read(g.output).await?;
        Ok(nhwc_to_nchw(&y, b, cout, h * w))
    }
}

/// The shapes of an autoencoder graph (decoder or encoder): NCHW in, NCHW out.
struct ImageShape {
    batch: usize,
    size: (usize, usize),
    in_channels: usize,
    /// Output pixels per sample.
    out_pixels: usize,
    out_channels: usize,
    /// What the input holds, for messages ("latents", "images").
    what: &'static str,
}

/// Runs an autoencoder graph on NCHW `x` → its NCHW output.
async fn run_nchw(
    loaded: &mut Loaded,
    (input, output): (crate::graph::TensorId, crate::graph::TensorId),
    d: &ImageShape,
    x: &[f32],
    name: &str,
) -> Result<Vec<f32>, LoadError> {
    let (b, (h, w), c) = (d.batch, d.size, d.in_channels);
    if x.len() != b * c * h * w {
        return Err(bad(name, format!("expects {b} {} of {c}×{h}×{w}", d.what)));
    }
    let nhwc = nchw_to_nhwc(x, b, c, h * w);
    loaded.exe.write(
        input,
        &HostTensor::from_f32(&[b, h, w, c], DType::F32, &nhwc)?,
    )?;
    let y = loaded.run_read(output).await?;
    Ok(nhwc_to_nchw(&y, b, d.out_channels, d.out_pixels))
}

/// 8-bit pixels with `channels` interleaved values each (gray, gray+alpha,
/// RGB or RGBA; alpha dropped, gray repeated) → NCHW `[1, 3, h, w]` in
/// [0, 1]: the inverse of [`to_rgba8`].
pub fn from_interleaved8(px: &[u8], channels: usize, (w, h): (usize, usize)) -> Vec<f32> {
    let mut out = vec![0f32; 3 * w * h];
    for p in 0..w * h {
        for c in 0..3 {
            let v = px[p * channels + if channels >= 3 { c } else { 0 }];
            out[c * w * h + p] = v as f32 / 255.0;
        }
    }
    out
}

/// An NCHW `[1, 3, h, w]` image in [0, 1] as RGBA bytes (opaque).
pub fn to_rgba8(img: &[f32], (w, h): (usize, usize)) -> Vec<u8> {
    (0..w * h * 4)
        .map(|i| {
            let (p, ch) = (i / 4, i % 4);
            if ch == 3 {
                255
            } else {
                (img[ch * w * h + p] * 255.0).round() as u8
            }
        })
        .collect()
}

/// The VAE decoder for a fixed batch and latent size.
pub struct VaeDecoder {
    pub cfg: VaeConfig,
    pub graph: vae::VaeGraph,
    pub loaded: Loaded,
}

impl VaeDecoder {
    pub fn load(
        c: &Component,
        backend: &dyn Backend,
        batch: usize,
        size: (usize, usize),
        opts: &SdOptions,
    ) -> Result<VaeDecoder, LoadError> {
        let cfg = VaeConfig::from_json(&c.config)?;
        let graph = vae::build(&cfg, batch, size.0, size.1, opts)?;
        let loaded = Loaded::new(&graph.net, c, backend)?;
        Ok(VaeDecoder { cfg, graph, loaded })
    }

    /// `vae.decode(z)` of NCHW latents `z` as given (the caller divides by
    /// the scaling factor, as pipelines do) → NCHW image, about [-1, 1].
    pub fn decode_raw(&mut self, z: &[f32]) -> Result<Vec<f32>, LoadError> {
        pollster::block_on(self.decode_raw_async(z))
    }

    /// [`VaeDecoder::decode_raw`] awaiting the device.
    pub async fn decode_raw_async(&mut self, z: &[f32]) -> Result<Vec<f32>, LoadError> {
        let g = &self.graph;
        let s = self.cfg.scale();
        let shape = ImageShape {
            batch: g.batch,
            size: g.size,
            in_channels: self.cfg.latent_channels,
            out_pixels: g.size.0 * g.size.1 * s * s,
            out_channels: self.cfg.out_channels,
            what: "latents",
        };
        run_nchw(&mut self.loaded, (g.latents, g.image), &shape, z, "vae").await
    }

    /// Pipeline latents → NCHW image in [0, 1]: `decode(z / scaling + shift)`,
    /// then `(x / 2 + 0.5)` clamped, as diffusers' image processor does.
    pub async fn decode_async(&mut self, latents: &[f32]) -> Result<Vec<f32>, LoadError> {
        let (sf, shift) = (self.cfg.scaling_factor, self.cfg.shift_factor);
        let z: Vec<f32> = latents.iter().map(|v| v / sf + shift).collect();
        let mut x = self.decode_raw_async(&z).await?;
        for v in &mut x {
            *v = (*v / 2.0 + 0.5).clamp(0.0, 1.0);
        }
        Ok(x)
    }
}

/// The `AutoencoderKL` encoder for a fixed batch and image size (img2img).
pub struct VaeEncoder {
    pub cfg: VaeConfig,
    pub graph: super::vae_encoder::VaeEncoderGraph,
    pub loaded: Loaded,
}

impl VaeEncoder {
    pub fn load(
        c: &Component,
        backend: &dyn Backend,
        batch: usize,
        size: (usize, usize),
        opts: &SdOptions,
    ) -> Result<VaeEncoder, LoadError> {
        let cfg = VaeConfig::from_json(&c.config)?;
        let graph = super::vae_encoder::build(&cfg, batch, size.0, size.1, opts)?;
        let loaded = Loaded::new(&graph.net, c, backend)?;
        Ok(VaeEncoder { cfg, graph, loaded })
    }

    /// `quant_conv(encoder(x))` of NCHW images in [-1, 1] → NCHW moments
    /// `[B, 2·latent_channels, H/s, W/s]` (mean, then log-variance).
    pub fn encode_raw(&mut self, x: &[f32]) -> Result<Vec<f32>, LoadError> {
        pollster::block_on(self.encode_raw_async(x))
    }

    /// [`VaeEncoder::encode_raw`] awaiting the device.
    pub async fn encode_raw_async(&mut self, x: &[f32]) -> Result<Vec<f32>, LoadError> {
        let g = &self.graph;
        let s = self.cfg.scale();
        let shape = ImageShape {
            batch: g.batch,
            size: g.size,
            in_channels: self.cfg.in_channels,
            out_pixels: g.size.0 * g.size.1 / (s * s),
            out_channels: 2 * self.cfg.latent_channels,
            what: "images",
        };
        run_nchw(
            &mut self.loaded,
            (g.image, g.moments),
            &shape,
            x,
            "vae encoder",
        )
        .await
    }

    /// An NCHW `[1, C, H, W]` image in [0, 1] → pipeline latents: a draw
    /// from the posterior (`mean + exp(logvar / 2)·ε`, log-variance clamped
    /// to [-30, 20] as diffusers does; `eps` N(0, 1) values, one per latent)
    /// times the scaling factor, as StableDiffusionImg2ImgPipeline does.
    pub async fn latents_async(&mut self, img: &[f32], eps: &[f32]) -> Result<Vec<f32>, LoadError> {
        if self.graph.batch != 1 {
            return Err(bad("vae encoder", "latents are drawn for one image".into()));
        }
        let x: Vec<f32> = img.iter().map(|v| v * 2.0 - 1.0).collect();
        let m = self.encode_raw_async(&x).await?;
        let n = m.len() / 2;
        if eps.len() != n {
            return Err(bad("eps", format!("{} values, expected {n}", eps.len())));
        }
        let sf = self.cfg.scaling_factor;
        Ok((0..n)
            .map(|i| {
                let std = (0.5 * m[n + i].clamp(-30.0, 20.0)).exp();
                sf * (m[i] + std * eps[i])
            })
            .collect())
    }
}

/// The TAESD decoder (`AutoencoderTiny`) for a fixed batch and latent size.
pub struct TaesdDecoder {
    pub cfg: super::taesd::TaesdConfig,
    pub graph: super::taesd::TaesdGraph,
    pub loaded: Loaded,
}

impl TaesdDecoder {
    pub fn load(
        c: &Component,
        backend: &dyn Backend,
        batch: usize,
        size: (usize, usize),
        opts: &SdOptions,
    ) -> Result<TaesdDecoder, LoadError> {
        let cfg = super::taesd::TaesdConfig::from_json(&c.config)?;
        let graph = super::taesd::build(&cfg, batch, size.0, size.1, opts)?;
        let loaded = Loaded::new(&graph.net, c, backend)?;
        Ok(TaesdDecoder { cfg, graph, loaded })
    }

    async fn run(&mut self, z: &[f32]) -> Result<Vec<f32>, LoadError> {
        let g = &self.graph;
        let s = self.cfg.scale();
        let shape = ImageShape {
            batch: g.batch,
            size: g.size,
            in_channels: self.cfg.latent_channels,
            out_pixels: g.size.0 * g.size.1 * s * s,
            out_channels: self.cfg.out_channels,
            what: "latents",
        };
        run_nchw(&mut self.loaded, (g.latents, g.image), &shape, z, "taesd").await
    }

    /// diffusers' `AutoencoderTiny.decode(z).sample` (NCHW, about [-1, 1]).
    pub fn decode_raw(&mut self, z: &[f32]) -> Result<Vec<f32>, LoadError> {
        let y = pollster::block_on(self.run(z))?;
        Ok(y.iter().map(|y| 2.0 * y - 1.0).collect())
    }

    /// Pipeline latents → NCHW image in [0, 1] (`z / scaling_factor`, then
    /// the decoder's output clamped).
    pub async fn decode_async(&mut self, latents: &[f32]) -> Result<Vec<f32>, LoadError> {
        let sf = self.cfg.scaling_factor;
        let z: Vec<f32> = latents.iter().map(|v| v / sf).collect();
        Ok(self
            .run(&z)
            .await?
            .iter()
            .map(|y| y.clamp(0.0, 1.0))
            .collect())
    }
}

/// A text-to-image request.
#[derive(Clone, Debug)]
pub struct TextToImage {
    pub prompt: String,
    pub negative: String,
    pub steps: usize,
    pub scheduler: super::scheduler::SchedulerKind,
    /// Classifier-free guidance scale (≤ 1: no unconditional pass).
    pub guidance: f32,
    pub seed: u64,
    /// Starting latents `[1, C, h, w]` (N(0, 1), before the scheduler's
    /// init sigma; with `init`, the noise added to the image's latents)
    /// instead of drawing them from `seed` (parity checks).
    pub init_latents: Option<Vec<f32>>,
    /// img2img: start from this image instead of pure noise.
    pub init: Option<InitImage>,
    /// img2img: how much of the schedule runs, in (0, 1] (the last
    /// `⌊steps·strength⌋` steps, from the image noised to that level).
    pub strength: f32,
}

/// img2img's starting point.
#[derive(Clone, Debug)]
pub enum InitImage {
    /// NCHW `[1, C, H, W]` in [0, 1] at the pipeline's size: encoded by the
    /// folder's VAE encoder ([`StableDiffusion::load_encoder`]).
    Pixels(Vec<f32>),
    /// Pipeline latents `[1, C, h, w]` (already times the scaling factor).
    Latents(Vec<f32>),
}

/// The image decoder: the folder's `AutoencoderKL`, or TAESD (`--taesd`, or
/// a folder whose `vae/` is an `AutoencoderTiny`, as SDXS ships).
pub enum Decoder {
    Kl(VaeDecoder),
    Tiny(TaesdDecoder),
}

impl Decoder {
    /// Loads `c` by its `_class_name`.
    pub fn load(
        c: &Component,
        backend: &dyn Backend,
        latent: (usize, usize),
        opts: &SdOptions,
    ) -> Result<Decoder, LoadError> {
        Ok(if Decoder::is_tiny(c) {
            Decoder::Tiny(TaesdDecoder::load(c, backend, 1, latent, opts)?)
        } else {
            Decoder::Kl(VaeDecoder::load(c, backend, 1, latent, opts)?)
        })
    }

    fn is_tiny(c: &Component) -> bool {
        c.config
            .get("_class_name")
            .and_then(serde_json::Value::as_str)
            == Some("AutoencoderTiny")
    }

    /// Image pixels per latent pixel.
    pub fn scale_of(c: &Component) -> Result<usize, LoadError> {
        Ok(if Decoder::is_tiny(c) {
            super::taesd::TaesdConfig::from_json(&c.config)?.scale()
        } else {
            VaeConfig::from_json(&c.config)?.scale()
        })
    }

    /// Pipeline latents → NCHW image in [0, 1].
    pub async fn decode_async(&mut self, latents: &[f32]) -> Result<Vec<f32>, LoadError> {
        match self {
            Decoder::Kl(d) => d.decode_async(latents).await,
            Decoder::Tiny(d) => d.decode_async(latents).await,
        }
    }
}

/// Where the last generation's time went (seconds, device work included:
/// every phase ends with its result read back).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SdTimings {
    pub text_encoder: f64,
    /// One entry per denoising step (UNet call(s) and the scheduler).
    pub steps: Vec<f64>,
    pub decode: f64,
}

/// A loaded diffusers Stable-Diffusion folder at one image size.
pub struct StableDiffusion {
    pub tokenizer: ClipTokenizer,
    pub text: TextEncoder,
    pub unet: SdUnet,
    pub vae: Decoder,
    /// The VAE encoder, loaded for img2img ([`StableDiffusion::load_encoder`]).
    pub encoder: Option<VaeEncoder>,
    pub sched: super::scheduler::SchedConfig,
    /// Latent height and width.
    pub latent: (usize, usize),
    /// The last [`StableDiffusion::generate`]'s phases.
    pub timings: SdTimings,
}

impl StableDiffusion {
    /// Loads `dir` (a diffusers pipeline folder) for `width × height`
    /// images; `cfg_batch` compiles the UNet for two samples (guidance);
    /// `taesd` replaces the folder's VAE by a TAESD folder.
    pub fn open(
        dir: &Path,
        backend: &dyn Backend,
        size: (usize, usize),
        cfg_batch: bool,
        taesd: Option<&Path>,
        opts: &SdOptions,
    ) -> Result<StableDiffusion, LoadError> {
        let mut get = |f: &str| match (f.strip_prefix("taesd/"), taesd) {
            (Some(rest), Some(t)) => super::weights::read_in(t, rest),
            _ => super::weights::read_in(dir, f),
        };
        let place = dir.display().to_string();
        let place = place.trim_end_matches('/');
        StableDiffusion::load(
            &mut get,
            place,
            backend,
            size,
            cfg_batch,
            taesd.is_some(),
            opts,
        )
    }

    /// Loads a pipeline from a file getter over the folder (`get("unet/
    /// config.json")`; `Ok(None)`: no such file; `taesd/…` names the TAESD
    /// folder's files when `use_taesd`): native folders and browser file sets
    /// alike. `place` names the folder in messages.
    #[allow(clippy::too_many_arguments)]
    pub fn load(
        get: &mut FileGetter,
        place: &str,
        backend: &dyn Backend,
        (width, height): (usize, usize),
        cfg_batch: bool,
        use_taesd: bool,
        opts: &SdOptions,
    ) -> Result<StableDiffusion, LoadError> {
        for (sub, file) in [
            ("tokenizer", "vocab.json"),
            ("text_encoder", "config.json"),
            ("unet", "config.json"),
            ("vae", "config.json"),
            ("scheduler", "scheduler_config.json"),
        ] {
            if get(&format!("{sub}/{file}"))?.is_none() {
                return Err(LoadError::Io(format!(
                    "{place}: no {sub}/ folder ({sub}/{file} is missing; a diffusers Stable-Diffusion folder has tokenizer/, text_encoder/, unet/, vae/ and scheduler/)"
                )));
            }
        }
        let mut component = |sub: &str| {
            Component::load(sub, &format!("{place}/{sub}"), &mut |f: &str| {
                get(&format!("{sub}/{f}"))
            })
        };
        let vae_c = component(if use_taesd { "taesd" } else { "vae" })?;
        let unet_c = component("unet")?;
        let text_c = component("text_encoder")?;
        let need = |get: &mut FileGetter, f: &str| {
            get(f)?.ok_or_else(|| LoadError::Io(format!("{place}: no {f}")))
        };
        let tokenizer = ClipTokenizer::from_files(
            &need(get, "tokenizer/vocab.json")?,
            &need(get, "tokenizer/merges.txt")?,
            get("tokenizer/tokenizer_config.json")?.as_deref(),
        )
        .map_err(|e| LoadError::Tokenizer(e.to_string()))?;
        let sched_json: serde_json::Value =
            serde_json::from_slice(&need(get, "scheduler/scheduler_config.json")?)
                .map_err(|e| LoadError::Corrupt(format!("scheduler_config.json: {e}")))?;
        let sched = super::scheduler::SchedConfig::from_json(&sched_json)?;
        let s = Decoder::scale_of(&vae_c)?;
        let ucfg = Unet2dConfig::from_json(&unet_c.config)?;
        let m = s * ucfg.size_multiple();
        if width == 0 || height == 0 || !width.is_multiple_of(m) || !height.is_multiple_of(m) {
            return Err(bad(
                "size",
                format!("{width}×{height}: width and height must be multiples of {m}"),
            ));
        }
        let latent = (height / s, width / s);
        let batch = if cfg_batch { 2 } else { 1 };
        let tokens = tokenizer.max_length;
        let text = TextEncoder::load(&text_c, backend, batch, tokens, opts)?;
        drop(text_c);
        let unet = SdUnet::load(&unet_c, backend, batch, latent, tokens, opts)?;
        drop(unet_c);
        let vae = Decoder::load(&vae_c, backend, latent, opts)?;
        Ok(StableDiffusion {
            tokenizer,
            text,
            unet,
            vae,
            encoder: None,
            sched,
            latent,
            timings: SdTimings::default(),
        })
    }

    /// Loads the VAE encoder img2img needs from a file getter over the folder
    /// (as [`StableDiffusion::load`] reads it): `vae/` must be an
    /// `AutoencoderKL` (TAESD and SDXS-style tiny VAEs have no encoder here).
    pub fn load_encoder_from(
        &mut self,
        get: &mut FileGetter,
        place: &str,
        backend: &dyn Backend,
        opts: &SdOptions,
    ) -> Result<(), LoadError> {
        let c = Component::load("vae", &format!("{place}/vae"), &mut |f: &str| {
            get(&format!("vae/{f}"))
        })?;
        if Decoder::is_tiny(&c) {
            return Err(bad(
                "init",
                format!(
                    "{place}/vae is an AutoencoderTiny: img2img needs an AutoencoderKL encoder"
                ),
            ));
        }
        let s = VaeConfig::from_json(&c.config)?.scale();
        let size = (self.latent.0 * s, self.latent.1 * s);
        self.encoder = Some(VaeEncoder::load(&c, backend, 1, size, opts)?);
        Ok(())
    }

    /// [`StableDiffusion::load_encoder_from`] over a folder on disk.
    pub fn load_encoder(
        &mut self,
        dir: &Path,
        backend: &dyn Backend,
        opts: &SdOptions,
    ) -> Result<(), LoadError> {
        let mut get = |f: &str| super::weights::read_in(dir, f);
        let place = dir.display().to_string();
        self.load_encoder_from(&mut get, place.trim_end_matches('/'), backend, opts)
    }

    /// Runs the request; `on_step(i, steps)` after each step. Returns the
    /// image NCHW `[1, 3, H, W]` in [0, 1].
    pub fn generate(
        &mut self,
        req: &TextToImage,
        on_step: &mut dyn FnMut(usize, usize) -> bool,
    ) -> Result<Vec<f32>, LoadError> {
        pollster::block_on(self.generate_async(req, on_step))
    }

    /// [`StableDiffusion::generate`] awaiting the device; `on_step`
    /// returning false cancels (`Cancelled`) after the step.
    pub async fn generate_async(
        &mut self,
        req: &TextToImage,
        on_step: &mut dyn FnMut(usize, usize) -> bool,
    ) -> Result<Vec<f32>, LoadError> {
        let guided = self.unet.graph.batch == 2;
        if guided != (req.guidance > 1.0) {
            return Err(bad(
                "guidance",
                format!(
                    "{} was loaded for {} guidance",
                    req.guidance,
                    if guided { "classifier-free" } else { "no" }
                ),
            ));
        }
        let mut ids = Vec::new();
        if guided {
            ids.extend(
                self.tokenizer
                    .encode_padded(&req.negative)
                    .map_err(|e| LoadError::Tokenizer(e.to_string()))?,
            );
        }
        ids.extend(
            self.tokenizer
                .encode_padded(&req.prompt)
                .map_err(|e| LoadError::Tokenizer(e.to_string()))?,
        );
        let mut timings = SdTimings::default();
        let t0 = web_time::Instant::now();
        let context = self.text.encode_async(&ids).await?;
        timings.text_encoder = t0.elapsed().as_secs_f64();
        let mut s = super::scheduler::Scheduler::new(req.scheduler, &self.sched, req.steps)?;
        let c = self.unet.cfg.in_channels;
        let n = c * self.latent.0 * self.latent.1;
        let mut rng = crate::rng::Rng::new(req.seed);
        let given = match &req.init_latents {
            Some(v) if v.len() == n => Some(v.clone()),
            Some(v) => {
                return Err(bad(
                    "init_latents",
                    format!("{} values, expected {n}", v.len()),
                ));
            }
            None => None,
        };
        let (first, mut x) = match &req.init {
            None => {
                let sigma = s.init_noise_sigma();
                let init = given.unwrap_or_else(|| rng.normals(n, 1.0));
                (0, init.iter().map(|v| (*v as f64 * sigma) as f32).collect())
            }
            Some(img) => {
                // diffusers' order of draws: the posterior's ε, then the noise.
                let first = s.first_step(req.strength as f64)?;
                let x0 = match img {
                    InitImage::Latents(v) if v.len() == n => v.clone(),
                    InitImage::Latents(v) => {
                        return Err(bad("init", format!("{} latents, expected {n}", v.len())));
                    }
                    InitImage::Pixels(px) => {
                        let enc = self.encoder.as_mut().ok_or_else(|| {
                            bad("init", "no VAE encoder loaded (load_encoder)".into())
                        })?;
                        let eps = rng.normals(n, 1.0);
                        enc.latents_async(px, &eps).await?
                    }
                };
                let noise = given.unwrap_or_else(|| rng.normals(n, 1.0));
                (first, s.add_noise(first, &x0, &noise))
            }
        };
        for i in first..req.steps {
            let t0 = web_time::Instant::now();
            let k = s.input_scale(i) as f32;
            let t = s.timesteps[i] as f32;
            let scaled: Vec<f32> = x.iter().map(|v| v * k).collect();
            let guided_out = if guided {
                let both: Vec<f32> = scaled.iter().chain(&scaled).copied().collect();
                let out = self.unet.call_async(&both, &[t, t], &context).await?;
                let (u, cnd) = out.split_at(n);
                u.iter()
                    .zip(cnd)
                    .map(|(u, c)| u + req.guidance * (c - u))
                    .collect()
            } else {
                self.unet.call_async(&scaled, &[t], &context).await?
            };
            let noise = s.needs_noise(i).then(|| rng.normals(n, 1.0));
            x = s.step(i, &guided_out, &x, noise.as_deref())?;
            timings.steps.push(t0.elapsed().as_secs_f64());
            if !on_step(i + 1 - first, req.steps - first) {
                return Err(LoadError::Cancelled);
            }
        }
        let t0 = web_time::Instant::now();
        let image = self.vae.decode_async(&x).await?;
        timings.decode = t0.elapsed().as_secs_f64();
        self.timings = timings;
        Ok(image)
    }
}
