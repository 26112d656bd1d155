//! The modules of a diffusers Stable-Diffusion folder, compiled and ready to
//! call: the text encoder (with its tokenizer), the UNet and the VAE decoder.
//! Host-side tensors are NCHW (as diffusers has them); the graphs run NHWC.
//! The request and the denoising loop over them: `txt2img.rs` (re-exported).

use std::path::Path;

use super::vae_tiling::VaeTiling;
use super::{ClipConfig, Component, Loaded, SdOptions, Unet2dConfig, VaeConfig, clip, unet, vae};
use crate::backend::Backend;
use crate::dtype::DType;
use crate::error::KilnError;
use crate::host::HostTensor;
use crate::loader::LoadError;
use crate::model::unet::{nchw_to_nhwc, nhwc_to_nchw};
use crate::tokenizer::clip::ClipTokenizer;

pub use super::txt2img::{InitImage, SdTimings, StableDiffusion, TextToImage};

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
        let graph = if opts.vae_tiling {
            vae::build_tiled(&cfg, batch, size.0, size.1, opts)?
        } else {
            vae::build(&cfg, batch, size.0, size.1, opts)?
        };
        let loaded = Loaded::new(&graph.net, c, backend)?;
        Ok(VaeDecoder { cfg, graph, loaded })
    }

    /// Whether this decoder works in tiles (`SdOptions::vae_tiling` and
    /// latents larger than a tile).
    pub fn tiled(&self) -> bool {
        self.graph.tiles.is_some()
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
        let (b, lc, oc) = (g.batch, self.cfg.latent_channels, self.cfg.out_channels);
        let Some(tiled) = &g.tiles else {
            let shape = ImageShape {
                batch: b,
                size: g.size,
                in_channels: lc,
                out_pixels: g.size.0 * g.size.1 * s * s,
                out_channels: oc,
                what: "latents",
            };
            return run_nchw(&mut self.loaded, (g.latents, g.image), &shape, z, "vae").await;
        };
        let (h, w) = g.size;
        if z.len() != b * lc * h * w {
            return Err(bad("vae", format!("expects {b} latents of {lc}×{h}×{w}")));
        }
        let tiling = tiled.tiling;
        let mut decoded = Vec::new();
        for t in tiling.tiles((h, w)) {
            let Some(&(_, p, input, output)) = tiled.programs.iter().find(|pr| pr.0 == (t.h, t.w))
            else {
                return Err(bad("vae", format!("no program for a {}×{} tile", t.h, t.w)));
            };
            let part = VaeTiling::cut(z, (b, lc), (h, w), &t);
            let nhwc = nchw_to_nhwc(&part, b, lc, t.h * t.w);
            self.loaded.exe.write(
                input,
                &HostTensor::from_f32(&[b, t.h, t.w, lc], DType::F32, &nhwc)?,
            )?;
            let y = self.loaded.run_program_read(p, output).await?;
            decoded.push(nhwc_to_nchw(&y, b, oc, t.h * t.w * s * s));
        }
        Ok(tiling.assemble(decoded, (b, oc), (h, w))?)
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

    pub(super) fn is_tiny(c: &Component) -> bool {
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
