//! LoRA adapters: which projections, rank and scaling ([`LoraConfig`]), the
//! factors themselves in PEFT's naming and layout ([`Adapter`]), PEFT's
//! default initialisation, and PEFT's file format (`adapter_config.json` +
//! `adapter_model.safetensors`), read and written unchanged.
//!
//! For a targeted projection `W [out, in]`: `y = x·Wᵀ + s·(x·Aᵀ)·Bᵀ` with
//! `A [r, in]`, `B [out, r]`, `s = alpha / r` (rsLoRA: `alpha / sqrt(r)`).
//! PEFT names: `base_model.model.model.layers.{i}.self_attn.{q,k,v,o}_proj.
//! lora_{A,B}.weight` and `….mlp.{gate,up,down}_proj.lora_{A,B}.weight`.
//! Tensors are kept here in Hugging Face's row order; GGUF Llama files
//! store Q/K rows permuted for interleaved RoPE, and [`hf_to_gguf_rows`]
//! maps `B` of q/k between the two (the graph builder applies it).

use std::collections::BTreeMap;

use crate::loader::LoadError;
use crate::model::LlamaConfig;
use crate::rng::Rng;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Target {
    Q,
    K,
    V,
    O,
    Gate,
    Up,
    Down,
}

impl Target {
    pub const ALL: [Target; 7] = [
        Target::Q,
        Target::K,
        Target::V,
        Target::O,
        Target::Gate,
        Target::Up,
        Target::Down,
    ];

    /// The PEFT / Hugging Face module name (`q_proj`, …).
    pub fn module(self) -> &'static str {
        match self {
            Target::Q => "q_proj",
            Target::K => "k_proj",
            Target::V => "v_proj",
            Target::O => "o_proj",
            Target::Gate => "gate_proj",
            Target::Up => "up_proj",
            Target::Down => "down_proj",
        }
    }

    /// The GGUF name of the projection's weight in block `l`: `blk.{l}.attn_q.weight`, ….
    pub fn gguf_weight(self, l: usize) -> String {
        let f = match self {
            Target::Q => "attn_q",
            Target::K => "attn_k",
            Target::V => "attn_v",
            Target::O => "attn_output",
            Target::Gate => "ffn_gate",
            Target::Up => "ffn_up",
            Target::Down => "ffn_down",
        };
        format!("blk.{l}.{f}.weight")
    }

    fn block(self) -> &'static str {
        match self {
            Target::Q | Target::K | Target::V | Target::O => "self_attn",
            _ => "mlp",
        }
    }

    /// Accepts `q`, `q_proj`, `gate`, `gate_proj`, ….
    pub fn parse(s: &str) -> Result<Target, LoadError> {
        let s = s.trim();
        Target::ALL
            .into_iter()
            .find(|t| t.module() == s || t.module().trim_end_matches("_proj") == s)
            .ok_or_else(|| {
                LoadError::Adapter(format!(
                    "unknown LoRA target '{s}' (q, k, v, o, gate, up, down)"
                ))
            })
    }

    /// `(in, out)` features of this projection.
    pub fn dims(self, c: &LlamaConfig) -> (usize, usize) {
        let (q, kv) = (c.n_heads * c.head_dim, c.n_kv_heads * c.head_dim);
        match self {
            Target::Q => (c.d_model, q),
            Target::K | Target::V => (c.d_model, kv),
            Target::O => (q, c.d_model),
            Target::Gate | Target::Up => (c.d_model, c.ffn_dim),
            Target::Down => (c.ffn_dim, c.d_model),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct LoraConfig {
    pub rank: usize,
    pub alpha: f32,
    pub targets: Vec<Target>,
    pub rslora: bool,
    /// Dropout on the input of A while training (PEFT's `lora_dropout`).
    pub dropout: f32,
}

impl Default for LoraConfig {
    fn default() -> Self {
        LoraConfig {
            rank: 8,
            alpha: 16.0,
            targets: Target::ALL.to_vec(),
            rslora: false,
            dropout: 0.0,
        }
    }
}

impl LoraConfig {
    pub fn scaling(&self) -> f32 {
        if self.rslora {
            self.alpha / (self.rank as f32).sqrt()
        } else {
            self.alpha / self.rank as f32
        }
    }

    /// Parses `q,k,v,o,gate,up,down` (or `all`).
    pub fn parse_targets(s: &str) -> Result<Vec<Target>, LoadError> {
        if s.trim() == "all" {
            return Ok(Target::ALL.to_vec());
        }
        let mut t: Vec<Target> = s.split(',').map(Target::parse).collect::<Result<_, _>>()?;
        t.sort();
        t.dedup();
        Ok(t)
    }
}

/// One factor of one projection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Factor {
    A,
    B,
}

/// The PEFT tensor name of a factor.
pub fn peft_name(layer: usize, target: Target, f: Factor) -> String {
    let ab = match f {
        Factor::A => "A",
        Factor::B => "B",
    };
    format!(
        "base_model.model.model.layers.{layer}.{}.{}.lora_{ab}.weight",
        target.block(),
        target.module()
    )
}

/// Factors by PEFT name: (shape, f32 values in HF row order).
pub type Factors = BTreeMap<String, (Vec<usize>, Vec<f32>)>;

/// A LoRA adapter: its config and every factor (PEFT names, HF row order, f32).
#[derive(Clone, Debug, PartialEq)]
pub struct Adapter {
    pub config: LoraConfig,
    pub tensors: Factors,
}

impl Adapter {
    /// The shape of each factor for a model: A `[r, in]`, B `[out, r]`.
    pub fn shapes(cfg: &LoraConfig, model: &LlamaConfig) -> Vec<(String, Vec<usize>)> {
        let mut out = Vec::new();
        for l in 0..model.n_layers {
            for &t in &cfg.targets {
                let (i, o) = t.dims(model);
                out.push((peft_name(l, t, Factor::A), vec![cfg.rank, i]));
                out.push((peft_name(l, t, Factor::B), vec![o, cfg.rank]));
            }
        }
        out
    }

    /// PEFT's default init: A ~ U(−1/√in, 1/√in) (Kaiming-uniform with
    /// a = √5), B = 0. Seeded with Kiln's RNG (PEFT's torch stream is not
    /// reproducible outside torch; start from a saved adapter for that).
    pub fn init(cfg: &LoraConfig, model: &LlamaConfig, seed: u64) -> Result<Adapter, LoadError> {
        if cfg.rank == 0 || cfg.targets.is_empty() {
            return Err(LoadError::Adapter(
                "rank and targets must be non-empty".into(),
            ));
        }
        let mut rng = Rng::new(seed);
        let mut tensors = BTreeMap::new();
        for (name, shape) in Adapter::shapes(cfg, model) {
            let n: usize = shape.iter().product();
            let v = if name.contains("lora_A") {
                let bound = 1.0 / (shape[1] as f32).sqrt();
                (0..n).map(|_| rng.range(-bound, bound)).collect()
            } else {
                vec![0.0; n]
            };
            tensors.insert(name, (shape, v));
        }
        Ok(Adapter {
            config: cfg.clone(),
            tensors,
        })
    }

    /// Checks that the adapter has every factor of `model` at the right shape.
    pub fn check(&self, model: &LlamaConfig) -> Result<(), LoadError> {
        let want = Adapter::shapes(&self.config, model);
        for (name, shape) in &want {
            match self.tensors.get(name) {
                Some((s, v)) if s == shape && v.len() == shape.iter().product::<usize>() => {}
                Some((s, _)) => {
                    return Err(LoadError::Adapter(format!(
                        "{name} is {s:?}, the model needs {shape:?}"
                    )));
                }
                None => return Err(LoadError::Adapter(format!("{name} is missing"))),
            }
        }
        if let Some(extra) = self
            .tensors
            .keys()
            .find(|k| !want.iter().any(|(n, _)| n == *k))
        {
            return Err(LoadError::Adapter(format!(
                "{extra} does not belong to this model / config"
            )));
        }
        Ok(())
    }

    /// Reads PEFT files: `adapter_config.json` text and
    /// `adapter_model.safetensors` bytes (f32, f16 or bf16 tensors).
    pub fn from_peft(config_json: &str, weights: &[u8]) -> Result<Adapter, LoadError> {
        let bad = |m: String| LoadError::Adapter(m);
        let j: serde_json::Value = serde_json::from_str(config_json)
            .map_err(|e| bad(format!("adapter_config.json: {e}")))?;
        if j.get("peft_type").and_then(|v| v.as_str()) != Some("LORA") {
            return Err(bad("adapter_config.json: peft_type is not LORA".into()));
        }
        for (key, ok) in [("use_dora", false), ("fan_in_fan_out", false)] {
            if j.get(key).and_then(|v| v.as_bool()).unwrap_or(ok) != ok {
                return Err(bad(format!("{key} = true is not supported")));
            }
        }
        let pattern_used = ["rank_pattern", "alpha_pattern"].iter().any(|k| {
            j.get(*k)
                .and_then(|v| v.as_object())
                .is_some_and(|o| !o.is_empty())
        });
        if pattern_used {
            return Err(bad(
                "per-module rank_pattern / alpha_pattern is not supported".into(),
            ));
        }
        let rank = j
            .get("r")
            .and_then(|v| v.as_u64())
            .ok_or_else(|| bad("no r".into()))? as usize;
        let alpha = j
            .get("lora_alpha")
            .and_then(|v| v.as_f64())
            .ok_or_else(|| bad("no lora_alpha".into()))? as f32;
        let rslora = j
            .get("use_rslora")
            .and_then(|v| v.as_bool())
            .unwrap_or(false);
        let dropout = j
            .get("lora_dropout")
            .and_then(|v| v.as_f64())
            .unwrap_or(0.0) as f32;
        let targets = match j.get("target_modules") {
            Some(serde_json::Value::Array(a)) => a
                .iter()
                .map(|v| Target::parse(v.as_str().unwrap_or("?")))
                .collect::<Result<Vec<_>, _>>()?,
            Some(serde_json::Value::String(s)) => LoraConfig::parse_targets(s)?,
            _ => return Err(bad("target_modules must be a list".into())),
        };
        let mut targets = targets;
        targets.sort();
        targets.dedup();
        let st = safetensors::SafeTensors::deserialize(weights)
            .map_err(|e| bad(format!("adapter_model.safetensors: {e}")))?;
        let mut tensors = BTreeMap::new();
        for (name, view) in st.tensors() {
            // PEFT saves without the adapter name; some tools keep ".default".
            let name = name.replace(".default.weight", ".weight");
            let v = decode(&name, &view)?;
            tensors.insert(name, (view.shape().to_vec(), v));
        }
        Ok(Adapter {
            config: LoraConfig {
                rank,
                alpha,
                targets,
                rslora,
                dropout,
            },
            tensors,
        })
    }

    /// PEFT files: (`adapter_config.json` text, `adapter_model.safetensors` bytes, f32).
    pub fn to_peft(&self, base_model: &str) -> Result<(String, Vec<u8>), LoadError> {
        let c = &self.config;
        let mut targets: Vec<&str> = c.targets.iter().map(|t| t.module()).collect();
        targets.sort();
        let config = serde_json::json!({
            "peft_type": "LORA",
            "task_type": "CAUSAL_LM",
            "base_model_name_or_path": base_model,
            "r": c.rank,
            "lora_alpha": c.alpha,
            "lora_dropout": c.dropout,
            "use_rslora": c.rslora,
            "target_modules": targets,
            "bias": "none",
            "fan_in_fan_out": false,
            "init_lora_weights": true,
            "inference_mode": true,
            "use_dora": false,
            "modules_to_save": null,
            "rank_pattern": {},
            "alpha_pattern": {},
            "revision": null,
            "peft_version": "0.21.0",
            "library": "kiln",
        });
        let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = self
            .tensors
            .iter()
            .map(|(n, (s, v))| (n.clone(), s.clone(), bytemuck::cast_slice(v).to_vec()))
            .collect();
        let views = bytes
            .iter()
            .map(|(n, s, b)| {
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b)
                    .map(|v| (n.clone(), v))
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| LoadError::Adapter(e.to_string()))?;
        let mut meta = std::collections::HashMap::new();
        meta.insert("format".to_string(), "pt".to_string());
        let data = safetensors::serialize(views, Some(meta))
            .map_err(|e| LoadError::Adapter(e.to_string()))?;
        let text =
            serde_json::to_string_pretty(&config).map_err(|e| LoadError::Adapter(e.to_string()))?;
        Ok((text, data))
    }

    /// Reads a PEFT adapter folder.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn load_dir(dir: &std::path::Path) -> Result<Adapter, LoadError> {
        let config = std::fs::read_to_string(dir.join("adapter_config.json"))?;
        let weights = std::fs::read(dir.join("adapter_model.safetensors"))?;
        Adapter::from_peft(&config, &weights)
    }

    /// Writes a PEFT adapter folder; each file is written to a temporary
    /// name and renamed, so an interrupted save never leaves a torn file.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn save_dir(&self, dir: &std::path::Path, base_model: &str) -> Result<(), LoadError> {
        let (config, weights) = self.to_peft(base_model)?;
        std::fs::create_dir_all(dir)?;
        write_atomic(&dir.join("adapter_model.safetensors"), &weights)?;
        write_atomic(&dir.join("adapter_config.json"), config.as_bytes())?;
        Ok(())
    }
}

/// Writes `path` via a temporary file in the same folder and a rename.
#[cfg(not(target_arch = "wasm32"))]
pub fn write_atomic(path: &std::path::Path, data: &[u8]) -> Result<(), LoadError> {
    use std::io::Write;
    let tmp = path.with_extension("kiln-tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(data)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

fn decode(name: &str, view: &safetensors::tensor::TensorView) -> Result<Vec<f32>, LoadError> {
    let b = view.data();
    let halves = |f: fn(u16) -> f32| -> Vec<f32> {
        b.chunks_exact(2)
            .map(|c| f(u16::from_le_bytes([c[0], c[1]])))
            .collect()
    };
    Ok(match view.dtype() {
        safetensors::Dtype::F32 => b
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        safetensors::Dtype::F16 => halves(|h| half::f16::from_bits(h).to_f32()),
        safetensors::Dtype::BF16 => halves(|h| half::bf16::from_bits(h).to_f32()),
        d => {
            return Err(LoadError::Adapter(format!(
                "{name}: dtype {d:?} (f32, f16 or bf16 expected)"
            )));
        }
    })
}

/// Row permutation of llama.cpp's GGUF conversion for Q/K projections
/// (interleaved RoPE): GGUF row `h·hd + 2i + j` is HF row `h·hd + j·hd/2 + i`.
/// Returns, for each GGUF row, its HF row.
pub fn hf_to_gguf_rows(n_heads: usize, head_dim: usize) -> Vec<usize> {
    let half = head_dim / 2;
    (0..n_heads * head_dim)
        .map(|r| {
            let (h, w) = (r / head_dim, r % head_dim);
            h * head_dim + (w % 2) * half + w / 2
        })
        .collect()
}
