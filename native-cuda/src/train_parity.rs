//! `kiln-parity train`: LoRA training on the CPU reference, wgpu and CUDA.
//!
//! * `--reference DIR --model HF_DIR`: replays a PyTorch + PEFT run written
//!   by `tools/lora_reference.py` on every backend (same init, batches and
//!   optimizer) and prints per-step loss, the worst step-0 gradient error
//!   (the factor named) and the final adapter's error; exit 1 past the
//!   tolerances of `tests/lora.rs`.
//! * `--bench MODEL`: median optimizer-step time, tokens/s and device
//!   memory of LoRA training (random tokens, every position trained) on
//!   wgpu and CUDA — a benchmark, not a test.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use kiln::backend::Backend;
use kiln::loader::WeightSource;
use kiln::loader::gguf::{GgufFile, GgufSource};
use kiln::model::LlamaConfig;
use kiln::parity::lora_ref::{LoraReference, locate, replay};
use kiln::train::graph::{self, TrainShape};
use kiln::train::lora::{Adapter, LoraConfig};
use kiln::train::{Batch, Hyper, Trainer};

#[derive(clap::Args)]
pub struct TrainArgs {
    /// A reference folder from tools/lora_reference.py.
    #[arg(long)]
    reference: Option<PathBuf>,
    /// The model the reference trained (a Hugging Face folder).
    #[arg(long)]
    model: Option<PathBuf>,
    /// Benchmark LoRA training of this GGUF model.
    #[arg(long)]
    bench: Option<PathBuf>,
    #[arg(long, default_value_t = 8)]
    batch: usize,
    #[arg(long, default_value_t = 256)]
    seq_len: usize,
    #[arg(long, default_value_t = 8)]
    rank: usize,
    #[arg(long, default_value_t = 10)]
    steps: usize,
    #[arg(long, default_value_t = 256)]
    head_rows: usize,
    #[arg(long)]
    adapter: Option<String>,
    #[arg(long)]
    no_cpu: bool,
    #[arg(long)]
    no_wgpu: bool,
    #[arg(long)]
    no_cuda: bool,
    #[arg(long)]
    json: bool,
    /// Tolerances of --reference (relative to each factor's largest value):
    /// step-0 gradients and the final adapter. The defaults fit the tiny
    /// fixture model; deeper models accumulate more f32 reordering.
    #[arg(long, default_value_t = 1e-4)]
    grad_tol: f64,
    #[arg(long, default_value_t = 1e-4)]
    final_tol: f64,
    /// With --reference: when a backend fails (or always, with --locate),
    /// rerun its first micro-batch beside the first backend with every
    /// intermediate kept and name the first op whose output differs by more
    /// than this (relative to the tensor's largest value).
    #[arg(long, default_value_t = 1e-4)]
    locate_tol: f64,
    #[arg(long)]
    locate: bool,
    /// With --reference: write the first backend's final adapter here (PEFT files).
    #[arg(long)]
    save_adapter: Option<PathBuf>,
    /// With --bench: per-kernel times of one training micro-batch.
    #[arg(long)]
    profile: bool,
    /// With --bench: keep every block's activations instead of recomputing
    /// each block before its backward (to measure what recomputation saves).
    #[arg(long)]
    no_recompute: bool,
}

fn backends(a: &TrainArgs, cpu: bool) -> Vec<Box<dyn Backend>> {
    crate::backends(cpu && !a.no_cpu, !a.no_wgpu, !a.no_cuda, a.adapter.clone())
}

pub fn run(a: TrainArgs) -> Result<ExitCode, Box<dyn std::error::Error>> {
    if let Some(model) = a.bench.clone() {
        return bench(&a, &model);
    }
    let (Some(dir), Some(model)) = (&a.reference, &a.model) else {
        return Err("give --reference DIR --model HF_DIR, or --bench MODEL.gguf".into());
    };
    let r = LoraReference::load(dir)?;
    let mut ok = true;
    let mut rows = Vec::new();
    let all = backends(&a, true);
    for (bi, b) in all.iter().enumerate() {
        let rep = replay(&r, model, b.as_ref())?;
        if let (Some(dir), Some(ad), true) = (&a.save_adapter, &rep.adapter, rows.is_empty()) {
            ad.save_dir(dir, &model.to_string_lossy())?;
        }
        let pass = rep.max_loss_rel <= 1e-3
            && rep.max_grad_norm_rel <= 1e-3
            && rep.grad0_rel.0 <= a.grad_tol
            && rep.final_rel.0 <= a.final_tol;
        ok &= pass;
        // The first op past tolerance against the first backend.
        let mut first_bad = serde_json::Value::Null;
        if bi > 0 && (!pass || a.locate) {
            let name = match locate(&r, model, b.as_ref(), all[0].as_ref(), a.locate_tol)? {
                Some(d) => {
                    first_bad = serde_json::json!({"node": d.node, "op": d.op, "tensor": d.tensor, "rel": d.rel});
                    format!(
                        "node {} {} ('{}') differs by {:.2e}",
                        d.node, d.op, d.tensor, d.rel
                    )
                }
                None => format!("no op differs by more than {:.0e}", a.locate_tol),
            };
            eprintln!(
                "{} vs {}, first micro-batch op by op: {name}",
                b.name(),
                all[0].name()
            );
        }
        if !a.json {
            for (k, (l, rl, g, rg)) in rep.steps.iter().enumerate() {
                println!(
                    "{:>14} step {k:3}  loss {l:.6} (peft {rl:.6})  grad-norm {g:.5} (peft {rg:.5})",
                    b.name()
                );
            }
            println!(
                "{}: loss rel {:.2e}, grad-norm rel {:.2e}, step-0 gradients {:.2e} ({}), final adapter {:.2e} ({}) — {}",
                b.name(),
                rep.max_loss_rel,
                rep.max_grad_norm_rel,
                rep.grad0_rel.0,
                rep.grad0_rel.1,
                rep.final_rel.0,
                rep.final_rel.1,
                if pass { "ok" } else { "FAIL" }
            );
        }
        rows.push(serde_json::json!({
            "backend": b.name(),
            "loss": rep.steps.iter().map(|s| s.0).collect::<Vec<_>>(),
            "peft_loss": rep.steps.iter().map(|s| s.1).collect::<Vec<_>>(),
            "max_loss_rel": rep.max_loss_rel,
            "max_grad_norm_rel": rep.max_grad_norm_rel,
            "grad0_rel": rep.grad0_rel.0, "grad0_worst": rep.grad0_rel.1,
            "final_rel": rep.final_rel.0, "final_worst": rep.final_rel.1,
            "first_divergent_op": first_bad,
            "pass": pass,
        }));
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn bench(a: &TrainArgs, model: &std::path::Path) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let (gguf, mut file) = GgufFile::open(model)?;
    let config = LlamaConfig::from_gguf(&gguf)?;
    let lora = LoraConfig {
        rank: a.rank,
        ..LoraConfig::default()
    };
    let shape = TrainShape {
        recompute: !a.no_recompute,
        batch: a.batch,
        seq: a.seq_len,
        head_rows: a.head_rows,
        max_grad_norm: 1.0,
    };
    let t = a.batch * a.seq_len;
    let mut rng = kiln::rng::Rng::new(2);
    let batches: Vec<Batch> = (0..a.steps + 1)
        .map(|_| {
            let ids: Vec<u32> = (0..t).map(|_| rng.below(config.vocab as u32)).collect();
            let mut targets: Vec<u32> = ids[1..].to_vec();
            targets.push(kiln::ops::cross_entropy::MASKED);
            Batch { ids, targets }
        })
        .collect();
    let mut rows = Vec::new();
    for b in backends(a, false) {
        let mut src = GgufSource {
            file: &gguf,
            reader: &mut file,
        };
        let tg = graph::build(&config, &lora, &shape, &|n| src.info(n))?;
        let adapter = Adapter::init(&lora, &config, 0)?;
        let mut tr = Trainer::new(tg, b.as_ref(), &mut src, &adapter, Hyper::default())?;
        let mem = tr.exe.device_bytes();
        // Warm-up (pipelines, allocation), then timed steps.
        tr.train_step(&batches[..1])?;
        let mut times = Vec::new();
        let mut loss = 0.0;
        for bt in &batches[1..] {
            let t0 = Instant::now();
            loss = tr.train_step(std::slice::from_ref(bt))?.loss;
            times.push(t0.elapsed().as_secs_f64());
        }
        times.sort_by(f64::total_cmp);
        let mut prof = Vec::new();
        if a.profile {
            // One more micro-batch, one kernel at a time.
            prof = tr
                .exe
                .profile(graph::STEP, &vec![0; tr.model.graph.syms.len()])?;
            let total: f64 = prof.iter().map(|p| p.1).sum();
            eprintln!(
                "{}: profile of one forward+backward ({:.1} ms in kernels)",
                b.name(),
                total * 1e3
            );
            for (k, secs, n) in prof.iter().take(15) {
                eprintln!(
                    "  {k:<48} {:8.2} ms {:5.1}% ×{n}",
                    secs * 1e3,
                    100.0 * secs / total
                );
            }
        }
        let med = times[times.len() / 2];
        eprintln!(
            "{}: {} × {} tokens, r={}, all 7 projections: median step {:.1} ms, {:.0} tokens/s, device memory {:.2} GB, last loss {loss:.3}",
            b.name(),
            a.batch,
            a.seq_len,
            a.rank,
            med * 1e3,
            t as f64 / med,
            mem as f64 / 1e9
        );
        rows.push(serde_json::json!({
            "backend": b.name(), "batch": a.batch, "seq_len": a.seq_len, "rank": a.rank,
            "median_step_ms": med * 1e3, "tokens_per_s": t as f64 / med,
            "device_bytes": mem, "steps_ms": times.iter().map(|x| x * 1e3).collect::<Vec<_>>(),
            "profile": prof.iter().map(|(k, s, n)| serde_json::json!({"kernel": k, "ms": s * 1e3, "dispatches": n})).collect::<Vec<_>>(),
        }));
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    }
    Ok(ExitCode::SUCCESS)
}
