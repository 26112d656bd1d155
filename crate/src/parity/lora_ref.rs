//! Replays a PyTorch + PEFT LoRA run (a folder written by
//! `tools/lora_reference.py`) with Kiln's [`Trainer`] and compares every
//! step: loss, learning rate, global gradient norm, the step-0 gradients of
//! every factor, and the final adapter. NaN-aware (a NaN anywhere fails).

use std::path::Path;

use super::diff::vec_diff;
use crate::backend::Backend;
use crate::loader::gguf::{GgufFile, GgufSource};
use crate::loader::safetensors::HfFolder;
use crate::loader::{LoadError, WeightSource};
use crate::model::LlamaConfig;
use crate::train::graph::{self, TrainShape};
use crate::train::lora::{Adapter, LoraConfig};
use crate::train::{Batch, Hyper, Schedule, Trainer};

/// The reference run's settings and numbers.
pub struct LoraReference {
    pub lora: LoraConfig,
    pub hyper: Hyper,
    pub max_grad_norm: f32,
    pub batch: usize,
    pub seq: usize,
    pub batches: Vec<Batch>,
    /// Per step: (loss, lr, grad_norm).
    pub steps: Vec<(f64, f64, f64)>,
    pub init: Adapter,
    pub final_adapter: Adapter,
    pub grads0: Adapter,
}

fn json(path: &Path) -> Result<serde_json::Value, LoadError> {
    let text = std::fs::read_to_string(path)?;
    serde_json::from_str(&text).map_err(|e| LoadError::Corrupt(format!("{}: {e}", path.display())))
}

fn num(v: &serde_json::Value, key: &str) -> Result<f64, LoadError> {
    v.get(key)
        .and_then(|x| x.as_f64())
        .ok_or_else(|| LoadError::Corrupt(format!("reference: '{key}' is missing")))
}

impl LoraReference {
    pub fn load(dir: &Path) -> Result<LoraReference, LoadError> {
        let c = json(&dir.join("config.json"))?;
        let bad = |m: &str| LoadError::Corrupt(format!("reference config: {m}"));
        let init = Adapter::load_dir(&dir.join("init_adapter"))?;
        let final_adapter = Adapter::load_dir(&dir.join("final_adapter"))?;
        let grads = std::fs::read(dir.join("grads_step0.safetensors"))?;
        let cfg_text = std::fs::read_to_string(dir.join("init_adapter/adapter_config.json"))?;
        let grads0 = Adapter::from_peft(&cfg_text, &grads)?;
        let betas = c
            .get("betas")
            .and_then(|b| b.as_array())
            .ok_or_else(|| bad("betas"))?;
        let hyper = Hyper {
            lr: num(&c, "lr")?,
            weight_decay: num(&c, "weight_decay")?,
            beta1: betas
                .first()
                .and_then(|b| b.as_f64())
                .ok_or_else(|| bad("betas"))?,
            beta2: betas
                .get(1)
                .and_then(|b| b.as_f64())
                .ok_or_else(|| bad("betas"))?,
            eps: num(&c, "eps")?,
            warmup: num(&c, "warmup")? as usize,
            steps: num(&c, "steps")? as usize,
            schedule: Schedule::parse(c.get("schedule").and_then(|s| s.as_str()).unwrap_or("?"))?,
        };
        let b = json(&dir.join("batches.json"))?;
        let mut batches = Vec::new();
        for row in b
            .get("batches")
            .and_then(|x| x.as_array())
            .ok_or_else(|| bad("batches"))?
        {
            let rows = |key: &str| -> Result<Vec<Vec<i64>>, LoadError> {
                row.get(key)
                    .and_then(|x| x.as_array())
                    .ok_or_else(|| bad(key))?
                    .iter()
                    .map(|r| {
                        r.as_array()
                            .ok_or_else(|| bad(key))?
                            .iter()
                            .map(|v| v.as_i64().ok_or_else(|| bad(key)))
                            .collect()
                    })
                    .collect()
            };
            let ids: Vec<Vec<u32>> = rows("input_ids")?
                .into_iter()
                .map(|r| r.into_iter().map(|v| v as u32).collect())
                .collect();
            batches.push(Batch::from_hf(&ids, &rows("labels")?)?);
        }
        let s = json(&dir.join("steps.json"))?;
        let steps = s
            .get("steps")
            .and_then(|x| x.as_array())
            .ok_or_else(|| bad("steps"))?
            .iter()
            .map(|st| Ok((num(st, "loss")?, num(st, "lr")?, num(st, "grad_norm")?)))
            .collect::<Result<Vec<_>, LoadError>>()?;
        Ok(LoraReference {
            lora: init.config.clone(),
            hyper,
            max_grad_norm: num(&c, "grad_clip")? as f32,
            batch: num(&c, "batch")? as usize,
            seq: num(&c, "seq_len")? as usize,
            batches,
            steps,
            init,
            final_adapter,
            grads0,
        })
    }
}

/// How a replay compared with the reference.
#[derive(Clone, Debug, Default)]
pub struct LoraReport {
    /// Per step: (Kiln loss, reference loss, Kiln grad norm, reference grad norm).
    pub steps: Vec<(f64, f64, f64, f64)>,
    pub max_loss_rel: f64,
    pub max_grad_norm_rel: f64,
    /// Step-0 gradients: worst max|Δ| / max|ref| over factors, and its name.
    pub grad0_rel: (f64, String),
    /// Final adapter: worst max|Δ| / max|ref| over factors, and its name.
    pub final_rel: (f64, String),
    /// Kiln's final adapter.
    pub adapter: Option<Adapter>,
}

fn worst(got: &Adapter, want: &Adapter) -> Result<(f64, String), LoadError> {
    let mut w = (0.0, String::new());
    for (name, (_, v)) in &want.tensors {
        let g = got
            .tensors
            .get(name)
            .ok_or_else(|| LoadError::Adapter(format!("{name} missing from Kiln's result")))?;
        let d = vec_diff(&g.1, v).map_err(|e| LoadError::Adapter(format!("{name}: {e}")))?;
        // All-zero references (A's step-0 gradient when B = 0): absolute.
        let r = if d.max_want > 0.0 {
            d.rel()
        } else if d.max_abs.is_finite() {
            d.max_abs
        } else {
            f64::INFINITY
        };
        if r > w.0 || r.is_nan() {
            w = (r, name.clone());
        }
    }
    Ok(w)
}

/// A trainer for the reference run on `backend`; `mark_all` makes every
/// node's output readable (no pooling: for [`locate`]).
fn trainer(
    r: &LoraReference,
    model: &Path,
    backend: &dyn Backend,
    mark_all: bool,
) -> Result<Trainer, LoadError> {
    let shape = TrainShape {
        recompute: true,
        batch: r.batch,
        seq: r.seq,
        head_rows: 24,
        max_grad_norm: r.max_grad_norm,
    };
    let mark = |mut tg: graph::TrainGraph| -> Result<graph::TrainGraph, LoadError> {
        if mark_all {
            let outs: Vec<_> = tg.graph.nodes.iter().map(|n| n.output).collect();
            for o in outs {
                tg.graph.mark_output(o)?;
            }
        }
        Ok(tg)
    };
    if model.is_dir() {
        let mut folder = HfFolder::open(model, None)?;
        let config = folder.llama_config()?;
        let tg = mark(graph::build(&config, &r.lora, &shape, &|n| folder.info(n))?)?;
        Trainer::new(tg, backend, &mut folder, &r.init, r.hyper.clone())
    } else {
        let (gguf, mut file) = GgufFile::open(model)?;
        let config = LlamaConfig::from_gguf(&gguf)?;
        let mut src = GgufSource {
            file: &gguf,
            reader: &mut file,
        };
        let tg = mark(graph::build(&config, &r.lora, &shape, &|n| src.info(n))?)?;
        Trainer::new(tg, backend, &mut src, &r.init, r.hyper.clone())
    }
}

/// The first op of a training step whose output differs between two
/// backends by more than `tol` (max |a − b| over the tensor, relative to
/// max |b|; NaN counts as infinite).
#[derive(Clone, Debug)]
pub struct Divergence {
    pub node: usize,
    pub op: &'static str,
    pub tensor: String,
    pub rel: f64,
}

/// Runs the first micro-batch of the reference run on `got` and on `want`
/// with every intermediate kept, and names the first node (in program
/// order: forward, loss head, backward, accumulation) past `tol`. `None`:
/// every op agrees.
pub fn locate(
    r: &LoraReference,
    model: &Path,
    got: &dyn Backend,
    want: &dyn Backend,
    tol: f64,
) -> Result<Option<Divergence>, LoadError> {
    let b = r
        .batches
        .first()
        .ok_or_else(|| LoadError::Corrupt("reference: no batches".into()))?;
    let mut tg = trainer(r, model, got, true)?;
    let mut tw = trainer(r, model, want, true)?;
    tg.accumulate(b, b.n_targets())?;
    tw.accumulate(b, b.n_targets())?;
    let nodes = tg.model.graph.program(graph::STEP)?;
    for i in nodes {
        let node = &tg.model.graph.nodes[i];
        let out = node.output;
        if tg.model.graph.info(out)?.dtype != crate::dtype::DType::F32 {
            continue;
        }
        let a = tg.exe.read(out)?.to_f32()?;
        let w = tw.exe.read(out)?.to_f32()?;
        let d = vec_diff(&a, &w).map_err(LoadError::Corrupt)?;
        let rel = if d.max_want > 0.0 { d.rel() } else { d.max_abs };
        if rel.is_nan() || rel > tol {
            return Ok(Some(Divergence {
                node: i,
                op: node.op.name(),
                tensor: tg.model.graph.info(out)?.name.clone(),
                rel: if rel.is_nan() { f64::INFINITY } else { rel },
            }));
        }
    }
    Ok(None)
}

/// Replays the reference run on `backend` with the model the reference
/// trained: a Hugging Face folder, or a GGUF file (transformers loads GGUF
/// dequantized to f32 — exactly Kiln's base after on-the-fly decoding).
pub fn replay(
    r: &LoraReference,
    model: &Path,
    backend: &dyn Backend,
) -> Result<LoraReport, LoadError> {
    let mut t = trainer(r, model, backend, false)?;
    let mut rep = LoraReport::default();
    for (k, (b, &(loss, _lr, gn))) in r.batches.iter().zip(&r.steps).enumerate() {
        let n = b.n_targets();
        let sum = t.accumulate(b, n)?;
        if k == 0 {
            let g = Adapter {
                config: r.lora.clone(),
                tensors: t.gradients()?,
            };
            rep.grad0_rel = worst(&g, &r.grads0)?;
        }
        let (norm, _, _) = t.update()?;
        let kl = sum / n.max(1) as f64;
        rep.steps.push((kl, loss, norm as f64, gn));
        let lr = ((kl - loss) / loss).abs();
        let gr = ((norm as f64 - gn) / gn).abs();
        rep.max_loss_rel = if lr.is_nan() {
            f64::INFINITY
        } else {
            rep.max_loss_rel.max(lr)
        };
        rep.max_grad_norm_rel = if gr.is_nan() {
            f64::INFINITY
        } else {
            rep.max_grad_norm_rel.max(gr)
        };
    }
    let fin = t.adapter()?;
    rep.final_rel = worst(&fin, &r.final_adapter)?;
    rep.adapter = Some(fin);
    Ok(rep)
}
