//! `kiln train-lora`: LoRA fine-tuning of a GGUF or Hugging Face model on
//! JSONL chat data (assistant turns trained) or plain text, with a progress
//! bar, validation loss, atomic checkpoints and `--resume`; the adapter is
//! written in PEFT's format.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use kiln::backend::Backend;
use kiln::backend::cpu::CpuBackend;
use kiln::generate::ChatTemplate;
use kiln::loader::gguf::{GgufFile, GgufSource};
use kiln::loader::safetensors::HfFolder;
use kiln::loader::{LoadError, WeightSource};
use kiln::model::LlamaConfig;
use kiln::tokenizer::Tokenizer;
use kiln::train::data::{Batches, load_examples, pack, split_validation};
use kiln::train::graph::{self, TrainShape};
use kiln::train::lora::{Adapter, LoraConfig};
use kiln::train::{Batch, Hyper, Schedule, Trainer};

use super::llm::DEFAULT_MODEL;
use crate::device::{ActChoice, BackendChoice, Device, DeviceArgs};

type Res = Result<ExitCode, Box<dyn std::error::Error>>;

#[derive(Args, Clone, Debug)]
pub struct TrainArgs {
    /// Training data: .jsonl chat examples ({"messages": [...]} per line) or plain text.
    #[arg(long)]
    data: PathBuf,
    /// Validation data (same formats); its loss is reported every --eval-every steps.
    #[arg(long)]
    val: Option<PathBuf>,
    /// Without --val: hold out this fraction of the packed training
    /// sequences (every n-th) for validation.
    #[arg(long, default_value_t = 0.0)]
    val_fraction: f64,
    /// At most this many held-out sequences per validation pass.
    #[arg(long, default_value_t = 64)]
    max_val_sequences: usize,
    /// A GGUF file or a Hugging Face folder (default: the embedded SmolLM2-135M-Instruct).
    #[arg(long)]
    model: Option<PathBuf>,
    /// GPU adapter index or name substring, or "cpu" for the CPU reference
    /// (the slow f64 oracle; the fast CPU backend is `--backend cpu`).
    #[arg(long)]
    adapter: Option<String>,
    /// Where to train: a GPU through wgpu, the fast CPU backend (f32), or
    /// auto (a real GPU if there is one, else the CPU backend).
    #[arg(long, value_enum, default_value_t = BackendChoice::Auto)]
    backend: BackendChoice,
    /// CPU backend: worker threads (default: one per core).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// After training, print the per-kernel profile of one training step.
    #[arg(long)]
    profile: bool,
    #[arg(long, default_value_t = 8)]
    rank: usize,
    #[arg(long, default_value_t = 16.0)]
    alpha: f32,
    /// Projections to adapt: q,k,v,o,gate,up,down (or all).
    #[arg(long, default_value = "all")]
    targets: String,
    /// rsLoRA scaling (alpha / sqrt(rank)).
    #[arg(long)]
    rslora: bool,
    /// LoRA dropout on the input of A (PEFT's lora_dropout).
    #[arg(long, default_value_t = 0.0)]
    dropout: f32,
    /// Optimizer steps.
    #[arg(long, default_value_t = 100)]
    steps: usize,
    #[arg(long, default_value_t = 2e-4)]
    lr: f64,
    /// Sequences per micro-batch.
    #[arg(long, default_value_t = 4)]
    batch: usize,
    /// Micro-batches per optimizer step (gradient accumulation).
    #[arg(long, default_value_t = 1)]
    accum: usize,
    /// Tokens per sequence (data is packed into sequences of this length).
    #[arg(long, default_value_t = 128)]
    seq_len: usize,
    /// Warm-up steps (linear from 0).
    #[arg(long, default_value_t = 0)]
    warmup: usize,
    /// cosine, linear or constant.
    #[arg(long, default_value = "cosine")]
    schedule: String,
    #[arg(long, default_value_t = 0.01)]
    weight_decay: f64,
    /// Global gradient-norm clip (0: off).
    #[arg(long, default_value_t = 1.0)]
    max_grad_norm: f32,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Report validation loss every N steps (0: only at the end).
    #[arg(long, default_value_t = 20)]
    eval_every: usize,
    /// Save a checkpoint every N steps (0: only at the end).
    #[arg(long, default_value_t = 50)]
    save_every: usize,
    /// Rows of logits computed at once in the loss head (memory vs speed).
    #[arg(long, default_value_t = 256)]
    head_rows: usize,
    /// Start from this PEFT adapter instead of PEFT's default init.
    #[arg(long)]
    init: Option<PathBuf>,
    /// End-of-turn text that closes a trained assistant reply.
    #[arg(long, default_value = "<|im_end|>")]
    eot: String,
    /// Output folder: the PEFT adapter, and checkpoint/ for --resume.
    #[arg(long)]
    out: PathBuf,
    /// Continue from OUT/checkpoint.
    #[arg(long)]
    resume: bool,
}

/// The model's config, weights, tokenizer and template.
struct Base {
    config: LlamaConfig,
    tokenizer: Tokenizer,
    template: Option<String>,
    gguf: Option<(GgufFile, std::fs::File)>,
    hf: Option<HfFolder>,
}

impl Base {
    fn open(path: &Path) -> Result<Base, LoadError> {
        let tok = |e: kiln::tokenizer::TokenizerError| LoadError::Tokenizer(e.to_string());
        if path.is_dir() {
            let folder = HfFolder::open(path, None)?;
            let json = std::fs::read(path.join("tokenizer.json"))?;
            return Ok(Base {
                config: folder.llama_config()?,
                tokenizer: folder.model.tokenizer(&json)?,
                template: folder.chat_template(),
                gguf: None,
                hf: Some(folder),
            });
        }
        let (g, f) = GgufFile::open(path)?;
        Ok(Base {
            config: LlamaConfig::from_gguf(&g)?,
            tokenizer: Tokenizer::from_spec(&g.tokenizer_spec()?).map_err(tok)?,
            template: g.chat_template().map(str::to_string),
            gguf: Some((g, f)),
            hf: None,
        })
    }

    fn with_source<T>(
        &mut self,
        f: impl FnOnce(&mut dyn WeightSource) -> Result<T, LoadError>,
    ) -> Result<T, LoadError> {
        if let Some(h) = self.hf.as_mut() {
            return f(h);
        }
        let (g, file) = self.gguf.as_mut().ok_or(LoadError::Cancelled)?;
        f(&mut GgufSource {
            file: g,
            reader: file,
        })
    }
}

fn mean_loss(t: &mut Trainer, batches: &[Batch]) -> Result<f64, LoadError> {
    let (mut s, mut n) = (0.0, 0);
    for b in batches {
        let (ls, ln) = t.eval(b)?;
        s += ls;
        n += ln;
    }
    Ok(s / n.max(1) as f64)
}

pub fn train_lora(a: TrainArgs) -> Res {
    let path = a
        .model
        .clone()
        .or_else(|| std::env::var_os("KILN_MODEL").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(DEFAULT_MODEL));
    let mut base = Base::open(&path)?;
    let template = ChatTemplate::for_tokenizer(base.template.as_deref(), &base.tokenizer)?;
    let read = |p: &Path| -> Result<Vec<kiln::train::data::Example>, Box<dyn std::error::Error>> {
        let text = std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?;
        let name = p.to_string_lossy();
        Ok(load_examples(
            &name,
            &text,
            &template,
            &base.tokenizer,
            &a.eot,
        )?)
    };
    let train_chunks = pack(&read(&a.data)?, a.seq_len);
    let (train_chunks, val_chunks) = match &a.val {
        Some(p) => {
            let v = pack(&read(p)?, a.seq_len);
            (
                train_chunks,
                v.into_iter().take(a.max_val_sequences.max(1)).collect(),
            )
        }
        None => split_validation(train_chunks, a.val_fraction, a.max_val_sequences),
    };
    let mut data = Batches::new(train_chunks, a.seed.wrapping_add(3))?;
    let val = if val_chunks.is_empty() {
        None
    } else {
        Some(Batches::new(val_chunks, 0)?.all(a.batch)?)
    };
    let lora = LoraConfig {
        rank: a.rank,
        alpha: a.alpha,
        targets: LoraConfig::parse_targets(&a.targets)?,
        rslora: a.rslora,
        dropout: a.dropout,
    };
    let shape = TrainShape {
        recompute: true,
        batch: a.batch,
        seq: a.seq_len,
        head_rows: a.head_rows,
        max_grad_norm: a.max_grad_norm,
    };
    let hyper = Hyper {
        lr: a.lr,
        weight_decay: a.weight_decay,
        warmup: a.warmup,
        steps: a.steps,
        schedule: Schedule::parse(&a.schedule)?,
        ..Hyper::default()
    };
    let (backend, why): (Box<dyn Backend>, String) = if a.adapter.as_deref() == Some("cpu") {
        (Box::new(CpuBackend), "--adapter cpu".into())
    } else {
        let (device, why) = crate::device::pick(&DeviceArgs {
            backend: a.backend,
            adapter: a.adapter.clone(),
            threads: a.threads,
            activations: Some(ActChoice::F32),
        })?;
        let b: Box<dyn Backend> = match device {
            Device::Gpu(b) => Box::new(b),
            Device::Cpu(b) => Box::new(b),
        };
        (b, why)
    };
    eprintln!("training on {} ({why})", backend.name());
    let t0 = Instant::now();
    let config = base.config.clone();
    let tg = base.with_source(|s| graph::build(&config, &lora, &shape, &|n| s.info(n)))?;
    let init = match &a.init {
        Some(p) => Adapter::load_dir(p)?,
        None => Adapter::init(&lora, &config, a.seed)?,
    };
    let mut t = base.with_source(|s| Trainer::new(tg, backend.as_ref(), s, &init, hyper))?;
    let base_name = path.to_string_lossy().into_owned();
    let ckpt = a.out.join("checkpoint");
    if a.resume {
        let step = t.load_checkpoint(&ckpt)?;
        // Replay the data order up to the checkpoint.
        for _ in 0..step * a.accum {
            data.next_batch(a.batch)?;
        }
        eprintln!("resumed from {} at step {step}", ckpt.display());
    }
    eprintln!(
        "training {} LoRA factors (rank {}, {} parameters) of {} on {} — {} sequences of {} tokens; set up in {:.1} s",
        t.model.params.len(),
        a.rank,
        t.model
            .params
            .iter()
            .map(|p| p.shape.iter().product::<usize>())
            .sum::<usize>(),
        path.display(),
        backend.name(),
        data.len(),
        a.seq_len,
        t0.elapsed().as_secs_f64()
    );
    if let Some(v) = &val {
        eprintln!(
            "validation loss before training: {:.4}",
            mean_loss(&mut t, v)?
        );
    }
    let bar = ProgressBar::new(a.steps as u64);
    bar.set_style(ProgressStyle::with_template(
        "{bar:30} {pos}/{len} steps  {msg}  [{elapsed_precise} < {eta_precise}]",
    )?);
    bar.set_position(t.step as u64);
    let (mut tokens, t_start) = (0usize, Instant::now());
    let mut val_loss = f64::NAN;
    while t.step < a.steps {
        let micro = (0..a.accum)
            .map(|_| data.next_batch(a.batch))
            .collect::<Result<Vec<_>, _>>()?;
        let s = t.train_step(&micro)?;
        tokens += s.tokens;
        let step = t.step;
        if let Some(v) = &val
            && a.eval_every > 0
            && (step % a.eval_every == 0 || step == a.steps)
        {
            val_loss = mean_loss(&mut t, v)?;
        }
        bar.set_position(step as u64);
        // "-" until a validation pass ran (or without a validation set).
        let val_text = if val_loss.is_nan() {
            "-".to_string()
        } else {
            format!("{val_loss:.4}")
        };
        bar.set_message(format!(
            "loss {:.4}  val {val_text}  |g| {:.3}  lr {:.2e}  {:.0} tok/s",
            s.loss,
            s.grad_norm,
            s.lr,
            tokens as f64 / t_start.elapsed().as_secs_f64()
        ));
        let line = format!(
            "step {:4}  loss {:.4}  val {val_text}  grad-norm {:.4}  lr {:.3e}",
            s.step, s.loss, s.grad_norm, s.lr
        );
        if bar.is_hidden() {
            eprintln!("{line}");
        } else {
            bar.println(line);
        }
        if a.save_every > 0 && step % a.save_every == 0 && step < a.steps {
            t.save_checkpoint(&ckpt, &base_name)?;
        }
    }
    bar.finish();
    if let Some(v) = &val {
        eprintln!(
            "validation loss after training: {:.4}",
            mean_loss(&mut t, v)?
        );
    }
    t.save_checkpoint(&ckpt, &base_name)?;
    t.adapter()?.save_dir(&a.out, &base_name)?;
    eprintln!(
        "saved the PEFT adapter to {} ({} steps, {:.0} tokens/s)",
        a.out.display(),
        t.step,
        tokens as f64 / t_start.elapsed().as_secs_f64()
    );
    if a.profile {
        // One more forward + backward on the last batch's buffers (the
        // adapter is saved; gradients are not applied).
        let prof = t.exe.profile(graph::STEP, &[0, 0])?;
        crate::device::print_profile("one training step (forward + backward)", &prof, usize::MAX);
    }
    Ok(ExitCode::SUCCESS)
}
