//! A real Gemma 3 file (Gemma 3 270M, llama.cpp's Q4_K_M GGUF: Q4_K, Q5_0,
//! Q6_K and Q8_0 weights, a 262,144-token SentencePiece vocabulary, five
//! sliding-window layers per global one) against PyTorch:
//! `tests/fixtures/gemma3_270m/reference.json` (`tools/gemma3_reference.py`)
//! holds transformers' f32 run of the same file (its own dequantization) —
//! 24 greedy tokens and the top-5 logits at every prompt position for four
//! prompts — and token ids from sentencepiece with the model rebuilt from the
//! file's vocabulary (transformers' GGUF tokenizer conversion splits words
//! that llama.cpp and sentencepiece keep whole; it is recorded beside them,
//! not used). The model is fetched by `tools/fetch_gemma.sh`.

mod common;

use kiln::backend::cpu_fast::{Activations, CpuFastBackend, CpuOptions};
use kiln::generate::{ChatMessage, ChatTemplate};
use kiln::llm::Llm;
use kiln::model::llama::LlamaOptions;
use kiln::tokenizer::Tokenizer;
use serde_json::Value;

const MODEL: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../models/gemma-3-270m-q4_k_m.gguf"
);
const REFERENCE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../tests/fixtures/gemma3_270m/reference.json"
);

fn model_path() -> std::path::PathBuf {
    let p = std::path::PathBuf::from(MODEL);
    assert!(p.exists(), "{MODEL} is missing: run tools/fetch_gemma.sh");
    p
}

fn reference() -> Value {
    serde_json::from_str(&std::fs::read_to_string(REFERENCE).unwrap()).unwrap()
}

fn tokenizer() -> Tokenizer {
    let (g, _) = kiln::loader::gguf::GgufFile::open(&model_path()).unwrap();
    Tokenizer::from_spec(&g.tokenizer_spec().unwrap()).unwrap()
}

#[test]
fn tokenizer_and_chat_turns_match_the_reference() {
    let r = reference();
    let tok = tokenizer();
    let cases = r["tokenizer_cases"].as_array().unwrap();
    assert!(cases.len() >= 10);
    for c in cases {
        let text = c["text"].as_str().unwrap();
        let got = tok.encode(text, false).unwrap();
        assert_eq!(got, common::ids(&c["ids"]), "ids of {text:?}");
        assert_eq!(
            tok.decode(&got, false).unwrap(),
            text,
            "round trip of {text:?}"
        );
    }
    for p in r["prompts"].as_array().unwrap() {
        let text = p["prompt_text"].as_str().unwrap();
        let special = p["add_special_tokens"].as_bool().unwrap();
        let got = tok.encode(text, special).unwrap();
        assert_eq!(got, common::ids(&p["prompt_ids"]), "ids of {text:?}");
    }
    // The file ships no chat template: Kiln falls back to Gemma's turns
    // (not ChatML), which must give exactly the reference's chat prompt.
    let t = ChatTemplate::for_tokenizer(None, &tok).unwrap();
    let p = &r["prompts"][0];
    assert_eq!(p["name"], "chat_capital");
    let msgs = [ChatMessage::new("user", "What is the capital of France?")];
    let text = t.render(&msgs, true).unwrap();
    assert_eq!(text, p["prompt_text"].as_str().unwrap());
    let sys = [
        ChatMessage::new("system", "Be brief."),
        ChatMessage::new("user", "Hi"),
        ChatMessage::new("assistant", "Hello!"),
        ChatMessage::new("user", "Bye"),
    ];
    assert_eq!(
        t.render(&sys, true).unwrap(),
        "<bos><start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\nHello!<end_of_turn>\n<start_of_turn>user\nBye<end_of_turn>\n<start_of_turn>model\n"
    );
}

/// Feeds each prompt, checks the last position's top-5 logits against
/// PyTorch's and `steps` greedy tokens. Both sides compute in f32 from the
/// same dequantized weights and differ in summation order only (logits of
/// magnitude ~20 move by ~1e-4); the smallest top-1/top-2 margin among the
/// checked steps is 0.008, far above that.
fn check(llm: &mut Llm, r: &Value, prompts: &[&str], steps: usize, label: &str) {
    for p in r["prompts"].as_array().unwrap() {
        let name = p["name"].as_str().unwrap();
        if !prompts.contains(&name) {
            continue;
        }
        let prompt = common::ids(&p["prompt_ids"]);
        let want = &common::ids(&p["greedy_ids"])[..steps];
        llm.reset();
        llm.feed(&prompt).unwrap();
        let logits = llm.logits().unwrap();
        let last = &p["prompt_top5"].as_array().unwrap()[prompt.len() - 1];
        let pairs = last.as_array().unwrap().iter().map(|x| {
            (
                x[0].as_u64().unwrap() as usize,
                x[1].as_f64().unwrap() as f32,
            )
        });
        let d = kiln::parity::sparse_diff(&logits, pairs)
            .unwrap_or_else(|e| panic!("{label} {name}: top-5 logits: {e}"));
        assert!(
            d.max_abs < 2e-3,
            "{label} {name}: top-5 logits differ from PyTorch by {}",
            d.max_abs
        );
        let mut got = Vec::new();
        for _ in 0..steps {
            let next = llm.greedy().unwrap();
            got.push(next);
            llm.feed(&[next]).unwrap();
        }
        if let Err(e) = kiln::parity::same_tokens(&got, want) {
            panic!("{label} {name}: greedy tokens differ from PyTorch: {e}");
        }
        eprintln!(
            "{label} {name}: top-5 logits within {:.1e}, {steps} greedy tokens identical",
            d.max_abs
        );
    }
}

fn opts(fused: bool) -> LlamaOptions {
    LlamaOptions {
        max_ctx: 128,
        prefill_chunk: 32,
        fused,
        ..LlamaOptions::default()
    }
}

#[test]
fn greedy_tokens_match_pytorch_on_the_fast_cpu_backend() {
    let cpu = CpuFastBackend::new(CpuOptions {
        threads: 2,
        activations: Activations::F32,
    });
    let r = reference();
    let (mut llm, _) = Llm::open(&model_path(), &cpu, &opts(false), &mut |_, _| true).unwrap();
    let all = ["chat_capital", "chat_haiku", "plain_fox", "unicode_mix"];
    check(&mut llm, &r, &all, 24, "cpu-fast");
}

#[test]
fn greedy_tokens_match_pytorch_on_wgpu() {
    let Some(gpu) = common::gpu() else { return };
    let r = reference();
    for fused in [false, true] {
        let (mut llm, _) = Llm::open(&model_path(), &gpu, &opts(fused), &mut |_, _| true).unwrap();
        let label = if fused { "wgpu fused" } else { "wgpu plain" };
        check(&mut llm, &r, &["chat_capital", "plain_fox"], 8, label);
    }
}
