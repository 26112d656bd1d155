//! One module of a diffusers folder (`text_encoder/`, `unet/`, `vae/`): its
//! `config.json` and its safetensors weights (one file or shards listed by an
//! index; F32, F16 or BF16), read by PyTorch parameter name.

use std::collections::HashMap;
use std::path::Path;

use half::{bf16, f16};
use serde_json::Value;

use crate::dtype::DType;
use crate::host::HostTensor;
use crate::loader::LoadError;
use crate::model::unet::{WeightKind, device_tensor};

/// Where one tensor's bytes are: (file index, dtype, shape, byte range).
struct Entry {
    file: usize,
    dtype: safetensors::Dtype,
    shape: Vec<usize>,
    range: std::ops::Range<usize>,
}

/// Reads a file of a folder by relative path: `Ok(None)` when there is none.
pub type FileGetter<'a> = dyn FnMut(&str) -> Result<Option<Vec<u8>>, LoadError> + 'a;

/// A module's config and weights, in memory.
pub struct Component {
    /// The folder's name in the pipeline (`unet`, …), for messages.
    pub name: String,
    pub config: Value,
    files: Vec<Vec<u8>>,
    index: HashMap<String, Entry>,
}

/// Weight file names diffusers and transformers write, most preferred first.
const SINGLE: [&str; 4] = [
    "diffusion_pytorch_model.safetensors",
    "model.safetensors",
    "diffusion_pytorch_model.fp16.safetensors",
    "model.fp16.safetensors",
];
const INDEX: [&str; 2] = [
    "diffusion_pytorch_model.safetensors.index.json",
    "model.safetensors.index.json",
];

/// The file getter over a folder on disk: `dir/f`'s bytes, `Ok(None)` when
/// it is not a file there.
pub fn read_in(dir: &Path, f: &str) -> Result<Option<Vec<u8>>, LoadError> {
    let p = dir.join(f);
    if !p.is_file() {
        return Ok(None);
    }
    std::fs::read(&p)
        .map(Some)
        .map_err(|e| LoadError::Io(format!("{}: {e}", p.display())))
}

impl Component {
    /// Reads `dir/config.json` and its weights.
    pub fn open(dir: &Path) -> Result<Component, LoadError> {
        let name = dir.file_name().map_or_else(
            || dir.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        let mut get = |f: &str| read_in(dir, f);
        Component::load(&name, &dir.display().to_string(), &mut get)
    }

    /// A module from a file getter (`get("config.json")`, … relative to the
    /// module's folder; `Ok(None)`: no such file), so native folders and
    /// browser file sets load alike. `place` names the folder in messages.
    pub fn load(name: &str, place: &str, get: &mut FileGetter) -> Result<Component, LoadError> {
        let missing = |f: &str| LoadError::Io(format!("{place}: no {f}"));
        let config = get("config.json")?.ok_or_else(|| missing("config.json"))?;
        let mut files = Vec::new();
        let mut index = None;
        for ix in INDEX {
            if let Some(b) = get(ix)? {
                index = Some(b);
                break;
            }
        }
        if let Some(ix) = index {
            for shard in crate::loader::safetensors::index_shards(&ix)? {
                let bytes = get(&shard)?.ok_or_else(|| missing(&shard))?;
                files.push((shard, bytes));
            }
        } else {
            for f in SINGLE {
                if let Some(b) = get(f)? {
                    files.push((f.to_string(), b));
                    break;
                }
            }
            if files.is_empty() {
                return Err(LoadError::Io(format!(
                    "{place}: no weights (looked for {})",
                    SINGLE.join(", ")
                )));
            }
        }
        Component::from_memory(name, &config, files)
    }

    /// A module from bytes: `config.json` and `(file name, bytes)` per shard.
    pub fn from_memory(
        name: &str,
        config: &[u8],
        files: Vec<(String, Vec<u8>)>,
    ) -> Result<Component, LoadError> {
        let config: Value = serde_json::from_slice(config)
            .map_err(|e| LoadError::Corrupt(format!("{name}/config.json: {e}")))?;
        let mut index = HashMap::new();
        let mut data = Vec::new();
        for (i, (file, bytes)) in files.into_iter().enumerate() {
            let len = bytes.len() as u64;
            let first8: [u8; 8] =
                bytes
                    .get(..8)
                    .and_then(|b| b.try_into().ok())
                    .ok_or(LoadError::Truncated {
                        what: format!("{name}/{file} header length"),
                        need: 8,
                        len,
                    })?;
            let n = crate::loader::safetensors::header_len(&file, first8, len)? as usize;
            let st = safetensors::SafeTensors::deserialize(&bytes)
                .map_err(|e| LoadError::Corrupt(format!("{name}/{file}: {e}")))?;
            let base = 8 + n;
            for (tname, view) in st.tensors() {
                let start = view.data().as_ptr() as usize - bytes.as_ptr() as usize;
                debug_assert!(start >= base);
                index.insert(
                    tname,
                    Entry {
                        file: i,
                        dtype: view.dtype(),
                        shape: view.shape().to_vec(),
                        range: start..start + view.data().len(),
                    },
                );
            }
            data.push(bytes);
        }
        Ok(Component {
            name: name.into(),
            config,
            files: data,
            index,
        })
    }

    pub fn has(&self, tensor: &str) -> bool {
        self.index.contains_key(tensor)
    }

    /// The stored shape of `tensor`.
    pub fn shape(&self, tensor: &str) -> Result<&[usize], LoadError> {
        self.index
            .get(tensor)
            .map(|e| &e.shape[..])
            .ok_or_else(|| self.missing(tensor))
    }

    fn missing(&self, tensor: &str) -> LoadError {
        LoadError::MissingTensor(format!("{}/{tensor}", self.name))
    }

    /// `tensor` widened to f32, with its stored shape.
    pub fn tensor_f32(&self, tensor: &str) -> Result<(Vec<usize>, Vec<f32>), LoadError> {
        let e = self.index.get(tensor).ok_or_else(|| self.missing(tensor))?;
        let b = &self.files[e.file][e.range.clone()];
        let v: Vec<f32> = match e.dtype {
            safetensors::Dtype::F32 => b
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            safetensors::Dtype::F16 => b
                .chunks_exact(2)
                .map(|c| f16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            safetensors::Dtype::BF16 => b
                .chunks_exact(2)
                .map(|c| bf16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            other => {
                return Err(LoadError::Corrupt(format!(
                    "{}/{tensor} is {other:?}; Kiln reads F32, F16 and BF16",
                    self.name
                )));
            }
        };
        Ok((e.shape.clone(), v))
    }

    /// `tensor` in the graph's layout (see [`device_tensor`]).
    pub fn read(
        &self,
        tensor: &str,
        kind: WeightKind,
        shape: &[usize],
        dtype: DType,
    ) -> Result<HostTensor, LoadError> {
        let (got, v) = self.tensor_f32(tensor)?;
        device_tensor(
            &format!("{}/{tensor}", self.name),
            &got,
            v,
            kind,
            shape,
            dtype,
        )
    }

    /// Several `[n_i, k]` Linear matrices (or vectors) stacked row-wise in
    /// order (q, k, v into one projection), each checked against `rows[i]`.
    pub fn read_stacked(
        &self,
        tensors: &[String],
        kind: WeightKind,
        shape: &[usize],
        dtype: DType,
    ) -> Result<HostTensor, LoadError> {
        let mut all = Vec::new();
        let mut rows = 0;
        for t in tensors {
            let (got, v) = self.tensor_f32(t)?;
            rows += got.first().copied().unwrap_or(0);
            all.extend(v);
        }
        let mut got = shape.to_vec();
        if let Some(r) = got.first_mut() {
            *r = rows;
        }
        if kind == WeightKind::Conv {
            // Stacked 1×1 convs ([n, k, 1, 1]) are Linear matrices.
            return device_tensor(
                &tensors.join("+"),
                &got,
                all,
                WeightKind::Linear,
                shape,
                dtype,
            );
        }
        device_tensor(&tensors.join("+"), &got, all, kind, shape, dtype)
    }
}
