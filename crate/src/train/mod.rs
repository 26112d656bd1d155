//! LoRA fine-tuning on the op graph: reverse-mode differentiation
//! ([`autodiff`]), the training graph of a Llama-family model with LoRA
//! factors ([`graph`]), adapters in PEFT's format ([`lora`]), and the
//! training loop ([`Trainer`]): micro-batches accumulate gradients, then one
//! update clips by the global norm and applies AdamW with a warm-up +
//! cosine/linear/constant schedule — PyTorch + PEFT's conventions to the
//! operation (see `tools/lora_reference.py`, the reference it is tested against).

pub mod autodiff;
pub mod data;
pub mod graph;
pub mod lora;
pub mod lora_gguf;
pub mod merge;

#[cfg(test)]
mod gradcheck;

use crate::backend::{Backend, Executable};
use crate::host::HostTensor;
use crate::llm::read_weight;
use crate::loader::{LoadError, WeightSource};
use crate::ops::cross_entropy::MASKED;
use graph::{EVAL, STEP, TrainGraph, UPDATE};
use lora::{Adapter, Factors};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Schedule {
    Cosine,
    Linear,
    Constant,
}

impl Schedule {
    pub fn parse(s: &str) -> Result<Schedule, LoadError> {
        match s {
            "cosine" => Ok(Schedule::Cosine),
            "linear" => Ok(Schedule::Linear),
            "constant" => Ok(Schedule::Constant),
            _ => Err(LoadError::Train(format!(
                "unknown schedule '{s}' (cosine, linear, constant)"
            ))),
        }
    }
}

/// Optimizer settings (AdamW, decoupled weight decay, bias-corrected).
#[derive(Clone, Debug, PartialEq)]
pub struct Hyper {
    pub lr: f64,
    pub weight_decay: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub warmup: usize,
    /// Total optimizer steps (the schedule's length).
    pub steps: usize,
    pub schedule: Schedule,
}

impl Default for Hyper {
    fn default() -> Self {
        Hyper {
            lr: 2e-4,
            weight_decay: 0.01,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            warmup: 0,
            steps: 100,
            schedule: Schedule::Cosine,
        }
    }
}

impl Hyper {
    /// The learning rate of optimizer step `k` (0-based), as transformers'
    /// `get_*_schedule_with_warmup` on a LambdaLR: `k / warmup` during
    /// warm-up, then the schedule's factor.
    pub fn lr_at(&self, k: usize) -> f64 {
        let (k, w, n) = (k as f64, self.warmup as f64, self.steps as f64);
        let f = if k < w {
            k / w.max(1.0)
        } else {
            let p = (k - w) / (n - w).max(1.0);
            match self.schedule {
                Schedule::Cosine => (0.5 * (1.0 + (std::f64::consts::PI * p).cos())).max(0.0),
                Schedule::Linear => ((n - k) / (n - w).max(1.0)).max(0.0),
                Schedule::Constant => 1.0,
            }
        };
        self.lr * f
    }

    /// AdamW's per-step scalars for step `k` (see [`crate::ops::optim`]).
    pub fn scalars(&self, k: usize) -> [f32; crate::ops::optim::HYPER_LEN] {
        let lr = self.lr_at(k);
        let t = (k + 1) as i32;
        let bc1 = 1.0 - self.beta1.powi(t);
        let bc2 = 1.0 - self.beta2.powi(t);
        [
            (1.0 - lr * self.weight_decay) as f32,
            (lr / bc1) as f32,
            bc2.sqrt() as f32,
            self.eps as f32,
            (1.0 - self.beta1) as f32,
            self.beta2 as f32,
            (1.0 - self.beta2) as f32,
        ]
    }
}

/// One micro-batch: `batch·seq` token ids and, per position, the token it
/// must predict ([`MASKED`] where untrained).
#[derive(Clone, Debug, PartialEq)]
pub struct Batch {
    pub ids: Vec<u32>,
    pub targets: Vec<u32>,
}

impl Batch {
    /// From Hugging Face rows: `labels[t] = -100` masks, and position `t`
    /// predicts `labels[t + 1]` (the last position predicts nothing).
    pub fn from_hf(input_ids: &[Vec<u32>], labels: &[Vec<i64>]) -> Result<Batch, LoadError> {
        let mut b = Batch {
            ids: Vec::new(),
            targets: Vec::new(),
        };
        if input_ids.len() != labels.len() {
            return Err(LoadError::Train(
                "input_ids and labels differ in rows".into(),
            ));
        }
        for (ids, lab) in input_ids.iter().zip(labels) {
            if ids.len() != lab.len() || ids.is_empty() {
                return Err(LoadError::Train(
                    "a row of labels differs from its ids".into(),
                ));
            }
            b.ids.extend(ids);
            for t in 0..lab.len() {
                let next = lab.get(t + 1).copied().unwrap_or(-100);
                b.targets.push(if next < 0 { MASKED } else { next as u32 });
            }
        }
        Ok(b)
    }

    pub fn n_targets(&self) -> usize {
        self.targets.iter().filter(|t| **t != MASKED).count()
    }
}

/// What one optimizer step did.
#[derive(Clone, Debug, PartialEq)]
pub struct StepStats {
    pub step: usize,
    /// Mean loss over the step's trained targets.
    pub loss: f64,
    pub lr: f64,
    /// Global gradient norm before clipping.
    pub grad_norm: f32,
    pub clip_coef: f32,
    pub targets: usize,
    pub tokens: usize,
}

pub struct Trainer {
    pub model: TrainGraph,
    pub exe: Box<dyn Executable>,
    pub hyper: Hyper,
    /// Optimizer steps done.
    pub step: usize,
}

impl Trainer {
    /// Compiles the training graph on `backend`, streams the base weights
    /// from `source` and writes the adapter's initial factors.
    pub fn new(
        model: TrainGraph,
        backend: &dyn Backend,
        source: &mut dyn WeightSource,
        adapter: &Adapter,
        hyper: Hyper,
    ) -> Result<Trainer, LoadError> {
        let mut exe = backend.compile(&model.graph)?;
        for (name, id) in &model.weights {
            exe.write(*id, &read_weight(source, name)?)?;
        }
        let mut t = Trainer {
            model,
            exe,
            hyper,
            step: 0,
        };
        t.set_adapter(adapter)?;
        Ok(t)
    }

    /// Writes the factors and resets gradients and optimizer moments.
    pub fn set_adapter(&mut self, adapter: &Adapter) -> Result<(), LoadError> {
        let values = self.model.to_graph_layout(adapter)?;
        for (p, v) in self.model.params.iter().zip(values) {
            self.exe.write(
                p.value,
                &HostTensor::from_f32(&p.shape, crate::DType::F32, &v)?,
            )?;
            self.exe.fill(p.grad, 0)?;
            self.exe.fill(p.moments, 0)?;
        }
        self.exe.fill(self.model.norms, 0)?;
        Ok(())
    }

    fn write_batch(&mut self, io: &graph::Io, b: &Batch) -> Result<(), LoadError> {
        let t = self.model.shape.batch * self.model.shape.seq;
        if b.ids.len() != t || b.targets.len() != t {
            return Err(LoadError::Train(format!(
                "a batch must hold {} × {} tokens, got {}",
                self.model.shape.batch,
                self.model.shape.seq,
                b.ids.len()
            )));
        }
        self.exe
            .write(io.ids, &HostTensor::from_u32(&[t], &b.ids)?)?;
        let mut r0 = 0;
        for (lab, rows) in io.labels.iter().zip(self.model.chunk_rows()) {
            self.exe.write(
                *lab,
                &HostTensor::from_u32(&[rows], &b.targets[r0..r0 + rows])?,
            )?;
            r0 += rows;
        }
        Ok(())
    }

    /// Reads a tensor without blocking the web's event loop (native
    /// backends are ready at once).
    async fn read(&mut self, t: crate::graph::TensorId) -> Result<HostTensor, LoadError> {
        let ticket = self.exe.read_start(t)?;
        self.exe.read_ready(ticket).await;
        Ok(self.exe.read_finish(ticket)?)
    }

    async fn read_losses(&mut self, losses: &[crate::graph::TensorId]) -> Result<f64, LoadError> {
        let mut sum = 0f64;
        for l in losses {
            sum += self
                .read(*l)
                .await?
                .to_f32()?
                .iter()
                .map(|v| *v as f64)
                .sum::<f64>();
        }
        Ok(sum)
    }

    /// Forward + backward of one micro-batch; gradients accumulate, scaled
    /// by `1 / step_targets` (the trained targets of the whole step).
    /// Returns the micro-batch's summed loss. `micro` (its index in the
    /// step) picks the dropout masks.
    pub async fn accumulate_async(
        &mut self,
        b: &Batch,
        step_targets: usize,
        micro: u32,
    ) -> Result<f64, LoadError> {
        let io = self.model.step.clone();
        self.write_batch(&io, b)?;
        let scale = 1.0 / step_targets.max(1) as f32;
        self.exe.write(
            self.model.loss_scale,
            &HostTensor::from_f32(&[1], crate::DType::F32, &[scale])?,
        )?;
        // Dropout masks: a function of (step, micro-batch), so a resumed
        // run draws the same ones.
        let seed = (self.step as u32).wrapping_mul(65536).wrapping_add(micro);
        self.exe.run_program(STEP, &[0, seed])?;
        self.read_losses(&io.losses).await
    }

    /// Clip + AdamW with this step's learning rate; zeroes the gradients.
    /// Returns (grad norm before clipping, clip coefficient, lr).
    pub async fn update_async(&mut self) -> Result<(f32, f32, f64), LoadError> {
        let h = self.hyper.scalars(self.step);
        let n = h.len();
        self.exe.write(
            self.model.hyper,
            &HostTensor::from_f32(&[n], crate::DType::F32, &h)?,
        )?;
        self.exe.run_program(UPDATE, &[0, 0])?;
        let clip = self.read(self.model.clip).await?.to_f32()?;
        let lr = self.hyper.lr_at(self.step);
        self.step += 1;
        Ok((clip[0], clip[1], lr))
    }

    /// One optimizer step over micro-batches (gradient accumulation).
    pub async fn train_step_async(&mut self, micro: &[Batch]) -> Result<StepStats, LoadError> {
        let targets: usize = micro.iter().map(Batch::n_targets).sum();
        if targets == 0 {
            return Err(LoadError::Train("the step has no trained tokens".into()));
        }
        let mut loss = 0.0;
        for (i, b) in micro.iter().enumerate() {
            loss += self.accumulate_async(b, targets, i as u32).await?;
        }
        let step = self.step;
        let (grad_norm, clip_coef, lr) = self.update_async().await?;
        Ok(StepStats {
            step,
            loss: loss / targets as f64,
            lr,
            grad_norm,
            clip_coef,
            targets,
            tokens: micro.iter().map(|b| b.ids.len()).sum(),
        })
    }

    /// Summed loss and target count of a batch under the current factors.
    pub async fn eval_async(&mut self, b: &Batch) -> Result<(f64, usize), LoadError> {
        let io = self.model.eval.clone();
        self.write_batch(&io, b)?;
        self.exe.run_program(EVAL, &[0, 0])?;
        Ok((self.read_losses(&io.losses).await?, b.n_targets()))
    }

    async fn read_params(&mut self, grad: bool) -> Result<Factors, LoadError> {
        let mut out = Factors::new();
        for p in self.model.params.clone() {
            let id = if grad { p.grad } else { p.value };
            let v = self.read(id).await?.to_f32()?;
            out.insert(
                p.name.clone(),
                (p.shape.clone(), self.model.to_peft_layout(&p, &v)),
            );
        }
        Ok(out)
    }

    /// The current factors as a PEFT adapter.
    pub async fn adapter_async(&mut self) -> Result<Adapter, LoadError> {
        Ok(Adapter {
            config: self.model.lora.clone(),
            tensors: self.read_params(false).await?,
        })
    }
}

/// Blocking versions of the async steps (native: reads are ready at once).
#[cfg(not(target_arch = "wasm32"))]
impl Trainer {
    pub fn accumulate(&mut self, b: &Batch, step_targets: usize) -> Result<f64, LoadError> {
        pollster::block_on(self.accumulate_async(b, step_targets, 0))
    }

    pub fn update(&mut self) -> Result<(f32, f32, f64), LoadError> {
        pollster::block_on(self.update_async())
    }

    pub fn train_step(&mut self, micro: &[Batch]) -> Result<StepStats, LoadError> {
        pollster::block_on(self.train_step_async(micro))
    }

    pub fn eval(&mut self, b: &Batch) -> Result<(f64, usize), LoadError> {
        pollster::block_on(self.eval_async(b))
    }

    pub fn adapter(&mut self) -> Result<Adapter, LoadError> {
        pollster::block_on(self.adapter_async())
    }

    /// The accumulated gradients (PEFT names and layout): read them after
    /// [`Trainer::accumulate`] and before [`Trainer::update`].
    pub fn gradients(&mut self) -> Result<Factors, LoadError> {
        pollster::block_on(self.read_params(true))
    }

    /// Writes a resumable checkpoint to `dir`: the adapter (PEFT files),
    /// AdamW's moments and the step count. Every file is written under a
    /// temporary name and renamed, the step file last, so an interrupted
    /// save leaves the previous checkpoint readable.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn save_checkpoint(&mut self, dir: &std::path::Path, base: &str) -> Result<(), LoadError> {
        self.adapter()?.save_dir(dir, base)?;
        let mut moments = Factors::new();
        for p in self.model.params.clone() {
            let v = self.exe.read(p.moments)?.to_f32()?;
            moments.insert(p.name.clone(), (vec![2, v.len() / 2], v));
        }
        let m = Adapter {
            config: self.model.lora.clone(),
            tensors: moments,
        };
        let (_, bytes) = m.to_peft(base)?;
        lora::write_atomic(&dir.join("optimizer.safetensors"), &bytes)?;
        let state = serde_json::json!({ "step": self.step });
        lora::write_atomic(
            &dir.join("trainer_state.json"),
            state.to_string().as_bytes(),
        )?;
        Ok(())
    }

    /// Restores a checkpoint written by [`Trainer::save_checkpoint`];
    /// returns the step to continue from.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn load_checkpoint(&mut self, dir: &std::path::Path) -> Result<usize, LoadError> {
        let adapter = Adapter::load_dir(dir)?;
        self.set_adapter(&adapter)?;
        let cfg = std::fs::read_to_string(dir.join("adapter_config.json"))?;
        let m = Adapter::from_peft(&cfg, &std::fs::read(dir.join("optimizer.safetensors"))?)?;
        for p in self.model.params.clone() {
            let (shape, v) = m.tensors.get(&p.name).ok_or_else(|| {
                LoadError::Train(format!("checkpoint lacks moments of {}", p.name))
            })?;
            self.exe.write(
                p.moments,
                &HostTensor::from_f32(shape, crate::DType::F32, v)?,
            )?;
        }
        let state: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("trainer_state.json"))?)
                .map_err(|e| LoadError::Train(format!("trainer_state.json: {e}")))?;
        self.step = state
            .get("step")
            .and_then(|s| s.as_u64())
            .ok_or_else(|| LoadError::Train("trainer_state.json has no step".into()))?
            as usize;
        Ok(self.step)
    }
}
