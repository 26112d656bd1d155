//! `kiln-parity`: one op graph on several backends, compared with the CPU
//! reference and timed.
//!
//! `kiln-parity ops [--filter S] [--seed N] [--adapter A] [--no-wgpu] [--iters N]`
//! runs every case of `kiln::parity::cases` on CUDA (device 0) and on wgpu
//! (any adapter, e.g. Vulkan on the same GPU) and prints one table: max abs
//! and max relative error against the CPU oracle per backend, and the time
//! per case on each GPU backend — the median wall time of `run_program` +
//! `read` of the output over `--iters` runs after one warm-up run (so it
//! includes launch overhead and the read-back's synchronization, not
//! compilation or uploads). Exits non-zero when any case fails on any
//! backend that ran.
//!
//! `kiln-parity model --model M.gguf [--prompt S] [--tokens N] [--json]`
//! runs the model on the CPU reference, wgpu and CUDA and compares every
//! layer's hidden state, the logits of every step and the greedy tokens
//! (see `kiln_cuda::model_parity`); non-zero exit beyond tolerance.
//!
//! `kiln-parity diffuse [--bench 1,64] [--json]` runs the diffusion UNet on
//! the CPU reference, wgpu and CUDA against ONNX Runtime's reference
//! (per-block error, output error, time) and optionally times it
//! (`kiln_cuda::diffuse_parity`).
//!
//! `kiln-parity sd --model DIR [--bench 512x512]` checks a real-configuration
//! Stable-Diffusion folder against diffusers and times a one-step image
//! (`kiln_cuda::sd_parity`).

use std::process::ExitCode;
use std::time::Instant;

use clap::{Parser, Subcommand};
use kiln::backend::wgpu::{WgpuBackend, WgpuOptions};
use kiln::backend::{Backend, BackendError};
use kiln::parity::{Case, CaseResult, cases, sparse_diff, tokens_agree};
use kiln_cuda::CudaBackend;

#[derive(Parser)]
#[command(name = "kiln-parity", about = "Kiln backends compared op by op")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Every op × dtype × shape on CUDA and wgpu against the CPU reference.
    Ops {
        /// Only cases whose "op dtype shape" label contains this.
        #[arg(long, default_value = "")]
        filter: String,
        /// Seed of the random inputs (default: from the clock; printed).
        #[arg(long)]
        seed: Option<u64>,
        /// wgpu adapter: index or name substring (e.g. "nvidia"; or KILN_ADAPTER).
        #[arg(long)]
        adapter: Option<String>,
        /// Skip the wgpu column.
        #[arg(long)]
        no_wgpu: bool,
        /// Skip the CUDA column.
        #[arg(long)]
        no_cuda: bool,
        /// Timed runs per case (after one warm-up run); 0 disables timing.
        #[arg(long, default_value_t = 5)]
        iters: usize,
    },
    /// Prefill and greedy decode speed of a GGUF model on wgpu and CUDA, same
    /// GPU, one run (a benchmark, not a test).
    Bench {
        #[arg(long)]
        model: std::path::PathBuf,
        /// Prompt tokens (ordinary text, truncated).
        #[arg(long, default_value_t = 128)]
        prefill: usize,
        #[arg(long, default_value_t = 128)]
        decode: usize,
        #[arg(long, default_value_t = 5)]
        reps: usize,
        #[arg(long)]
        adapter: Option<String>,
        /// Also print GPU time per kernel per backend (fused graph): of the
        /// prompt's prefill chunk when it has more than 8 tokens, else of
        /// one decode step after it.
        #[arg(long)]
        profile: bool,
        /// Skip the wgpu column.
        #[arg(long)]
        no_wgpu: bool,
        /// Skip the CUDA column.
        #[arg(long)]
        no_cuda: bool,
    },
    /// A GGUF model on CPU reference, wgpu and CUDA: per-layer hidden states,
    /// logits per step, greedy tokens, speed.
    Model(ModelArgs),
    /// The diffusion UNet (ONNX) on CPU reference, wgpu and CUDA against ONNX
    /// Runtime: per-block error, output error, time; `--bench 1,64` times it.
    Diffuse(kiln_cuda::diffuse_parity::DiffuseArgs),
    /// A Stable-Diffusion folder at a real configuration on wgpu and CUDA
    /// against diffusers (text encoder, UNet, VAE); `--bench 512x512` times
    /// a one-step image per weight type.
    Sd(kiln_cuda::sd_parity::SdArgs),
    /// LoRA training on CPU reference, wgpu and CUDA: `--reference` replays a
    /// PyTorch + PEFT run step by step; `--bench MODEL` times training steps.
    Train(kiln_cuda::train_parity::TrainArgs),
}

#[derive(clap::Args)]
struct ModelArgs {
    #[arg(long)]
    model: std::path::PathBuf,
    #[arg(long, default_value = "The history of the clock is a story of")]
    prompt: String,
    /// Greedy decode steps.
    #[arg(long, default_value_t = 8)]
    tokens: usize,
    #[arg(long)]
    adapter: Option<String>,
    #[arg(long)]
    no_wgpu: bool,
    #[arg(long)]
    no_cuda: bool,
    /// The GPU backends run the fused graph (the CLI's default on GPUs);
    /// the CPU reference always runs the plain one.
    #[arg(long)]
    fused: bool,
    /// Machine-readable output.
    #[arg(long)]
    json: bool,
    /// A PyTorch reference (`tests/fixtures/models/*/reference*.json` or
    /// `tests/fixtures/smollm2/reference.json`): its prompt ids replace
    /// --prompt, and every backend's logits and greedy tokens are also
    /// compared with PyTorch's.
    #[arg(long)]
    reference: Option<std::path::PathBuf>,
}

/// (prompt ids, last-prompt-position logits as (id, value) pairs, greedy ids)
/// from a PyTorch reference file of either fixture format.
type Reference = (Vec<u32>, Vec<(usize, f32)>, Vec<u32>);

fn load_reference(path: &std::path::Path) -> Result<Reference, Box<dyn std::error::Error>> {
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path)?)?;
    let rec = v.get("records").and_then(|r| r.get(0)).unwrap_or(&v);
    // Strict: a malformed entry is an error, never a silently shorter list.
    let ids = |k: &str| -> Result<Vec<u32>, String> {
        let a = rec[k]
            .as_array()
            .ok_or_else(|| format!("{}: no {k}", path.display()))?;
        a.iter()
            .map(|x| {
                x.as_u64()
                    .and_then(|x| u32::try_from(x).ok())
                    .ok_or_else(|| format!("{}: {k} holds {x}", path.display()))
            })
            .collect()
    };
    let bad = |what: &str| format!("{}: malformed {what}", path.display());
    let logits: Vec<(usize, f32)> = if let Some(all) = rec["prompt_logits"].as_array() {
        let last = all.last().and_then(|l| l.as_array());
        last.ok_or_else(|| bad("prompt_logits"))?
            .iter()
            .enumerate()
            .map(|(i, x)| Some((i, x.as_f64()? as f32)))
            .collect::<Option<_>>()
            .ok_or_else(|| bad("prompt_logits"))?
    } else {
        rec["last_logits_top20"]
            .as_array()
            .ok_or_else(|| bad("reference: neither prompt_logits nor last_logits_top20"))?
            .iter()
            .map(|p| Some((p[0].as_u64()? as usize, p[1].as_f64()? as f32)))
            .collect::<Option<_>>()
            .ok_or_else(|| bad("last_logits_top20"))?
    };
    let (prompt, greedy) = (ids("prompt_ids")?, ids("greedy_ids")?);
    if prompt.is_empty() || logits.is_empty() || greedy.is_empty() {
        return Err(format!("{}: empty prompt_ids, logits or greedy_ids", path.display()).into());
    }
    Ok((prompt, logits, greedy))
}

fn bench(
    path: &std::path::Path,
    prefill: usize,
    decode: usize,
    reps: usize,
    adapter: Option<String>,
    profile: bool,
    (no_wgpu, no_cuda): (bool, bool),
) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let text = "The history of the clock is a story of craftsmen and astronomers. "
        .repeat(prefill / 8 + 8);
    let mut ids = kiln_cuda::model_parity::encode(path, &text)?;
    ids.truncate(prefill.max(2));
    let backends = kiln_cuda::backends(false, !no_wgpu, !no_cuda, adapter);
    let bytes = std::fs::metadata(path)?.len() as f64;
    println!(
        "model: {}   prefill {} tokens (one chunk), decode {decode} greedy tokens, best of {reps}",
        path.display(),
        ids.len()
    );
    // Both graphs on every backend (the CLI's default on GPUs is the fused one).
    for b in &backends {
        for fused in [false, true] {
            let (pre, dec) =
                kiln_cuda::model_parity::bench(path, b.as_ref(), &ids, decode, reps, fused)?;
            let graph = if fused { "fused" } else { "plain" };
            println!(
                "{:<44} {graph} prefill {:>9.1} tok/s   decode {:>7.1} tok/s ({:.2} ms/token, {:.1} GB/s of the file)",
                b.name(),
                pre,
                dec,
                1e3 / dec,
                bytes * dec / 1e9
            );
        }
    }
    if profile {
        for b in &backends {
            // A prompt of more than a few tokens: its prefill chunk's kernels.
            let (prof, what) = if ids.len() > 8 {
                let p = kiln_cuda::model_parity::profile_prefill(path, b.as_ref(), &ids)?;
                (p, format!("the fused prefill of {} tokens", ids.len()))
            } else {
                let p = kiln_cuda::model_parity::profile_decode(path, b.as_ref(), &ids, decode)?;
                (p, "one fused decode step after the prompt".to_string())
            };
            let total: f64 = prof.iter().map(|x| x.1).sum();
            println!(
                "{}: {what}, GPU time per kernel ({:.3} ms in all, {} launches):",
                b.name(),
                total * 1e3,
                prof.iter().map(|x| x.2).sum::<usize>()
            );
            for (k, t, n) in prof {
                println!(
                    "  {:>8.3} ms {:>5.1}%  {n:>4}×  {:>6.2} µs each  {k}",
                    t * 1e3,
                    100.0 * t / total,
                    t * 1e6 / n.max(1) as f64
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn model(a: ModelArgs) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let (path, prompt, steps) = (a.model.as_path(), a.prompt.as_str(), a.tokens);
    let (adapter, no_wgpu, no_cuda, json) = (a.adapter.clone(), a.no_wgpu, a.no_cuda, a.json);
    let reference = a.reference.as_deref();
    use kiln_cuda::model_parity::{REL_TOL, compare, encode, trace};
    let torch = reference.map(load_reference).transpose()?;
    let ids = match &torch {
        Some((p, _, _)) => p.clone(),
        None => encode(path, prompt)?,
    };
    if ids.is_empty() || steps == 0 {
        return Err("the prompt and --tokens must not be empty".into());
    }
    let backends = kiln_cuda::backends(false, !no_wgpu, !no_cuda, adapter);
    let reference = trace(path, &kiln::backend::cpu::CpuBackend, &ids, steps, false)?;
    let mut rows = Vec::new();
    let mut ok = true;
    for b in &backends {
        let t = trace(path, b.as_ref(), &ids, steps, a.fused)?;
        let c = compare(&t, &reference);
        ok &= c.pass(steps);
        rows.push((t, c));
    }
    // Against PyTorch: last prompt position's logits and the greedy tokens.
    let mut vs_torch = Vec::new();
    if let Some((_, logits, greedy)) = &torch {
        for t in std::iter::once(&reference).chain(rows.iter().map(|(t, _)| t)) {
            // NaN-aware; a logit index the run lacks is an error, not a pass.
            let first = t.logits.first().map(Vec::as_slice).unwrap_or_default();
            let rel = sparse_diff(first, logits.iter().copied())?.rel();
            // The reference's greedy ids up to --tokens; all must agree.
            let n = greedy.len().min(steps);
            let agree = tokens_agree(&t.tokens, &greedy[..n])?;
            ok &= rel <= REL_TOL as f64 && agree == n;
            vs_torch.push((t.backend.clone(), rel, agree, n));
        }
    }
    let tps = |t: &kiln_cuda::model_parity::Trace| {
        (t.tokens.len().saturating_sub(1)) as f64 / t.decode_secs.max(1e-9)
    };
    if json {
        let v: Vec<_> = rows
            .iter()
            .map(|(t, c)| {
                serde_json::json!({
                    "backend": t.backend, "tokens": t.tokens, "tokens_agree": c.tokens_agree,
                    "worst_hidden_rel": c.worst_hidden_rel, "first_bad_layer": c.first_bad_layer,
                    "worst_logit_rel": c.worst_logit_rel, "first_bad_step": c.first_bad_step,
                    "prefill_secs": t.prefill_secs, "decode_tok_s": tps(t), "pass": c.pass(steps),
                    "error": c.error,
                })
            })
            .collect();
        let out = serde_json::json!({
            "model": path.display().to_string(), "prompt_tokens": ids.len(), "steps": steps,
            "tolerance_rel": kiln_cuda::model_parity::REL_TOL,
            "reference": { "backend": reference.backend, "tokens": reference.tokens },
            "backends": v,
            "vs_pytorch": vs_torch.iter().map(|(b, r, a, n)| serde_json::json!({"backend": b, "logits_rel": r, "tokens_agree": a, "tokens": n})).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        println!(
            "model: {}   prompt: {} tokens   steps: {steps}   tolerance: |Δ| ≤ {:.0e}·max|ref|",
            path.display(),
            ids.len(),
            kiln_cuda::model_parity::REL_TOL
        );
        println!(
            "reference ({}): tokens {:?}",
            reference.backend, reference.tokens
        );
        println!(
            "{:<44} {:>12} {:>10} {:>12} {:>10} {:>8} {:>10} {:>10}",
            "backend",
            "hidden rel",
            "bad layer",
            "logits rel",
            "bad step",
            "agree",
            "prefill ms",
            "tok/s*"
        );
        for (t, c) in &rows {
            let opt = |o: Option<usize>| o.map_or("-".to_string(), |v| v.to_string());
            println!(
                "{:<44} {:>12.2e} {:>10} {:>12.2e} {:>10} {:>5}/{:<2} {:>10.2} {:>10.1}",
                t.backend,
                c.worst_hidden_rel,
                opt(c.first_bad_layer),
                c.worst_logit_rel,
                opt(c.first_bad_step),
                c.tokens_agree,
                steps,
                t.prefill_secs * 1e3,
                tps(t)
            );
            if let Some(e) = &c.error {
                println!("  {}: {e}", t.backend);
            }
        }
        println!(
            "* decode with full logits read back every step (a parity run, not a benchmark; see kiln bench)"
        );
        for (b, rel, agree, n) in &vs_torch {
            println!(
                "vs PyTorch: {b:<44} last-prompt logits rel {rel:.2e}   greedy {agree}/{n} identical"
            );
        }
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Median seconds of run + read of the case's output over `iters` runs,
/// after one warm-up run.
fn time_case(case: &Case, b: &dyn Backend, iters: usize) -> Result<f64, BackendError> {
    let mut exe = b.compile(&case.graph)?;
    for (t, d) in &case.data {
        exe.write(*t, d)?;
    }
    exe.run(&case.syms)?;
    exe.read(case.output)?;
    let mut ts: Vec<f64> = (0..iters)
        .map(|_| {
            let t0 = Instant::now();
            exe.run(&case.syms)?;
            exe.read(case.output)?;
            Ok(t0.elapsed().as_secs_f64())
        })
        .collect::<Result<_, BackendError>>()?;
    ts.sort_by(f64::total_cmp);
    Ok(ts[ts.len() / 2])
}

struct Col {
    result: CaseResult,
    secs: Option<f64>,
}

fn run_col(case: &Case, b: &dyn Backend, caps: &kiln::ops::GpuCaps, iters: usize) -> Col {
    // KILN_ACTIVATIONS=q8: the products the 8-bit kernels take under these
    // capabilities are checked against their rounding bound
    // (kiln::parity::q8); every other case exactly as without.
    let result = kiln::parity::q8::run_case_q8(case, b, caps);
    let secs = if result.error.is_none() && iters > 0 {
        time_case(case, b, iters).ok()
    } else {
        None
    };
    Col { result, secs }
}

fn cell(c: &Option<Col>) -> String {
    match c {
        None => format!("{:>9} {:>9} {:>9}", "-", "-", "-"),
        Some(c) => {
            let t = c.secs.map_or("-".into(), |s| format!("{:.1}", s * 1e6));
            if c.result.error.is_some() {
                format!("{:>9} {:>9} {:>9}", "ERROR", "", t)
            } else {
                format!(
                    "{:>9.2e} {:>9.2e} {:>9}",
                    c.result.max_abs, c.result.max_rel, t
                )
            }
        }
    }
}

fn status(cols: &[(&str, &Option<Col>)]) -> String {
    let mut out = Vec::new();
    for (name, c) in cols {
        if let Some(c) = c {
            match &c.result.error {
                Some(e) => out.push(format!("{name} ERROR {e}")),
                None if !c.result.pass => out.push(format!("{name} FAIL")),
                None => {}
            }
        }
    }
    if out.is_empty() {
        "ok".into()
    } else {
        out.join("; ")
    }
}

fn median(v: &mut [f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    Some(v[v.len() / 2])
}

fn ops(
    filter: &str,
    seed: Option<u64>,
    adapter: Option<String>,
    no_wgpu: bool,
    no_cuda: bool,
    iters: usize,
) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let seed = seed.unwrap_or_else(kiln::parity::clock_seed);
    let cuda = if no_cuda {
        None
    } else {
        match CudaBackend::new(0) {
            Ok(b) => match b.warm_up() {
                Ok(()) => Some(b),
                Err(e) => {
                    println!("cuda: unusable, column skipped: {e}");
                    None
                }
            },
            Err(e) => {
                println!("cuda: no CUDA device, column skipped: {e}");
                None
            }
        }
    };
    let wgpu = if no_wgpu {
        None
    } else {
        match WgpuBackend::new(&WgpuOptions {
            adapter,
            ..Default::default()
        }) {
            Ok(b) => Some(b),
            Err(e) => {
                println!("wgpu: no adapter, column skipped: {e}");
                None
            }
        }
    };
    if cuda.is_none() && wgpu.is_none() {
        println!(
            "kiln-parity: neither a CUDA device nor a wgpu adapter is available; nothing to compare"
        );
        return Ok(ExitCode::from(2));
    }
    println!("seed: {seed}");
    if let Some(b) = &cuda {
        println!("cuda: {}", b.name());
    }
    if let Some(b) = &wgpu {
        println!("wgpu: {}   subgroups: {}", b.name(), b.caps.subgroups);
    }
    if iters > 0 {
        println!(
            "time: median wall time of run_program + read of the output over {iters} runs after 1 warm-up run, µs"
        );
    }
    let cases = cases::all_cases(seed, filter)?;
    println!(
        "{:<11} {:<5} {:<40} | {:^29} | {:^29} | result",
        "", "", "", "cuda", "wgpu"
    );
    println!(
        "{:<11} {:<5} {:<40} | {:>9} {:>9} {:>9} | {:>9} {:>9} {:>9} |",
        "op", "dtype", "shape", "max abs", "max rel", "time µs", "max abs", "max rel", "time µs"
    );
    let start = Instant::now();
    // Per op: (cases, cuda pass, wgpu pass, cuda times, wgpu times).
    type Agg = (usize, usize, usize, Vec<f64>, Vec<f64>);
    let mut per_op: Vec<(String, Agg)> = Vec::new();
    let (mut failed, mut cuda_fail, mut wgpu_fail) = (0, 0, 0);
    for case in &cases {
        let c = cuda
            .as_ref()
            .map(|b| run_col(case, b, &kiln_cuda::plan::caps(), iters));
        let w = wgpu.as_ref().map(|b| match case.binding_limit {
            Some(l) => run_col(case, &b.with_binding_limit(l), &b.caps, iters),
            None => run_col(case, b, &b.caps, iters),
        });
        let st = status(&[("cuda", &c), ("wgpu", &w)]);
        let c_ok = c.as_ref().is_none_or(|c| c.result.pass);
        let w_ok = w.as_ref().is_none_or(|w| w.result.pass);
        cuda_fail += usize::from(!c_ok);
        wgpu_fail += usize::from(!w_ok);
        failed += usize::from(!(c_ok && w_ok));
        println!(
            "{:<11} {:<5} {:<40} | {} | {} | {st}",
            case.op,
            case.dtype.name(),
            case.shape,
            cell(&c),
            cell(&w)
        );
        let key = case.op.to_string();
        let i = match per_op.iter().position(|(k, _)| *k == key) {
            Some(i) => i,
            None => {
                per_op.push((key, (0, 0, 0, vec![], vec![])));
                per_op.len() - 1
            }
        };
        let a = &mut per_op[i].1;
        a.0 += 1;
        a.1 += usize::from(c.as_ref().is_some_and(|c| c.result.pass));
        a.2 += usize::from(w.as_ref().is_some_and(|w| w.result.pass));
        a.3.extend(c.as_ref().and_then(|c| c.secs));
        a.4.extend(w.as_ref().and_then(|w| w.secs));
    }
    println!();
    println!(
        "{:<11} {:>5} {:>9} {:>9} {:>14} {:>14}",
        "op", "cases", "cuda ok", "wgpu ok", "cuda med µs", "wgpu med µs"
    );
    for (op, a) in &mut per_op {
        let fmt = |v: Option<f64>| v.map_or("-".into(), |s| format!("{:.1}", s * 1e6));
        let pass = |n: usize, on: bool| if on { n.to_string() } else { "-".into() };
        println!(
            "{:<11} {:>5} {:>9} {:>9} {:>14} {:>14}",
            op,
            a.0,
            pass(a.1, cuda.is_some()),
            pass(a.2, wgpu.is_some()),
            fmt(median(&mut a.3)),
            fmt(median(&mut a.4))
        );
    }
    println!(
        "{} cases: {} failed (cuda {}, wgpu {}) in {:.1} s",
        cases.len(),
        failed,
        if cuda.is_some() {
            cuda_fail.to_string()
        } else {
            "not run".into()
        },
        if wgpu.is_some() {
            wgpu_fail.to_string()
        } else {
            "not run".into()
        },
        start.elapsed().as_secs_f64()
    );
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let r = match cli.cmd {
        Cmd::Ops {
            filter,
            seed,
            adapter,
            no_wgpu,
            no_cuda,
            iters,
        } => ops(&filter, seed, adapter, no_wgpu, no_cuda, iters),
        Cmd::Bench {
            model: m,
            prefill,
            decode,
            reps,
            adapter,
            profile,
            no_wgpu,
            no_cuda,
        } => bench(
            &m,
            prefill,
            decode,
            reps,
            adapter,
            profile,
            (no_wgpu, no_cuda),
        ),
        Cmd::Model(a) => model(a),
        Cmd::Diffuse(a) => kiln_cuda::diffuse_parity::run(a),
        Cmd::Sd(a) => kiln_cuda::sd_parity::run(a),
        Cmd::Train(a) => kiln_cuda::train_parity::run(a),
    };
    r.unwrap_or_else(|e| {
        eprintln!("error: {e}");
        ExitCode::FAILURE
    })
}
