//! wasm-bindgen tests of the browser binding (`crate/src/web.rs`), run in
//! headless Chromium by tests/browser/run.sh:
//!   cargo test -p kiln --target wasm32-unknown-unknown --features web --test web
//! (runner: wasm-bindgen-test-runner with chromedriver). Native builds skip it.
#![cfg(all(target_arch = "wasm32", feature = "web"))]

use kiln::web::Engine;
use wasm_bindgen::JsValue;
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

const TINY: &[u8] = include_bytes!("fixtures/models/llama3/llama3.Q8_0.gguf");
const REFERENCE: &str = include_str!("fixtures/models/llama3/reference.Q8_0.json");

fn ids(v: &serde_json::Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

fn code(e: JsValue) -> String {
    js_sys::Reflect::get(&e, &"code".into())
        .ok()
        .and_then(|c| c.as_string())
        .unwrap_or_else(|| format!("no code: {e:?}"))
}

#[wasm_bindgen_test]
async fn streams_a_gguf_to_the_gpu_and_generates_the_reference_tokens() {
    let reference: serde_json::Value = serde_json::from_str(REFERENCE).unwrap();
    let (prompt, want) = (ids(&reference["prompt_ids"]), ids(&reference["greedy_ids"]));
    let engine = Engine::create(None).await.unwrap();
    let mut loader = engine
        .load_gguf(TINY.len() as f64, JsValue::UNDEFINED)
        .unwrap();
    // Odd piece sizes: header and tensors arrive split anywhere.
    for piece in TINY.chunks(777) {
        loader.push(piece).unwrap();
    }
    let model = loader.finish().unwrap();
    let opts = js_sys::JSON::parse(&format!(
        r#"{{"maxTokens": {}, "ignoreEos": true}}"#,
        want.len()
    ))
    .unwrap();
    let pieces = js_sys::Array::new();
    let sink = pieces.clone();
    let on_text = wasm_bindgen::closure::Closure::<dyn FnMut(JsValue) -> bool>::new(move |s| {
        sink.push(&s);
        true
    });
    let promise = model
        .generate(prompt, opts, on_text.as_ref().clone().into())
        .unwrap();
    let result = JsFuture::from(promise).await.unwrap();
    let tokens = js_sys::Reflect::get(&result, &"tokens".into()).unwrap();
    let got: Vec<u32> = serde_wasm_bindgen::from_value(tokens).unwrap();
    assert_eq!(got, want);
    assert!(pieces.length() > 0, "no text was streamed");
}

#[wasm_bindgen_test]
async fn bad_files_are_js_errors_with_codes() {
    let engine = Engine::create(None).await.unwrap();
    let mut l = engine.load_gguf(64.0, JsValue::UNDEFINED).unwrap();
    let e = l.push(&[b'P', b'K', 3, 4, 0, 0, 0, 0]).and_then(|_| {
        l.push(&[0; 56])?;
        l.finish().map(|_| ())
    });
    assert_eq!(code(e.unwrap_err()), "CORRUPT_FILE");
    // Truncated: the header promises more than arrives.
    let mut l = engine
        .load_gguf(TINY.len() as f64, JsValue::UNDEFINED)
        .unwrap();
    l.push(&TINY[..TINY.len() / 2]).unwrap();
    assert_eq!(code(l.finish().err().unwrap()), "CORRUPT_FILE");
    // Bad options are INVALID_INPUT, not a panic.
    let bad = js_sys::JSON::parse(r#"{"maxCtx": "lots"}"#).unwrap();
    assert_eq!(
        code(engine.load_gguf(10.0, bad).err().unwrap()),
        "INVALID_INPUT"
    );
    assert_eq!(
        code(Engine::create(Some("fastest".into())).await.err().unwrap()),
        "INVALID_INPUT"
    );
}

/// The fast CPU backend's integer tiles in this browser (wasm SIMD128)
/// agree with the portable ones on every weight format, and its f32 tiles
/// (convolutions, spatial attention, f32 products) with f64 sums.
#[wasm_bindgen_test]
fn cpu_tiles_match_the_portable_ones_in_the_browser() {
    kiln::backend::cpu_fast::tiles_self_test().unwrap();
    kiln::backend::cpu_fast::f32_tiles_self_test().unwrap();
    assert_eq!(kiln::backend::cpu_fast::simd_level(), "wasm-simd128");
}

/// The op-parity suite on the fast CPU backend in this browser (wasm
/// SIMD128, one thread): every registry case against the CPU reference
/// (also wasm), with f32 activations (the cases' tolerances) and 8-bit ones
/// (`kiln::parity::q8::run_case_cpu_q8`), as `tests/cpu_fast_parity.rs`
/// does natively. Fresh inputs each run (the seed is printed on failure).
#[wasm_bindgen_test]
fn every_op_matches_the_reference_on_the_cpu_backend_in_wasm() {
    use kiln::backend::cpu_fast::{Activations, CpuFastBackend, CpuOptions};
    let seed = js_sys::Date::now() as u64;
    let all = kiln::parity::cases::all_cases(seed, "").unwrap();
    assert!(all.len() > 200, "suite unexpectedly small: {}", all.len());
    for activations in [Activations::F32, Activations::Q8] {
        let b = CpuFastBackend::new(CpuOptions {
            threads: 1,
            activations,
        });
        let failures: Vec<String> = all
            .iter()
            .map(|case| match activations {
                Activations::F32 => kiln::parity::run_case(case, &b),
                Activations::Q8 => kiln::parity::q8::run_case_cpu_q8(case, &b),
            })
            .filter(|r| !r.pass)
            .map(|r| {
                format!(
                    "{} {} {}: max abs {:.3e} {:?}",
                    r.op, r.dtype, r.shape, r.max_abs, r.error
                )
            })
            .collect();
        assert!(
            failures.is_empty(),
            "seed {seed}, {activations:?}: {} of {} cases failed: {failures:#?}",
            failures.len(),
            all.len()
        );
    }
}
