//! The browser binding of LoRA training (feature `web`, wasm32 only):
//! `Engine.loadTrainer(ggufBytes, data, options)` (or `loadTrainerFolder` for
//! a safetensors folder) → [`TrainJob`], whose
//! `step()` runs one optimizer step and resolves to its figures, and whose
//! `adapter()` resolves to the PEFT files. `Model.setAdapters` (web.rs)
//! applies adapters at inference. Wrapped by `llm.trainLoRA` in the JS
//! package (`crate/js/train.js`); the work runs in the model's worker.

use std::cell::RefCell;
use std::io::Cursor;
use std::rc::Rc;

use serde::Deserialize;
use wasm_bindgen::prelude::*;

use crate::generate::ChatTemplate;
use crate::loader::LoadError;
use crate::loader::WeightSource;
use crate::loader::gguf::{GgufFile, GgufSource};
use crate::loader::safetensors::HfFolder;
use crate::model::LlamaConfig;
use crate::tokenizer::Tokenizer;
use crate::train::data::{Batches, load_examples, pack, split_validation};
use crate::train::graph::{self, TrainShape};
use crate::train::lora::{Adapter, LoraConfig};
use crate::train::{Batch, Hyper, Schedule, Trainer};
use crate::web::{Engine, bad_arg, err, js_error};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct TrainOptions {
    rank: usize,
    alpha: f32,
    /// "q,k,v,o,gate,up,down" or "all".
    targets: String,
    rslora: bool,
    /// LoRA dropout (PEFT's lora_dropout).
    dropout: f32,
    steps: usize,
    lr: f64,
    batch_size: usize,
    seq_len: usize,
    accum: usize,
    warmup: usize,
    schedule: String,
    weight_decay: f64,
    max_grad_norm: f32,
    seed: u64,
    /// Validation every N steps (0: never) on this fraction of the data.
    eval_every: usize,
    val_fraction: f64,
    /// At most this many held-out sequences per validation pass.
    max_val_sequences: usize,
    head_rows: usize,
    eot: String,
    /// Test hook: the `batches` of a `tools/lora_reference.py` run (its
    /// batches.json text) replace the data, in order.
    batches_json: Option<String>,
}

impl Default for TrainOptions {
    fn default() -> Self {
        TrainOptions {
            rank: 8,
            alpha: 16.0,
            targets: "all".into(),
            rslora: false,
            dropout: 0.0,
            steps: 100,
            lr: 2e-4,
            batch_size: 4,
            seq_len: 128,
            accum: 1,
            warmup: 0,
            schedule: "cosine".into(),
            weight_decay: 0.01,
            max_grad_norm: 1.0,
            seed: 0,
            eval_every: 10,
            val_fraction: 0.1,
            max_val_sequences: 64,
            head_rows: 256,
            eot: "<|im_end|>".into(),
            batches_json: None,
        }
    }
}

enum Data {
    Packed(Batches),
    Fixed(Vec<Batch>),
}

struct Job {
    trainer: Trainer,
    data: Data,
    val: Vec<Batch>,
    o: TrainOptions,
    val_loss: f64,
}

/// A LoRA fine-tuning run on the device; one `step()` at a time.
#[wasm_bindgen]
pub struct TrainJob {
    inner: Rc<RefCell<Option<Job>>>,
    info: JsValue,
}

fn parse_fixture_batches(text: &str) -> Result<Vec<Batch>, LoadError> {
    let bad = |m: &str| LoadError::Train(format!("batches: {m}"));
    let v: serde_json::Value = serde_json::from_str(text).map_err(|e| bad(&e.to_string()))?;
    let rows = |b: &serde_json::Value, k: &str| -> Result<Vec<Vec<i64>>, LoadError> {
        b.get(k)
            .and_then(|x| x.as_array())
            .ok_or_else(|| bad(k))?
            .iter()
            .map(|r| {
                r.as_array()
                    .ok_or_else(|| bad(k))?
                    .iter()
                    .map(|x| x.as_i64().ok_or_else(|| bad(k)))
                    .collect()
            })
            .collect()
    };
    v.get("batches")
        .and_then(|x| x.as_array())
        .ok_or_else(|| bad("no batches"))?
        .iter()
        .map(|b| {
            let ids: Vec<Vec<u32>> = rows(b, "input_ids")?
                .into_iter()
                .map(|r| r.into_iter().map(|x| x as u32).collect())
                .collect();
            Batch::from_hf(&ids, &rows(b, "labels")?)
        })
        .collect()
}

#[wasm_bindgen]
impl Engine {
    /// Compiles a LoRA training run of a GGUF model (its whole file's
    /// bytes) on `data` (JSONL chat examples or plain text; `name` picks the
    /// format by extension). `init`: optional PEFT files
    /// `{ config: string, weights: Uint8Array }` to start from.
    #[wasm_bindgen(js_name = loadTrainer)]
    pub fn load_trainer(
        &self,
        model: Vec<u8>,
        data: String,
        name: String,
        options: JsValue,
        init: JsValue,
    ) -> Result<TrainJob, JsValue> {
        let len = model.len() as u64;
        let mut reader = Cursor::new(model);
        let gguf = GgufFile::parse(&mut reader, len).map_err(err)?;
        let config = LlamaConfig::from_gguf(&gguf).map_err(err)?;
        let tok = Tokenizer::from_spec(&gguf.tokenizer_spec().map_err(err)?)
            .map_err(|e| err(LoadError::Tokenizer(e.to_string())))?;
        let template = ChatTemplate::for_tokenizer(gguf.chat_template(), &tok).map_err(err)?;
        let mut src = GgufSource {
            file: &gguf,
            reader: &mut reader,
        };
        self.trainer(
            Base {
                config,
                tok,
                template,
                src: &mut src,
            },
            data,
            name,
            options,
            init,
        )
    }

    /// The same for a Hugging Face safetensors folder in memory:
    /// `config.json`, `tokenizer_config.json` (or null), `tokenizer.json`,
    /// and the shards' names (index order) and bytes.
    #[wasm_bindgen(js_name = loadTrainerFolder)]
    #[allow(clippy::too_many_arguments)]
    pub fn load_trainer_folder(
        &self,
        config: Vec<u8>,
        tokenizer_config: Option<Vec<u8>>,
        tokenizer: Vec<u8>,
        names: Vec<String>,
        shards: js_sys::Array,
        data: String,
        name: String,
        options: JsValue,
        init: JsValue,
    ) -> Result<TrainJob, JsValue> {
        if names.len() != shards.length() as usize {
            return Err(bad_arg("one name per shard"));
        }
        let mut parts = Vec::new();
        for (n, b) in names.into_iter().zip(shards.iter()) {
            if !b.is_instance_of::<js_sys::Uint8Array>() {
                return Err(bad_arg("shards must be Uint8Arrays"));
            }
            parts.push((n, js_sys::Uint8Array::new(&b).to_vec()));
        }
        let mut folder =
            HfFolder::from_memory(&config, tokenizer_config.as_deref(), parts).map_err(err)?;
        let llama = folder.llama_config().map_err(err)?;
        let tok = folder.tokenizer(&tokenizer).map_err(err)?;
        let tpl = folder.chat_template();
        let template = ChatTemplate::for_tokenizer(tpl.as_deref(), &tok).map_err(err)?;
        self.trainer(
            Base {
                config: llama,
                tok,
                template,
                src: &mut folder,
            },
            data,
            name,
            options,
            init,
        )
    }
}

/// A model to train: its config, tokenizer, chat template and weights.
struct Base<'a> {
    config: LlamaConfig,
    tok: Tokenizer,
    template: ChatTemplate,
    src: &'a mut dyn WeightSource,
}

impl Engine {
    /// Compiles a training run of `base` on `data` (see `loadTrainer`).
    fn trainer(
        &self,
        base: Base,
        data: String,
        name: String,
        options: JsValue,
        init: JsValue,
    ) -> Result<TrainJob, JsValue> {
        let Base {
            config,
            tok,
            template,
            src,
        } = base;
        let o: TrainOptions = if options.is_undefined() || options.is_null() {
            TrainOptions::default()
        } else {
            serde_wasm_bindgen::from_value(options).map_err(bad_arg)?
        };
        let (data, val) = match &o.batches_json {
            Some(j) => (
                Data::Fixed(parse_fixture_batches(j).map_err(err)?),
                Vec::new(),
            ),
            None => {
                let chunks = pack(
                    &load_examples(&name, &data, &template, &tok, &o.eot).map_err(err)?,
                    o.seq_len,
                );
                let (chunks, v) = split_validation(chunks, o.val_fraction, o.max_val_sequences);
                let val = if v.is_empty() {
                    Vec::new()
                } else {
                    Batches::new(v, 0)
                        .and_then(|b| b.all(o.batch_size))
                        .map_err(err)?
                };
                (
                    Data::Packed(Batches::new(chunks, o.seed.wrapping_add(3)).map_err(err)?),
                    val,
                )
            }
        };
        let (batch, seq) = match &data {
            Data::Fixed(b) => {
                let first = b.first().ok_or_else(|| bad_arg("no batches"))?;
                let seq = o.seq_len;
                (first.ids.len() / seq.max(1), seq)
            }
            Data::Packed(_) => (o.batch_size, o.seq_len),
        };
        let lora = LoraConfig {
            rank: o.rank,
            alpha: o.alpha,
            targets: LoraConfig::parse_targets(&o.targets).map_err(err)?,
            rslora: o.rslora,
            dropout: o.dropout,
        };
        let shape = TrainShape {
            recompute: true,
            batch,
            seq,
            head_rows: o.head_rows,
            max_grad_norm: o.max_grad_norm,
        };
        let hyper = Hyper {
            lr: o.lr,
            weight_decay: o.weight_decay,
            warmup: o.warmup,
            steps: o.steps,
            schedule: Schedule::parse(&o.schedule).map_err(err)?,
            ..Hyper::default()
        };
        let tg = graph::build(&config, &lora, &shape, &|n| src.info(n)).map_err(err)?;
        let adapter = if init.is_undefined() || init.is_null() {
            Adapter::init(&lora, &config, o.seed).map_err(err)?
        } else {
            adapter_from_js(&init)?
        };
        // WebGPU or the fast CPU backend (f32 products: the package asks
        // for f32 activations when it trains there).
        let backend = self.dyn_backend();
        let trainer = Trainer::new(tg, backend.as_ref(), src, &adapter, hyper).map_err(err)?;
        let params: usize = trainer
            .model
            .params
            .iter()
            .map(|p| p.shape.iter().product::<usize>())
            .sum();
        let sequences = match &data {
            Data::Packed(b) => b.len(),
            Data::Fixed(b) => b.len() * batch,
        };
        let info = js_sys::Object::new();
        for (k, v) in [
            ("parameters", params as f64),
            ("factors", trainer.model.params.len() as f64),
            ("sequences", sequences as f64),
            ("validationSequences", (val.len() * batch) as f64),
            ("steps", o.steps as f64),
        ] {
            let _ = js_sys::Reflect::set(&info, &k.into(), &v.into());
        }
        Ok(TrainJob {
            inner: Rc::new(RefCell::new(Some(Job {
                trainer,
                data,
                val,
                o,
                val_loss: f64::NAN,
            }))),
            info: info.into(),
        })
    }
}

/// `{ config: string, weights: Uint8Array }` → an adapter.
pub(crate) fn adapter_from_js(v: &JsValue) -> Result<Adapter, JsValue> {
    let config = js_sys::Reflect::get(v, &"config".into())?
        .as_string()
        .ok_or_else(|| {
            js_error(
                "BAD_ADAPTER",
                "adapter.config must be the adapter_config.json text",
            )
        })?;
    let weights = js_sys::Reflect::get(v, &"weights".into())?;
    if !weights.is_instance_of::<js_sys::Uint8Array>() {
        return Err(js_error(
            "BAD_ADAPTER",
            "adapter.weights must be a Uint8Array (adapter_model.safetensors)",
        ));
    }
    let bytes = js_sys::Uint8Array::new(&weights).to_vec();
    Adapter::from_peft(&config, &bytes).map_err(err)
}

#[wasm_bindgen]
impl TrainJob {
    /// `{ parameters, factors, sequences, validationSequences, steps }`.
    pub fn info(&self) -> JsValue {
        self.info.clone()
    }

    /// Runs the next optimizer step; resolves to `{ step, loss, valLoss,
    /// gradNorm, lr, tokens, done }` (`valLoss`: NaN on steps without a
    /// validation pass). Rejects with BUSY if a step is running.
    // The RefCell borrow held across the await is the job's busy lock.
    #[allow(clippy::await_holding_refcell_ref)]
    pub fn step(&self) -> js_sys::Promise {
        let inner = self.inner.clone();
        wasm_bindgen_futures::future_to_promise(async move {
            let mut guard = inner
                .try_borrow_mut()
                .map_err(|_| js_error("BUSY", "a training step is running"))?;
            let job = guard
                .as_mut()
                .ok_or_else(|| js_error("DISPOSED", "the training job was disposed"))?;
            if job.trainer.step >= job.o.steps {
                return Err(js_error("INVALID_INPUT", "the run has done all its steps"));
            }
            let micro: Vec<Batch> = match &mut job.data {
                Data::Fixed(b) => {
                    let k = job.trainer.step;
                    vec![
                        b.get(k)
                            .cloned()
                            .ok_or_else(|| js_error("INVALID_INPUT", "no batch for this step"))?,
                    ]
                }
                Data::Packed(b) => (0..job.o.accum.max(1))
                    .map(|_| b.next_batch(job.o.batch_size))
                    .collect::<Result<_, _>>()
                    .map_err(err)?,
            };
            let s = job.trainer.train_step_async(&micro).await.map_err(err)?;
            let step = job.trainer.step;
            job.val_loss = f64::NAN;
            if !job.val.is_empty()
                && job.o.eval_every > 0
                && (step % job.o.eval_every == 0 || step == job.o.steps)
            {
                let (mut sum, mut n) = (0.0, 0);
                for b in job.val.clone() {
                    let (ls, ln) = job.trainer.eval_async(&b).await.map_err(err)?;
                    sum += ls;
                    n += ln;
                }
                job.val_loss = sum / n.max(1) as f64;
            }
            let o = js_sys::Object::new();
            for (k, v) in [
                ("step", s.step as f64),
                ("loss", s.loss),
                ("valLoss", job.val_loss),
                ("gradNorm", s.grad_norm as f64),
                ("lr", s.lr),
                ("tokens", s.tokens as f64),
            ] {
                let _ = js_sys::Reflect::set(&o, &k.into(), &v.into());
            }
            let _ = js_sys::Reflect::set(&o, &"done".into(), &(step >= job.o.steps).into());
            Ok(o.into())
        })
    }

    /// The current adapter as PEFT files: `{ config: string, weights: Uint8Array }`.
    #[allow(clippy::await_holding_refcell_ref)]
    pub fn adapter(&self) -> js_sys::Promise {
        let inner = self.inner.clone();
        wasm_bindgen_futures::future_to_promise(async move {
            let mut guard = inner
                .try_borrow_mut()
                .map_err(|_| js_error("BUSY", "a training step is running"))?;
            let job = guard
                .as_mut()
                .ok_or_else(|| js_error("DISPOSED", "the training job was disposed"))?;
            let a = job.trainer.adapter_async().await.map_err(err)?;
            let (config, weights) = a.to_peft("kiln").map_err(err)?;
            let o = js_sys::Object::new();
            let _ = js_sys::Reflect::set(&o, &"config".into(), &config.into());
            let w = js_sys::Uint8Array::from(weights.as_slice());
            let _ = js_sys::Reflect::set(&o, &"weights".into(), &w.into());
            Ok(o.into())
        })
    }

    /// Frees the device memory of the run.
    pub fn dispose(&self) -> Result<(), JsValue> {
        let mut g = self
            .inner
            .try_borrow_mut()
            .map_err(|_| js_error("BUSY", "a training step is running"))?;
        *g = None;
        Ok(())
    }
}
