//! The terrain diffusion UNet (guided-diffusion family, EDM preconditioning)
//! against ONNX Runtime on the same ONNX files (`tools/terrain_fixtures.py`):
//! two tiny random-weight models of the family on the CPU reference and the
//! test adapter, and the real trained model (fetched by
//! `tools/fetch_terrain.sh`) on the test adapter.
//!
//! Block activations are compared relative to the largest reference value of
//! each tensor (activations reach 1e10 in the real model; GroupNorm
//! renormalizes them), the output in absolute terms (it lies in [-1, 1]).
//! ORT's own f32 result differs from a float64 evaluation by 4.8e-6 on the
//! output and 4.4e-5 on the timestep embedding (whose angles reach 1554 rad);
//! measured 2026-12-02 here: ≤ 4.6e-5 relative per block, ≤ 4.7e-6 on the
//! output, CPU reference and lavapipe alike. The bounds
//! (`kiln::parity::unet_ref`) leave ~4–10× margin.

mod common;

use std::path::{Path, PathBuf};

use kiln::backend::Backend;
use kiln::backend::cpu::CpuBackend;
use kiln::loader::onnx::OnnxModel;
use kiln::model::unet::{Unet, UnetConfig, UnetOptions, UnetWeights};
use kiln::parity::unet_ref::{BLOCK_REL, OUTPUT_ABS, UnetReference};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/terrain")
}

/// Runs the reference's batch on `backend` and checks every block and the
/// output against `kiln::parity::unet_ref::{BLOCK_REL, OUTPUT_ABS}`.
fn check(name: &str, onnx: &Path, backend: &dyn Backend, label: &str) {
    let r = UnetReference::read(&fixtures(), name).unwrap();
    let weights = UnetWeights::new(OnnxModel::read(onnx).unwrap()).unwrap();
    let c = r.compare(&weights, backend).unwrap();
    assert!(c.blocks.len() > 5, "{name}: too few probes");
    assert!(
        c.pass(),
        "{name} on {label}: first block past {BLOCK_REL:.0e}: {:?}; output differs by {:.2e} (bound {OUTPUT_ABS:.0e}); blocks {:?}",
        c.first_bad,
        c.output_abs,
        c.blocks
    );
    let (at, worst) =
        c.blocks.iter().fold(
            ("", 0f64),
            |(a, w), (m, e)| if *e > w { (m.as_str(), *e) } else { (a, w) },
        );
    eprintln!(
        "{name} on {label}: {} blocks within {worst:.1e} relative (worst {at}), output within {:.1e}",
        c.blocks.len(),
        c.output_abs
    );
}

#[test]
fn tiny_unets_match_onnx_runtime() {
    let gpu = common::gpu();
    for name in ["tiny_a", "tiny_b"] {
        let onnx = fixtures().join(format!("{name}.onnx"));
        check(&format!("{name}.json"), &onnx, &CpuBackend, "cpu reference");
        if let Some(g) = &gpu {
            check(&format!("{name}.json"), &onnx, g, &g.name());
        }
    }
}

const REAL: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../models/terrain_consistency_unet_difficulty100.onnx"
);

fn real() -> &'static Path {
    let path = Path::new(REAL);
    assert!(
        path.exists(),
        "{REAL} is missing: run tools/fetch_terrain.sh"
    );
    path
}

#[test]
fn real_terrain_unet_matches_onnx_runtime_on_the_gpu() {
    let Some(gpu) = common::gpu() else { return };
    check("real_reference.json", real(), &gpu, &gpu.name());
}

#[test]
fn real_terrain_unet_matches_onnx_runtime_on_the_cpu_reference() {
    check("real_reference.json", real(), &CpuBackend, "cpu reference");
}

#[test]
fn bad_onnx_files_are_typed_errors() {
    use kiln::loader::LoadError;
    use kiln::loader::onnx::{ModelProto, TensorProto};
    use prost::Message;
    let bytes = std::fs::read(fixtures().join("tiny_a.onnx")).unwrap();
    // Not protobuf / truncated / empty.
    for cut in [0, 7, bytes.len() / 2, bytes.len() - 3] {
        match OnnxModel::parse(bytes[..cut].to_vec()) {
            Err(LoadError::Corrupt(_)) => {}
            Err(e) => panic!("cut {cut}: unexpected {e}"),
            Ok(_) => panic!("cut {cut}: a truncated ONNX parsed"),
        }
    }
    // A valid ONNX that is not a UNet: an unsupported model, named.
    let mut other = ModelProto::decode(bytes.as_slice()).unwrap();
    let graph = other.graph.as_mut().unwrap();
    graph
        .initializer
        .retain(|t| !t.name.contains("input_blocks.0.0"));
    let m = OnnxModel::parse(other.encode_to_vec()).unwrap();
    let e = UnetWeights::new(m).err().unwrap();
    assert!(matches!(e, LoadError::UnsupportedModel(_)), "{e}");
    assert_eq!(e.code(), "UNSUPPORTED_MODEL");
    // A missing tensor is named when the weights are read.
    let mut missing = ModelProto::decode(bytes.as_slice()).unwrap();
    let graph = missing.graph.as_mut().unwrap();
    graph
        .initializer
        .retain(|t| !t.name.ends_with("output_blocks.1.0.out_layers.3.weight"));
    let weights = UnetWeights::new(OnnxModel::parse(missing.encode_to_vec()).unwrap()).unwrap();
    let r = UnetReference::read(&fixtures(), "tiny_a.json").unwrap();
    let cfg = UnetConfig::from_json(&r.config).unwrap();
    let e = Unet::load(
        &weights,
        &cfg,
        &CpuBackend,
        1,
        (16, 16),
        &UnetOptions::default(),
    )
    .err()
    .unwrap();
    assert!(
        matches!(&e, LoadError::MissingTensor(n) if n.ends_with("output_blocks.1.0.out_layers.3.weight")),
        "{e}"
    );
    // A weight of the wrong shape.
    let mut wrong = ModelProto::decode(bytes.as_slice()).unwrap();
    let t: &mut TensorProto = wrong
        .graph
        .as_mut()
        .unwrap()
        .initializer
        .iter_mut()
        .find(|t| t.name.ends_with("input_blocks.1.0.in_layers.2.bias"))
        .unwrap();
    t.dims = vec![2, t.dims[0] / 2];
    let weights = UnetWeights::new(OnnxModel::parse(wrong.encode_to_vec()).unwrap()).unwrap();
    let e = Unet::load(
        &weights,
        &cfg,
        &CpuBackend,
        1,
        (16, 16),
        &UnetOptions::default(),
    )
    .err()
    .unwrap();
    assert!(matches!(e, LoadError::TensorShape { .. }), "{e}");
    // Sizes the UNet cannot take, and bad inputs.
    assert!(
        Unet::load(
            &weights,
            &cfg,
            &CpuBackend,
            1,
            (15, 16),
            &UnetOptions::default()
        )
        .is_err()
    );
    let ok = UnetWeights::new(OnnxModel::parse(bytes.clone()).unwrap()).unwrap();
    let mut unet =
        Unet::load(&ok, &cfg, &CpuBackend, 1, (16, 16), &UnetOptions::default()).unwrap();
    assert!(
        unet.denoise(&[0.0; 256], &[0.0], &[0.5]).is_err(),
        "sigma 0"
    );
    assert!(
        unet.denoise(&[0.0; 255], &[1.0], &[0.5]).is_err(),
        "short input"
    );
}
