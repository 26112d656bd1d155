//! Kiln's CPU quantize/dequantize against the PyPI `gguf` package (gguf-py,
//! llama.cpp's numpy reimplementation of ggml's formats), on the fixtures that
//! `tools/gen_quant_fixtures.py` writes to `tests/fixtures/quant/`.
//!
//! * Dequantize is **bit-exact** (0 ulp; f32 outputs are compared as bit patterns,
//!   so NaN payloads and the sign of zero must match too) for every dtype.
//! * Quantize is **byte-identical** for Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, F16 and BF16. gguf-py
//!   cannot quantize Q2_K … Q6_K, IQ4_NL or IQ4_XS, so those fixtures are random blocks checked
//!   through dequantize only.

use kiln::dtype::DType;
use kiln::quant::{dequantize, dequantize_into, quantize};
use std::path::PathBuf;

struct Case {
    name: String,
    dtype: DType,
    n: usize,
    has_input: bool,
}

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/quant")
}

fn read(file: &str) -> Vec<u8> {
    let path = dir().join(file);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn f32s(bytes: &[u8]) -> Vec<f32> {
    assert_eq!(bytes.len() % 4, 0);
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// `index.txt`: `<name> <dtype> <n_elements> <has_input>` per line, `#` comments.
fn cases() -> Vec<Case> {
    let text = String::from_utf8(read("index.txt")).expect("index.txt is UTF-8");
    let cases: Vec<Case> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            assert_eq!(f.len(), 4, "bad index line: {l}");
            Case {
                name: f[0].to_string(),
                dtype: f[1].parse().expect("known dtype"),
                n: f[2].parse().expect("element count"),
                has_input: f[3] == "1",
            }
        })
        .collect();
    assert!(
        !cases.is_empty(),
        "no fixtures: run tools/gen_quant_fixtures.py"
    );
    cases
}

#[test]
fn fixtures_cover_every_stored_weight_type() {
    let cases = cases();
    for dtype in DType::WEIGHTS.into_iter().filter(|d| *d != DType::F32) {
        assert!(
            cases.iter().any(|c| c.dtype == dtype),
            "no gguf fixture for {dtype}"
        );
    }
}

#[test]
fn dequantize_is_bit_exact_vs_gguf() {
    for c in cases() {
        let bytes = read(&format!("{}.bin", c.name));
        let want = f32s(&read(&format!("{}.out.f32", c.name)));
        assert_eq!(want.len(), c.n, "{}: fixture size", c.name);
        let got = dequantize(c.dtype, &bytes, c.n).expect("dequantize");
        let bad: Vec<usize> = (0..c.n)
            .filter(|&i| got[i].to_bits() != want[i].to_bits())
            .collect();
        if let Some(&i) = bad.first() {
            panic!(
                "{} ({}): {} of {} elements differ from gguf; first at {i}: kiln {:e} ({:#010x}) vs gguf {:e} ({:#010x})",
                c.name,
                c.dtype,
                bad.len(),
                c.n,
                got[i],
                got[i].to_bits(),
                want[i],
                want[i].to_bits()
            );
        }
        // The in-place entry point agrees with the allocating one.
        let mut into = vec![f32::NAN; c.n];
        dequantize_into(c.dtype, &bytes, &mut into).expect("dequantize_into");
        assert!(
            into.iter()
                .zip(&got)
                .all(|(a, b)| a.to_bits() == b.to_bits()),
            "{}: dequantize_into differs from dequantize",
            c.name
        );
    }
}

#[test]
fn quantize_is_byte_identical_vs_gguf() {
    let exact = [
        DType::Q8_0,
        DType::Q4_0,
        DType::Q4_1,
        DType::Q5_0,
        DType::Q5_1,
        DType::F16,
        DType::BF16,
    ];
    let mut checked = Vec::new();
    for c in cases().into_iter().filter(|c| c.has_input) {
        assert!(exact.contains(&c.dtype), "{}: unexpected input", c.name);
        let input = f32s(&read(&format!("{}.in.f32", c.name)));
        let want = read(&format!("{}.bin", c.name));
        assert_eq!(input.len(), c.n, "{}: fixture size", c.name);
        let got = quantize(c.dtype, &input).expect("quantize");
        assert_eq!(got.len(), want.len(), "{}: byte length", c.name);
        if let Some(i) = (0..got.len()).find(|&i| got[i] != want[i]) {
            let bb = c.dtype.block_bytes();
            panic!(
                "{} ({}): byte {i} (block {}, offset {}) is {:#04x}, gguf has {:#04x}",
                c.name,
                c.dtype,
                i / bb,
                i % bb,
                got[i],
                want[i]
            );
        }
        checked.push(c.dtype);
    }
    for dtype in exact {
        assert!(checked.contains(&dtype), "no quantize fixture for {dtype}");
    }
}
