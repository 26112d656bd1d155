//! One module of a diffusers folder (`text_encoder/`, `unet/`, `vae/`): its
//! `config.json` and its safetensors weights (one file or shards listed by an
//! index; F32, F16 or BF16), read by PyTorch parameter name, one tensor at a
//! time from the opened files (never a whole file in memory).

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::Path;

use half::{bf16, f16};
use serde_json::Value;

use crate::dtype::DType;
use crate::host::HostTensor;
use crate::loader::LoadError;
use crate::loader::file::ModelFile;
use crate::model::unet::{WeightKind, device_tensor};

/// Where one tensor's bytes are: (file index, dtype, shape, byte range).
struct Entry {
    file: usize,
    dtype: safetensors::Dtype,
    shape: Vec<usize>,
    offset: u64,
    bytes: u64,
}

/// Opens a file of a folder by relative path: `Ok(None)` when there is none.
/// Nothing is read until the loader asks for a range.
pub type FileGetter<'a> = dyn FnMut(&str) -> Result<Option<ModelFile>, LoadError> + 'a;

/// A module's config and its weight files, opened: each tensor is read from
/// its file when it is asked for, so the files are never held whole.
pub struct Component {
    /// The folder's name in the pipeline (`unet`, …), for messages.
    pub name: String,
    pub config: Value,
    files: RefCell<Vec<ModelFile>>,
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

/// The file getter over a folder on disk: `dir/f` opened, `Ok(None)` when it
/// is not a file there.
pub fn read_in(dir: &Path, f: &str) -> Result<Option<ModelFile>, LoadError> {
    ModelFile::open(&dir.join(f))
}

/// A getter's file read whole (a JSON or tokenizer file; at most
/// [`crate::loader::file::SMALL_FILE_LIMIT`] bytes), `Ok(None)` when absent.
pub fn read_small(get: &mut FileGetter, f: &str) -> Result<Option<Vec<u8>>, LoadError> {
    get(f)?.map(|mut m| m.read_small()).transpose()
}

impl Component {
    /// Reads `dir/config.json` and opens its weights.
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
    /// Only the config and the weight files' headers are read here.
    pub fn load(name: &str, place: &str, get: &mut FileGetter) -> Result<Component, LoadError> {
        let missing = |f: &str| LoadError::Io(format!("{place}: no {f}"));
        let config = read_small(get, "config.json")?.ok_or_else(|| missing("config.json"))?;
        let mut files = Vec::new();
        let mut index = None;
        for ix in INDEX {
            if let Some(b) = read_small(get, ix)? {
                index = Some(b);
                break;
            }
        }
        if let Some(ix) = index {
            for shard in crate::loader::safetensors::index_shards(&ix)? {
                if shard.contains(['/', '\\']) || shard == ".." {
                    return Err(LoadError::Corrupt(format!(
                        "{place}: the weight index names '{shard}', not a file of the folder"
                    )));
                }
                let f = get(&shard)?.ok_or_else(|| missing(&shard))?;
                files.push((shard, f));
            }
        } else {
            for f in SINGLE {
                if let Some(m) = get(f)? {
                    files.push((f.to_string(), m));
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
        Component::from_files(name, &config, files)
    }

    /// A module from bytes: `config.json` and `(file name, bytes)` per shard.
    pub fn from_memory(
        name: &str,
        config: &[u8],
        files: Vec<(String, Vec<u8>)>,
    ) -> Result<Component, LoadError> {
        let files = files
            .into_iter()
            .map(|(f, b)| {
                let m = ModelFile::from_bytes(&f, b);
                (f, m)
            })
            .collect();
        Component::from_files(name, config, files)
    }

    /// A module from `config.json` and its opened weight files: each file's
    /// header is read and checked (dtypes, shapes, offsets that tile the
    /// data, data within the file); the tensors stay in the files.
    pub fn from_files(
        name: &str,
        config: &[u8],
        files: Vec<(String, ModelFile)>,
    ) -> Result<Component, LoadError> {
        let config: Value = serde_json::from_slice(config)
            .map_err(|e| LoadError::Corrupt(format!("{name}/config.json: {e}")))?;
        let mut index = HashMap::new();
        let mut opened = Vec::new();
        for (i, (file, mut f)) in files.into_iter().enumerate() {
            let len = f.len();
            let what = format!("{name}/{file}");
            let short = || LoadError::Truncated {
                what: format!("{what} header length"),
                need: 8,
                len,
            };
            // A read failure stays an I/O error; only a short file is truncated.
            let first8: [u8; 8] = match f.read_at(0, 8) {
                Err(LoadError::Truncated { .. }) => return Err(short()),
                r => r?.try_into().map_err(|_| short())?,
            };
            let n = crate::loader::safetensors::header_len(&what, first8, len)?;
            let head = f.read_at(8, n)?;
            for (tname, info, offset, bytes) in
                crate::loader::safetensors::header_tensors(&what, &head, len)?
            {
                let e = Entry {
                    file: i,
                    dtype: info.dtype,
                    shape: info.shape,
                    offset,
                    bytes,
                };
                if index.insert(tname.clone(), e).is_some() {
                    return Err(LoadError::Corrupt(format!(
                        "{name}: tensor '{tname}' is in two weight files"
                    )));
                }
            }
            opened.push(f);
        }
        Ok(Component {
            name: name.into(),
            config,
            files: RefCell::new(opened),
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

    /// Whether `sources` (stacked in order) hold exactly the elements of a
    /// graph weight of `shape`, from the headers alone: checked for every
    /// weight before a graph is compiled, so sizes a config asks for are
    /// backed by tensors in the files before anything is allocated by them.
    pub fn check_sources(&self, sources: &[String], shape: &[usize]) -> Result<(), LoadError> {
        let mut held = 0usize;
        for t in sources {
            held += self.shape(t)?.iter().product::<usize>();
        }
        let want = shape
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .unwrap_or(usize::MAX);
        if held != want {
            return Err(LoadError::TensorShape {
                name: format!("{}/{}", self.name, sources.join("+")),
                got: sources
                    .iter()
                    .flat_map(|t| self.shape(t).map(<[usize]>::to_vec).unwrap_or_default())
                    .collect(),
                want: shape.to_vec(),
            });
        }
        Ok(())
    }

    fn missing(&self, tensor: &str) -> LoadError {
        LoadError::MissingTensor(format!("{}/{tensor}", self.name))
    }

    /// `tensor` widened to f32, with its stored shape.
    pub fn tensor_f32(&self, tensor: &str) -> Result<(Vec<usize>, Vec<f32>), LoadError> {
        let e = self.index.get(tensor).ok_or_else(|| self.missing(tensor))?;
        let b = self.files.borrow_mut()[e.file].read_at(e.offset, e.bytes)?;
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
