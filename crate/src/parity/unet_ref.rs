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
