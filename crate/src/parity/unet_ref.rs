//! ONNX Runtime references for UNet models (`tests/fixtures/terrain/`, made
//! by `tools/terrain_fixtures.py`): inputs, the denoised output and block
//! activations, each a raw little-endian f32 file described by a JSON record.
//! Used by the terrain tests and `kiln-parity diffuse`.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::loader::LoadError;

/// One recorded activation: NCHW, sample 0 only when `stride > 1`
/// (`x[0:1, :, ::stride, ::stride]`), else every sample in full.
#[derive(Clone, Debug)]
pub struct Probe {
    pub module: String,
    pub shape: Vec<usize>,
    pub stride: usize,
    pub data: Vec<f32>,
}

#[derive(Clone, Debug)]
pub struct UnetReference {
    pub dir: PathBuf,
    pub config: Value,
    /// NCHW `[B, Cin, H, W]`.
    pub noisy: Vec<f32>,
    pub noisy_shape: Vec<usize>,
    pub sigma: Vec<f32>,
    /// The label fed to the graph (`(difficulty − 1)/99`).
    pub label: Vec<f32>,
    pub denoised: Vec<f32>,
    pub probes: Vec<Probe>,
}

fn corrupt(what: String) -> LoadError {
    LoadError::Corrupt(what)
}

fn read_f32(dir: &Path, rec: &Value) -> Result<(Vec<usize>, Vec<f32>), LoadError> {
    let file = rec["file"]
        .as_str()
        .ok_or_else(|| corrupt(format!("record without a file: {rec}")))?;
    let shape: Vec<usize> = rec["shape"]
        .as_array()
        .and_then(|a| a.iter().map(|x| x.as_u64().map(|x| x as usize)).collect())
        .ok_or_else(|| corrupt(format!("{file}: no shape")))?;
    let path = dir.join(file);
    let bytes =
        std::fs::read(&path).map_err(|e| LoadError::Io(format!("{}: {e}", path.display())))?;
    if bytes.len() != 4 * shape.iter().product::<usize>() {
        return Err(corrupt(format!(
            "{file}: {} bytes for shape {shape:?}",
            bytes.len()
        )));
    }
    let data = bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    Ok((shape, data))
}

impl UnetReference {
    /// Reads `<dir>/<name>` (e.g. `tiny_a.json`, `real_reference.json`).
    pub fn read(dir: &Path, name: &str) -> Result<UnetReference, LoadError> {
        let path = dir.join(name);
        let text = std::fs::read_to_string(&path)
            .map_err(|e| LoadError::Io(format!("{}: {e}", path.display())))?;
        let v: Value = serde_json::from_str(&text).map_err(|e| corrupt(format!("{name}: {e}")))?;
        let input = |k: &str| read_f32(dir, &v["inputs"][k]);
        let (noisy_shape, noisy) = input("noisy")?;
        let (_, sigma) = input("sigma")?;
        let (_, label) = input("difficulty")?;
        let (_, denoised) = read_f32(dir, &v["outputs"]["denoised"])?;
        let mut probes = Vec::new();
        for rec in v["intermediates"].as_array().into_iter().flatten() {
            let (shape, data) = read_f32(dir, rec)?;
            probes.push(Probe {
                module: rec["module"].as_str().unwrap_or_default().to_string(),
                shape: rec["full_shape"]
                    .as_array()
                    .and_then(|a| a.iter().map(|x| x.as_u64().map(|x| x as usize)).collect())
                    .unwrap_or(shape),
                stride: rec["stride"].as_u64().unwrap_or(1) as usize,
                data,
            });
        }
        if probes.is_empty() {
            return Err(corrupt(format!("{name}: no intermediates")));
        }
        Ok(UnetReference {
            dir: dir.to_path_buf(),
            config: v["config"].clone(),
            noisy,
            noisy_shape,
            sigma,
            label,
            denoised,
            probes,
        })
    }

    /// The part of a full NCHW activation `[B, C, H, W]` (or `[B, N]`) that
    /// `probe` records: its leading samples (`probe.shape[0]` of them), every
    /// `stride`-th row and column.
    pub fn select(probe: &Probe, full: &[f32], shape: &[usize]) -> Vec<f32> {
        let per_sample: usize = shape.iter().skip(1).product();
        let samples = probe.shape.first().copied().unwrap_or(1);
        let lead = &full[..(samples * per_sample).min(full.len())];
        let s = probe.stride;
        let (&[_, c, h, w], true) = (shape, s > 1) else {
            return lead.to_vec();
        };
        let mut out = Vec::new();
        for n in 0..samples {
            for ch in 0..c {
                for y in (0..h).step_by(s) {
                    for x in (0..w).step_by(s) {
                        out.push(full[((n * c + ch) * h + y) * w + x]);
                    }
                }
            }
        }
        out
    }
}

/// Max |Δ| / max |ref| allowed per block activation against ONNX Runtime
/// (measured ≤ 4.6e-5 on the CPU reference and lavapipe; ORT's own f32
/// timestep embedding differs from float64 by 4.4e-5).
pub const BLOCK_REL: f64 = 2e-4;
/// Max |Δ| allowed on the denoised output (in [-1, 1]; measured ≤ 4.7e-6,
/// ORT vs float64 4.8e-6).
pub const OUTPUT_ABS: f64 = 5e-5;

/// A backend's run of a reference batch.
#[derive(Clone, Debug)]
pub struct UnetComparison {
    pub backend: String,
    /// (module, max |Δ| / max |ref|) per recorded block.
    pub blocks: Vec<(String, f64)>,
    /// The first block past [`BLOCK_REL`].
    pub first_bad: Option<String>,
    /// max |Δ| of the denoised output.
    pub output_abs: f64,
    /// Seconds of the (first) denoising call, upload excluded.
    pub secs: f64,
}

impl UnetComparison {
    pub fn pass(&self) -> bool {
        self.first_bad.is_none() && self.output_abs <= OUTPUT_ABS && !self.blocks.is_empty()
    }
}

impl UnetReference {
    /// Runs this reference's batch through the UNet of `weights` on
    /// `backend` (config from the reference, checked against the one
    /// inferred from the ONNX graph) and compares every recorded block and
    /// the output (NaN-aware: a NaN anywhere is an infinite error).
    pub fn compare(
        &self,
        weights: &crate::model::unet::UnetWeights,
        backend: &dyn crate::backend::Backend,
    ) -> Result<UnetComparison, LoadError> {
        use crate::model::unet::{Unet, UnetConfig, UnetOptions};
        let cfg = UnetConfig::from_json(&self.config)?;
        let inferred = UnetConfig::from_onnx(&weights.model, &weights.prefix)?;
        if (UnetConfig {
            image_size: cfg.image_size,
            ..inferred.clone()
        }) != cfg
        {
            return Err(corrupt(format!(
                "the config inferred from the ONNX graph differs from the reference's: {inferred:?} vs {cfg:?}"
            )));
        }
        let [b, _, h, w] = self.noisy_shape[..] else {
            return Err(corrupt(format!("noisy shape {:?}", self.noisy_shape)));
        };
        let opts = UnetOptions {
            probes: true,
            ..Default::default()
        };
        let mut unet = Unet::load(weights, &cfg, backend, b, (h, w), &opts)?;
        let t0 = web_time::Instant::now();
        let y = unet.denoise(&self.noisy, &self.sigma, &self.label)?;
        let secs = t0.elapsed().as_secs_f64();
        let mut blocks = Vec::new();
        for p in &self.probes {
            let (shape, full) = unet
                .probe(&p.module)?
                .ok_or_else(|| corrupt(format!("the graph has no block '{}'", p.module)))?;
            let got = Self::select(p, &full, &shape);
            let rel = super::vec_diff(&got, &p.data).map_or(f64::INFINITY, |d| d.rel());
            blocks.push((p.module.clone(), rel));
        }
        let output_abs = super::vec_diff(&y, &self.denoised).map_or(f64::INFINITY, |d| d.max_abs);
        let first_bad = blocks
            .iter()
            .find(|(_, r)| *r > BLOCK_REL)
            .map(|(m, _)| m.clone());
        Ok(UnetComparison {
            backend: backend.name(),
            blocks,
            first_bad,
            output_abs,
            secs,
        })
    }
}
