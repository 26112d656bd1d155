//! The browser binding of Stable-Diffusion-family text to image (feature
//! `web`, wasm32 only): `Engine.loadStableDiffusion(files, options)` takes
//! the files of a diffusers folder (an object of relative path →
//! `Uint8Array`) and gives an [`SdModel`], whose `generate` resolves to an
//! RGBA image. Wrapped by `Kiln.loadDiffusion` (`crate/js/diffusion.js`).

use std::cell::RefCell;
use std::rc::Rc;

use serde::Deserialize;
use wasm_bindgen::prelude::*;

use crate::loader::LoadError;
use crate::loader::file::ModelFile;
use crate::model::sd::SdOptions;
use crate::model::sd::pipeline::{InitImage, StableDiffusion, TextToImage};
use crate::model::sd::scheduler::SchedulerKind;
use crate::model::sd::weights::read_small;
use crate::web::{Engine, bad_arg, claim, err, progress_fn, release};

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct SdLoadOptions {
    width: Option<usize>,
    height: Option<usize>,
    /// Compile the UNet for classifier-free guidance (two samples a step).
    guidance: Option<bool>,
    /// Weights on the device: "f32" (default), "f16" or "q8_0".
    weights: Option<String>,
    /// Decode with the folder's `taesd/` files instead of `vae/`.
    taesd: Option<bool>,
    /// Decode the VAE in tiles (diffusers' `enable_vae_tiling()`).
    vae_tiling: Option<bool>,
    /// Also load the VAE encoder (img2img: `generate({initImage})`).
    img2img: Option<bool>,
    /// Also load the folder's `taesd/` for step previews.
    previews: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SdGenerateOptions {
    prompt: String,
    negative_prompt: Option<String>,
    steps: Option<usize>,
    scheduler: Option<String>,
    guidance: Option<f32>,
    seed: Option<f64>,
    /// Starting latents (N(0, 1)) instead of the seed's (parity tests).
    init_latents: Option<Vec<f32>>,
    /// img2img: the starting image, RGBA bytes of the pipeline's size.
    init_image: Option<Vec<u8>>,
    /// img2img: how much of the schedule runs, (0, 1] (default 0.8).
    strength: Option<f32>,
}

#[wasm_bindgen]
impl Engine {
    /// Loads a diffusers Stable-Diffusion folder from its files:
    /// `{ "unet/config.json": Uint8Array, … }`.
    #[wasm_bindgen(js_name = loadStableDiffusion)]
    pub fn load_stable_diffusion(
        &self,
        files: js_sys::Object,
        options: JsValue,
    ) -> Result<SdModel, JsValue> {
        let o: SdLoadOptions = if options.is_undefined() || options.is_null() {
            SdLoadOptions::default()
        } else {
            serde_wasm_bindgen::from_value(options).map_err(bad_arg)?
        };
        let weight_dtype = match o.weights.as_deref() {
            None | Some("f32") => None,
            Some("f16") => Some(crate::DType::F16),
            Some("q8_0") => Some(crate::DType::Q8_0),
            Some(w) => return Err(bad_arg(format!("weights '{w}' (f32, f16 or q8_0)"))),
        };
        // Each file stays on the page (bytes, or a Blob in a worker); the
        // loaders copy in the headers and one tensor at a time.
        let mut get = |f: &str| -> Result<Option<ModelFile>, LoadError> {
            let v = js_sys::Reflect::get(&files, &f.into())
                .map_err(|_| LoadError::Io(format!("reading {f}")))?;
            if v.is_undefined() || v.is_null() {
                return Ok(None);
            }
            crate::web_files::js_file(f, &v).map(Some)
        };
        // The default size: the UNet's sample size times the decoder's scale.
        let size = match (o.width, o.height) {
            (Some(w), Some(h)) => (w, h),
            _ => default_size(&mut get, o.taesd == Some(true)).map_err(err)?,
        };
        let opts = SdOptions {
            weight_dtype,
            vae_tiling: o.vae_tiling == Some(true),
            ..Default::default()
        };
        let mut sd = StableDiffusion::load(
            &mut get,
            "the model folder",
            self.dyn_backend().as_ref(),
            size,
            o.guidance != Some(false),
            o.taesd == Some(true),
            &opts,
        )
        .map_err(err)?;
        if o.img2img == Some(true) {
            sd.load_encoder_from(
                &mut get,
                "the model folder",
                self.dyn_backend().as_ref(),
                &opts,
            )
            .map_err(err)?;
        }
        if o.previews == Some(true) {
            let mut taesd = |f: &str| get(&format!("taesd/{f}"));
            sd.load_preview_from(
                &mut taesd,
                "the model folder's taesd/",
                self.dyn_backend().as_ref(),
                &opts,
            )
            .map_err(err)?;
        }
        Ok(SdModel {
            inner: Rc::new(RefCell::new(Some(sd))),
            size,
        })
    }
}

fn default_size(
    get: &mut crate::model::sd::weights::FileGetter,
    taesd: bool,
) -> Result<(usize, usize), LoadError> {
    let mut json = |f: &str| -> Result<serde_json::Value, LoadError> {
        let b = read_small(get, f)?;
        let b = b.ok_or_else(|| LoadError::Io(format!("the model folder has no {f}")))?;
        serde_json::from_slice(&b).map_err(|e| LoadError::Corrupt(format!("{f}: {e}")))
    };
    let u = json("unet/config.json")?;
    let u = crate::model::sd::Unet2dConfig::from_json(&u)?;
    let vf = if taesd {
        "taesd/config.json"
    } else {
        "vae/config.json"
    };
    let v = json(vf)?;
    let s = if v.get("_class_name").and_then(|c| c.as_str()) == Some("AutoencoderTiny") {
        crate::model::sd::taesd::TaesdConfig::from_json(&v)?.scale()
    } else {
        crate::model::sd::VaeConfig::from_json(&v)?.scale()
    };
    Ok((u.sample_size * s, u.sample_size * s))
}

/// A loaded Stable-Diffusion pipeline (one image size).
#[wasm_bindgen]
pub struct SdModel {
    inner: Rc<RefCell<Option<StableDiffusion>>>,
    size: (usize, usize),
}

#[wasm_bindgen]
impl SdModel {
    /// `{prompt, negativePrompt, steps, scheduler, guidance, seed,
    /// initLatents, initImage (RGBA bytes), strength}` → `{width, height,
    /// image: Uint8ClampedArray RGBA}`.
    /// `onStep(done, total)` after every step; returning false aborts.
    /// `onPreview(done, rgba, width, height)` (models loaded with
    /// `previews`) before it: the step's predicted image by TAESD.
    #[allow(clippy::await_holding_refcell_ref)]
    pub fn generate(
        &self,
        options: JsValue,
        on_step: js_sys::Function,
        on_preview: Option<js_sys::Function>,
    ) -> Result<js_sys::Promise, JsValue> {
        let o: SdGenerateOptions = serde_wasm_bindgen::from_value(options).map_err(bad_arg)?;
        let name = o.scheduler.as_deref().unwrap_or("euler");
        let scheduler = SchedulerKind::parse(name).ok_or_else(|| {
            bad_arg(format!(
                "scheduler '{name}' (euler, euler-a, ddim, dpm++2m, dpm++2m-karras, lcm)"
            ))
        })?;
        // Default guidance: 7.5, or none for a pipeline loaded without it.
        let (guided, encoder, preview) = {
            let sd = claim(&self.inner)?;
            let scale = sd.preview.as_ref().map(|p| p.cfg.scale());
            let preview = scale.map(|s| (sd.latent.1 * s, sd.latent.0 * s));
            (sd.unet.graph.batch == 2, sd.encoder.is_some(), preview)
        };
        if on_preview.is_some() && preview.is_none() {
            return Err(bad_arg(
                "previews need the model loaded with { previews: true }",
            ));
        }
        let (w, h) = self.size;
        let init = match o.init_image {
            None => None,
            Some(_) if !encoder => {
                return Err(bad_arg(
                    "initImage needs the model loaded with { img2img: true }",
                ));
            }
            Some(px) if px.len() != w * h * 4 => {
                return Err(bad_arg(format!(
                    "initImage has {} bytes; the model makes {w}×{h} RGBA images ({} bytes)",
                    px.len(),
                    w * h * 4
                )));
            }
            Some(px) => Some(InitImage::Pixels(
                crate::model::sd::pipeline::from_interleaved8(&px, 4, (w, h)),
            )),
        };
        let req = TextToImage {
            prompt: o.prompt,
            negative: o.negative_prompt.unwrap_or_default(),
            steps: o.steps.unwrap_or(20),
            scheduler,
            guidance: o.guidance.unwrap_or(if guided { 7.5 } else { 0.0 }),
            seed: o.seed.map_or(0, |s| s as u64),
            init_latents: o.init_latents,
            init,
            strength: o.strength.unwrap_or(0.8),
        };
        let inner = self.inner.clone();
        Ok(wasm_bindgen_futures::future_to_promise(async move {
            let mut sd = claim(&inner)?;
            let mut callback_error = None;
            let mut on = progress_fn(&on_step, &mut callback_error);
            let mut preview_error = None;
            let img = match (&on_preview, preview) {
                (Some(f), Some((pw, ph))) => {
                    let mut show = |done: usize, img: Vec<f32>| {
                        let rgba = crate::model::sd::pipeline::to_rgba8(&img, (pw, ph));
                        let args = js_sys::Array::of4(
                            &(done as f64).into(),
                            &js_sys::Uint8ClampedArray::from(rgba.as_slice()).into(),
                            &(pw as f64).into(),
                            &(ph as f64).into(),
                        );
                        if let Err(e) = f.apply(&JsValue::NULL, &args) {
                            preview_error.get_or_insert(e);
                        }
                    };
                    sd.generate_previewed_async(&req, &mut on, Some(&mut show))
                        .await
                }
                _ => sd.generate_async(&req, &mut on).await,
            };
            drop(on);
            if let Some(e) = callback_error.or(preview_error) {
                return Err(e);
            }
            let img = img.map_err(err)?;
            let rgba = crate::model::sd::pipeline::to_rgba8(&img, (w, h));
            let out = js_sys::Object::new();
            let set = |k: &str, v: JsValue| js_sys::Reflect::set(&out, &k.into(), &v);
            set("width", (w as f64).into())?;
            set("height", (h as f64).into())?;
            set(
                "image",
                js_sys::Uint8ClampedArray::from(rgba.as_slice()).into(),
            )?;
            Ok(out.into())
        }))
    }

    /// Encodes a prompt (and negative prompt) ahead, so it still generates
    /// after `freeTextEncoder`.
    #[wasm_bindgen(js_name = encodePrompt)]
    #[allow(clippy::await_holding_refcell_ref)]
    pub fn encode_prompt(
        &self,
        prompt: String,
        negative: String,
    ) -> Result<js_sys::Promise, JsValue> {
        let inner = self.inner.clone();
        Ok(wasm_bindgen_futures::future_to_promise(async move {
            let mut sd = claim(&inner)?;
            sd.encode_prompt_async(&prompt, &negative)
                .await
                .map_err(err)?;
            Ok(JsValue::UNDEFINED)
        }))
    }

    /// Frees the text encoder's GPU memory; the last 8 encoded prompts
    /// (and those from `encodePrompt`) still generate, others throw
    /// INVALID_INPUT.
    #[wasm_bindgen(js_name = freeTextEncoder)]
    pub fn free_text_encoder(&self) -> Result<(), JsValue> {
        claim(&self.inner)?.free_text_encoder();
        Ok(())
    }

    /// GPU bytes the pipeline holds now.
    #[wasm_bindgen(js_name = deviceBytes)]
    pub fn device_bytes(&self) -> Result<f64, JsValue> {
        Ok(claim(&self.inner)?.device_bytes() as f64)
    }

    /// `[width, height]` the pipeline was loaded for.
    pub fn size(&self) -> Vec<u32> {
        vec![self.size.0 as u32, self.size.1 as u32]
    }

    /// Frees the GPU memory now.
    pub fn dispose(&self) -> Result<(), JsValue> {
        release(&self.inner)
    }
}
