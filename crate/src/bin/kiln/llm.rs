//! `kiln generate`, `kiln chat`, `kiln bench`.

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use crate::device::{Device, DeviceArgs};
use clap::Args;
use kiln::DType;
use kiln::generate::{ChatMessage, FinishReason, GenerateParams, TextModel};
use kiln::model::llama::LlamaOptions;
use kiln::sample::SamplingParams;

type Res = Result<ExitCode, Box<dyn std::error::Error>>;

/// The embedded default model, fetched by `tools/fetch_model.sh`.
pub const DEFAULT_MODEL: &str = "models/SmolLM2-135M-Instruct.Q4_1.gguf";

#[derive(Args, Clone, Debug)]
pub struct ModelArgs {
    /// A GGUF file or a Hugging Face folder (config.json + safetensors +
    /// tokenizer.json). Default: $KILN_MODEL, else the embedded SmolLM2-135M-Instruct.
    #[arg(long)]
    model: Option<PathBuf>,
    #[command(flatten)]
    device: DeviceArgs,
    /// Longest sequence (prompt + reply) a session holds.
    #[arg(long, default_value_t = 2048)]
    ctx: usize,
    /// Tokens per prefill run (default: 16 on CPU adapters, where padding
    /// costs as much as real tokens; 32 on the CPU backend; 128 on GPUs).
    #[arg(long)]
    prefill_chunk: Option<usize>,
    /// Store the KV cache as f16 (half the memory; f32 is exact).
    #[arg(long)]
    kv_f16: bool,
    /// Use the fused graph (RMSNorm folded into one Q/K/V matmul whose rows
    /// RoPE and the cache writes read in place; gate+up+SwiGLU in one): 10
    /// dispatches per layer instead of 16. The default on GPUs without LoRA
    /// slots (measured faster there, slower on CPU adapters; docs/bench).
    #[arg(long, conflicts_with = "plain")]
    fused: bool,
    /// Use the plain graph (16 dispatches per layer) even on a GPU.
    #[arg(long)]
    plain: bool,
    /// Quantize a safetensors model's matrices on load (q8_0, q4_0, q4_1, q5_0, q5_1, q2_k …
    /// q6_k, iq4_nl, iq4_xs, f16).
    #[arg(long)]
    quantize: Option<DType>,
    /// A LoRA adapter — a PEFT folder or a llama.cpp LoRA .gguf — optionally
    /// with a scale: PATH or PATH:0.5 (repeatable: several adapters apply at
    /// once; the base stays as stored).
    #[arg(long)]
    lora: Vec<String>,
    /// Merge the --lora adapters into the weights they target, stored as
    /// f32 or f16 (faster per token; unmerged by default).
    #[arg(long)]
    merge: Option<DType>,
    /// Unmerged adapters as a separate GEMM per projection instead of in the
    /// base GEMV/GEMM's epilogue (to measure the fused epilogue).
    #[arg(long)]
    lora_unfused: bool,
}

/// `--lora DIR[:SCALE]` values — PEFT folders or llama.cpp LoRA `.gguf`
/// files — and their scales. `model` gives a `.gguf` adapter its layout.
fn adapters(
    specs: &[String],
    model: &std::path::Path,
) -> Result<Vec<(kiln::train::lora::Adapter, f32)>, Box<dyn std::error::Error>> {
    let mut config = None;
    let mut out = Vec::new();
    for s in specs {
        let (path, scale) = match s.rsplit_once(':') {
            Some((d, sc)) if sc.parse::<f32>().is_ok() => (d, sc.parse::<f32>()?),
            _ => (s.as_str(), 1.0),
        };
        let path = std::path::Path::new(path);
        let a = if path.extension().is_some_and(|e| e == "gguf") {
            if config.is_none() {
                config = Some(if model.is_dir() {
                    kiln::loader::safetensors::HfFolder::open(model, None)?.llama_config()?
                } else {
                    kiln::model::LlamaConfig::from_gguf(
                        &kiln::loader::gguf::GgufFile::open(model)?.0,
                    )?
                });
            }
            let c = config.as_ref().ok_or("no model config")?;
            kiln::train::lora_gguf::open(path, c)
        } else {
            kiln::train::lora::Adapter::load_dir(path)
        }
        .map_err(|e| format!("--lora {}: {e}", path.display()))?;
        out.push((a, scale));
    }
    Ok(out)
}

#[derive(Args, Clone, Debug)]
pub struct SampleArgs {
    /// Maximum tokens to generate.
    #[arg(long, default_value_t = 256)]
    max_tokens: usize,
    /// 0 = greedy.
    #[arg(long, default_value_t = 0.0)]
    temperature: f32,
    #[arg(long, default_value_t = 0)]
    top_k: usize,
    #[arg(long, default_value_t = 1.0)]
    top_p: f32,
    #[arg(long, default_value_t = 0.0)]
    min_p: f32,
    #[arg(long, default_value_t = 1.0)]
    repeat_penalty: f32,
    #[arg(long, default_value_t = 0.0)]
    frequency_penalty: f32,
    #[arg(long, default_value_t = 0.0)]
    presence_penalty: f32,
    /// Recent tokens the penalties look at.
    #[arg(long, default_value_t = 64)]
    repeat_last_n: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Stop when this text appears (repeatable).
    #[arg(long)]
    stop: Vec<String>,
    /// Keep generating past end-of-sequence tokens.
    #[arg(long)]
    ignore_eos: bool,
    /// When the context window fills, drop the older half of the
    /// conversation (keeping the start of the prompt) and go on, instead of
    /// stopping.
    #[arg(long)]
    context_shift: bool,
}

#[derive(Args, Clone, Debug)]
pub struct GenerateArgs {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    sample: SampleArgs,
    /// The prompt (a user message, unless --raw).
    #[arg(long)]
    prompt: String,
    /// Feed the prompt as raw text instead of a chat message.
    #[arg(long)]
    raw: bool,
    /// A system message for the chat template.
    #[arg(long)]
    system: Option<String>,
}

#[derive(Args, Clone, Debug)]
pub struct ChatArgs {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    sample: SampleArgs,
    #[arg(long)]
    system: Option<String>,
}

#[derive(Args, Clone, Debug)]
pub struct EvalQaArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// JSONL: {"messages": [...], "answer": "..."} per line; a reply is
    /// correct when it contains the answer (case-insensitive).
    #[arg(long)]
    data: PathBuf,
    /// Tokens generated per question (greedy).
    #[arg(long, default_value_t = 48)]
    max_tokens: usize,
    /// Print every question, reply and verdict.
    #[arg(long)]
    verbose: bool,
}

#[derive(Args, Clone, Debug)]
pub struct BenchArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Prompt tokens to prefill.
    #[arg(long, default_value_t = 128)]
    prefill: usize,
    /// Tokens to decode (greedy, EOS ignored).
    #[arg(long, default_value_t = 128)]
    decode: usize,
    /// Repetitions; the best run is reported.
    #[arg(long, default_value_t = 3)]
    reps: usize,
    /// Also time every kernel of one decode and one prefill step.
    #[arg(long)]
    profile: bool,
}

impl SampleArgs {
    fn params(&self) -> GenerateParams {
        GenerateParams {
            max_tokens: self.max_tokens,
            stop: self.stop.clone(),
            ignore_eos: self.ignore_eos,
            context_shift: self.context_shift,
            sampling: SamplingParams {
                temperature: self.temperature,
                top_k: self.top_k,
                top_p: self.top_p,
                min_p: self.min_p,
                repetition_penalty: self.repeat_penalty,
                frequency_penalty: self.frequency_penalty,
                presence_penalty: self.presence_penalty,
                penalty_last_n: self.repeat_last_n,
                seed: self.seed,
            },
        }
    }
}

fn load(a: &ModelArgs) -> Result<(TextModel, Device), Box<dyn std::error::Error>> {
    let path = a
        .model
        .clone()
        .or_else(|| std::env::var_os("KILN_MODEL").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(DEFAULT_MODEL));
    if !path.exists() {
        return Err(format!(
            "{} not found (run tools/fetch_model.sh for the default model)",
            path.display()
        )
        .into());
    }
    let (device, why) = crate::device::pick(&a.device)?;
    let (chunk, fused) = match &device {
        Device::Gpu(b) => (
            LlamaOptions::prefill_chunk_for(&b.caps),
            LlamaOptions::fused_for(&b.caps, false),
        ),
        Device::Cpu(_) => (LlamaOptions::CPU_PREFILL_CHUNK, true),
    };
    let backend = device.backend();
    let opts = LlamaOptions {
        max_ctx: a.ctx,
        prefill_chunk: a.prefill_chunk.unwrap_or(chunk),
        kv_dtype: if a.kv_f16 { DType::F16 } else { DType::F32 },
        // Fused on GPUs and the CPU backend, plain on CPU adapters, unless
        // asked (set again below when LoRA slots are added: they need the
        // plain graph).
        fused: a.fused || (!a.plain && fused),
        debug_layers: false,
        lora: None,
    };
    let lora = adapters(&a.lora, &path)?;
    let mut opts = opts;
    let merge = match (a.merge, lora.is_empty()) {
        (Some(_), true) => return Err("--merge needs --lora".into()),
        (Some(d), false) => Some((lora.clone(), d)),
        (None, _) => None,
    };
    if !lora.is_empty() && merge.is_none() {
        let mut targets: Vec<_> = lora
            .iter()
            .flat_map(|(a, _)| a.config.targets.clone())
            .collect();
        targets.sort();
        targets.dedup();
        opts.lora = Some(kiln::model::llama::LoraSlots {
            fused: !a.lora_unfused,
            rank: lora.iter().map(|(a, _)| a.config.rank).sum(),
            targets,
        });
        // LoRA slots need the plain graph (an explicit --fused is refused).
        opts.fused = a.fused;
    }
    let t0 = Instant::now();
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(indicatif::ProgressStyle::with_template(
        "loading {msg} {bar:25} {percent:>3}% {binary_bytes}/{binary_total_bytes}",
    )?);
    bar.set_message(name.clone());
    let mut model = TextModel::open_with(
        &path,
        backend,
        &opts,
        a.quantize,
        merge.clone(),
        &mut |done, total| {
            bar.set_length(total);
            bar.set_position(done);
            true
        },
    )?;
    bar.finish_and_clear();
    model.pipelined = !device.is_cpu();
    if merge.is_some() {
        eprintln!("LoRA: {} adapter(s) merged into the weights", lora.len());
    } else if !lora.is_empty() {
        let refs: Vec<_> = lora.iter().map(|(a, s)| (a, *s)).collect();
        model.llm.set_adapters(&refs)?;
        eprintln!("LoRA: {} adapter(s) applied, unmerged", lora.len());
    }
    eprintln!(
        "loaded {name}: {} layers, {:.1} MB of weights, on {} ({why}) in {:.2} s",
        model.llm.model.config.n_layers,
        model.llm.model.weight_bytes() as f64 / 1e6,
        backend.name(),
        t0.elapsed().as_secs_f64()
    );
    Ok((model, device))
}

fn stream(text: &str) -> bool {
    print!("{text}");
    std::io::stdout().flush().is_ok()
}

fn report(g: &kiln::generate::Generation) {
    let dec = g.tokens.len().saturating_sub(1) as f64 / g.decode_secs.max(1e-9);
    eprintln!(
        "\n[{} prompt tokens ({} computed) in {:.2} s, {} tokens at {:.1} tok/s, finish: {:?}]",
        g.prompt_tokens,
        g.prefilled_tokens,
        g.prefill_secs,
        g.tokens.len(),
        dec,
        g.finish
    );
}

pub fn generate(a: GenerateArgs) -> Res {
    let (mut m, _) = load(&a.model)?;
    let params = a.sample.params();
    let g = if a.raw {
        let ids = m.encode(&a.prompt)?;
        m.generate_ids(&ids, &params, &mut stream)?
    } else {
        let mut msgs = Vec::new();
        if let Some(s) = &a.system {
            msgs.push(ChatMessage::new("system", s));
        }
        msgs.push(ChatMessage::new("user", &a.prompt));
        m.chat(&msgs, &params, &mut stream)?
    };
    println!();
    report(&g);
    Ok(ExitCode::SUCCESS)
}

/// Greedy answers to held-out questions: accuracy of a model (with or
/// without adapters) on facts it was or was not fine-tuned on.
pub fn eval_qa(a: EvalQaArgs) -> Res {
    let (mut m, _) = load(&a.model)?;
    let text =
        std::fs::read_to_string(&a.data).map_err(|e| format!("{}: {e}", a.data.display()))?;
    let params = GenerateParams {
        max_tokens: a.max_tokens,
        stop: Vec::new(),
        ignore_eos: false,
        context_shift: false,
        sampling: SamplingParams::default(),
    };
    let (mut right, mut total) = (0, 0);
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let v: serde_json::Value =
            serde_json::from_str(line).map_err(|e| format!("line {}: {e}", i + 1))?;
        let answer = v["answer"]
            .as_str()
            .ok_or(format!("line {}: no answer", i + 1))?;
        let msgs: Vec<ChatMessage> = v["messages"]
            .as_array()
            .ok_or(format!("line {}: no messages", i + 1))?
            .iter()
            .map(|m| {
                ChatMessage::new(
                    m["role"].as_str().unwrap_or("user"),
                    m["content"].as_str().unwrap_or(""),
                )
            })
            .collect();
        m.llm.reset();
        let mut reply = String::new();
        m.chat(&msgs, &params, &mut |t| {
            reply.push_str(t);
            true
        })?;
        let ok = reply.to_lowercase().contains(&answer.to_lowercase());
        right += ok as usize;
        total += 1;
        if a.verbose {
            let q = msgs.last().map(|m| m.content.as_str()).unwrap_or("");
            eprintln!(
                "[{}] {q}\n    → {}\n    (answer: {answer})",
                if ok { "ok" } else { "--" },
                reply.trim()
            );
        }
    }
    println!(
        "held-out accuracy: {right}/{total} = {:.1}%",
        100.0 * right as f64 / total.max(1) as f64
    );
    Ok(ExitCode::SUCCESS)
}

pub fn chat(a: ChatArgs) -> Res {
    let (mut m, _) = load(&a.model)?;
    let params = a.sample.params();
    let mut msgs = Vec::new();
    if let Some(s) = &a.system {
        msgs.push(ChatMessage::new("system", s));
    }
    eprintln!(
        "chat with the model: one message per line; /reset starts over, /quit or Ctrl-D ends."
    );
    let stdin = std::io::stdin();
    loop {
        eprint!("> ");
        let mut line = String::new();
        if stdin.lock().read_line(&mut line)? == 0 {
            break;
        }
        let line = line.trim();
        match line {
            "" => continue,
            "/quit" | "/exit" => break,
            "/reset" => {
                msgs.retain(|m: &ChatMessage| m.role == "system");
                eprintln!("(conversation cleared)");
                continue;
            }
            _ => {}
        }
        msgs.push(ChatMessage::new("user", line));
        let g = m.chat(&msgs, &params, &mut stream)?;
        println!();
        report(&g);
        if g.finish == FinishReason::ContextFull {
            eprintln!("(context full: /reset to start over)");
        }
        msgs.push(ChatMessage::new("assistant", &g.text));
    }
    Ok(ExitCode::SUCCESS)
}

pub fn bench(a: BenchArgs) -> Res {
    let (mut m, backend) = load(&a.model)?;
    let weights = m.llm.model.weight_bytes() as f64;
    // A deterministic prompt of the requested length from ordinary text.
    let text = "The history of the clock is a story of craftsmen and astronomers. "
        .repeat(a.prefill / 8 + 8);
    let mut prompt = m.encode(&text)?;
    prompt.truncate(a.prefill.max(2));
    let params = GenerateParams {
        max_tokens: a.decode,
        ignore_eos: true,
        ..Default::default()
    };
    // The greedy path the CLI uses on this device, and (on GPUs, where
    // that path is the pipelined one) the step-at-a-time path beside it,
    // alternating run by run so drift in clocks hits both alike.
    let default_pipelined = m.pipelined;
    let modes: &[bool] = if default_pipelined {
        &[true, false]
    } else {
        &[false]
    };
    let (mut best_pre, mut best_dec, mut best_step) = (0f64, 0f64, 0f64);
    for rep in 0..a.reps.max(1) {
        for &pipelined in modes {
            m.pipelined = pipelined;
            m.llm.reset();
            let g = m.generate_ids(&prompt, &params, &mut |_| true)?;
            let pre = prompt.len() as f64 / g.prefill_secs;
            let dec = (g.tokens.len() - 1) as f64 / g.decode_secs;
            let how = if pipelined {
                "pipelined"
            } else {
                "step by step"
            };
            eprintln!("run {rep} ({how}): prefill {pre:.1} tok/s, decode {dec:.1} tok/s");
            best_pre = best_pre.max(pre);
            if pipelined == default_pipelined {
                best_dec = best_dec.max(dec);
            } else {
                best_step = best_step.max(dec);
            }
        }
    }
    m.pipelined = default_pipelined;
    println!(
        "model: {} ({:.1} MB of weights)",
        m.llm.model.config.arch,
        weights / 1e6
    );
    println!("device: {}", backend.backend().name());
    println!(
        "prefill: {} tokens, {best_pre:.1} tok/s (chunk {})",
        prompt.len(),
        m.llm.model.prefill.tokens
    );
    println!(
        "decode: {} tokens, {best_dec:.1} tok/s, {:.2} ms/token, {:.1} GB/s of weights ({})",
        a.decode,
        1e3 / best_dec,
        weights * best_dec / 1e9,
        if default_pipelined {
            "pipelined greedy: the device feeds each token back"
        } else {
            "step by step"
        }
    );
    if default_pipelined {
        println!(
            "decode, step by step (read each token, then submit the next): {best_step:.1} tok/s, {:.2} ms/token",
            1e3 / best_step
        );
    }
    println!(
        "device memory: {:.1} MB",
        m.llm.exe.device_bytes() as f64 / 1e6
    );
    // Decode steps submitted back to back with no readback in between: the
    // rate if the host never waited (what GPU-side token feedback would give).
    m.llm.reset();
    m.llm.feed(&prompt)?;
    let p0 = prompt.len() as u32;
    let steps = a.decode.min(m.llm.max_ctx() - prompt.len()) as u32;
    let io = m.llm.model.decode.clone();
    let t0 = Instant::now();
    let mut host = 0f64;
    for i in 0..steps {
        let t = Instant::now();
        m.llm.exe.run_program(io.program, &[p0 + i])?;
        host += t.elapsed().as_secs_f64();
    }
    m.llm.exe.read(io.next)?;
    let dt = t0.elapsed().as_secs_f64() / steps.max(1) as f64;
    println!(
        "decode, back to back (steps submitted with no readback at all): {:.1} tok/s, {:.2} ms/token",
        1.0 / dt,
        dt * 1e3
    );
    println!(
        "decode step: {} dispatches; host encode + submit {:.3} ms/step (of the back-to-back run)",
        m.llm.exe.dispatches(io.program),
        1e3 * host / steps.max(1) as f64
    );
    if a.profile {
        let pos = m.llm.tokens.len().min(m.llm.max_ctx() - 1) as u32;
        for (name, p) in [
            ("decode", m.llm.model.decode.program),
            ("prefill", m.llm.model.prefill.program),
        ] {
            let prof = m.llm.exe.profile(
                p,
                &[pos.min((m.llm.max_ctx() - m.llm.model.prefill.tokens) as u32)],
            )?;
            crate::device::print_profile(
                &format!("one {name} step (device time per kernel)"),
                &prof,
                usize::MAX,
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
