//! Text to image (and img2img) over a loaded diffusers folder: the request,
//! the pipeline that owns the compiled modules (`pipeline.rs`), the
//! denoising loop, and the text encoder's life cycle (freed after encoding,
//! its prompts kept).

use std::path::Path;

use super::pipeline::{Decoder, SdUnet, TaesdDecoder, TextEncoder, VaeEncoder};
use super::{Component, SdOptions, Unet2dConfig, VaeConfig};
use crate::backend::Backend;
use crate::error::KilnError;
use crate::loader::LoadError;
use crate::model::sd::weights::{FileGetter, read_small};
use crate::tokenizer::clip::ClipTokenizer;

/// `load(get, place)` with a file getter over folder `dir` and its name for
/// messages: the on-disk form of the `*_from` loaders.
fn on_disk<T>(dir: &Path, load: impl FnOnce(&mut FileGetter, &str) -> T) -> T {
    let mut get = |f: &str| super::weights::read_in(dir, f);
    let place = dir.display().to_string();
    load(&mut get, place.trim_end_matches('/'))
}

fn bad(name: &str, detail: String) -> LoadError {
    LoadError::Kiln(KilnError::BadInput {
        name: name.into(),
        detail,
    })
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

/// Where the last generation's time went (seconds, device work included:
/// every phase ends with its result read back).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SdTimings {
    pub text_encoder: f64,
    /// One entry per denoising step (UNet call(s) and the scheduler).
    pub steps: Vec<f64>,
    pub decode: f64,
}

/// Encoded prompts kept for after [`StableDiffusion::free_text_encoder`]
/// (each 77 × hidden floats per sample: ≈ 0.6 MB for SD 2.x with guidance).
const KEPT_PROMPTS: usize = 8;

/// A loaded diffusers Stable-Diffusion folder at one image size.
pub struct StableDiffusion {
    pub tokenizer: ClipTokenizer,
    /// `None` once freed ([`StableDiffusion::free_text_encoder`]).
    pub text: Option<TextEncoder>,
    /// (token ids, text-encoder output) of the last KEPT_PROMPTS encodings,
    /// most recent last: what generates once the encoder is freed.
    kept: Vec<(Vec<u32>, Vec<f32>)>,
    pub unet: SdUnet,
    pub vae: Decoder,
    /// The VAE encoder, loaded for img2img ([`StableDiffusion::load_encoder`]).
    pub encoder: Option<VaeEncoder>,
    /// A TAESD decoder for step previews ([`StableDiffusion::load_preview`]).
    pub preview: Option<TaesdDecoder>,
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
            read_small(get, f)?.ok_or_else(|| LoadError::Io(format!("{place}: no {f}")))
        };
        let tokenizer = ClipTokenizer::from_files(
            &need(get, "tokenizer/vocab.json")?,
            &need(get, "tokenizer/merges.txt")?,
            read_small(get, "tokenizer/tokenizer_config.json")?.as_deref(),
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
            text: Some(text),
            kept: Vec::new(),
            unet,
            vae,
            encoder: None,
            preview: None,
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
        on_disk(dir, |get, place| {
            self.load_encoder_from(get, place, backend, opts)
        })
    }

    /// The text encoder's input: the negative prompt's ids first when the
    /// pipeline runs guidance, then the prompt's.
    fn prompt_ids(&self, prompt: &str, negative: &str) -> Result<Vec<u32>, LoadError> {
        let tok = |t: &str| {
            self.tokenizer
                .encode_padded(t)
                .map_err(|e| LoadError::Tokenizer(e.to_string()))
        };
        let mut ids = Vec::new();
        if self.unet.graph.batch == 2 {
            ids.extend(tok(negative)?);
        }
        ids.extend(tok(prompt)?);
        Ok(ids)
    }

    /// The text encoder's output for a prompt: encoded (and kept) while the
    /// encoder is loaded, else a kept encoding or a typed error.
    async fn context(&mut self, prompt: &str, negative: &str) -> Result<Vec<f32>, LoadError> {
        let ids = self.prompt_ids(prompt, negative)?;
        let Some(text) = self.text.as_mut() else {
            return self
                .kept
                .iter()
                .find(|(k, _)| *k == ids)
                .map(|(_, c)| c.clone())
                .ok_or_else(|| {
                    bad(
                        "prompt",
                        format!(
                            "'{prompt}' was not encoded before the text encoder was freed (free_text_encoder keeps the last {KEPT_PROMPTS} prompts; encode_prompt prepares more)"
                        ),
                    )
                });
        };
        let c = text.encode_async(&ids).await?;
        self.kept.retain(|(k, _)| *k != ids);
        if self.kept.len() == KEPT_PROMPTS {
            self.kept.remove(0);
        }
        self.kept.push((ids, c.clone()));
        Ok(c)
    }

    /// Encodes a prompt (and negative prompt) ahead, so it still generates
    /// after [`StableDiffusion::free_text_encoder`].
    pub fn encode_prompt(&mut self, prompt: &str, negative: &str) -> Result<(), LoadError> {
        pollster::block_on(self.encode_prompt_async(prompt, negative))
    }

    /// [`StableDiffusion::encode_prompt`] awaiting the device.
    pub async fn encode_prompt_async(
        &mut self,
        prompt: &str,
        negative: &str,
    ) -> Result<(), LoadError> {
        self.context(prompt, negative).await.map(|_| ())
    }

    /// Frees the text encoder's device memory (about 1.4 GB of f32 weights
    /// for SD 2.x): the last KEPT_PROMPTS encoded prompts still generate,
    /// others are a typed error until the pipeline is loaded again.
    pub fn free_text_encoder(&mut self) {
        self.text = None;
    }

    /// Device bytes the pipeline holds now (every loaded component).
    pub fn device_bytes(&self) -> u64 {
        let vae = match &self.vae {
            Decoder::Kl(d) => d.loaded.exe.device_bytes(),
            Decoder::Tiny(d) => d.loaded.exe.device_bytes(),
        };
        self.text
            .as_ref()
            .map_or(0, |t| t.loaded.exe.device_bytes())
            + self.unet.loaded.exe.device_bytes()
            + vae
            + self
                .encoder
                .as_ref()
                .map_or(0, |e| e.loaded.exe.device_bytes())
    }

    /// Loads a TAESD decoder (an `AutoencoderTiny` folder's `config.json`
    /// and weights, through `get`) for step previews: [`StableDiffusion::
    /// generate_previewed_async`] decodes each step's predicted clean
    /// latents with it (a few ms, where the full VAE takes far longer).
    pub fn load_preview_from(
        &mut self,
        get: &mut FileGetter,
        place: &str,
        backend: &dyn Backend,
        opts: &SdOptions,
    ) -> Result<(), LoadError> {
        let c = Component::load("taesd", place, get)?;
        if !Decoder::is_tiny(&c) {
            return Err(bad(
                "preview",
                format!("{place} is not an AutoencoderTiny (TAESD) folder"),
            ));
        }
        self.preview = Some(TaesdDecoder::load(&c, backend, 1, self.latent, opts)?);
        Ok(())
    }

    /// [`StableDiffusion::load_preview_from`] over a folder on disk.
    pub fn load_preview(
        &mut self,
        dir: &Path,
        backend: &dyn Backend,
        opts: &SdOptions,
    ) -> Result<(), LoadError> {
        on_disk(dir, |get, place| {
            self.load_preview_from(get, place, backend, opts)
        })
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
        self.generate_previewed_async(req, on_step, None).await
    }

    /// [`StableDiffusion::generate_async`] with step previews: after each
    /// step (before `on_step`), `on_preview(done, image)` gets the step's
    /// predicted clean latents decoded by the preview TAESD (NCHW
    /// `[1, 3, H, W]` in [0, 1]; the error is typed when none is loaded).
    pub async fn generate_previewed_async(
        &mut self,
        req: &TextToImage,
        on_step: &mut dyn FnMut(usize, usize) -> bool,
        mut on_preview: Option<&mut dyn FnMut(usize, Vec<f32>)>,
    ) -> Result<Vec<f32>, LoadError> {
        if on_preview.is_some() && self.preview.is_none() {
            return Err(bad(
                "preview",
                "no preview decoder loaded (load_preview)".into(),
            ));
        }
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
        let mut timings = SdTimings::default();
        let t0 = web_time::Instant::now();
        let context = self.context(&req.prompt, &req.negative).await?;
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
            let denoised = on_preview.is_some().then(|| s.denoised(i, &guided_out, &x));
            x = s.step(i, &guided_out, &x, noise.as_deref())?;
            if let (Some(cb), Some(pv), Some(d)) =
                (on_preview.as_mut(), self.preview.as_mut(), denoised)
            {
                cb(i + 1 - first, pv.decode_async(&d).await?);
            }
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
