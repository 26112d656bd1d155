//! The browser binding of terrain diffusion (feature `web`, wasm32 only):
//! `Engine.loadTerrain(bytes, options)` → [`TerrainModel`], whose `generate`
//! resolves to heights (metres) and an RGBA shaded relief per map. Wrapped by
//! `Kiln.loadDiffusion` in the JS package (`crate/js/diffusion.js`).

use std::cell::RefCell;
use std::rc::Rc;

use serde::Deserialize;
use wasm_bindgen::prelude::*;

use crate::loader::LoadError;
use crate::loader::onnx::OnnxModel;
use crate::model::terrain::{TerrainGenerator, TerrainRequest};
use crate::model::terrain_post as post;
use crate::model::unet::UnetOptions;
use crate::web::{Engine, bad_arg, claim, err, progress_fn, release};

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct TerrainLoadOptions {
    /// 128² tiles per network call (default 1).
    batch: Option<usize>,
    /// Weights on the device: "f32" (default), "f16" or "q8_0".
    weights: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GenerateOptions {
    difficulty: Option<u32>,
    width: Option<usize>,
    height: Option<usize>,
    seed: Option<f64>,
    count: Option<usize>,
    /// Vary this heightmap (metres, row-major `[fromHeight, fromWidth]`).
    from: Option<Vec<f32>>,
    from_width: Option<usize>,
    from_height: Option<usize>,
    strength: Option<f32>,
}

#[wasm_bindgen]
impl Engine {
    /// Loads a terrain UNet from the bytes of its ONNX file.
    #[wasm_bindgen(js_name = loadTerrain)]
    pub fn load_terrain(&self, bytes: Vec<u8>, options: JsValue) -> Result<TerrainModel, JsValue> {
        let o: TerrainLoadOptions = if options.is_undefined() || options.is_null() {
            TerrainLoadOptions::default()
        } else {
            serde_wasm_bindgen::from_value(options).map_err(bad_arg)?
        };
        let weight_dtype = match o.weights.as_deref() {
            None | Some("f32") => None,
            Some("f16") => Some(crate::DType::F16),
            Some("q8_0") => Some(crate::DType::Q8_0),
            Some(w) => return Err(bad_arg(format!("weights '{w}' (f32, f16 or q8_0)"))),
        };
        let model = OnnxModel::parse(bytes).map_err(err)?;
        let opts = UnetOptions {
            weight_dtype,
            probes: false,
        };
        let g = TerrainGenerator::load(
            model,
            self.dyn_backend().as_ref(),
            o.batch.unwrap_or(1).clamp(1, 64),
            &opts,
        )
        .map_err(err)?;
        Ok(TerrainModel {
            inner: Rc::new(RefCell::new(Some(g))),
        })
    }
}

/// A loaded terrain model.
#[wasm_bindgen]
pub struct TerrainModel {
    inner: Rc<RefCell<Option<TerrainGenerator>>>,
}

#[wasm_bindgen]
impl TerrainModel {
    /// Generates maps: `{difficulty, width, height, seed, count, from,
    /// fromWidth, fromHeight, strength}`. `onProgress(done, total)` follows
    /// the tiles and returns false to abort. Resolves to `{width, height,
    /// count, heights: Float32Array (count·h·w, metres), image:
    /// Uint8ClampedArray (count·h·w·4, RGBA shaded relief)}`.
    // The RefCell borrow held across the awaits is the model's busy lock.
    #[allow(clippy::await_holding_refcell_ref)]
    pub fn generate(
        &self,
        options: JsValue,
        on_progress: js_sys::Function,
    ) -> Result<js_sys::Promise, JsValue> {
        let o: GenerateOptions = serde_wasm_bindgen::from_value(options).map_err(bad_arg)?;
        let d = TerrainRequest::default();
        let source = match (o.from, o.from_width, o.from_height) {
            (Some(v), Some(w), Some(h)) => Some((v, (h, w))),
            (None, _, _) => None,
            _ => return Err(bad_arg("from needs fromWidth and fromHeight")),
        };
        let req = TerrainRequest {
            difficulty: o.difficulty.unwrap_or(d.difficulty),
            height: o.height.unwrap_or(d.height),
            width: o.width.unwrap_or(d.width),
            seed: o.seed.map_or(d.seed, |s| s as u64),
            count: o.count.unwrap_or(1),
            source,
            strength: o.strength.unwrap_or(d.strength),
        };
        // Claim the model now: a second call while one runs is an error.
        drop(claim(&self.inner)?);
        let inner = self.inner.clone();
        Ok(wasm_bindgen_futures::future_to_promise(async move {
            let mut g = claim(&inner)?;
            let mut callback_error = None;
            let mut on = progress_fn(&on_progress, &mut callback_error);
            let maps = g.generate_async(&req, &mut on).await;
            drop(on);
            if let Some(e) = callback_error {
                return Err(e);
            }
            let maps = maps.map_err(err)?;
            let mut heights = Vec::new();
            let mut image = Vec::new();
            for m in &maps {
                heights.extend_from_slice(&m.heights);
                image.extend(
                    post::shaded_relief_rgba(&m.heights, m.height, m.width)
                        .map_err(|e| err(LoadError::from(e)))?,
                );
            }
            let out = js_sys::Object::new();
            let set = |k: &str, v: JsValue| js_sys::Reflect::set(&out, &k.into(), &v);
            set("width", (req.width as f64).into())?;
            set("height", (req.height as f64).into())?;
            set("count", (maps.len() as f64).into())?;
            set(
                "heights",
                js_sys::Float32Array::from(heights.as_slice()).into(),
            )?;
            set(
                "image",
                js_sys::Uint8ClampedArray::from(image.as_slice()).into(),
            )?;
            Ok(out.into())
        }))
    }

    /// One raw network call (tests: parity with ONNX Runtime's fixture):
    /// `noisy` NCHW `[B, 1, 128, 128]` for the compiled batch B, per-sample
    /// `sigma` and `label` (the graph's `(difficulty − 1)/99`). Resolves to
    /// the clipped `denoised` output as a Float32Array.
    #[allow(clippy::await_holding_refcell_ref)]
    pub fn denoise(
        &self,
        noisy: Vec<f32>,
        sigma: Vec<f32>,
        label: Vec<f32>,
    ) -> Result<js_sys::Promise, JsValue> {
        // Claim the model now: a second call while one runs is an error.
        drop(claim(&self.inner)?);
        let inner = self.inner.clone();
        Ok(wasm_bindgen_futures::future_to_promise(async move {
            let mut g = claim(&inner)?;
            let y = g
                .unet
                .denoise_async(&noisy, &sigma, &label)
                .await
                .map_err(err)?;
            Ok(js_sys::Float32Array::from(y.as_slice()).into())
        }))
    }

    /// The batch the network was compiled for.
    pub fn batch(&self) -> Result<usize, JsValue> {
        Ok(claim(&self.inner)?.unet.batch)
    }

    /// Frees the GPU memory now (also happens when the object is collected).
    pub fn dispose(&self) -> Result<(), JsValue> {
        release(&self.inner)
    }
}
