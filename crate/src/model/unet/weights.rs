//! UNet weights from an ONNX export, by guided-diffusion name.
//!
//! Exporters keep the module names of parameters they leave untouched
//! (`network.input_blocks.1.0.in_layers.2.weight`) but may constant-fold the
//! GroupNorm affine pair into anonymous initializers (`val_45`). Those are
//! recovered from the graph: each GroupNorm's `Mul(γ)`/`Add(β)` pair is
//! followed forward to the first convolution it feeds, whose weight name
//! tells the norm's module (`…in_layers.2` → `…in_layers.0`,
//! `…out_layers.3` → `…out_layers.0`, `…qkv` → `…norm`, `out.2` → `out.0`).

use std::collections::HashMap;

use super::WeightKind;
use crate::dtype::DType;
use crate::host::HostTensor;
use crate::loader::LoadError;
use crate::loader::onnx::OnnxModel;
use crate::ops::conv2d::oihw_to_ohwi;
use crate::quant;

/// The prefix before guided-diffusion names (`network.` in the terrain
/// model), found from the first conv's weight.
pub fn find_prefix(m: &OnnxModel) -> Result<String, LoadError> {
    m.initializer_names()
        .find_map(|n| n.strip_suffix("input_blocks.0.0.weight"))
        .map(str::to_string)
        .ok_or_else(|| {
            LoadError::UnsupportedModel(
                "no 'input_blocks.0.0.weight' initializer: not a guided-diffusion UNet export"
                    .into(),
            )
        })
}

pub struct UnetWeights {
    pub model: OnnxModel,
    pub prefix: String,
    /// GroupNorm module → (γ initializer, β initializer) for folded norms.
    norms: HashMap<String, (String, String)>,
}

impl UnetWeights {
    pub fn new(model: OnnxModel) -> Result<UnetWeights, LoadError> {
        let prefix = find_prefix(&model)?;
        let norms = folded_norms(&model, &prefix);
        Ok(UnetWeights {
            model,
            prefix,
            norms,
        })
    }

    /// The initializer holding guided-diffusion tensor `name`.
    fn source(&self, name: &str) -> Result<String, LoadError> {
        let direct = format!("{}{name}", self.prefix);
        if self.model.initializer(&direct).is_some() {
            return Ok(direct);
        }
        let (module, which) = name
            .rsplit_once('.')
            .ok_or_else(|| LoadError::MissingTensor(direct.clone()))?;
        match (self.norms.get(module), which) {
            (Some((g, _)), "weight") => Ok(g.clone()),
            (Some((_, b)), "bias") => Ok(b.clone()),
            _ => Err(LoadError::MissingTensor(direct)),
        }
    }

    /// Tensor `name` stored as `kind` with the graph's `shape` and `dtype`.
    pub fn read(
        &self,
        name: &str,
        kind: WeightKind,
        shape: &[usize],
        dtype: DType,
    ) -> Result<HostTensor, LoadError> {
        let src = self.source(name)?;
        let (got, values) = self.model.tensor_f32(&src)?;
        device_tensor(&src, &got, values, kind, shape, dtype)
    }
}

/// A weight in the graph's layout: `values` (stored as `got`, PyTorch
/// layout) as `kind` with the graph's `shape` and `dtype` — conv kernels
/// `[Cout, Cin, kh, kw]` → `[Cout, kh·kw·Cin]`; Linear matrices `[out, in]`
/// and vectors as they are (vectors may be stored `[C, 1, 1]`); quantized
/// row by row when `dtype` is not f32.
pub fn device_tensor(
    src: &str,
    got: &[usize],
    values: Vec<f32>,
    kind: WeightKind,
    shape: &[usize],
    dtype: DType,
) -> Result<HostTensor, LoadError> {
    let n: usize = shape.iter().product();
    let mismatch = || LoadError::TensorShape {
        name: src.to_string(),
        got: got.to_vec(),
        want: shape.to_vec(),
    };
    let values = match kind {
        WeightKind::Conv => {
            let [cout, cin, kh, kw] = got[..] else {
                return Err(mismatch());
            };
            if shape != [cout, kh * kw * cin] {
                return Err(mismatch());
            }
            oihw_to_ohwi(&values, cout, cin, kh, kw)?
        }
        WeightKind::Linear | WeightKind::Vector => {
            let same = got
                .iter()
                .filter(|d| **d != 1)
                .eq(shape.iter().filter(|d| **d != 1));
            if values.len() != n || !same {
                return Err(mismatch());
            }
            values
        }
    };
    if dtype == DType::F32 {
        return Ok(HostTensor::from_f32(shape, DType::F32, &values)?);
    }
    // Rows are whole blocks (storage_dtype picks a block type only then), so
    // the tensor quantizes in one call: the same bytes as row by row, spread
    // over the machine's threads.
    let cols = *shape.last().unwrap_or(&1);
    if !cols.is_multiple_of(dtype.block_size()) {
        return Err(mismatch());
    }
    let out = quant::quantize(dtype, &values)?;
    Ok(HostTensor::from_bytes(shape, dtype, out)?)
}

/// Folded GroupNorm affine pairs, by module (see the module docs).
fn folded_norms(m: &OnnxModel, prefix: &str) -> HashMap<String, (String, String)> {
    let mut out = HashMap::new();
    let init_input = |n: &crate::loader::onnx::NodeProto| {
        n.input.iter().find(|i| m.initializer(i).is_some()).cloned()
    };
    for node in m
        .graph
        .node
        .iter()
        .filter(|n| n.op_type == "InstanceNormalization")
    {
        let Some(v) = node.output.first() else {
            continue;
        };
        // InstanceNormalization → Reshape → Mul(γ) → Add(β).
        let Some(reshape) = m.consumers(v).find(|n| n.op_type == "Reshape") else {
            continue;
        };
        let Some(rv) = reshape.output.first() else {
            continue;
        };
        let Some(mul) = m.consumers(rv).find(|n| n.op_type == "Mul") else {
            continue;
        };
        let (Some(gamma), Some(mv)) = (init_input(mul), mul.output.first()) else {
            continue;
        };
        let Some(add) = m.consumers(mv).find(|n| n.op_type == "Add") else {
            continue;
        };
        let (Some(beta), Some(av)) = (init_input(add), add.output.first()) else {
            continue;
        };
        if let Some(module) = first_conv_module(m, av, prefix) {
            out.insert(module, (gamma, beta));
        }
    }
    out
}

/// The norm module named by the first Conv reachable from `value`.
fn first_conv_module(m: &OnnxModel, value: &str, prefix: &str) -> Option<String> {
    let mut frontier = vec![value.to_string()];
    for _ in 0..8 {
        let mut next = Vec::new();
        for v in &frontier {
            for n in m.consumers(v) {
                if n.op_type == "Conv" {
                    let w = n.input.get(1)?.strip_prefix(prefix)?;
                    let module = w.strip_suffix(".weight")?;
                    for (conv, norm) in [
                        ("in_layers.2", "in_layers.0"),
                        ("out_layers.3", "out_layers.0"),
                        ("qkv", "norm"),
                    ] {
                        if let Some(base) = module.strip_suffix(conv) {
                            return Some(format!("{base}{norm}"));
                        }
                    }
                    return (module == "out.2").then(|| "out.0".to_string());
                }
                next.extend(n.output.iter().cloned());
            }
        }
        frontier = next;
    }
    None
}
