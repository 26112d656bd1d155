//! The guided-diffusion `UNetModel` family's hyper-parameters: from a JSON
//! config (guided-diffusion's argument names) or inferred from an ONNX export's
//! initializers and the few graph constants that hold what tensor shapes do
//! not (attention head width, GroupNorm groups/eps, down-sampling blocks).

use serde_json::Value;

use crate::loader::LoadError;
use crate::loader::onnx::{NodeProto, OnnxModel};

/// EDM preconditioning of a consistency model (Karras et al.; Song et al.):
/// `c_skip = σd² / ((σ − σmin)² + σd²)`, `c_out = (σ − σmin)·σd / √(σ² + σd²)`,
/// `c_in = 1 / √(σ² + σd²)`, `c_noise = scale · ln σ`.
#[derive(Clone, Debug, PartialEq)]
pub struct Edm {
    pub sigma_min: f64,
    pub sigma_max: f64,
    pub sigma_data: f64,
    pub c_noise_scale: f64,
}

impl Default for Edm {
    fn default() -> Edm {
        Edm {
            sigma_min: 0.002,
            sigma_max: 80.0,
            sigma_data: 0.5,
            c_noise_scale: 250.0,
        }
    }
}

impl Edm {
    /// (c_in, c_skip, c_out, c_noise) for noise level `sigma`.
    pub fn scalings(&self, sigma: f64) -> [f64; 4] {
        let sd2 = self.sigma_data * self.sigma_data;
        let s = sigma - self.sigma_min;
        [
            1.0 / (sigma * sigma + sd2).sqrt(),
            sd2 / (s * s + sd2),
            s * self.sigma_data / (sigma * sigma + sd2).sqrt(),
            self.c_noise_scale * sigma.ln(),
        ]
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct UnetConfig {
    pub in_channels: usize,
    pub out_channels: usize,
    pub model_channels: usize,
    pub channel_mult: Vec<usize>,
    pub num_res_blocks: usize,
    /// Down-sampling factors (1, 2, 4, …) of the levels with attention.
    pub attention_ds: Vec<usize>,
    pub num_head_channels: usize,
    pub groups: usize,
    pub eps: f32,
    pub time_embed_dim: usize,
    pub timestep_max_period: f32,
    /// A label MLP over one scalar (`label_emb.0`, `label_emb.2`).
    pub label_mlp: bool,
    pub use_scale_shift_norm: bool,
    pub resblock_updown: bool,
    pub new_attention_order: bool,
    /// The image size the model was trained at (H, W).
    pub image_size: (usize, usize),
    pub edm: Edm,
    pub output_clip: Option<(f32, f32)>,
}

fn bad(what: String) -> LoadError {
    LoadError::UnsupportedModel(what)
}

impl UnetConfig {
    pub fn levels(&self) -> usize {
        self.channel_mult.len()
    }

    /// Heads of an attention block over `ch` channels.
    pub fn heads(&self, ch: usize) -> usize {
        ch / self.num_head_channels.max(1)
    }

    /// Checks what the builder supports; every refusal names the option.
    pub fn validate(&self) -> Result<(), LoadError> {
        let mc = self.model_channels;
        if mc == 0 || self.channel_mult.is_empty() || self.num_res_blocks == 0 {
            return Err(bad(
                "model_channels, channel_mult and num_res_blocks must be non-zero".into(),
            ));
        }
        if !self.resblock_updown {
            return Err(bad(
                "resblock_updown = false (conv/avg-pool resampling layers) is not supported yet"
                    .into(),
            ));
        }
        if !self.label_mlp {
            return Err(bad(
                "only the scalar label MLP (label_emb.0/.2) is supported as conditioning".into(),
            ));
        }
        for m in &self.channel_mult {
            let ch = mc * m;
            if !ch.is_multiple_of(self.groups) {
                return Err(bad(format!(
                    "{ch} channels do not split into {} groups",
                    self.groups
                )));
            }
            if !ch.is_multiple_of(self.num_head_channels) {
                return Err(bad(format!(
                    "{ch} channels are not whole heads of {}",
                    self.num_head_channels
                )));
            }
        }
        if self.num_head_channels > crate::ops::spatial_attention::MAX_HEAD_DIM {
            return Err(bad(format!(
                "num_head_channels {} exceeds {}",
                self.num_head_channels,
                crate::ops::spatial_attention::MAX_HEAD_DIM
            )));
        }
        Ok(())
    }

    /// From guided-diffusion's argument names (`tests/fixtures/terrain/*.json`).
    pub fn from_json(v: &Value) -> Result<UnetConfig, LoadError> {
        let key = |k: &str| v.get(k).ok_or_else(|| LoadError::MissingKey(k.into()));
        let us = |k: &str| -> Result<usize, LoadError> {
            key(k)?
                .as_u64()
                .map(|x| x as usize)
                .ok_or_else(|| LoadError::WrongType {
                    key: k.into(),
                    got: key(k).map(|x| x.to_string()).unwrap_or_default(),
                    want: "a non-negative integer",
                })
        };
        let list = |k: &str| -> Result<Vec<usize>, LoadError> {
            key(k)?
                .as_array()
                .and_then(|a| a.iter().map(|x| x.as_u64().map(|x| x as usize)).collect())
                .ok_or_else(|| LoadError::WrongType {
                    key: k.into(),
                    got: key(k).map(|x| x.to_string()).unwrap_or_default(),
                    want: "a list of integers",
                })
        };
        let flag = |k: &str, default: bool| v.get(k).and_then(Value::as_bool).unwrap_or(default);
        let num = |k: &str, default: f64| v.get(k).and_then(Value::as_f64).unwrap_or(default);
        let size = list("image_size").or_else(|_| us("image_size").map(|s| vec![s, s]))?;
        let mc = us("model_channels")?;
        let head = match v.get("num_head_channels").and_then(Value::as_i64) {
            Some(h) if h > 0 => h as usize,
            _ => {
                return Err(bad(
                    "num_heads without num_head_channels is not supported (give num_head_channels)"
                        .into(),
                ));
            }
        };
        let clip = v
            .get("output_clip")
            .and_then(Value::as_array)
            .and_then(|a| Some((a.first()?.as_f64()? as f32, a.get(1)?.as_f64()? as f32)));
        let c = UnetConfig {
            in_channels: us("in_channels")?,
            out_channels: us("out_channels")?,
            model_channels: mc,
            channel_mult: list("channel_mult")?,
            num_res_blocks: us("num_res_blocks")?,
            attention_ds: list("attention_resolutions")?,
            num_head_channels: head,
            groups: v
                .get("norm_num_groups")
                .and_then(Value::as_u64)
                .unwrap_or(32) as usize,
            eps: num("norm_eps", 1e-5) as f32,
            time_embed_dim: v
                .get("time_embed_dim")
                .and_then(Value::as_u64)
                .map_or(4 * mc, |x| x as usize),
            timestep_max_period: num("timestep_max_period", 10000.0) as f32,
            label_mlp: v.get("label_emb").and_then(Value::as_str) == Some("mlp"),
            use_scale_shift_norm: flag("use_scale_shift_norm", false),
            resblock_updown: flag("resblock_updown", false),
            new_attention_order: flag("use_new_attention_order", false),
            image_size: (
                *size.first().unwrap_or(&0),
                *size.get(1).or(size.first()).unwrap_or(&0),
            ),
            edm: Edm {
                sigma_min: num("sigma_min", 0.002),
                sigma_max: num("sigma_max", 80.0),
                sigma_data: num("sigma_data", 0.5),
                c_noise_scale: num("c_noise_scale", 250.0),
            },
            output_clip: clip,
        };
        c.validate()?;
        Ok(c)
    }

    /// Infers the config from an ONNX export of the family: shapes of the
    /// named initializers give the channels, blocks and attention levels;
    /// the graph gives the rest (the attention scale `d^-¼` that multiplies
    /// q → head width; InstanceNormalization's scale length and epsilon →
    /// groups and eps; AveragePool before a block's first conv → which
    /// blocks down-sample). Not read from the file, so assumed: res-block
    /// up/down-sampling (an export with conv resampling has no AveragePool
    /// and is refused as not forming the family), the split ("new order")
    /// QKV layout, max period 10000, the EDM constants of the terrain
    /// consistency models and an output clip to [-1, 1]; give a JSON config
    /// (`from_json`) for anything else.
    pub fn from_onnx(m: &OnnxModel, prefix: &str) -> Result<UnetConfig, LoadError> {
        let name = |s: &str| format!("{prefix}{s}");
        let shape = |s: &str| m.shape(&name(s));
        let has = |s: &str| m.initializer(&name(s)).is_some();
        let w0 = shape("input_blocks.0.0.weight")?;
        let [mc, in_ch, ..] = w0[..] else {
            return Err(LoadError::Corrupt(
                "input_blocks.0.0.weight is not 4-D".into(),
            ));
        };
        let out = shape("out.2.weight")?;
        let ted = shape("time_embed.0.weight")?[0];
        let n_in = (0..)
            .take_while(|i| has(&format!("input_blocks.{i}.0.in_layers.2.weight")) || *i == 0)
            .count();
        // Which input blocks down-sample: an AveragePool feeds their first conv.
        let down: Vec<usize> = (1..n_in)
            .filter(|i| {
                conv_node(m, &name(&format!("input_blocks.{i}.0.in_layers.2.weight")))
                    .is_some_and(|c| producer_op(m, &c.input[0]).as_deref() == Some("AveragePool"))
            })
            .collect();
        let levels = down.len() + 1;
        let nrb = (n_in - 1 - down.len()) / levels;
        let expected: Vec<usize> = (1..levels).map(|l| l * (nrb + 1)).collect();
        if nrb == 0 || !(n_in - 1 - down.len()).is_multiple_of(levels) || down != expected {
            return Err(bad(format!(
                "{n_in} input blocks with down-sampling at {down:?} do not form a guided-diffusion UNet"
            )));
        }
        let mut channel_mult = Vec::new();
        let mut attention_ds: Vec<usize> = Vec::new();
        for l in 0..levels {
            let first = 1 + l * (nrb + 1);
            let ch = shape(&format!("input_blocks.{first}.0.out_layers.3.weight"))?[0];
            if ch % mc != 0 {
                return Err(bad(format!(
                    "level {l} has {ch} channels, not a multiple of {mc}"
                )));
            }
            channel_mult.push(ch / mc);
            if has(&format!("input_blocks.{first}.1.qkv.weight")) {
                attention_ds.push(1 << l);
            }
        }
        // Head width from the attention scale the export multiplies q by.
        let mut head = None;
        if let Some(l) = attention_ds.first().map(|d| d.trailing_zeros() as usize) {
            let qkv = name(&format!("input_blocks.{}.1.qkv.weight", 1 + l * (nrb + 1)));
            head = attention_scale(m, &qkv).map(|s| (1.0 / (s as f64).powi(4)).round() as usize);
            if head.is_none() {
                return Err(bad(format!(
                    "cannot find the attention scale after {qkv}; give a config"
                )));
            }
        }
        let (groups, eps) = group_norm_params(m)?;
        let emb_out = shape("input_blocks.1.0.emb_layers.1.weight")?[0];
        let ch1 = shape("input_blocks.1.0.out_layers.3.weight")?[0];
        let c = UnetConfig {
            in_channels: in_ch,
            out_channels: out[0],
            model_channels: mc,
            channel_mult,
            num_res_blocks: nrb,
            attention_ds,
            num_head_channels: head.unwrap_or(mc),
            groups,
            eps,
            time_embed_dim: ted,
            timestep_max_period: 10000.0,
            label_mlp: has("label_emb.0.weight") && shape("label_emb.0.weight")?.get(1) == Some(&1),
            use_scale_shift_norm: emb_out == 2 * ch1,
            resblock_updown: true,
            new_attention_order: true,
            image_size: (0, 0),
            edm: Edm::default(),
            output_clip: Some((-1.0, 1.0)),
        };
        c.validate()?;
        Ok(c)
    }
}

/// The Conv node whose weight is initializer `w`.
pub(super) fn conv_node<'a>(m: &'a OnnxModel, w: &str) -> Option<&'a NodeProto> {
    m.consumers(w)
        .find(|n| n.op_type == "Conv" && n.input.get(1).map(String::as_str) == Some(w))
}

fn producer_op(m: &OnnxModel, value: &str) -> Option<String> {
    m.graph
        .node
        .iter()
        .find(|n| n.output.iter().any(|o| o == value))
        .map(|n| n.op_type.clone())
}

/// The scalar constant a Mul applies within a few nodes after the QKV conv.
fn attention_scale(m: &OnnxModel, qkv_weight: &str) -> Option<f32> {
    let conv = conv_node(m, qkv_weight)?;
    let mut frontier: Vec<String> = conv.output.clone();
    for _ in 0..4 {
        let mut next = Vec::new();
        for v in &frontier {
            for n in m.consumers(v) {
                if n.op_type == "Mul" {
                    for i in &n.input {
                        if let Some(t) = m.initializer(i)
                            && let Ok((_, vals)) = m.tensor_f32(&t.name)
                            && vals.len() == 1
                        {
                            return Some(vals[0]);
                        }
                    }
                }
                next.extend(n.output.iter().cloned());
            }
        }
        frontier = next;
    }
    None
}

/// GroupNorm as exported (InstanceNormalization over a [B, G, −1] view):
/// groups = length of its scale input, eps = its epsilon attribute.
fn group_norm_params(m: &OnnxModel) -> Result<(usize, f32), LoadError> {
    let node = m
        .graph
        .node
        .iter()
        .find(|n| n.op_type == "InstanceNormalization")
        .ok_or_else(|| bad("no GroupNorm (InstanceNormalization) in the graph".into()))?;
    let scale = node
        .input
        .get(1)
        .ok_or_else(|| LoadError::Corrupt("InstanceNormalization without a scale".into()))?;
    let groups = m.shape(scale)?.first().copied().unwrap_or(0);
    let eps = OnnxModel::attr_f(node, "epsilon").unwrap_or(1e-5);
    Ok((groups, eps))
}
