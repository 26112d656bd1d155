//! Tokenizer parity with Hugging Face (fixtures from `tools/gen_tokenizer_fixtures.py`):
//! SmolLM2's byte-level BPE read from the real GGUF, a small SentencePiece (`llama`) vocabulary
//! built from a spec and from HF's tokenizer.json, streaming decode, and typed errors.

mod common;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use kiln::loader::gguf::GgufFile;
use kiln::tokenizer::{StreamDecoder, Tokenizer, TokenizerError, TokenizerSpec};
use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn fixture(name: &str) -> Value {
    let path = root().join("tests/fixtures/tokenizer").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run tools/gen_tokenizer_fixtures.py)",
            path.display()
        )
    });
    serde_json::from_str(&text).unwrap()
}

/// The tokenizer spec as the loader builds it from `tokenizer.ggml.*` metadata.
fn spec_from_gguf(path: &Path) -> TokenizerSpec {
    assert!(
        path.exists(),
        "{} is missing: run tools/fetch_model.sh to fetch the default model",
        path.display()
    );
    let (g, _file) = GgufFile::open(path).unwrap();
    g.tokenizer_spec().unwrap()
}

fn smollm2_spec() -> &'static TokenizerSpec {
    static S: OnceLock<TokenizerSpec> = OnceLock::new();
    S.get_or_init(|| spec_from_gguf(&root().join("models/SmolLM2-135M-Instruct.Q4_1.gguf")))
}

fn smollm2() -> &'static Tokenizer {
    static T: OnceLock<Tokenizer> = OnceLock::new();
    T.get_or_init(|| {
        let spec = smollm2_spec();
        assert_eq!(
            (spec.model.as_str(), spec.pre.as_deref()),
            ("gpt2", Some("smollm"))
        );
        Tokenizer::from_spec(spec).unwrap()
    })
}

fn llama_spec() -> TokenizerSpec {
    let f = fixture("llama_tiny.json");
    let s = &f["spec"];
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_str().unwrap().to_string())
            .collect()
    };
    let id = |v: &Value| v.as_u64().map(|x| x as u32);
    TokenizerSpec {
        model: s["model"].as_str().unwrap().into(),
        pre: s["pre"].as_str().map(String::from),
        tokens: strings(&s["tokens"]),
        token_types: s["token_types"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_i64().unwrap() as i32)
            .collect(),
        scores: s["scores"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap() as f32)
            .collect(),
        merges: strings(&s["merges"]),
        bos: id(&s["bos"]),
        eos: id(&s["eos"]),
        unk: id(&s["unk"]),
        pad: id(&s["pad"]),
        add_bos: s["add_bos"].as_bool().unwrap(),
        add_eos: s["add_eos"].as_bool().unwrap(),
        add_space_prefix: s["add_space_prefix"].as_bool().unwrap(),
    }
}

/// Streams `ids` through a [`StreamDecoder`]; returns the pieces.
fn stream(t: &Tokenizer, ids: &[u32], skip: bool) -> Vec<String> {
    let mut d = StreamDecoder::new(t, skip);
    let mut out: Vec<String> = ids.iter().map(|&id| d.push(id).unwrap()).collect();
    out.push(d.finish().unwrap());
    out
}

/// Checks every fixture case; collects all mismatches so one run shows them all.
fn check_cases(t: &Tokenizer, fixture: &Value, round_trip: bool) {
    let mut bad = Vec::new();
    let cases = fixture["cases"].as_array().unwrap();
    assert!(!cases.is_empty());
    for c in cases {
        let text = c["text"].as_str().unwrap();
        let want = common::ids(&c["ids"]);
        let got = t.encode(text, false).unwrap();
        if got != want {
            bad.push(format!("encode {text:?}: kiln {got:?} vs HF {want:?}"));
        }
        let got = t.encode(text, true).unwrap();
        if got != common::ids(&c["ids_special"]) {
            bad.push(format!("encode+special {text:?}: kiln {got:?}"));
        }
        for (skip, key) in [(false, "decode"), (true, "decode_skip_special")] {
            let want_text = c[key].as_str().unwrap();
            let got = t.decode(&want, skip).unwrap();
            if got != want_text {
                bad.push(format!("{key} {text:?}: kiln {got:?} vs HF {want_text:?}"));
            }
            let pieces = stream(t, &want, skip);
            if pieces.concat() != got {
                bad.push(format!(
                    "stream(skip={skip}) {text:?}: {pieces:?} vs {got:?}"
                ));
            }
            if !got.contains('\u{FFFD}') && pieces.iter().any(|p| p.contains('\u{FFFD}')) {
                bad.push(format!(
                    "stream(skip={skip}) {text:?} split a character: {pieces:?}"
                ));
            }
        }
        if round_trip {
            let back = t.decode(&t.encode(text, false).unwrap(), false).unwrap();
            if back != text {
                bad.push(format!("round trip {text:?} -> {back:?}"));
            }
        }
    }
    assert!(
        bad.is_empty(),
        "{} mismatches:\n{}",
        bad.len(),
        bad.join("\n")
    );
}

fn check_meta(t: &Tokenizer, fixture: &Value) {
    let meta = &fixture["meta"];
    assert_eq!(t.vocab_size() as u64, meta["vocab_size"].as_u64().unwrap());
    let special = common::ids(&meta["special_ids"]);
    let got: Vec<u32> = (0..t.vocab_size() as u32)
        .filter(|&i| t.is_special(i))
        .collect();
    assert_eq!(got, special, "special ids");
}

#[test]
fn smollm2_matches_hf() {
    let f = fixture("smollm2.json");
    let t = smollm2();
    check_meta(t, &f);
    assert_eq!(t.bos(), f["meta"]["bos"].as_u64().map(|x| x as u32));
    assert_eq!(t.eos(), f["meta"]["eos"].as_u64().map(|x| x as u32));
    assert_eq!(t.token_id("<|im_start|>"), Some(1));
    assert_eq!(t.token_id("<|im_end|>"), Some(2));
    assert!(f["cases"].as_array().unwrap().len() >= 40);
    check_cases(t, &f, true);
}

/// SmolLM2's vocabulary under the Llama-3 and Qwen2 split regexes (fancy-regex here,
/// Oniguruma in HF) gives HF's ids.
#[test]
fn pre_tokenizer_variants_match_hf() {
    let f = fixture("smollm2.json");
    let texts: Vec<&str> = f["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["text"].as_str().unwrap())
        .collect();
    let variants = f["pre_variants"].as_object().unwrap();
    assert_eq!(variants.len(), 2);
    for (pre, want) in variants {
        let mut spec = smollm2_spec().clone();
        spec.pre = Some(pre.clone());
        let t = Tokenizer::from_spec(&spec).unwrap();
        for (text, want) in texts.iter().zip(want.as_array().unwrap()) {
            assert_eq!(
                t.encode(text, false).unwrap(),
                common::ids(want),
                "{pre}: {text:?}"
            );
        }
    }
}

#[test]
fn smollm2_digits_are_single_tokens() {
    let t = smollm2();
    let got = t.encode("x 2024", false).unwrap();
    let digits: Vec<u32> = "2024"
        .chars()
        .map(|c| t.token_id(&c.to_string()).unwrap())
        .collect();
    assert_eq!(got[got.len() - 4..], digits[..]);
}

#[test]
fn stream_holds_back_split_emoji() {
    let t = smollm2();
    for text in ["🦀", "👨\u{200d}👩\u{200d}👧", "🇯🇵", "é"] {
        let ids = t.encode(text, false).unwrap();
        let mut d = StreamDecoder::new(t, false);
        let mut out = String::new();
        for (i, &id) in ids.iter().enumerate() {
            let piece = d.push(id).unwrap();
            assert!(
                !piece.contains('\u{FFFD}'),
                "{text:?}: piece {i} = {piece:?}"
            );
            out.push_str(&piece);
        }
        out.push_str(&d.finish().unwrap());
        assert_eq!(out, text);
    }
    // Bytes that never complete a character come out at finish, as a full decode gives them.
    let ids = t.encode("🦀", false).unwrap();
    assert!(
        ids.len() > 1,
        "🦀 should take several byte-level tokens: {ids:?}"
    );
    let mut d = StreamDecoder::new(t, false);
    assert_eq!(d.push(ids[0]).unwrap(), "");
    let want = t.decode(&ids[..1], false).unwrap();
    assert_eq!(d.finish().unwrap(), want);
    assert!(want.ends_with('\u{FFFD}'));
}

#[test]
fn llama_spm_matches_hf() {
    let f = fixture("llama_tiny.json");
    let t = Tokenizer::from_spec(&llama_spec()).unwrap();
    check_meta(&t, &f);
    assert_eq!((t.bos(), t.eos()), (Some(1), Some(2)));
    check_cases(&t, &f, false);
    // Byte fallback: an emoji absent from the vocabulary is four <0xXX> tokens; the stream
    // emits nothing until the fourth.
    let ids = t.encode("🦀", false).unwrap();
    let bytes: Vec<u32> = ["▁", "<0xF0>", "<0x9F>", "<0xA6>", "<0x80>"]
        .iter()
        .map(|s| t.token_id(s).unwrap())
        .collect();
    assert_eq!(ids, bytes);
    let pieces = stream(&t, &ids, false);
    assert_eq!(pieces, ["", "", "", "", "🦀", ""]);
}

#[test]
fn llama_hf_json_matches_hf() {
    let f = fixture("llama_tiny.json");
    let json =
        std::fs::read(root().join("tests/fixtures/tokenizer/llama_tiny.tokenizer.json")).unwrap();
    let t = Tokenizer::from_hf_json(&json).unwrap();
    check_meta(&t, &f);
    assert_eq!((t.bos(), t.eos()), (Some(1), Some(2)));
    check_cases(&t, &f, false);
    let t = t.with_bos_eos(Some(2), None).unwrap();
    assert_eq!((t.bos(), t.eos()), (Some(2), None));
    assert!(matches!(
        t.with_bos_eos(Some(100_000), None),
        Err(TokenizerError::SpecialIdOutOfRange { .. })
    ));
}

/// `kiln quantize` from a folder whose `tokenizer.json` is a SentencePiece
/// BPE (HF's conversion of the trained vocabulary): the GGUF keys it writes
/// (`llama`, scores derived from the merge ranks, no merges — the form
/// llama.cpp writes and reads) give HF's ids on every case, with the
/// vocabulary, types and specials of the transformers-converted reference.
#[test]
fn llama_hf_json_converts_to_llama_gguf_keys() {
    use kiln::loader::gguf_write::header;
    use kiln::loader::hf_gguf::tokenizer_metadata;
    let f = fixture("llama_tiny.json");
    let json =
        std::fs::read(root().join("tests/fixtures/tokenizer/llama_tiny.tokenizer.json")).unwrap();
    // A Llama-2-style tokenizer_config.json (BOS added: the post-processor's
    // default, as the file does not say).
    let tc = br#"{"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"}"#;
    let meta = tokenizer_metadata(&json, Some(tc), 420).unwrap();
    let (head, _) = header(&meta, &[]).unwrap();
    let path = std::env::temp_dir().join(format!("kiln-spm-keys-{}.gguf", std::process::id()));
    std::fs::write(&path, head).unwrap();
    let spec = spec_from_gguf(&path);
    std::fs::remove_file(&path).ok();
    let want = llama_spec();
    assert_eq!(spec.model, "llama");
    assert!(spec.merges.is_empty(), "no merges: the scores carry them");
    assert_eq!(spec.tokens, want.tokens);
    assert_eq!(spec.token_types, want.token_types);
    assert_eq!(
        (
            spec.bos,
            spec.eos,
            spec.unk,
            spec.add_bos,
            spec.add_eos,
            spec.add_space_prefix
        ),
        (
            want.bos,
            want.eos,
            want.unk,
            want.add_bos,
            want.add_eos,
            want.add_space_prefix
        )
    );
    let t = Tokenizer::from_spec(&spec).unwrap();
    check_meta(&t, &f);
    check_cases(&t, &f, false);
    // The merge order reversed must fail the cases: the derived scores are
    // what makes them pass.
    let mut reversed = spec.clone();
    reversed.scores.iter_mut().for_each(|s| *s = -*s);
    let t = Tokenizer::from_spec(&reversed).unwrap();
    let differs =
        f["cases"].as_array().unwrap().iter().any(|c| {
            t.encode(c["text"].as_str().unwrap(), false).unwrap() != common::ids(&c["ids"])
        });
    assert!(
        differs,
        "reversed scores tokenize the cases the same: the test cannot fail"
    );
}

#[test]
fn bad_input_is_a_typed_error() {
    let mut s = llama_spec();
    s.model = "rwkv".into();
    let e = Tokenizer::from_spec(&s).unwrap_err();
    assert_eq!(e, TokenizerError::UnsupportedModel("rwkv".into()));
    assert!(e.to_string().contains("rwkv"));

    let s = TokenizerSpec {
        model: "gpt2".into(),
        ..Default::default()
    };
    assert_eq!(
        Tokenizer::from_spec(&s).unwrap_err(),
        TokenizerError::EmptyVocab
    );
    let s = TokenizerSpec {
        model: "llama".into(),
        ..Default::default()
    };
    assert_eq!(
        Tokenizer::from_spec(&s).unwrap_err(),
        TokenizerError::EmptyVocab
    );

    let mut s = llama_spec();
    s.scores.clear();
    assert_eq!(
        Tokenizer::from_spec(&s).unwrap_err(),
        TokenizerError::MissingMerges("llama".into())
    );

    let t = Tokenizer::from_spec(&llama_spec()).unwrap();
    let n = t.vocab_size() as u32;
    for bad in [n, n + 1, u32::MAX] {
        assert_eq!(
            t.decode(&[5, bad], false),
            Err(TokenizerError::IdOutOfRange {
                id: bad,
                vocab: n as usize
            })
        );
        let mut d = StreamDecoder::new(&t, false);
        assert!(matches!(
            d.push(bad),
            Err(TokenizerError::IdOutOfRange { .. })
        ));
    }
    assert!(matches!(
        Tokenizer::from_hf_json(b"{not json"),
        Err(TokenizerError::HfJson(_))
    ));
}
