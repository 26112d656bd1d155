//! Tiny random-weight Llama-family models against PyTorch
//! (`tests/fixtures/models/`, from `tools/gen_model_fixtures.py`):
//!
//! * `llama` (GQA 2:1, untied), `qwen2` (q/k/v biases, tied), `llama3`
//!   (Llama-3 RoPE scaling, GQA 4:1, tied), `qwen3` (QK-norm), `gemma3`
//!   (Gemma 3's block and sliding-window layers), each as an HF safetensors
//!   folder and as GGUF (llama.cpp conventions: permuted Q/K, `rope_freqs`,
//!   Gemma's norms + 1); `mistral` (sliding window) as safetensors.
//! * f32 (safetensors and GGUF F32): logits at every prompt position (decode
//!   path, one token per run) and at the end of a prefill chunk, and 16
//!   greedy steps, against HF. Tolerance |Δ| ≤ 1e-4·max|logit| + 1e-5: both
//!   sides compute in f32 from identical weights and differ only in
//!   summation order (measured below 1e-5 relative).
//! * F16/Q8_0/Q4_0 GGUF: against transformers running the same file
//!   (dequantized to f32), same tolerance, greedy tokens identical.
//! * Q8_0/Q4_0 GGUF and quantize-on-load (Q8_0, Q4_0, Q5_0, Q5_1, Q4_K): equal to Kiln's
//!   CPU reference on the same quantized weights, and their drift vs f32 is
//!   reported as a perplexity delta over the reference sequence.

mod common;

use std::path::{Path, PathBuf};

use kiln::DType;
use kiln::backend::Backend;
use kiln::backend::cpu::CpuBackend;
use kiln::llm::Llm;
use kiln::loader::WeightSource;
use kiln::loader::gguf::GgufFile;
use kiln::loader::safetensors::HfFolder;
use kiln::model::LlamaConfig;
use kiln::model::llama::LlamaOptions;
use serde_json::Value;

fn dir(name: &str) -> PathBuf {
    if name == "gemma3_linear" {
        return gemma3_linear_dir().clone();
    }
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/models")
        .join(name)
}

/// The factor `tools/gen_rope_linear_fixture.py` chose (8 unless a greedy
/// step was a near tie there).
fn gemma3_linear_factor() -> f32 {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/models/gemma3_linear/reference.json");
    let r: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    r["rope_linear_factor"].as_f64().unwrap() as f32
}

/// The `gemma3` fixture with linear RoPE scaling (factor 8) on its global
/// layer, as Gemma 3 4B and larger have it (`tools/gen_rope_linear_fixture.py`
/// keeps only its config and reference): a folder of gemma3's files with that
/// config, and `gemma3_linear.F32.gguf` = gemma3's F32 GGUF plus the keys
/// llama.cpp's converter writes for it, made once per test run.
fn gemma3_linear_dir() -> &'static PathBuf {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        use kiln::loader::gguf::MetaValue;
        use kiln::loader::gguf_write::{TensorHeader, header, write_data};
        use std::io::{Read, Seek, SeekFrom};
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/models");
        let (src, extra) = (fixtures.join("gemma3"), fixtures.join("gemma3_linear"));
        let out = std::env::temp_dir().join(format!("kiln-gemma3-linear-{}", std::process::id()));
        std::fs::create_dir_all(&out).unwrap();
        for f in [
            "model.safetensors",
            "tokenizer.json",
            "tokenizer_config.json",
            "generation_config.json",
        ] {
            std::fs::copy(src.join(f), out.join(f)).unwrap();
        }
        for f in ["config.json", "reference.json"] {
            std::fs::copy(extra.join(f), out.join(f)).unwrap();
        }
        let (g, mut file) = GgufFile::open(&src.join("gemma3.F32.gguf")).unwrap();
        let mut meta: Vec<(String, MetaValue)> = g.metadata.clone().into_iter().collect();
        meta.push((
            "gemma3.rope.scaling.type".into(),
            MetaValue::Str("linear".into()),
        ));
        let factor = MetaValue::F32(gemma3_linear_factor());
        meta.push(("gemma3.rope.scaling.factor".into(), factor));
        let infos: Vec<TensorHeader> = g
            .tensors
            .iter()
            .map(|t| TensorHeader {
                name: t.name.clone(),
                shape: t.shape.clone(),
                dtype: t.dtype,
            })
            .collect();
        let (head, align) = header(&meta, &infos).unwrap();
        let mut w = std::fs::File::create(out.join("gemma3_linear.F32.gguf")).unwrap();
        std::io::Write::write_all(&mut w, &head).unwrap();
        for (t, h) in g.tensors.iter().zip(&infos) {
            let mut data = vec![0u8; t.bytes as usize];
            file.seek(SeekFrom::Start(t.offset)).unwrap();
            file.read_exact(&mut data).unwrap();
            write_data(&mut w, h, &data, align).unwrap();
        }
        out
    })
}

fn reference_file(name: &str, file: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir(name).join(file)).unwrap()).unwrap()
}

fn reference(name: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir(name).join("reference.json")).unwrap())
        .unwrap()
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

fn opts_ctx(fused: bool, max_ctx: usize) -> LlamaOptions {
    LlamaOptions {
        max_ctx,
        prefill_chunk: 16,
        kv_dtype: DType::F32,
        fused,
        debug_layers: false,
        lora: None,
    }
}

enum Source {
    Hf(Option<DType>),
    Gguf(&'static str),
}

fn load(name: &str, src: &Source, backend: &dyn Backend) -> Llm {
    load_with(name, src, backend, true)
}

/// Loads with fused kernels or the plain one-op-per-step graph.
fn load_with(name: &str, src: &Source, backend: &dyn Backend, fused: bool) -> Llm {
    load_ctx(name, src, backend, fused, 64)
}

/// [`load_with`] for sessions of `max_ctx` tokens.
fn load_ctx(name: &str, src: &Source, backend: &dyn Backend, fused: bool, max_ctx: usize) -> Llm {
    match src {
        Source::Hf(q) => {
            let mut f = HfFolder::open(&dir(name), *q).unwrap();
            let config = f.llama_config().unwrap();
            Llm::load(
                &config,
                &mut f as &mut dyn WeightSource,
                backend,
                &opts_ctx(fused, max_ctx),
                &mut |_, _| true,
            )
            .unwrap()
        }
        Source::Gguf(ty) => {
            let path = dir(name).join(format!("{name}.{ty}.gguf"));
            let (g, mut file) = GgufFile::open(&path).unwrap();
            assert!(LlamaConfig::from_gguf(&g).is_ok());
            let o = opts_ctx(fused, max_ctx);
            Llm::from_gguf(&g, &mut file, backend, &o, &mut |_, _| true).unwrap()
        }
    }
}

/// Logits after each token of `seq`, fed one at a time (the decode path).
fn stepwise_logits(llm: &mut Llm, seq: &[u32]) -> Vec<Vec<f32>> {
    llm.reset();
    seq.iter()
        .map(|t| {
            llm.feed(&[*t]).unwrap();
            llm.logits().unwrap()
        })
        .collect()
}

/// Logits within `1e-4·max|want| + 1e-5` (NaN-aware; a length mismatch fails).
fn assert_close(got: &[f32], want: &[f32], what: &str) -> f64 {
    let d = kiln::parity::vec_diff(got, want).unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        d.within(1e-4, 1e-5),
        "{what}: logits differ by {} at {} (max |logit| {})",
        d.max_abs,
        d.worst,
        d.max_want
    );
    d.rel()
}

/// Perplexity of `seq[1..]` given the logits after each prefix.
fn perplexity(logits: &[Vec<f32>], seq: &[u32]) -> f64 {
    let mut nll = 0.0;
    for (l, next) in logits.iter().zip(&seq[1..]) {
        // A NaN logit must make the perplexity NaN (f32::max would skip it).
        let m = l.iter().fold(
            f32::NEG_INFINITY,
            |m, v| if v.is_nan() || *v > m { *v } else { m },
        ) as f64;
        let lse = m + l.iter().map(|v| (*v as f64 - m).exp()).sum::<f64>().ln();
        nll += lse - l[*next as usize] as f64;
    }
    (nll / (seq.len() - 1) as f64).exp()
}

fn check_f32(name: &str, src: Source, gpu: &dyn Backend, fused: bool) {
    let r = match src {
        // HF's references for quantized files come from transformers'
        // own dequantization of that file: same weights, f32 math.
        Source::Gguf(ty) if ty != "F32" => reference_file(name, &format!("reference.{ty}.json")),
        _ => reference(name),
    };
    check_ref(name, src, gpu, fused, &r, 64);
}

/// Logits at every prompt position, the prefill path and the greedy steps
/// of reference `r`, with sessions of `max_ctx` tokens.
fn check_ref(name: &str, src: Source, gpu: &dyn Backend, fused: bool, r: &Value, max_ctx: usize) {
    let prompt = common::ids(&r["prompt_ids"]);
    let want_greedy = common::ids(&r["greedy_ids"]);
    let mut llm = load_ctx(name, &src, gpu, fused, max_ctx);
    // Every prompt position, decode path.
    let got = stepwise_logits(&mut llm, &prompt);
    let want_prompt = r["prompt_logits"].as_array().unwrap();
    assert_eq!(got.len(), want_prompt.len(), "{name}: prompt positions");
    let mut worst = 0f64;
    for (i, want) in want_prompt.iter().enumerate() {
        let rel = assert_close(&got[i], &floats(want), &format!("{name}: position {i}"));
        worst = worst.max(rel);
    }
    // Prefill path: one chunk, last position.
    llm.reset();
    llm.feed(&prompt).unwrap();
    let last = llm.logits().unwrap();
    let want_last = floats(&r["prompt_logits"].as_array().unwrap()[prompt.len() - 1]);
    assert_close(&last, &want_last, &format!("{name}: prefill"));
    // Greedy steps and their logits.
    let mut greedy = Vec::new();
    for (step, want) in r["greedy_logits"].as_array().unwrap().iter().enumerate() {
        let logits = llm.logits().unwrap();
        assert_close(
            &logits,
            &floats(want),
            &format!("{name}: greedy step {step}"),
        );
        let next = llm.greedy().unwrap();
        greedy.push(next);
        llm.feed(&[next]).unwrap();
    }
    if let Err(e) = kiln::parity::same_tokens(&greedy, &want_greedy) {
        panic!("{name}: greedy tokens differ from PyTorch: {e}");
    }
    let label = match src {
        Source::Gguf(ty) => format!("gguf {ty}"),
        Source::Hf(_) => "safetensors".to_string(),
    } + if fused { ", fused" } else { ", plain graph" };
    eprintln!(
        "{name} {label}: logits within {worst:.1e} relative of PyTorch, {} greedy tokens identical",
        greedy.len()
    );
}

#[test]
fn f32_models_match_pytorch() {
    let Some(gpu) = common::gpu() else { return };
    for name in ["llama", "qwen2", "llama3"] {
        // Fused kernels and the plain graph both match.
        check_f32(name, Source::Hf(None), &gpu, true);
        check_f32(name, Source::Gguf("F32"), &gpu, false);
        check_f32(name, Source::Gguf("Q8_0"), &gpu, true);
    }
}

/// Qwen3 (QK-norm), Gemma 3 (GeGLU, QK-norm, post-norms, scaled embeddings,
/// five sliding-window layers of 8 keys then a global one, local RoPE base)
/// and Mistral (a window of 8 on every layer): the 12-token prompt and 16
/// greedy steps run well past the window, so a layer that ignored it, or used
/// the wrong base, would fail the same tolerance as above.
#[test]
fn qwen3_gemma3_and_mistral_match_pytorch() {
    let Some(gpu) = common::gpu() else { return };
    for name in ["qwen3", "gemma3"] {
        check_f32(name, Source::Hf(None), &gpu, true);
        check_f32(name, Source::Gguf("F32"), &gpu, false);
        check_f32(name, Source::Gguf("Q8_0"), &gpu, true);
    }
    // llama.cpp writes Mistral as `llama` without the window: safetensors only.
    check_f32("mistral", Source::Hf(None), &gpu, true);
    check_f32("mistral", Source::Hf(None), &gpu, false);
    check_f32("gemma3", Source::Hf(None), &CpuBackend, false);
}

/// Linear RoPE scaling on Gemma 3's global layer (its sliding layers keep
/// their unscaled local RoPE), from `config.json`'s per-layer-type
/// `rope_parameters` and from GGUF's `rope.scaling.type`/`factor`: logits at
/// every position and 8 greedy steps equal transformers' (the scaling moves
/// the prompt logits by up to 0.46, so a model that ignored it, or scaled
/// the sliding layers too, fails).
#[test]
fn gemma3_linear_rope_matches_pytorch() {
    let g = GgufFile::open(&dir("gemma3_linear").join("gemma3_linear.F32.gguf"))
        .unwrap()
        .0;
    let c = LlamaConfig::from_gguf(&g).unwrap();
    let factor = gemma3_linear_factor();
    assert_eq!(
        c.rope_scaling,
        Some(kiln::ops::rope::Llama3Scaling::linear(factor))
    );
    check_f32("gemma3_linear", Source::Hf(None), &CpuBackend, false);
    let Some(gpu) = common::gpu() else { return };
    check_f32("gemma3_linear", Source::Hf(None), &gpu, true);
    check_f32("gemma3_linear", Source::Gguf("F32"), &gpu, false);
}

/// Phi-3 (fused QKV and gate/up weights, LongRoPE, a window of 16 keys):
/// sessions of 64 tokens (the original context) use the short factors —
/// `reference.json`, 28 positions; sessions of 256 the long ones —
/// `reference.long.json`, a 70-token prompt and 8 greedy steps, which
/// transformers runs on the long factors throughout. Both scale attention by
/// LongRoPE's factor √(4/3). With the wrong factor set, no attention factor
/// or no window, logits move by 1.6–5.4 (the fixture's README).
#[test]
fn phi3_matches_pytorch_on_short_and_long_factors() {
    let Some(gpu) = common::gpu() else { return };
    check_f32("phi3", Source::Hf(None), &gpu, true);
    check_f32("phi3", Source::Gguf("F32"), &gpu, false);
    check_f32("phi3", Source::Gguf("Q8_0"), &gpu, true);
    let long = reference_file("phi3", "reference.long.json");
    check_ref("phi3", Source::Hf(None), &gpu, false, &long, 256);
    check_ref("phi3", Source::Gguf("F32"), &gpu, true, &long, 256);
    check_ref("phi3", Source::Gguf("F32"), &CpuBackend, false, &long, 256);
}

/// F16 and Q4_0 GGUFs against transformers' dequantization of the same files.
#[test]
fn gguf_f16_and_q4_0_match_pytorch_on_the_same_weights() {
    let Some(gpu) = common::gpu() else { return };
    check_f32("llama", Source::Gguf("F16"), &gpu, true);
    check_f32("llama", Source::Gguf("Q4_0"), &gpu, true);
}

#[test]
fn quantized_models_match_the_cpu_reference_and_report_drift() {
    let Some(gpu) = common::gpu() else { return };
    let name = "llama";
    let r = reference(name);
    let mut seq = common::ids(&r["prompt_ids"]);
    seq.extend(common::ids(&r["greedy_ids"]));
    let base = {
        let mut llm = load(name, &Source::Hf(None), &gpu);
        perplexity(&stepwise_logits(&mut llm, &seq), &seq)
    };
    let variants: [(&str, Source); 8] = [
        ("gguf F16", Source::Gguf("F16")),
        ("gguf Q8_0", Source::Gguf("Q8_0")),
        ("gguf Q4_0", Source::Gguf("Q4_0")),
        ("load q8_0", Source::Hf(Some(DType::Q8_0))),
        ("load q4_0", Source::Hf(Some(DType::Q4_0))),
        ("load q5_0", Source::Hf(Some(DType::Q5_0))),
        ("load q5_1", Source::Hf(Some(DType::Q5_1))),
        // Rows of 64/96 are not whole 256-blocks: Q4_K leaves them f32
        // (what quantize-on-load does for any matrix it cannot block).
        ("load q4_k (kept f32)", Source::Hf(Some(DType::Q4_K))),
    ];
    eprintln!(
        "{name}: perplexity of the reference sequence ({} tokens): f32 {base:.4}",
        seq.len()
    );
    for (label, src) in variants {
        let mut on_gpu = load(name, &src, &gpu);
        let got = stepwise_logits(&mut on_gpu, &seq);
        let mut on_cpu = load(name, &src, &CpuBackend);
        let want = stepwise_logits(&mut on_cpu, &seq);
        assert_eq!(got.len(), want.len(), "{label}: positions");
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert_close(
                g,
                w,
                &format!("{label}: position {i}: GPU vs CPU reference"),
            );
        }
        let ppl = perplexity(&got, &seq);
        assert!(ppl.is_finite());
        eprintln!(
            "{name} {label}: perplexity {ppl:.4} ({:+.2}% vs f32)",
            100.0 * (ppl / base - 1.0)
        );
        if label.contains("F16") {
            on_gpu.reset();
            on_gpu.feed(&common::ids(&r["prompt_ids"])).unwrap();
            let mut greedy = Vec::new();
            for _ in 0..common::ids(&r["greedy_ids"]).len() {
                let t = on_gpu.greedy().unwrap();
                greedy.push(t);
                on_gpu.feed(&[t]).unwrap();
            }
            if let Err(e) = kiln::parity::same_tokens(&greedy, &common::ids(&r["greedy_ids"])) {
                panic!("f16 greedy tokens differ from PyTorch: {e}");
            }
        }
    }
}

#[test]
fn corrupt_model_folders_are_typed_errors() {
    use kiln::loader::LoadError;
    let src = dir("llama");
    let tmp = std::env::temp_dir().join(format!("kiln-corrupt-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    for f in ["config.json", "tokenizer.json", "tokenizer_config.json"] {
        std::fs::copy(src.join(f), tmp.join(f)).unwrap();
    }
    let full = std::fs::read(src.join("model.safetensors")).unwrap();
    let header = 8 + u64::from_le_bytes(full[..8].try_into().unwrap()) as usize;
    // Cut inside the length, inside the header, and inside the data.
    for cut in [0, 5, 8, header / 2, header, header + 100, full.len() - 1] {
        std::fs::write(tmp.join("model.safetensors"), &full[..cut]).unwrap();
        match HfFolder::open(&tmp, None) {
            Err(LoadError::Truncated { .. })
            | Err(LoadError::Corrupt(_))
            | Err(LoadError::Io(_)) => {}
            Err(e) => panic!("cut {cut}: unexpected error {e}"),
            Ok(_) => panic!("cut {cut}: a truncated file opened"),
        }
    }
    // Garbage in the header JSON.
    let mut bad = full.clone();
    bad[10] = b'#';
    std::fs::write(tmp.join("model.safetensors"), &bad).unwrap();
    assert!(matches!(
        HfFolder::open(&tmp, None),
        Err(LoadError::Corrupt(_))
    ));
    // An architecture Kiln does not run.
    std::fs::write(tmp.join("model.safetensors"), &full).unwrap();
    let cfg = std::fs::read_to_string(src.join("config.json")).unwrap();
    std::fs::write(
        tmp.join("config.json"),
        cfg.replace("\"llama\"", "\"gpt_neox\""),
    )
    .unwrap();
    let f = HfFolder::open(&tmp, None).unwrap();
    assert!(
        matches!(f.llama_config(), Err(LoadError::UnsupportedArchitecture(a)) if a == "gpt_neox")
    );
    std::fs::remove_dir_all(&tmp).unwrap();
}

/// LoRA training builds the Llama/Mistral/Qwen2 block only: for Qwen3,
/// Gemma 3 and Phi-3 it is a typed error naming what the block lacks, not a
/// graph that silently skips QK-norm or the post-norms.
#[test]
fn lora_training_refuses_blocks_it_does_not_build() {
    use kiln::loader::LoadError;
    use kiln::train::graph::{TrainShape, build};
    use kiln::train::lora::LoraConfig;
    let shape = TrainShape {
        batch: 1,
        seq: 32,
        head_rows: 32,
        max_grad_norm: 1.0,
        recompute: false,
    };
    for (name, needs) in [
        ("qwen3", "QK-norm"),
        ("gemma3", "post-norms"),
        ("phi3", "LongRoPE"),
    ] {
        let path = dir(name).join(format!("{name}.F32.gguf"));
        let (g, _) = GgufFile::open(&path).unwrap();
        let c = LlamaConfig::from_gguf(&g).unwrap();
        let lookup = |n: &str| -> Result<(Vec<usize>, DType), LoadError> {
            let t = g.tensor(n)?;
            Ok((t.shape.clone(), t.dtype))
        };
        match build(&c, &LoraConfig::default(), &shape, &lookup) {
            Err(LoadError::Train(m)) => assert!(m.contains(needs), "{name}: {m}"),
            Err(e) => panic!("{name}: unexpected error {e}"),
            Ok(_) => panic!("{name}: a training graph was built"),
        }
    }
}
