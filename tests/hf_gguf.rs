//! `kiln::loader::hf_gguf`: a Hugging Face folder written as the F32 GGUF
//! llama.cpp's converter writes. Every fixture with a committed F32 GGUF
//! (`tools/gen_model_fixtures.py`, which checks those files against the real
//! `convert_hf_to_gguf.py`) must come out with the same tensors in the same
//! order, bit-identical (Llama-3's computed `rope_freqs` within 1e-6), and
//! the same metadata (all but `general.name` / `general.size_label`, which
//! llama.cpp derives from the folder name by heuristics). The tiny llama's
//! conversion then quantizes to llama-quantize's bytes
//! (`tests/quantize.rs`'s digests) and runs to PyTorch's greedy tokens.

use std::path::{Path, PathBuf};

use kiln::loader::LoadError;
use kiln::loader::gguf::GgufFile;
use kiln::loader::hf_gguf::convert_hf_folder;
use serde_json::Value;

mod common;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn fixture(name: &str) -> PathBuf {
    root().join("tests/fixtures/models").join(name)
}

/// A copy of the tiny llama fixture's folder in a temporary directory, with
/// `config.json` and `tokenizer.json` edited.
fn edited_llama(
    tag: &str,
    config: impl FnOnce(&mut Value),
    tokenizer: impl FnOnce(&mut Value),
) -> PathBuf {
    let src = fixture("llama");
    let dir = std::env::temp_dir().join(format!("kiln-hf-gguf-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for f in ["model.safetensors", "tokenizer_config.json"] {
        std::fs::copy(src.join(f), dir.join(f)).unwrap();
    }
    for (f, edit) in [
        (
            "config.json",
            Box::new(config) as Box<dyn FnOnce(&mut Value)>,
        ),
        ("tokenizer.json", Box::new(tokenizer)),
    ] {
        let mut v: Value =
            serde_json::from_str(&std::fs::read_to_string(src.join(f)).unwrap()).unwrap();
        edit(&mut v);
        std::fs::write(dir.join(f), v.to_string()).unwrap();
    }
    dir
}

fn convert(dir: &Path, tag: &str) -> PathBuf {
    let out = std::env::temp_dir().join(format!("kiln-hf-gguf-{}-{tag}.gguf", std::process::id()));
    let mut calls = 0;
    convert_hf_folder(dir, &out, &mut |_, _| {
        calls += 1;
        true
    })
    .unwrap_or_else(|e| panic!("{tag}: {e}"));
    assert!(calls > 0, "{tag}: no progress reported");
    out
}

fn compare(name: &str) {
    let dir = fixture(name);
    let mine = convert(&dir, name);
    let (a, mut fa) = GgufFile::open(&mine).unwrap();
    let (b, mut fb) = GgufFile::open(&dir.join(format!("{name}.F32.gguf"))).unwrap();
    let skip = ["general.name", "general.size_label"];
    for (k, v) in &b.metadata {
        if skip.contains(&k.as_str()) {
            continue;
        }
        assert_eq!(a.metadata.get(k), Some(v), "{name}: metadata {k}");
    }
    for k in a.metadata.keys() {
        assert!(
            b.metadata.contains_key(k),
            "{name}: metadata {k} is not in the converter's file"
        );
    }
    let names = |g: &GgufFile| g.tensors.iter().map(|t| t.name.clone()).collect::<Vec<_>>();
    assert_eq!(names(&a), names(&b), "{name}: tensor names and order");
    for (ta, tb) in a.tensors.iter().zip(&b.tensors) {
        assert_eq!(
            (&ta.shape, ta.dtype),
            (&tb.shape, tb.dtype),
            "{name}: {}",
            ta.name
        );
        let (x, y) = (
            a.read_tensor(&mut fa, ta).unwrap(),
            b.read_tensor(&mut fb, tb).unwrap(),
        );
        if ta.name == "rope_freqs.weight" {
            for (p, q) in x.to_f32().unwrap().iter().zip(y.to_f32().unwrap()) {
                assert!(
                    (p - q).abs() <= 1e-6 * q.abs(),
                    "{name}: rope_freqs {p} vs {q}"
                );
            }
        } else {
            assert!(x.data == y.data, "{name}: {} differs", ta.name);
        }
    }
    std::fs::remove_file(&mine).unwrap();
}

#[test]
fn llama_with_permuted_qk_equals_the_converter() {
    compare("llama");
}

#[test]
fn llama3_with_rope_freqs_equals_the_converter() {
    compare("llama3");
}

#[test]
fn qwen2_and_qwen3_equal_the_converter() {
    compare("qwen2");
    compare("qwen3");
}

#[test]
fn gemma3_with_shifted_norms_equals_the_converter() {
    compare("gemma3");
}

#[test]
fn phi3_with_fused_tensors_and_longrope_equals_the_converter() {
    compare("phi3");
}

/// A safetensors folder to a quantized GGUF in two steps, byte-identical to
/// llama-quantize's output from the converter's F32 file.
#[test]
fn a_converted_folder_quantizes_to_llama_quantize_bytes() {
    use kiln::quant::file::quantize_gguf;
    use kiln::quant::recipe::FileType;
    let f32 = convert(&fixture("llama"), "llama-q");
    let r: Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("tests/fixtures/quantize/llama_f32.json")).unwrap(),
    )
    .unwrap();
    let (g0, _) =
        GgufFile::open(&root().join("tests/fixtures/models/llama/llama.F32.gguf")).unwrap();
    for ty in ["q4_k_m", "q8_0", "q5_0"] {
        let out = f32.with_extension(format!("{ty}.gguf"));
        quantize_gguf(
            &f32,
            &out,
            FileType::parse(ty).unwrap(),
            false,
            &mut |_, _| true,
        )
        .unwrap();
        let (g, mut f) = GgufFile::open(&out).unwrap();
        let mut h = 0xcbf29ce484222325u64;
        for t in &g.tensors {
            for b in g.read_tensor(&mut f, t).unwrap().data {
                h = (h ^ b as u64).wrapping_mul(0x100000001b3);
            }
        }
        assert_eq!(
            format!("{h:016x}"),
            r["files"][ty]["data_fnv"],
            "{ty}: tensor bytes"
        );
        assert_eq!(g.tensors.len(), g0.tensors.len());
        std::fs::remove_file(&out).unwrap();
    }
    std::fs::remove_file(&f32).unwrap();
}

/// The tiny llama's conversion runs and generates PyTorch's greedy tokens
/// (the safetensors model's, `reference.json`).
#[test]
fn a_converted_folder_generates_the_reference_tokens() {
    let dir = fixture("llama");
    let out = convert(&dir, "llama-run");
    let r: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("reference.json")).unwrap())
            .unwrap();
    let (got, want) = common::greedy_vs_reference(&out, &r);
    assert_eq!(got, want);
    std::fs::remove_file(&out).unwrap();
}

/// Mistral converts as llama.cpp converts it (architecture `llama`, Q/K
/// permuted; its sliding window is not a llama key, as in llama.cpp).
#[test]
fn mistral_converts_as_llama() {
    let out = convert(&fixture("mistral"), "mistral");
    let (g, _) = GgufFile::open(&out).unwrap();
    assert_eq!(g.get_str("general.architecture").unwrap(), "llama");
    assert!(g.tensors.iter().any(|t| t.name == "output.weight"));
    std::fs::remove_file(&out).unwrap();
}

/// Tokenizers llama.cpp cannot name (a byte-level pre-tokenizer it does not
/// know, a SentencePiece vocabulary split by another, Unigram) are refused
/// with a typed error, and nothing is left at the output path.
#[test]
fn an_unknown_pre_tokenizer_is_a_typed_error() {
    let dir = edited_llama(
        "pre",
        |_| {},
        |t| {
            t["pre_tokenizer"] = serde_json::json!({"type": "Whitespace"});
        },
    );
    let out = dir.join("out.gguf");
    let e = convert_hf_folder(&dir, &out, &mut |_, _| true).unwrap_err();
    assert!(matches!(e, LoadError::Tokenizer(_)), "{e}");
    assert!(!out.exists() && !out.with_extension("gguf.part").exists());
    let mut tok: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("tokenizer.json")).unwrap())
            .unwrap();
    // A SentencePiece-style BPE (byte fallback) converts only without a
    // pre-tokenizer or with an unsplit Metaspace.
    tok["model"]["byte_fallback"] = Value::from(true);
    std::fs::write(dir.join("tokenizer.json"), tok.to_string()).unwrap();
    let e = convert_hf_folder(&dir, &out, &mut |_, _| true).unwrap_err();
    assert!(
        e.to_string()
            .contains("SentencePiece vocabulary with pre-tokenizer"),
        "{e}"
    );
    tok["model"]["type"] = Value::from("Unigram");
    std::fs::write(dir.join("tokenizer.json"), tok.to_string()).unwrap();
    let e = convert_hf_folder(&dir, &out, &mut |_, _| true).unwrap_err();
    assert!(e.to_string().contains("is not BPE"), "{e}");
    assert!(!out.exists() && !out.with_extension("gguf.part").exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Linear RoPE scaling travels as llama.cpp's `rope.scaling.type/factor`:
/// the converted file's logits equal the folder's own (Kiln runs both), and
/// differ from the unscaled model's (so the check can fail).
#[test]
fn linear_rope_scaling_is_kept() {
    use kiln::backend::cpu::CpuBackend;
    use kiln::llm::Llm;
    use kiln::loader::safetensors::HfFolder;
    let src = fixture("llama");
    let dir = edited_llama(
        "linear",
        |c| {
            c["rope_scaling"] = serde_json::json!({"rope_type": "linear", "factor": 4.0});
            c.as_object_mut().unwrap().remove("rope_parameters");
        },
        |_| {},
    );
    let out = dir.join("linear.gguf");
    convert_hf_folder(&dir, &out, &mut |_, _| true).unwrap();
    let opts = kiln::model::llama::LlamaOptions {
        max_ctx: 64,
        prefill_chunk: 16,
        ..Default::default()
    };
    let prompt: Vec<u32> = (0..24).map(|i| 3 + (i * 7) % 200).collect();
    let logits = |llm: &mut Llm| {
        llm.feed(&prompt).unwrap();
        llm.logits().unwrap()
    };
    let (mut g, _) = Llm::open(&out, &CpuBackend, &opts, &mut |_, _| true).unwrap();
    let mut folder = HfFolder::open(&dir, None).unwrap();
    let c = folder.llama_config().unwrap();
    let mut h = Llm::load(&c, &mut folder, &CpuBackend, &opts, &mut |_, _| true).unwrap();
    let (plain, _) = Llm::open(
        &src.join("llama.F32.gguf"),
        &CpuBackend,
        &opts,
        &mut |_, _| true,
    )
    .unwrap();
    let (a, b, p) = (logits(&mut g), logits(&mut h), logits(&mut { plain }));
    let diff = |x: &[f32], y: &[f32]| {
        assert_eq!(x.len(), y.len());
        x.iter()
            .zip(y)
            .map(|(u, v)| (u - v).abs())
            .fold(
                0.0f32,
                |m, d| if d.is_nan() { f32::INFINITY } else { m.max(d) },
            )
    };
    assert!(diff(&a, &b) < 1e-4, "converted vs folder: {}", diff(&a, &b));
    assert!(
        diff(&a, &p) > 1e-2,
        "scaling had no effect: {}",
        diff(&a, &p)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A config.json whose vocab_size disagrees with the embedding, or whose
/// layer count disagrees with the tensors (2³¹ each here, or 0 layers), is
/// refused before anything is sized by it — by the converter and by a
/// direct load of the folder.
#[test]
fn a_vocab_size_the_tensors_do_not_hold_is_refused() {
    use kiln::backend::cpu::CpuBackend;
    use kiln::generate::TextModel;
    use kiln::model::llama::LlamaOptions;
    for (key, value) in [
        ("vocab_size", 1u64 << 31),
        ("num_hidden_layers", 1u64 << 31),
        ("num_hidden_layers", 0),
    ] {
        let dir = edited_llama(
            &format!("{key}{value}"),
            |c| c[key] = Value::from(value),
            |_| {},
        );
        let out = dir.join("out.gguf");
        let e = convert_hf_folder(&dir, &out, &mut |_, _| true).unwrap_err();
        assert!(
            e.to_string().contains(key) || e.code() == "CORRUPT_FILE",
            "{e}"
        );
        assert!(!out.exists());
        let t = std::time::Instant::now();
        let e = TextModel::open(
            &dir,
            &CpuBackend,
            &LlamaOptions::default(),
            None,
            &mut |_, _| true,
        )
        .err()
        .unwrap_or_else(|| panic!("{key} = {value}: the folder loaded"));
        assert!(
            matches!(e.code(), "CORRUPT_FILE" | "UNSUPPORTED_MODEL"),
            "{key} = {value}: {e}"
        );
        assert!(
            t.elapsed().as_secs_f64() < 2.0,
            "{key} = {value}: {:?}",
            t.elapsed()
        );
        eprintln!("{key} = {value}: {e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

/// The in-memory path (what the safetensors fuzz target drives) writes the
/// same bytes as the file path.
#[test]
fn in_memory_conversion_writes_the_same_bytes() {
    use kiln::loader::hf_gguf::convert_folder;
    use kiln::loader::safetensors::HfFolder;
    let dir = fixture("llama3");
    let file = convert(&dir, "llama3-mem");
    let read = |f: &str| std::fs::read(dir.join(f)).unwrap();
    let mut folder = HfFolder::from_memory(
        &read("config.json"),
        Some(&read("tokenizer_config.json")),
        vec![("model.safetensors".into(), read("model.safetensors"))],
    )
    .unwrap();
    let mut mem = Vec::new();
    let r = convert_folder(
        &mut folder,
        &read("tokenizer.json"),
        "llama3",
        &mut mem,
        &mut |_, _| true,
    )
    .unwrap();
    assert_eq!(r.bytes_out as usize, mem.len());
    assert!(mem == std::fs::read(&file).unwrap());
    std::fs::remove_file(&file).unwrap();
}
