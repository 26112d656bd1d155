//! Merged adapters: a [`WeightSource`] that serves the base model with LoRA
//! adapters folded into their projections, `W' = W + Σ scale·(alpha/r)·B·A`,
//! in f32 or f16 (the base's own block format cannot hold the sum). Loading
//! a model through it gives the fastest inference with one fixed adapter mix
//! (no LoRA slots, no extra matmuls); the unmerged slots
//! ([`crate::llm::Llm::set_adapters`]) switch adapters without a reload.

use super::lora::{Adapter, Factor, Target, hf_to_gguf_rows, peft_name};
use crate::dtype::DType;
use crate::host::HostTensor;
use crate::loader::{LoadError, WeightSource};
use crate::model::LlamaConfig;
use crate::ops::rope::RopeMode;

pub struct MergedSource<'a> {
    pub inner: &'a mut dyn WeightSource,
    pub config: LlamaConfig,
    pub adapters: Vec<(Adapter, f32)>,
    /// F32 or F16.
    pub dtype: DType,
}

impl MergedSource<'_> {
    /// (layer, target) of a base weight name an adapter touches.
    fn target(&self, name: &str) -> Option<(usize, Target)> {
        let (l, _) = name.strip_prefix("blk.")?.split_once('.')?;
        let l: usize = l.parse().ok()?;
        let t = Target::ALL.into_iter().find(|t| t.gguf_weight(l) == name)?;
        self.adapters
            .iter()
            .any(|(a, _)| a.config.targets.contains(&t))
            .then_some((l, t))
    }
}

impl WeightSource for MergedSource<'_> {
    fn info(&self, name: &str) -> Result<(Vec<usize>, DType), LoadError> {
        let (shape, dtype) = self.inner.info(name)?;
        Ok(match self.target(name) {
            Some(_) => (shape, self.dtype),
            None => (shape, dtype),
        })
    }

    fn read(&mut self, name: &str) -> Result<HostTensor, LoadError> {
        let base = self.inner.read(name)?;
        let Some((layer, t)) = self.target(name) else {
            return Ok(base);
        };
        let mut w = base.to_f32()?;
        let (o, i) = (base.shape[0], base.shape[1]);
        let c = &self.config;
        let rows: Vec<usize> =
            if matches!(t, Target::Q | Target::K) && c.rope_mode == RopeMode::Normal {
                let heads = if t == Target::Q {
                    c.n_heads
                } else {
                    c.n_kv_heads
                };
                hf_to_gguf_rows(heads, c.head_dim)
            } else {
                (0..o).collect()
            };
        for (a, scale) in &self.adapters {
            if !a.config.targets.contains(&t) {
                continue;
            }
            let r = a.config.rank;
            let s = (*scale * a.config.scaling()) as f64;
            let (_, va) = &a.tensors[&peft_name(layer, t, Factor::A)];
            let (_, vb) = &a.tensors[&peft_name(layer, t, Factor::B)];
            for (gr, &hr) in rows.iter().enumerate() {
                let brow = &vb[hr * r..(hr + 1) * r];
                for (k, wv) in w[gr * i..(gr + 1) * i].iter_mut().enumerate() {
                    let d: f64 = (0..r).map(|j| brow[j] as f64 * va[j * i + k] as f64).sum();
                    *wv = (*wv as f64 + s * d) as f32;
                }
            }
        }
        Ok(HostTensor::from_f32(&base.shape, self.dtype, &w)?)
    }
}

/// Checks the adapters against the model and the dtype.
pub fn merged<'a>(
    inner: &'a mut dyn WeightSource,
    config: &LlamaConfig,
    adapters: Vec<(Adapter, f32)>,
    dtype: DType,
) -> Result<MergedSource<'a>, LoadError> {
    if !matches!(dtype, DType::F32 | DType::F16) {
        return Err(LoadError::Adapter(format!(
            "merged weights are f32 or f16, not {dtype}"
        )));
    }
    for (a, _) in &adapters {
        a.check(config)?;
    }
    Ok(MergedSource {
        inner,
        config: config.clone(),
        adapters,
        dtype,
    })
}
