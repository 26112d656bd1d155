//! Loading GGUF files as byte streams (how the browser loads from `fetch`):
//! pieces of any size give the same model as reading the file, and broken
//! streams give typed errors.

mod common;

use std::path::{Path, PathBuf};

use kiln::DType;
use kiln::backend::cpu::CpuBackend;
use kiln::generate::GenerateParams;
use kiln::loader::LoadError;
use kiln::loader::stream::ModelStream;
use kiln::model::llama::LlamaOptions;
use kiln::rng::Rng;

fn fixture(file: &str) -> PathBuf {
    fixture_in("llama3", file)
}

fn fixture_in(model: &str, file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/models")
        .join(model)
        .join(file)
}

fn opts() -> LlamaOptions {
    LlamaOptions {
        max_ctx: 64,
        prefill_chunk: 16,
        kv_dtype: DType::F32,
        ..Default::default()
    }
}

/// Streams `bytes` in random pieces (1 byte to 64 KiB).
fn stream(bytes: &[u8], seed: u64) -> Result<kiln::generate::TextModel, LoadError> {
    let mut s = ModelStream::new(bytes.len() as u64, Box::new(CpuBackend), opts());
    let mut rng = Rng::new(seed);
    let mut at = 0;
    while at < bytes.len() {
        let n = match rng.below(4) {
            0 => 1,
            1 => 1 + rng.below(300) as usize,
            _ => 1 + rng.below(65536) as usize,
        };
        let end = (at + n).min(bytes.len());
        s.push(&bytes[at..end])?;
        at = end;
    }
    s.finish()
}

#[test]
fn streamed_model_generates_the_reference_tokens() {
    let reference: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("reference.json")).unwrap()).unwrap();
    let prompt = common::ids(&reference["prompt_ids"]);
    let want = common::ids(&reference["greedy_ids"]);
    let bytes = std::fs::read(fixture("llama3.F32.gguf")).unwrap();
    for seed in [1, 2, 3] {
        let mut model = stream(&bytes, seed).unwrap();
        // Both greedy paths: device-fed (pipelined) and one step at a time.
        model.pipelined = seed % 2 == 1;
        let params = GenerateParams {
            max_tokens: want.len(),
            ignore_eos: true,
            ..Default::default()
        };
        let got = model.generate_ids(&prompt, &params, &mut |_| true).unwrap();
        assert_eq!(got.tokens, want, "seed {seed}");
    }
}

#[test]
fn broken_streams_are_typed_errors() {
    let bytes = std::fs::read(fixture("llama3.Q8_0.gguf")).unwrap();
    // Truncated anywhere: in the header, in a tensor, in the last byte.
    for cut in [10, 1000, bytes.len() / 2, bytes.len() - 1] {
        let mut s = ModelStream::new(bytes.len() as u64, Box::new(CpuBackend), opts());
        s.push(&bytes[..cut]).unwrap();
        match s.finish() {
            Err(LoadError::Truncated { .. }) => {}
            Err(e) => panic!("cut at {cut}: {e}"),
            Ok(_) => panic!("cut at {cut}: loaded"),
        }
    }
    // Not a GGUF file.
    let mut junk = bytes.clone();
    junk[..4].copy_from_slice(b"PK\x03\x04");
    let err = stream(&junk, 1).err().unwrap();
    assert!(matches!(err, LoadError::BadMagic(_)), "{err}");
    // More bytes than announced.
    let mut s = ModelStream::new(100, Box::new(CpuBackend), opts());
    assert!(matches!(s.push(&bytes[..200]), Err(LoadError::Corrupt(_))));
    // A header that claims tensors past the end of the file.
    let err = {
        let mut s = ModelStream::new(bytes.len() as u64 - 64, Box::new(CpuBackend), opts());
        s.push(&bytes[..bytes.len() - 64]).err().unwrap()
    };
    assert!(matches!(err, LoadError::Truncated { .. }), "{err}");
}

/// The fixture folder's files as an HfStream gets them in the browser.
/// Headers arrive in `header_order` (shard indices; every shard once).
fn hf_stream(
    shards: &[(String, Vec<u8>)],
    quantize: Option<DType>,
    seed: u64,
    header_order: &[usize],
) -> Result<kiln::generate::TextModel, LoadError> {
    hf_stream_of("llama3", shards, quantize, seed, header_order)
}

fn hf_stream_of(
    name: &str,
    shards: &[(String, Vec<u8>)],
    quantize: Option<DType>,
    seed: u64,
    header_order: &[usize],
) -> Result<kiln::generate::TextModel, LoadError> {
    use kiln::loader::safetensors::HfModel;
    use kiln::loader::stream::HfStream;
    let config = std::fs::read(fixture_in(name, "config.json")).unwrap();
    let tc = std::fs::read(fixture_in(name, "tokenizer_config.json")).unwrap();
    let tok = std::fs::read(fixture_in(name, "tokenizer.json")).unwrap();
    let model = HfModel::new(&config, Some(&tc), quantize)?;
    let sizes = shards
        .iter()
        .map(|(n, b)| (n.clone(), b.len() as u64))
        .collect();
    let mut s = HfStream::new(model, tok, sizes, Box::new(CpuBackend), opts());
    let mut rng = Rng::new(seed);
    let mut at = vec![0usize; shards.len()];
    let mut piece = |i: usize, s: &mut HfStream, at: &mut Vec<usize>| {
        let n = 1 + rng.below(5000) as usize;
        let end = (at[i] + n).min(shards[i].1.len());
        let r = s.push(i, &shards[i].1[at[i]..end]);
        at[i] = end;
        r
    };
    // Headers first (as the browser reads them), then the rest, shard by shard.
    for &i in header_order {
        while !s.header_done(i) {
            piece(i, &mut s, &mut at)?;
        }
    }
    for i in 0..shards.len() {
        while at[i] < shards[i].1.len() {
            piece(i, &mut s, &mut at)?;
        }
    }
    s.finish()
}

/// Splits the fixture's model.safetensors into two shards.
fn two_shards() -> Vec<(String, Vec<u8>)> {
    shards_split_at(&[0.5])
}

/// Splits the fixture's model.safetensors (sorted tensor names) into shards
/// at these fractions; a repeated fraction makes a shard with no tensors.
fn shards_split_at(fractions: &[f64]) -> Vec<(String, Vec<u8>)> {
    let bytes = std::fs::read(fixture("model.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut names: Vec<String> = st.names().into_iter().map(String::from).collect();
    names.sort();
    let mut cuts = vec![0];
    cuts.extend(fractions.iter().map(|f| (f * names.len() as f64) as usize));
    cuts.push(names.len());
    let n = cuts.len() - 1;
    cuts.windows(2)
        .map(|w| &names[w[0]..w[1]])
        .enumerate()
        .map(|(i, part)| {
            let views: Vec<(String, safetensors::tensor::TensorView)> = part
                .iter()
                .map(|n| (n.clone(), st.tensor(n).unwrap()))
                .collect();
            let file = format!("model-0000{}-of-0000{n}.safetensors", i + 1);
            (file, safetensors::serialize(views, None).unwrap())
        })
        .collect()
}

#[test]
fn streamed_safetensors_folders_generate_the_reference_tokens() {
    let read = |f: &str| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(fixture(f)).unwrap()).unwrap()
    };
    let one = vec![(
        "model.safetensors".to_string(),
        std::fs::read(fixture("model.safetensors")).unwrap(),
    )];
    let cases = [
        (one.clone(), None, read("reference.json"), vec![0]),
        (two_shards(), None, read("reference.json"), vec![0, 1]),
        // Headers out of order, and a shard with no tensors (they once
        // numbered shards by arrival and sent bytes to the wrong tensors).
        (two_shards(), None, read("reference.json"), vec![1, 0]),
        (
            shards_split_at(&[0.0, 0.4, 0.4]),
            None,
            read("reference.json"),
            vec![2, 3, 0, 1],
        ),
        // Quantize-on-load Q8_0 is byte-identical to the GGUF Q8_0 file.
        (one, Some(DType::Q8_0), read("reference.Q8_0.json"), vec![0]),
    ];
    for (seed, (shards, q, reference, order)) in cases.into_iter().enumerate() {
        let prompt = common::ids(&reference["prompt_ids"]);
        let want = common::ids(&reference["greedy_ids"]);
        let mut model = hf_stream(&shards, q, seed as u64, &order).unwrap();
        let params = GenerateParams {
            max_tokens: want.len(),
            ignore_eos: true,
            ..Default::default()
        };
        let got = model.generate_ids(&prompt, &params, &mut |_| true).unwrap();
        if let Err(e) = kiln::parity::same_tokens(&got.tokens, &want) {
            panic!(
                "{} shard(s), quantize {q:?}, headers {order:?}: {e}",
                shards.len()
            );
        }
    }
    // Truncated shard: a typed error at finish.
    let mut cut = two_shards();
    let len = cut[1].1.len();
    cut[1].1.truncate(len - 10);
    let err = hf_stream(&cut, None, 9, &[0, 1]).err().unwrap();
    assert!(
        matches!(err, LoadError::Truncated { .. } | LoadError::Corrupt(_)),
        "{err}"
    );
}

/// Phi-3's LongRoPE factors live in `config.json`, not in a shard: the
/// streaming loader serves them as the GGUF's tensors before any shard
/// arrives; the greedy tokens equal PyTorch's (short factors, window 16).
#[test]
fn streamed_phi3_folder_generates_the_reference_tokens() {
    let bytes = std::fs::read(fixture_in("phi3", "model.safetensors")).unwrap();
    let reference: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixture_in("phi3", "reference.json")).unwrap(),
    )
    .unwrap();
    let shards = vec![("model.safetensors".to_string(), bytes)];
    let mut model = hf_stream_of("phi3", &shards, None, 3, &[0]).unwrap();
    let want = common::ids(&reference["greedy_ids"]);
    let params = GenerateParams {
        max_tokens: want.len(),
        ignore_eos: true,
        ..Default::default()
    };
    let prompt = common::ids(&reference["prompt_ids"]);
    let got = model.generate_ids(&prompt, &params, &mut |_| true).unwrap();
    if let Err(e) = kiln::parity::same_tokens(&got.tokens, &want) {
        panic!("phi3 streamed: {e}");
    }
}
