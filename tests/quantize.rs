//! `kiln quantize` against llama.cpp's `llama-quantize` (commit 0c1e570):
//! `tests/fixtures/quantize/*.json` (`tools/quantize_reference.py`) record,
//! for every file type, how many tensors of each type llama-quantize wrote,
//! and FNV-1a digests of its (tensor, type) list and of every tensor's bytes,
//! in its tensor order. Kiln's file must give the same three: the same
//! mixture, fallbacks and layer counting, and byte-identical quantized data
//! (Kiln's quantizers equal ggml's reference ones).
//!
//! * The tiny `llama` fixture (F32; rows of 64 and 96, so every K-quant falls
//!   back): all 18 types.
//! * SmolLM2-135M Q4_1 re-quantized (`--allow-requantize`): 576-wide rows
//!   fall back, 1536-wide `ffn_down` rows take the K-quants, 30 layers
//!   exercise the `_M` layer choices. In CI a subset of types (each file takes
//!   seconds); all 17 agreed on 2026-12-06 (`KILN_QUANTIZE_ALL=1`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use kiln::loader::LoadError;
use kiln::loader::gguf::GgufFile;
use kiln::quant::file::quantize_gguf;
use kiln::quant::recipe::FileType;
use serde_json::Value;

mod common;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn fnv(h: &mut u64, bytes: &[u8]) {
    for b in bytes {
        *h = (*h ^ *b as u64).wrapping_mul(0x100000001b3);
    }
}

/// (type counts, digest of "name type\n" lines, digest of the data).
fn digests(path: &Path) -> (BTreeMap<String, u64>, String, String) {
    let (g, mut f) = GgufFile::open(path).unwrap();
    let (mut names, mut data) = (0xcbf29ce484222325u64, 0xcbf29ce484222325u64);
    let mut counts = BTreeMap::new();
    for t in &g.tensors {
        let ty = t.dtype.to_string().to_lowercase();
        *counts.entry(ty.clone()).or_insert(0) += 1;
        fnv(&mut names, format!("{} {ty}\n", t.name).as_bytes());
        fnv(&mut data, &g.read_tensor(&mut f, t).unwrap().data);
    }
    (counts, format!("{names:016x}"), format!("{data:016x}"))
}

fn check(input: &Path, reference: &str, types: Option<&[&str]>) {
    let r: Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("tests/fixtures/quantize").join(reference)).unwrap(),
    )
    .unwrap();
    let dir =
        std::env::temp_dir().join(format!("kiln-quantize-{}-{reference}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (name, want) in r["files"].as_object().unwrap() {
        if types.is_some_and(|t| !t.contains(&name.as_str())) {
            continue;
        }
        let ft = FileType::parse(name).unwrap();
        let out = dir.join(format!("{name}.gguf"));
        quantize_gguf(input, &out, ft, true, &mut |_, _| true).unwrap();
        let (counts, names, data) = digests(&out);
        let want_counts: BTreeMap<String, u64> = want["types"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_u64().unwrap()))
            .collect();
        assert_eq!(counts, want_counts, "{reference} {name}: tensor types");
        assert_eq!(
            names, want["names_types_fnv"],
            "{reference} {name}: which tensor got which type"
        );
        assert_eq!(data, want["data_fnv"], "{reference} {name}: tensor bytes");
        let (g, _) = GgufFile::open(&out).unwrap();
        assert_eq!(
            g.get_u32("general.file_type").unwrap() as u64,
            want["file_type"]
        );
        std::fs::remove_file(&out).unwrap();
        eprintln!("{reference} {name}: {counts:?}, identical to llama-quantize's");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn every_type_matches_llama_quantize_on_the_tiny_model() {
    let input = root().join("tests/fixtures/models/llama/llama.F32.gguf");
    check(&input, "llama_f32.json", None);
}

#[test]
fn smollm2_mixtures_match_llama_quantize() {
    let input = root().join("models/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(
        input.exists(),
        "{} is missing: run tools/fetch_model.sh",
        input.display()
    );
    let all = std::env::var("KILN_QUANTIZE_ALL").is_ok_and(|v| v == "1");
    let subset: &[&str] = &["q4_k_m", "q3_k_m", "iq4_xs", "q8_0"];
    check(
        &input,
        "smollm2.json",
        if all { None } else { Some(subset) },
    );
}

/// Kiln's own Q8_0 file of the tiny model runs and gives PyTorch's greedy
/// tokens on those weights (`reference.Q8_0.json`, transformers'
/// dequantization of the converter's Q8_0 file, which is the same bytes).
#[test]
fn a_quantized_file_loads_and_generates_the_reference_tokens() {
    let input = root().join("tests/fixtures/models/llama/llama.F32.gguf");
    let out = std::env::temp_dir().join(format!("kiln-q8-{}.gguf", std::process::id()));
    quantize_gguf(&input, &out, FileType::Q8_0, false, &mut |_, _| true).unwrap();
    let r: Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("tests/fixtures/models/llama/reference.Q8_0.json"))
            .unwrap(),
    )
    .unwrap();
    let (got, want) = common::greedy_vs_reference(&out, &r);
    std::fs::remove_file(&out).unwrap();
    if let Err(e) = kiln::parity::same_tokens(&got, &want) {
        panic!("Kiln's Q8_0 file: {e}");
    }
}

/// Re-quantizing needs the flag; a cancel leaves neither the output nor its
/// `.part` behind; the input is never touched.
#[test]
fn refusals_and_cancels_leave_nothing_behind() {
    let input = root().join("tests/fixtures/models/llama/llama.Q8_0.gguf");
    let before = std::fs::read(&input).unwrap();
    let out = std::env::temp_dir().join(format!("kiln-q-refuse-{}.gguf", std::process::id()));
    let err = quantize_gguf(&input, &out, FileType::Q4KM, false, &mut |_, _| true).unwrap_err();
    assert!(
        matches!(err, LoadError::Corrupt(ref m) if m.contains("--allow-requantize")),
        "{err}"
    );
    let f32_in = root().join("tests/fixtures/models/llama/llama.F32.gguf");
    let err = quantize_gguf(&f32_in, &out, FileType::Q4_0, false, &mut |done, _| {
        done < 5
    })
    .unwrap_err();
    assert!(matches!(err, LoadError::Cancelled), "{err}");
    assert!(!out.exists());
    assert!(!out.with_extension("gguf.part").exists());
    assert_eq!(std::fs::read(&input).unwrap(), before);
}
