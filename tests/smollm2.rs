//! The real default model (SmolLM2-135M-Instruct, Q4_1 GGUF) against PyTorch:
//! `tests/fixtures/smollm2/reference.json` holds HF transformers' f32 greedy
//! continuations and last-position logits for three prompts
//! (`tools/hf_reference.py`). With f32 activations and an f32 KV cache,
//! Kiln must produce the same greedy tokens, and logits within the tolerance
//! stated below. The model is fetched by `tools/fetch_model.sh`.

mod common;

use kiln::llm::Llm;
use kiln::model::llama::LlamaOptions;
use serde_json::Value;

const MODEL: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../models/SmolLM2-135M-Instruct.Q4_1.gguf"
);
const REFERENCE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../tests/fixtures/smollm2/reference.json"
);

fn model_path() -> std::path::PathBuf {
    let p = std::path::PathBuf::from(MODEL);
    assert!(p.exists(), "{MODEL} is missing: run tools/fetch_model.sh");
    p
}

/// The reference records and the model on `gpu` with this KV-cache dtype.
fn setup(gpu: &dyn kiln::Backend, kv_dtype: kiln::DType) -> (Value, Llm) {
    setup_graph(gpu, kv_dtype, false)
}

fn setup_graph(gpu: &dyn kiln::Backend, kv_dtype: kiln::DType, fused: bool) -> (Value, Llm) {
    let reference = serde_json::from_str(&std::fs::read_to_string(REFERENCE).unwrap()).unwrap();
    let opts = LlamaOptions {
        max_ctx: 256,
        prefill_chunk: 32,
        kv_dtype,
        fused,
        debug_layers: false,
        lora: None,
    };
    let (llm, _) = Llm::open(&model_path(), gpu, &opts, &mut |_, _| true).unwrap();
    (reference, llm)
}

/// max |logit − PyTorch's| over the reference's top 20 (index, value) pairs;
/// NaN-aware, and a missing index or an empty list fails.
fn top20_diff(logits: &[f32], rec: &Value, label: &str) -> f64 {
    let pairs = rec["last_logits_top20"].as_array().map(|a| {
        a.iter()
            .map(|p| {
                (
                    p[0].as_u64().unwrap() as usize,
                    p[1].as_f64().unwrap() as f32,
                )
            })
            .collect::<Vec<_>>()
    });
    kiln::parity::sparse_diff(logits, pairs.unwrap_or_default())
        .unwrap_or_else(|e| panic!("{label}: top-20 logits: {e}"))
        .max_abs
}

#[test]
fn greedy_tokens_and_logits_match_pytorch() {
    let Some(gpu) = common::gpu() else { return };
    let (reference, mut llm) = setup(&gpu, kiln::DType::F32);
    exact(&reference, &mut llm);
}

/// The fast CPU backend with f32 activations, on the fused graph the CLI
/// uses there: the same greedy tokens as PyTorch.
#[test]
fn the_fast_cpu_backend_matches_pytorch_with_f32_activations() {
    use kiln::backend::cpu_fast::{Activations, CpuFastBackend, CpuOptions};
    let cpu = CpuFastBackend::new(CpuOptions {
        threads: 2,
        activations: Activations::F32,
    });
    let (reference, mut llm) = setup_graph(&cpu, kiln::DType::F32, true);
    exact(&reference, &mut llm);
}

/// 8-bit activations (the CPU backend's default, llama.cpp's scheme) drift
/// from PyTorch: reported (greedy tokens agreeing before the first
/// difference, worst top-20 logit difference) and bounded. Rounding every
/// matmul input to 8 bits per block of 32, through 30 layers, moved the
/// top-20 logits (magnitude 10–25) by 0.19–1.20 here on 2026-12-04, and
/// the chat prompt's first token flipped: PyTorch's top two logits are
/// 0.08 apart there. A broken kernel moves them by tens; 2.0 is the bound.
#[test]
fn the_fast_cpu_backend_8_bit_drift_is_reported() {
    use kiln::backend::cpu_fast::CpuFastBackend;
    let cpu = CpuFastBackend::default();
    let (reference, mut llm) = setup_graph(&cpu, kiln::DType::F32, true);
    drift(&reference, &mut llm, "8-bit activations", 2.0);
}

fn exact(reference: &Value, llm: &mut Llm) {
    for rec in reference["records"].as_array().unwrap() {
        let label = rec["label"].as_str().unwrap();
        let prompt = common::ids(&rec["prompt_ids"]);
        let want = common::ids(&rec["greedy_ids"]);
        llm.reset();
        llm.feed(&prompt).unwrap();
        // Logits of the last prompt position vs HF's top 20. HF and Kiln both
        // use f32 activations from the same dequantized weights; they differ
        // in summation order only (Kiln's GEMV reduces in a tree, PyTorch's
        // BLAS in blocks), which moves logits of magnitude ~20 by ~1e-4.
        let logits = llm.logits().unwrap();
        let worst = top20_diff(&logits, rec, label);
        assert!(
            worst < 2e-3,
            "{label}: top-20 logits differ from PyTorch by {worst}"
        );
        let mut got = Vec::new();
        for _ in 0..want.len() {
            let next = llm.greedy().unwrap();
            got.push(next);
            if got.len() < want.len() {
                llm.feed(&[next]).unwrap();
            }
        }
        if let Err(e) = kiln::parity::same_tokens(&got, &want) {
            panic!("{label}: greedy tokens differ from PyTorch: {e}");
        }
        // The pipelined path (the device feeds each token back to itself,
        // the host reads one step behind) gives the same tokens.
        llm.reset();
        llm.feed(&prompt).unwrap();
        let mut piped = Vec::new();
        llm.greedy_pipelined(want.len(), &mut |t| {
            piped.push(t);
            Ok(true)
        })
        .unwrap();
        if let Err(e) = kiln::parity::same_tokens(&piped, &want) {
            panic!("{label}: pipelined greedy tokens differ: {e}");
        }
        assert_eq!(llm.tokens.len(), prompt.len() + want.len() - 1);
        eprintln!(
            "{label}: {} prompt tokens, {} greedy tokens identical, max top-20 logit diff {worst:.2e}",
            prompt.len(),
            got.len()
        );
    }
}

/// The f16 KV cache is the faster path (half the cache traffic): its drift
/// from PyTorch is reported — greedy tokens agreeing before the first
/// difference, and the worst top-20 logit difference — and bounded loosely
/// (f16 keeps 11 significant bits of every cached K/V value).
#[test]
fn f16_kv_cache_drift_is_reported() {
    let Some(gpu) = common::gpu() else { return };
    let (reference, mut llm) = setup(&gpu, kiln::DType::F16);
    drift(&reference, &mut llm, "f16 KV", 0.1);
}

fn drift(reference: &Value, llm: &mut Llm, what: &str, bound: f64) {
    for rec in reference["records"].as_array().unwrap() {
        let label = rec["label"].as_str().unwrap();
        let want = common::ids(&rec["greedy_ids"]);
        llm.reset();
        llm.feed(&common::ids(&rec["prompt_ids"])).unwrap();
        let logits = llm.logits().unwrap();
        let worst = top20_diff(&logits, rec, label);
        assert!(!want.is_empty(), "{label}: the reference has no greedy ids");
        let mut agree = 0;
        for (i, w) in want.iter().enumerate() {
            let next = llm.greedy().unwrap();
            if next != *w {
                break;
            }
            agree = i + 1;
            llm.feed(&[next]).unwrap();
        }
        eprintln!(
            "{label} ({what}): {agree}/{} greedy tokens as PyTorch, max top-20 logit diff {worst:.2e}",
            want.len()
        );
        assert!(worst < bound, "{label}: {what}: logits drift {worst}");
    }
}
