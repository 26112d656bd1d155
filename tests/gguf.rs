//! The GGUF reader on the real default model and on truncated/corrupt copies
//! of its header: every bad file is a typed `LoadError`, never a panic.

use kiln::DType;
use kiln::loader::LoadError;
use kiln::loader::gguf::GgufFile;

const MODEL: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../models/SmolLM2-135M-Instruct.Q4_1.gguf"
);

fn model() -> (GgufFile, Vec<u8>) {
    assert!(
        std::path::Path::new(MODEL).exists(),
        "{MODEL} is missing: run tools/fetch_model.sh"
    );
    let (g, _) = GgufFile::open(std::path::Path::new(MODEL)).unwrap();
    // The header (metadata + tensor infos) and a little tensor data.
    let mut head = vec![0u8; g.data_offset as usize + 4096];
    use std::io::Read;
    std::fs::File::open(MODEL)
        .unwrap()
        .read_exact(&mut head)
        .unwrap();
    (g, head)
}

fn parse(bytes: &[u8], len: u64) -> Result<GgufFile, LoadError> {
    GgufFile::parse(&mut std::io::Cursor::new(bytes), len)
}

#[test]
fn reads_the_real_model() {
    let (g, _) = model();
    assert_eq!(g.version, 3);
    assert_eq!(g.tensors.len(), 272);
    assert_eq!(g.get_str("general.architecture").unwrap(), "llama");
    assert_eq!(g.get_u32("llama.block_count").unwrap(), 30);
    let embd = g.tensor("token_embd.weight").unwrap();
    assert_eq!(
        (embd.shape.clone(), embd.dtype),
        (vec![49152, 576], DType::Q8_0)
    );
    assert_eq!(g.tensor("blk.0.attn_q.weight").unwrap().dtype, DType::Q4_1);
    assert_eq!(
        g.tensors.iter().filter(|t| t.dtype == DType::Q4_1).count(),
        210
    );
    assert!(g.tensor("output.weight").is_err(), "tied embeddings");
    assert!(g.chat_template().unwrap().contains("im_start"));
    assert!(matches!(
        g.get_u32("general.architecture"),
        Err(LoadError::WrongType { .. })
    ));
    assert!(matches!(g.get_str("nope"), Err(LoadError::MissingKey(_))));
    let spec = g.tokenizer_spec().unwrap();
    assert_eq!(
        (spec.model.as_str(), spec.tokens.len(), spec.bos, spec.eos),
        ("gpt2", 49152, Some(1), Some(2))
    );
}

#[test]
fn truncated_headers_are_typed_errors() {
    let (g, head) = model();
    let end = g.data_offset as usize;
    let mut cuts: Vec<usize> = vec![
        0,
        1,
        3,
        4,
        7,
        8,
        15,
        16,
        23,
        24,
        25,
        40,
        100,
        1000,
        100_000,
        end - 1,
    ];
    cuts.extend((0..200).map(|i| i * (end / 200)));
    for cut in cuts {
        match parse(&head[..cut], cut as u64) {
            Err(LoadError::Truncated { .. }) | Err(LoadError::Corrupt(_)) => {}
            other => panic!("cut at {cut}: {other:?}"),
        }
    }
    // Header intact, tensor data missing: the last tensor overruns the file.
    assert!(matches!(
        parse(&head, g.file_len - 1),
        Err(LoadError::Truncated { .. })
    ));
}

#[test]
fn corrupt_headers_are_typed_errors() {
    let (_, head) = model();
    let mut bad = head.clone();
    bad[0] = b'X';
    assert!(matches!(
        parse(&bad, bad.len() as u64),
        Err(LoadError::BadMagic(_))
    ));
    let mut bad = head.clone();
    bad[4..8].copy_from_slice(&99u32.to_le_bytes());
    assert!(matches!(
        parse(&bad, bad.len() as u64),
        Err(LoadError::Version(99))
    ));
    // A metadata count far beyond the file.
    let mut bad = head.clone();
    bad[16..24].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(matches!(
        parse(&bad, bad.len() as u64),
        Err(LoadError::Truncated { .. })
    ));
    // The first key's length claims 2^60 bytes: rejected before allocating.
    let mut bad = head.clone();
    bad[24..32].copy_from_slice(&(1u64 << 60).to_le_bytes());
    assert!(matches!(
        parse(&bad, bad.len() as u64),
        Err(LoadError::Truncated { .. })
    ));
    // Random byte flips anywhere in the header never panic.
    let mut rng = kiln::rng::Rng::new(5);
    for _ in 0..300 {
        let mut bad = head.clone();
        for _ in 0..4 {
            let i = rng.below(bad.len() as u32) as usize;
            bad[i] ^= 1 << rng.below(8);
        }
        let _ = parse(&bad, bad.len() as u64);
    }
}

#[test]
fn unsupported_tensor_types_are_named() {
    // A one-tensor GGUF whose tensor is IQ2_XXS (ggml type 16).
    let mut f = Vec::new();
    f.extend(b"GGUF");
    f.extend(3u32.to_le_bytes());
    f.extend(1u64.to_le_bytes()); // tensors
    f.extend(0u64.to_le_bytes()); // metadata
    let name = b"w";
    f.extend((name.len() as u64).to_le_bytes());
    f.extend(name);
    f.extend(1u32.to_le_bytes());
    f.extend(256u64.to_le_bytes());
    f.extend(16u32.to_le_bytes());
    f.extend(0u64.to_le_bytes());
    f.resize(f.len().div_ceil(32) * 32 + 64, 0);
    match parse(&f, f.len() as u64) {
        Err(e @ LoadError::UnsupportedTensorType { id: 16, .. }) => {
            assert!(e.to_string().contains("IQ2_XXS"))
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn unsupported_architectures_are_named() {
    let (_, head) = model();
    // Rename the architecture in place ("llama" → "gemmo", same length).
    let key = b"general.architecture";
    let at = head.windows(key.len()).position(|w| w == key).unwrap() + key.len() + 4 + 8;
    let mut bad = head.clone();
    assert_eq!(&bad[at..at + 5], b"llama");
    bad[at..at + 5].copy_from_slice(b"gemmo");
    let g = parse(
        &bad,
        kiln::loader::gguf::GgufFile::open(std::path::Path::new(MODEL))
            .unwrap()
            .0
            .file_len,
    )
    .unwrap();
    match kiln::model::LlamaConfig::from_gguf(&g) {
        Err(e @ LoadError::UnsupportedArchitecture(_)) => assert!(e.to_string().contains("gemmo")),
        other => panic!("{other:?}"),
    }
}

/// Hostile hyper-parameters: `block_count` of 4e9 or 0 and a context near
/// usize::MAX are typed errors before anything is sized by them (4e9 used to
/// abort the process with a 4e9-element allocation).
#[test]
fn hostile_layer_counts_and_contexts_are_typed_errors() {
    use kiln::model::llama::{LlamaOptions, build};
    let (g0, head) = model();
    let key = b"llama.block_count";
    let at = head.windows(key.len()).position(|w| w == key).unwrap() + key.len() + 4;
    for count in [4_000_000_000u32, 0, 31] {
        let mut bad = head.clone();
        bad[at..at + 4].copy_from_slice(&count.to_le_bytes());
        let g = parse(&bad, g0.file_len).unwrap();
        let config = kiln::model::LlamaConfig::from_gguf(&g).unwrap();
        let lookup = |n: &str| g.tensor(n).map(|t| (t.shape.clone(), t.dtype));
        match build(&config, &LlamaOptions::default(), &lookup) {
            Err(e @ LoadError::Corrupt(_)) => eprintln!("block_count {count}: {e}"),
            Err(e) => panic!("block_count {count}: unexpected {e:?}"),
            Ok(_) => panic!("block_count {count} built a graph"),
        }
    }
    let config = kiln::model::LlamaConfig::from_gguf(&g0).unwrap();
    let lookup = |n: &str| g0.tensor(n).map(|t| (t.shape.clone(), t.dtype));
    let opts = LlamaOptions {
        max_ctx: usize::MAX - 10,
        ..Default::default()
    };
    let e = build(&config, &opts, &lookup)
        .err()
        .expect("a context past the limit");
    assert_eq!(e.code(), "INVALID_INPUT", "{e}");
}
