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
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/models/llama3")
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
