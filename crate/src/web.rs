//! The browser binding (feature `web`, wasm32 only): a thin wasm-bindgen
//! layer over the same loader, graph and generation code as the native CLI.
//! The JavaScript package (`crate/js/`, built into `pkg/`) wraps it in the
//! public API (`Kiln.loadLLM`, streaming, OpenAI-shaped chat, the worker).
//!
//! Every failure reaches JavaScript as an `Error` with a stable `code`
//! ([`LoadError::code`]); nothing here panics on user input.

use std::cell::RefCell;
use std::rc::Rc;

use serde::{Deserialize, Serialize};
use wasm_bindgen::prelude::*;

use crate::backend::Backend;
use crate::backend::cpu_fast::{Activations, CpuFastBackend, CpuOptions};
use crate::backend::wgpu::{WgpuBackend, WgpuOptions};
use crate::generate::{ChatMessage, FinishReason, GenerateParams, TextModel};
use crate::loader::LoadError;
use crate::loader::safetensors::HfModel;
use crate::loader::stream::{HfStream, ModelStream};
use crate::model::llama::LlamaOptions;
use crate::sample::SamplingParams;

/// A JS `Error` with `code` and `message`.
pub(crate) fn js_error(code: &str, message: &str) -> JsValue {
    let e = js_sys::Error::new(message);
    let _ = js_sys::Reflect::set(&e, &"code".into(), &code.into());
    e.into()
}

pub(crate) fn err(e: impl Into<LoadError>) -> JsValue {
    let e = e.into();
    js_error(e.code(), &e.to_string())
}

pub(crate) fn bad_arg(e: impl std::fmt::Display) -> JsValue {
    js_error("INVALID_INPUT", &e.to_string())
}

/// A model held for one call (the diffusion models): `BUSY` while another
/// call holds it, `DISPOSED` after [`release`].
pub(crate) fn claim<T>(inner: &RefCell<Option<T>>) -> Result<std::cell::RefMut<'_, T>, JsValue> {
    let guard = inner
        .try_borrow_mut()
        .map_err(|_| js_error("BUSY", "the model is generating; wait or abort first"))?;
    std::cell::RefMut::filter_map(guard, Option::as_mut)
        .map_err(|_| js_error("DISPOSED", "the model was disposed"))
}

/// Drops the model now (its GPU memory with it); `BUSY` during a call.
pub(crate) fn release<T>(inner: &RefCell<Option<T>>) -> Result<(), JsValue> {
    let mut m = inner
        .try_borrow_mut()
        .map_err(|_| js_error("BUSY", "the model is generating; abort first"))?;
    *m = None;
    Ok(())
}

/// A JS `(done, total) → boolean` callback as a progress closure: false
/// (or a throw, kept in `error`) asks the work to stop.
pub(crate) fn progress_fn<'a>(
    f: &'a js_sys::Function,
    error: &'a mut Option<JsValue>,
) -> impl FnMut(usize, usize) -> bool + 'a {
    move |done, total| match f.call2(
        &JsValue::NULL,
        &(done as f64).into(),
        &(total as f64).into(),
    ) {
        Ok(v) => v.as_bool() != Some(false),
        Err(e) => {
            *error = Some(e);
            false
        }
    }
}

/// Reports Rust panics (bugs, never user errors) on the console with their
/// message; the JS side turns the trap that follows into an `INTERNAL` error.
#[wasm_bindgen(start)]
pub fn start() {
    std::panic::set_hook(Box::new(|info| {
        web_sys::console::error_1(&format!("kiln: internal error: {info}").into());
    }));
}

/// A CPU worker thread's body (the threaded build; called by
/// `crate/js/pool_worker.js` with what the pool handed to `pool.js`).
#[cfg(target_feature = "atomics")]
#[wasm_bindgen(js_name = poolWorkerEntry)]
pub fn pool_worker_entry(state: u32) {
    crate::backend::cpu_fast::web_worker_entry(state);
}

/// Bytes of this module's wasm memory (tests: weights never pass through it
/// all at once).
#[wasm_bindgen(js_name = wasmMemoryBytes)]
pub fn wasm_memory_bytes() -> f64 {
    wasm_bindgen::memory()
        .dyn_into::<js_sys::WebAssembly::Memory>()
        .map_or(0.0, |m| {
            m.buffer()
                .dyn_into::<js_sys::ArrayBuffer>()
                .map_or(0.0, |b| b.byte_length() as f64)
        })
}

/// Where an engine runs: the WebGPU device, or the fast CPU backend (wasm
/// SIMD128, on the calling thread) for pages without a usable GPU.
#[derive(Clone)]
pub(crate) enum WebBackend {
    Gpu(WgpuBackend),
    Cpu(CpuFastBackend),
}

/// The WebGPU device (or the CPU backend), opened once per page or worker.
#[wasm_bindgen]
pub struct Engine {
    backend: WebBackend,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct LoadOptions {
    max_ctx: Option<usize>,
    prefill_chunk: Option<usize>,
    kv_f16: bool,
    /// Re-encode safetensors matrices on load ("q8_0", "q4_0", "q4_k", "f16", …).
    quantize: Option<String>,
    /// Room for LoRA adapters at inference: their total rank (0: none).
    lora_rank: usize,
}

impl Engine {
    pub(crate) fn dyn_backend(&self) -> Box<dyn crate::backend::Backend> {
        match &self.backend {
            WebBackend::Gpu(b) => Box::new(b.clone()),
            WebBackend::Cpu(b) => Box::new(b.clone()),
        }
    }

    fn options(&self, options: JsValue) -> Result<(LlamaOptions, Option<crate::DType>), JsValue> {
        let o: LoadOptions = if options.is_undefined() || options.is_null() {
            LoadOptions::default()
        } else {
            serde_wasm_bindgen::from_value(options).map_err(bad_arg)?
        };
        let d = LlamaOptions::default();
        let quantize = match o.quantize.as_deref() {
            None | Some("") | Some("none") => None,
            Some(q) => Some(q.parse::<crate::DType>().map_err(bad_arg)?),
        };
        let lora = o.lora_rank > 0;
        let (chunk, kv_f16, fused) = match &self.backend {
            WebBackend::Gpu(b) => (
                LlamaOptions::prefill_chunk_for(&b.caps),
                b.caps.shader_f16,
                LlamaOptions::fused_for(&b.caps, lora),
            ),
            WebBackend::Cpu(_) => (LlamaOptions::CPU_PREFILL_CHUNK, true, !lora),
        };
        let opts = LlamaOptions {
            max_ctx: o.max_ctx.unwrap_or(d.max_ctx),
            prefill_chunk: o.prefill_chunk.unwrap_or(chunk),
            kv_dtype: if o.kv_f16 && kv_f16 {
                crate::DType::F16
            } else {
                crate::DType::F32
            },
            fused,
            lora: (o.lora_rank > 0).then(|| crate::model::llama::LoraSlots {
                fused: true,
                rank: o.lora_rank,
                targets: crate::train::lora::Target::ALL.to_vec(),
            }),
            ..d
        };
        Ok((opts, quantize))
    }
}

#[wasm_bindgen]
impl Engine {
    /// Opens the adapter (`powerPreference`: "high-performance" or
    /// "low-power") with its full limits and the features Kiln uses.
    pub async fn create(power_preference: Option<String>) -> Result<Engine, JsValue> {
        let power = match power_preference.as_deref() {
            Some("high-performance") => Some(wgpu::PowerPreference::HighPerformance),
            Some("low-power") => Some(wgpu::PowerPreference::LowPower),
            None | Some("") => None,
            Some(other) => return Err(bad_arg(format!("adapterPreference '{other}'"))),
        };
        let opts = WgpuOptions {
            power_preference: power,
            ..Default::default()
        };
        let backend = WgpuBackend::new_async(&opts).await.map_err(err)?;
        Ok(Engine {
            backend: WebBackend::Gpu(backend),
        })
    }

    /// The fast CPU backend (wasm SIMD128 kernels). `activations`: "q8"
    /// (default, 8-bit like llama.cpp) or "f32". `threads` (default 1): more
    /// than one needs the package's threaded build (`kiln_wasm_mt.js`, in a
    /// cross-origin-isolated worker); the extra threads are Web Workers that
    /// start asynchronously — wait for [`Engine::threads_ready`] before use.
    #[wasm_bindgen(js_name = createCpu)]
    pub fn create_cpu(
        activations: Option<String>,
        threads: Option<u32>,
    ) -> Result<Engine, JsValue> {
        let activations = match activations.as_deref() {
            None | Some("") | Some("q8") => Activations::Q8,
            Some("f32") => Activations::F32,
            Some(other) => return Err(bad_arg(format!("activations '{other}' (q8 or f32)"))),
        };
        let threads = match threads {
            None | Some(0) => 1,
            Some(n) if n <= 256 => n as usize,
            Some(n) => return Err(bad_arg(format!("threads {n} (1 to 256)"))),
        };
        if threads > 1 && !cfg!(target_feature = "atomics") {
            return Err(js_error(
                "INVALID_INPUT",
                "this build of kiln's WebAssembly has no threads (the package loads kiln_wasm_mt.js for them)",
            ));
        }
        let backend = CpuFastBackend::new(CpuOptions {
            threads,
            activations,
        });
        if backend.threads() != threads {
            return Err(js_error(
                "INTERNAL",
                &format!("starting {threads} CPU threads failed (Web Workers unavailable?)"),
            ));
        }
        Ok(Engine {
            backend: WebBackend::Cpu(backend),
        })
    }

    /// True once every CPU worker thread has started (always for one
    /// thread and for WebGPU engines).
    #[wasm_bindgen(js_name = threadsReady)]
    pub fn threads_ready(&self) -> bool {
        match &self.backend {
            WebBackend::Cpu(b) => b.threads_ready(),
            WebBackend::Gpu(_) => true,
        }
    }

    /// The adapter and what Kiln uses of it.
    pub fn info(&self) -> JsValue {
        let info = match &self.backend {
            WebBackend::Gpu(b) => AdapterInfo {
                name: b.ctx.info.name.clone(),
                backend: format!("{:?}", b.ctx.info.backend),
                shader_f16: b.caps.shader_f16,
                subgroups: b.caps.subgroups,
                max_storage_binding: b.ctx.limits.max_storage_buffer_binding_size as f64,
                max_buffer: b.ctx.limits.max_buffer_size as f64,
                cpu: false,
                software: b.ctx.info.device_type == wgpu::DeviceType::Cpu,
                threads: 0,
            },
            WebBackend::Cpu(b) => AdapterInfo {
                name: b.name(),
                backend: "cpu".into(),
                shader_f16: false,
                subgroups: false,
                max_storage_binding: 0.0,
                max_buffer: 0.0,
                cpu: true,
                software: false,
                threads: b.threads() as u32,
            },
        };
        serde_wasm_bindgen::to_value(&info).unwrap_or(JsValue::NULL)
    }

    /// Starts loading a GGUF file of `total` bytes; feed it with
    /// [`Loader::push`]. `maxBindingBytes` (tests) lowers the storage-binding
    /// limit so weights split as on a smaller device.
    #[wasm_bindgen(js_name = loadGguf)]
    pub fn load_gguf(&self, total: f64, options: JsValue) -> Result<Loader, JsValue> {
        let (opts, quantize) = self.options(options)?;
        if quantize.is_some() {
            return Err(js_error(
                "UNSUPPORTED_MODEL",
                "quantize-on-load applies to safetensors folders; GGUF weights load as stored",
            ));
        }
        if !(total.is_finite() && total >= 0.0) {
            return Err(bad_arg(format!("file size {total}")));
        }
        let backend = self.dyn_backend();
        Ok(Loader {
            inner: Some(ModelStream::new(total as u64, backend, opts)),
        })
    }

    /// Starts loading a Hugging Face safetensors model: `config.json`,
    /// `tokenizer_config.json` (or null), `tokenizer.json`, and the shards'
    /// names and sizes. Feed each shard's bytes with [`HfLoader::push`]:
    /// every shard's header first, then the rest.
    #[wasm_bindgen(js_name = loadSafetensors)]
    pub fn load_safetensors(
        &self,
        config: &[u8],
        tokenizer_config: Option<Vec<u8>>,
        tokenizer: Vec<u8>,
        shard_names: Vec<String>,
        shard_sizes: Vec<f64>,
        options: JsValue,
    ) -> Result<HfLoader, JsValue> {
        let (opts, quantize) = self.options(options)?;
        if shard_names.len() != shard_sizes.len() || shard_names.is_empty() {
            return Err(bad_arg("one size per shard, at least one shard"));
        }
        let model = HfModel::new(config, tokenizer_config.as_deref(), quantize).map_err(err)?;
        let shards = shard_names
            .into_iter()
            .zip(shard_sizes.into_iter().map(|s| s.max(0.0) as u64))
            .collect();
        let backend = self.dyn_backend();
        Ok(HfLoader {
            inner: Some(HfStream::new(model, tokenizer, shards, backend, opts)),
        })
    }

    /// Limits the storage-binding size (tests: weight splitting in the browser).
    #[wasm_bindgen(js_name = limitBinding)]
    pub fn limit_binding(&mut self, bytes: f64) {
        if let WebBackend::Gpu(b) = &self.backend {
            self.backend = WebBackend::Gpu(b.with_binding_limit(bytes as u64));
        }
    }

    /// Chooses the kernel variants tuned for CPU adapters (SwiftShader,
    /// lavapipe) or for GPUs; by default the adapter's type decides.
    #[wasm_bindgen(js_name = useCpuKernels)]
    pub fn use_cpu_kernels(&mut self, cpu: bool) {
        if let WebBackend::Gpu(b) = &self.backend {
            self.backend = WebBackend::Gpu(b.with_cpu_kernels(cpu));
        }
    }

    /// Destroys the device (tests: the device-lost path).
    #[wasm_bindgen(js_name = loseDevice)]
    pub fn lose_device(&self) {
        if let WebBackend::Gpu(b) = &self.backend {
            b.ctx.device.destroy();
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AdapterInfo {
    name: String,
    backend: String,
    shader_f16: bool,
    subgroups: bool,
    max_storage_binding: f64,
    max_buffer: f64,
    /// The fast CPU backend rather than a WebGPU adapter.
    cpu: bool,
    /// A software WebGPU adapter (`isFallbackAdapter`: SwiftShader, WARP).
    software: bool,
    /// Threads running the CPU backend's kernels (0 for WebGPU).
    threads: u32,
}

/// A model arriving piece by piece; each tensor goes to the GPU as soon as
/// its last byte is in, so the file is never whole in wasm memory.
#[wasm_bindgen]
pub struct Loader {
    inner: Option<ModelStream>,
}

/// Feeds a loader; a load that failed is dropped (later calls: ABORTED).
fn feed<S>(
    slot: &mut Option<S>,
    f: impl FnOnce(&mut S) -> Result<(), LoadError>,
) -> Result<(), JsValue> {
    let s = slot.as_mut().ok_or_else(|| err(LoadError::Cancelled))?;
    f(s).map_err(|e| {
        *slot = None;
        err(e)
    })
}

fn finish_load<S>(
    slot: &mut Option<S>,
    f: impl FnOnce(S) -> Result<TextModel, LoadError>,
) -> Result<Model, JsValue> {
    let s = slot.take().ok_or_else(|| err(LoadError::Cancelled))?;
    Ok(Model {
        inner: Rc::new(RefCell::new(Some(f(s).map_err(err)?))),
    })
}

#[wasm_bindgen]
impl Loader {
    pub fn push(&mut self, chunk: &[u8]) -> Result<(), JsValue> {
        feed(&mut self.inner, |s| s.push(chunk))
    }

    pub fn received(&self) -> f64 {
        self.inner.as_ref().map_or(0.0, |s| s.received() as f64)
    }

    pub fn finish(&mut self) -> Result<Model, JsValue> {
        finish_load(&mut self.inner, ModelStream::finish)
    }
}

/// A safetensors model arriving shard by shard.
#[wasm_bindgen]
pub struct HfLoader {
    inner: Option<HfStream>,
}

#[wasm_bindgen]
impl HfLoader {
    pub fn push(&mut self, shard: usize, chunk: &[u8]) -> Result<(), JsValue> {
        feed(&mut self.inner, |s| s.push(shard, chunk))
    }

    /// Whether shard `i`'s header has arrived (read on to the next shard).
    #[wasm_bindgen(js_name = headerDone)]
    pub fn header_done(&self, shard: usize) -> bool {
        self.inner.as_ref().is_some_and(|s| s.header_done(shard))
    }

    pub fn received(&self) -> f64 {
        self.inner.as_ref().map_or(0.0, |s| s.received() as f64)
    }

    pub fn finish(&mut self) -> Result<Model, JsValue> {
        finish_load(&mut self.inner, HfStream::finish)
    }
}

/// A loaded model with its tokenizer, chat template and KV cache.
#[wasm_bindgen]
pub struct Model {
    inner: Rc<RefCell<Option<TextModel>>>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct GenOptions {
    max_tokens: Option<usize>,
    temperature: Option<f32>,
    top_p: Option<f32>,
    top_k: Option<usize>,
    min_p: Option<f32>,
    repetition_penalty: Option<f32>,
    frequency_penalty: Option<f32>,
    presence_penalty: Option<f32>,
    seed: Option<f64>,
    stop: Option<Vec<String>>,
    ignore_eos: bool,
    context_shift: bool,
}

impl GenOptions {
    fn params(self) -> GenerateParams {
        let d = SamplingParams::default();
        GenerateParams {
            max_tokens: self.max_tokens.unwrap_or(256),
            stop: self.stop.unwrap_or_default(),
            ignore_eos: self.ignore_eos,
            context_shift: self.context_shift,
            sampling: SamplingParams {
                temperature: self.temperature.unwrap_or(d.temperature),
                top_k: self.top_k.unwrap_or(d.top_k),
                top_p: self.top_p.unwrap_or(d.top_p),
                min_p: self.min_p.unwrap_or(d.min_p),
                repetition_penalty: self.repetition_penalty.unwrap_or(d.repetition_penalty),
                frequency_penalty: self.frequency_penalty.unwrap_or(d.frequency_penalty),
                presence_penalty: self.presence_penalty.unwrap_or(d.presence_penalty),
                seed: self.seed.map_or(d.seed, |s| s as u64),
                ..d
            },
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct GenResult {
    text: String,
    tokens: Vec<u32>,
    finish_reason: &'static str,
    prompt_tokens: usize,
    prefilled_tokens: usize,
    prefill_secs: f64,
    decode_secs: f64,
}

#[derive(Deserialize)]
struct Message {
    role: String,
    content: String,
}

impl Model {
    fn with<T>(&self, f: impl FnOnce(&mut TextModel) -> Result<T, JsValue>) -> Result<T, JsValue> {
        let mut m = self
            .inner
            .try_borrow_mut()
            .map_err(|_| js_error("BUSY", "the model is generating; wait or abort first"))?;
        let m = m
            .as_mut()
            .ok_or_else(|| js_error("DISPOSED", "the model was disposed"))?;
        f(m)
    }
}

#[wasm_bindgen]
impl Model {
    pub fn tokenize(&self, text: &str, add_special: bool) -> Result<Vec<u32>, JsValue> {
        self.with(|m| {
            m.tokenizer
                .encode(text, add_special)
                .map_err(|e| err(LoadError::Tokenizer(e.to_string())))
        })
    }

    pub fn detokenize(&self, ids: Vec<u32>, skip_special: bool) -> Result<String, JsValue> {
        self.with(|m| {
            m.tokenizer
                .decode(&ids, skip_special)
                .map_err(|e| err(LoadError::Tokenizer(e.to_string())))
        })
    }

    /// Token ids of `[{role, content}, ...]` rendered with the model's chat
    /// template, ready for the assistant's reply.
    #[wasm_bindgen(js_name = chatPrompt)]
    pub fn chat_prompt(&self, messages: JsValue) -> Result<Vec<u32>, JsValue> {
        let msgs: Vec<Message> = serde_wasm_bindgen::from_value(messages).map_err(bad_arg)?;
        let msgs: Vec<ChatMessage> = msgs
            .iter()
            .map(|m| ChatMessage::new(&m.role, &m.content))
            .collect();
        self.with(|m| m.chat_prompt(&msgs).map_err(err))
    }

    #[wasm_bindgen(js_name = maxContext)]
    pub fn max_context(&self) -> Result<usize, JsValue> {
        self.with(|m| Ok(m.llm.max_ctx()))
    }

    /// Test hook: weights held in more than one device buffer (split over
    /// the storage-binding limit), as `{name: chunks}`.
    #[wasm_bindgen(js_name = weightChunks)]
    pub fn weight_chunks(&self) -> Result<JsValue, JsValue> {
        self.with(|m| {
            let out = js_sys::Object::new();
            for (name, t) in &m.llm.model.weights {
                let n = m.llm.exe.weight_chunks(*t);
                if n > 1 {
                    js_sys::Reflect::set(&out, &name.as_str().into(), &(n as f64).into())?;
                }
            }
            Ok(out.into())
        })
    }

    /// Test hook: the full logits after feeding `ids` from an empty cache.
    // The RefCell borrow held across the await is the model's busy lock.
    #[allow(clippy::await_holding_refcell_ref)]
    pub fn logits(&self, ids: Vec<u32>) -> Result<js_sys::Promise, JsValue> {
        self.with(|_| Ok(()))?;
        let inner = self.inner.clone();
        Ok(wasm_bindgen_futures::future_to_promise(async move {
            let mut guard = inner
                .try_borrow_mut()
                .map_err(|_| js_error("BUSY", "the model is generating; wait or abort first"))?;
            let m = guard
                .as_mut()
                .ok_or_else(|| js_error("DISPOSED", "the model was disposed"))?;
            m.llm.reset();
            m.llm.feed(&ids).map_err(err)?;
            let l = m.llm.logits_async().await.map_err(err)?;
            Ok(js_sys::Float32Array::from(l.as_slice()).into())
        }))
    }

    /// Forgets the KV cache (the next prompt is computed from scratch).
    pub fn reset(&self) -> Result<(), JsValue> {
        self.with(|m| {
            m.llm.reset();
            Ok(())
        })
    }

    /// Generates a continuation of `ids`. `onText(chunk)` receives the text
    /// as it is produced and returns false to stop (abort). Resolves to
    /// `{text, tokens, finishReason, promptTokens, ...}`.
    // The RefCell borrow held across the awaits is the model's busy lock:
    // every other call uses try_borrow and gets a BUSY error, never a panic.
    #[allow(clippy::await_holding_refcell_ref)]
    pub fn generate(
        &self,
        ids: Vec<u32>,
        options: JsValue,
        on_text: js_sys::Function,
    ) -> Result<js_sys::Promise, JsValue> {
        let o: GenOptions = if options.is_undefined() || options.is_null() {
            GenOptions::default()
        } else {
            serde_wasm_bindgen::from_value(options).map_err(bad_arg)?
        };
        let params = o.params();
        // Claim the model now: a second generate while one runs is an error.
        self.with(|_| Ok(()))?;
        let inner = self.inner.clone();
        Ok(wasm_bindgen_futures::future_to_promise(async move {
            let mut guard = inner
                .try_borrow_mut()
                .map_err(|_| js_error("BUSY", "the model is generating; wait or abort first"))?;
            let m = guard
                .as_mut()
                .ok_or_else(|| js_error("DISPOSED", "the model was disposed"))?;
            let mut callback_error = None;
            let mut on = |s: &str| match on_text.call1(&JsValue::NULL, &s.into()) {
                Ok(v) => v.as_bool() != Some(false),
                Err(e) => {
                    callback_error = Some(e);
                    false
                }
            };
            let g = m
                .generate_ids_async(&ids, &params, &mut on)
                .await
                .map_err(err)?;
            if let Some(e) = callback_error {
                return Err(e);
            }
            let finish_reason = match g.finish {
                FinishReason::Stop => "stop",
                FinishReason::Length | FinishReason::ContextFull => "length",
                FinishReason::Cancelled => "abort",
            };
            let r = GenResult {
                text: g.text,
                tokens: g.tokens,
                finish_reason,
                prompt_tokens: g.prompt_tokens,
                prefilled_tokens: g.prefilled_tokens,
                prefill_secs: g.prefill_secs,
                decode_secs: g.decode_secs,
            };
            serde_wasm_bindgen::to_value(&r).map_err(bad_arg)
        }))
    }

    /// Applies LoRA adapters, `[{ config, weights, scale }]` (PEFT files;
    /// scale 1 = as trained), replacing any applied before; `[]` restores
    /// the base. Needs the model loaded with `loraRank` ≥ their total rank.
    #[wasm_bindgen(js_name = setAdapters)]
    pub fn set_adapters(&self, list: JsValue) -> Result<(), JsValue> {
        let arr: js_sys::Array = list
            .dyn_into()
            .map_err(|_| bad_arg("setAdapters takes an array of { config, weights, scale }"))?;
        let mut adapters = Vec::new();
        for v in arr.iter() {
            let a = crate::web_train::adapter_from_js(&v)?;
            let scale = js_sys::Reflect::get(&v, &"scale".into())?
                .as_f64()
                .unwrap_or(1.0) as f32;
            adapters.push((a, scale));
        }
        self.with(|m| {
            let refs: Vec<_> = adapters.iter().map(|(a, s)| (a, *s)).collect();
            m.llm.set_adapters(&refs).map_err(err)
        })
    }

    /// Frees the GPU memory now (also happens when the object is collected).
    pub fn dispose(&self) -> Result<(), JsValue> {
        let mut m = self
            .inner
            .try_borrow_mut()
            .map_err(|_| js_error("BUSY", "the model is generating; abort first"))?;
        *m = None;
        Ok(())
    }
}
