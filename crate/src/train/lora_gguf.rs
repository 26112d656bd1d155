//! llama.cpp's GGUF LoRA adapters (`general.type = adapter`, `adapter.type =
//! lora`, written by llama.cpp's `convert_lora_to_gguf.py`): tensors
//! `<base tensor>.lora_a` `[r, in]` and `.lora_b` `[out, r]` (row-major; ggml's
//! ne reversed), `adapter.lora.alpha` (0: scale 1, else alpha / r), in F32,
//! F16, BF16 or Q8_0. Read into an [`Adapter`] in PEFT's layout: the Q/K `B`
//! rows of interleaved-RoPE (llama) files are mapped back to Hugging Face's
//! order, exactly as the base model's Q/K rows were permuted on conversion.

use std::io::{Read, Seek};

use super::lora::{Adapter, Factor, Factors, LoraConfig, Target, hf_to_gguf_rows, peft_name};
use crate::loader::LoadError;
use crate::loader::gguf::GgufFile;
use crate::model::LlamaConfig;
use crate::ops::rope::RopeMode;

/// Reads a llama.cpp LoRA GGUF for `model` (its architecture and shapes).
pub fn read<R: Read + Seek>(
    g: &GgufFile,
    r: &mut R,
    model: &LlamaConfig,
) -> Result<Adapter, LoadError> {
    let bad = |m: String| LoadError::Adapter(m);
    if g.get_str("general.type").ok() != Some("adapter")
        || g.get_str("adapter.type").ok() != Some("lora")
    {
        return Err(bad(
            "not a LoRA adapter GGUF (general.type = adapter, adapter.type = lora)".into(),
        ));
    }
    let arch = g.get_str("general.architecture")?;
    if arch != model.arch {
        return Err(bad(format!(
            "the adapter is for '{arch}', the model is '{}'",
            model.arch
        )));
    }
    let alpha = match g.get("adapter.lora.alpha") {
        Some(_) => g.get_f32("adapter.lora.alpha")?,
        None => 0.0,
    };
    let mut rank = 0;
    let mut targets = Vec::new();
    let mut tensors = Factors::new();
    for l in 0..model.n_layers {
        for t in Target::ALL {
            let base = t.gguf_weight(l);
            let (Ok(a), Ok(b)) = (
                g.tensor(&format!("{base}.lora_a")),
                g.tensor(&format!("{base}.lora_b")),
            ) else {
                continue;
            };
            let (i, o) = t.dims(model);
            let r_ = a.shape[0];
            if a.shape != [r_, i] || b.shape != [o, r_] || r_ == 0 {
                return Err(bad(format!(
                    "{base}: lora_a {:?} / lora_b {:?} do not fit the model's [{o}, {i}]",
                    a.shape, b.shape
                )));
            }
            if rank != 0 && r_ != rank {
                return Err(bad(format!(
                    "{base}: rank {r_} differs from {rank} (one rank per adapter)"
                )));
            }
            rank = r_;
            if !targets.contains(&t) {
                targets.push(t);
            }
            let va = g.read_tensor(r, a)?.to_f32()?;
            let mut vb = g.read_tensor(r, b)?.to_f32()?;
            if matches!(t, Target::Q | Target::K) && model.rope_mode == RopeMode::Normal {
                // GGUF row gr holds HF row rows[gr].
                let heads = if t == Target::Q {
                    model.n_heads
                } else {
                    model.n_kv_heads
                };
                let rows = hf_to_gguf_rows(heads, model.head_dim);
                let mut hf = vec![0f32; vb.len()];
                for (gr, &hr) in rows.iter().enumerate() {
                    hf[hr * r_..(hr + 1) * r_].copy_from_slice(&vb[gr * r_..(gr + 1) * r_]);
                }
                vb = hf;
            }
            tensors.insert(peft_name(l, t, Factor::A), (vec![r_, i], va));
            tensors.insert(peft_name(l, t, Factor::B), (vec![o, r_], vb));
        }
    }
    if rank == 0 {
        return Err(bad(
            "the adapter has no lora_a/lora_b pair this model has".into()
        ));
    }
    targets.sort();
    let a = Adapter {
        config: LoraConfig {
            rank,
            // alpha 0 means "scale 1" in llama.cpp: alpha = rank gives that.
            alpha: if alpha == 0.0 { rank as f32 } else { alpha },
            targets,
            rslora: false,
            dropout: 0.0,
        },
        tensors,
    };
    a.check(model)?;
    Ok(a)
}

/// Opens a llama.cpp LoRA GGUF file (native).
#[cfg(not(target_arch = "wasm32"))]
pub fn open(path: &std::path::Path, model: &LlamaConfig) -> Result<Adapter, LoadError> {
    let (g, mut f) = GgufFile::open(path)?;
    read(&g, &mut f, model)
}
