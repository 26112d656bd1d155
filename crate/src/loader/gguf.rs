//! GGUF v2/v3 reader: header, metadata, tensor infos, alignment.
//!
//! Layout (little-endian): `"GGUF"`, version u32, tensor count u64, metadata
//! count u64; metadata entries (key string, type u32, value); tensor infos
//! (name, n_dims u32, dims u64 × n_dims innermost first, ggml type u32, data
//! offset u64); padding to `general.alignment` (default 32); tensor data.
//! Strings are a u64 length + UTF-8 bytes. Every length and count is checked
//! against the bytes left in the file before anything is allocated, so a
//! corrupt header cannot request a huge allocation.
//!
//! Shapes are reported row-major (GGUF's innermost-first dims reversed), so a
//! GGUF `[k, n]` matrix is a Kiln `[n, k]` weight.

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};

use super::LoadError;
use crate::dtype::DType;
use crate::host::HostTensor;

#[derive(Clone, Debug, PartialEq)]
pub enum MetaValue {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    Str(String),
    Array(Vec<MetaValue>),
    U64(u64),
    I64(i64),
    F64(f64),
}

impl MetaValue {
    fn type_name(&self) -> String {
        match self {
            MetaValue::Array(v) => format!(
                "an array of {}",
                v.first().map_or("nothing".into(), |x| x.type_name())
            ),
            other => format!("{other:?}")
                .split('(')
                .next()
                .unwrap_or("?")
                .to_lowercase(),
        }
    }

    /// Any integer type, if it is a non-negative value that fits u64.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            MetaValue::U8(v) => Some(v as u64),
            MetaValue::U16(v) => Some(v as u64),
            MetaValue::U32(v) => Some(v as u64),
            MetaValue::U64(v) => Some(v),
            MetaValue::I8(v) => u64::try_from(v).ok(),
            MetaValue::I16(v) => u64::try_from(v).ok(),
            MetaValue::I32(v) => u64::try_from(v).ok(),
            MetaValue::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }

    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            MetaValue::I8(v) => Some(v as i64),
            MetaValue::I16(v) => Some(v as i64),
            MetaValue::I32(v) => Some(v as i64),
            MetaValue::I64(v) => Some(v),
            _ => self.as_u64().and_then(|v| i64::try_from(v).ok()),
        }
    }

    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            MetaValue::F32(v) => Some(v as f64),
            MetaValue::F64(v) => Some(v),
            _ => self.as_i64().map(|v| v as f64),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct TensorInfo {
    pub name: String,
    /// Row-major shape (GGUF dims reversed).
    pub shape: Vec<usize>,
    pub dtype: DType,
    /// Absolute offset of the data in the file.
    pub offset: u64,
    pub bytes: u64,
}

#[derive(Clone, Debug)]
pub struct GgufFile {
    pub version: u32,
    pub metadata: BTreeMap<String, MetaValue>,
    pub tensors: Vec<TensorInfo>,
    pub alignment: u64,
    pub data_offset: u64,
    pub file_len: u64,
}

/// ggml type names, for error messages about types Kiln does not read.
fn ggml_type_name(id: u32) -> &'static str {
    const NAMES: [&str; 31] = [
        "F32", "F16", "Q4_0", "Q4_1", "Q4_2", "Q4_3", "Q5_0", "Q5_1", "Q8_0", "Q8_1", "Q2_K",
        "Q3_K", "Q4_K", "Q5_K", "Q6_K", "Q8_K", "IQ2_XXS", "IQ2_XS", "IQ3_XXS", "IQ1_S", "IQ4_NL",
        "IQ3_S", "IQ2_S", "IQ4_XS", "I8", "I16", "I32", "I64", "F64", "IQ1_M", "BF16",
    ];
    NAMES.get(id as usize).copied().unwrap_or("unknown")
}

/// A reader that knows how many bytes the file has left.
struct Cursor<'a, R: Read> {
    r: &'a mut R,
    pos: u64,
    len: u64,
}

impl<R: Read> Cursor<'_, R> {
    fn need(&self, n: u64, what: &str) -> Result<(), LoadError> {
        match self.pos.checked_add(n) {
            Some(end) if end <= self.len => Ok(()),
            _ => Err(LoadError::Truncated {
                what: what.into(),
                need: self.pos.saturating_add(n),
                len: self.len,
            }),
        }
    }

    fn bytes<const N: usize>(&mut self, what: &str) -> Result<[u8; N], LoadError> {
        self.need(N as u64, what)?;
        let mut b = [0u8; N];
        self.r.read_exact(&mut b).map_err(|e| match e.kind() {
            std::io::ErrorKind::UnexpectedEof => LoadError::Truncated {
                what: what.into(),
                need: self.pos + N as u64,
                len: self.pos,
            },
            _ => e.into(),
        })?;
        self.pos += N as u64;
        Ok(b)
    }

    fn u32(&mut self, what: &str) -> Result<u32, LoadError> {
        Ok(u32::from_le_bytes(self.bytes(what)?))
    }

    fn u64(&mut self, what: &str) -> Result<u64, LoadError> {
        Ok(u64::from_le_bytes(self.bytes(what)?))
    }

    fn string(&mut self, what: &str) -> Result<String, LoadError> {
        let n = self.u64(what)?;
        self.need(n, what)?;
        let mut buf = vec![0u8; n as usize];
        self.r.read_exact(&mut buf)?;
        self.pos += n;
        String::from_utf8(buf).map_err(|_| LoadError::Corrupt(format!("{what} is not UTF-8")))
    }

    fn value(&mut self, ty: u32, what: &str, depth: u32) -> Result<MetaValue, LoadError> {
        Ok(match ty {
            0 => MetaValue::U8(self.bytes::<1>(what)?[0]),
            1 => MetaValue::I8(self.bytes::<1>(what)?[0] as i8),
            2 => MetaValue::U16(u16::from_le_bytes(self.bytes(what)?)),
            3 => MetaValue::I16(i16::from_le_bytes(self.bytes(what)?)),
            4 => MetaValue::U32(self.u32(what)?),
            5 => MetaValue::I32(i32::from_le_bytes(self.bytes(what)?)),
            6 => MetaValue::F32(f32::from_le_bytes(self.bytes(what)?)),
            7 => match self.bytes::<1>(what)?[0] {
                0 => MetaValue::Bool(false),
                1 => MetaValue::Bool(true),
                b => return Err(LoadError::Corrupt(format!("{what}: bool byte {b}"))),
            },
            8 => MetaValue::Str(self.string(what)?),
            9 if depth == 0 => {
                let ety = self.u32(what)?;
                let n = self.u64(what)?;
                // Every element takes at least one byte: bound the count by the file.
                self.need(n, what)?;
                let mut v = Vec::with_capacity(n.min(1 << 20) as usize);
                for _ in 0..n {
                    v.push(self.value(ety, what, depth + 1)?);
                }
                MetaValue::Array(v)
            }
            10 => MetaValue::U64(self.u64(what)?),
            11 => MetaValue::I64(i64::from_le_bytes(self.bytes(what)?)),
            12 => MetaValue::F64(f64::from_le_bytes(self.bytes(what)?)),
            _ => {
                return Err(LoadError::Corrupt(format!(
                    "{what}: unknown metadata type {ty}"
                )));
            }
        })
    }
}

impl GgufFile {
    /// Opens and parses a GGUF file; returns the parsed header and the open file.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn open(path: &std::path::Path) -> Result<(GgufFile, std::fs::File), LoadError> {
        let mut f = std::fs::File::open(path)
            .map_err(|e| LoadError::Io(format!("{}: {e}", path.display())))?;
        let len = f.metadata()?.len();
        let header = {
            let mut br = std::io::BufReader::with_capacity(1 << 20, &mut f);
            GgufFile::parse(&mut br, len)?
        };
        Ok((header, f))
    }

    /// Parses the header from `r` positioned at the start of a file of
    /// `file_len` bytes. Reads nothing past the tensor infos.
    pub fn parse(r: &mut impl Read, file_len: u64) -> Result<GgufFile, LoadError> {
        let mut c = Cursor {
            r,
            pos: 0,
            len: file_len,
        };
        let magic = c.bytes::<4>("magic")?;
        if &magic != b"GGUF" {
            return Err(LoadError::BadMagic(magic));
        }
        let version = c.u32("version")?;
        if !(2..=3).contains(&version) {
            return Err(LoadError::Version(version));
        }
        let n_tensors = c.u64("tensor count")?;
        let n_kv = c.u64("metadata count")?;
        // Each entry takes well over 8 bytes: bound counts by the file size.
        c.need(n_kv.saturating_mul(8), "metadata")?;
        c.need(n_tensors.saturating_mul(8), "tensor infos")?;
        let mut metadata = BTreeMap::new();
        for i in 0..n_kv {
            let key = c.string(&format!("metadata key #{i}"))?;
            let ty = c.u32(&key)?;
            let v = c.value(ty, &key, 0)?;
            if metadata.insert(key.clone(), v).is_some() {
                return Err(LoadError::Corrupt(format!(
                    "duplicate metadata key '{key}'"
                )));
            }
        }
        let alignment = match metadata.get("general.alignment") {
            None => 32,
            Some(v) => match v.as_u64() {
                Some(a) if a.is_power_of_two() && a <= 1 << 20 => a,
                _ => return Err(LoadError::Corrupt(format!("general.alignment {v:?}"))),
            },
        };
        let mut raw = Vec::with_capacity(n_tensors.min(1 << 16) as usize);
        for i in 0..n_tensors {
            let name = c.string(&format!("tensor #{i} name"))?;
            let n_dims = c.u32(&name)?;
            if !(1..=4).contains(&n_dims) {
                return Err(LoadError::Corrupt(format!(
                    "tensor '{name}' has {n_dims} dimensions"
                )));
            }
            let mut dims = Vec::with_capacity(n_dims as usize);
            for _ in 0..n_dims {
                dims.push(c.u64(&name)?);
            }
            let ty = c.u32(&name)?;
            let offset = c.u64(&name)?;
            raw.push((name, dims, ty, offset));
        }
        let data_offset = c.pos.div_ceil(alignment) * alignment;
        let mut tensors = Vec::with_capacity(raw.len());
        let mut names = std::collections::BTreeSet::new();
        for (name, dims, ty, offset) in raw {
            if !names.insert(name.clone()) {
                return Err(LoadError::Corrupt(format!("duplicate tensor '{name}'")));
            }
            let dtype =
                DType::from_ggml_type(ty).map_err(|_| LoadError::UnsupportedTensorType {
                    name: name.clone(),
                    id: ty,
                    type_name: ggml_type_name(ty),
                })?;
            let shape = dims
                .iter()
                .rev()
                .map(|d| usize::try_from(*d))
                .collect::<Result<Vec<_>, _>>();
            let shape =
                shape.map_err(|_| LoadError::Corrupt(format!("tensor '{name}' dims {dims:?}")))?;
            let numel = shape.iter().try_fold(1usize, |a, d| a.checked_mul(*d));
            let bytes = match numel {
                Some(n) if n > 0 && (n as u64) <= 1 << 40 => crate::host::byte_size(&shape, dtype)
                    .map_err(|e| {
                    LoadError::Corrupt(format!("tensor '{name}': {e}"))
                })? as u64,
                _ => return Err(LoadError::Corrupt(format!("tensor '{name}' dims {dims:?}"))),
            };
            if offset % alignment != 0 {
                return Err(LoadError::Corrupt(format!(
                    "tensor '{name}' offset {offset} is not {alignment}-aligned"
                )));
            }
            let start = data_offset
                .checked_add(offset)
                .ok_or_else(|| LoadError::Corrupt(format!("tensor '{name}' offset {offset}")))?;
            let end = start.saturating_add(bytes);
            if end > file_len {
                return Err(LoadError::Truncated {
                    what: format!("tensor '{name}'"),
                    need: end,
                    len: file_len,
                });
            }
            tensors.push(TensorInfo {
                name,
                shape,
                dtype,
                offset: start,
                bytes,
            });
        }
        Ok(GgufFile {
            version,
            metadata,
            tensors,
            alignment,
            data_offset,
            file_len,
        })
    }

    pub fn get(&self, key: &str) -> Option<&MetaValue> {
        self.metadata.get(key)
    }

    fn req(&self, key: &str) -> Result<&MetaValue, LoadError> {
        self.get(key)
            .ok_or_else(|| LoadError::MissingKey(key.into()))
    }

    fn wrong(&self, key: &str, v: &MetaValue, want: &'static str) -> LoadError {
        LoadError::WrongType {
            key: key.into(),
            got: v.type_name(),
            want,
        }
    }

    pub fn get_str(&self, key: &str) -> Result<&str, LoadError> {
        match self.req(key)? {
            MetaValue::Str(s) => Ok(s),
            v => Err(self.wrong(key, v, "a string")),
        }
    }

    pub fn get_u32(&self, key: &str) -> Result<u32, LoadError> {
        let v = self.req(key)?;
        v.as_u64()
            .and_then(|x| u32::try_from(x).ok())
            .ok_or_else(|| self.wrong(key, v, "an unsigned 32-bit integer"))
    }

    pub fn get_f32(&self, key: &str) -> Result<f32, LoadError> {
        let v = self.req(key)?;
        v.as_f64()
            .map(|x| x as f32)
            .ok_or_else(|| self.wrong(key, v, "a number"))
    }

    pub fn get_bool(&self, key: &str) -> Result<bool, LoadError> {
        match self.req(key)? {
            MetaValue::Bool(b) => Ok(*b),
            v => Err(self.wrong(key, v, "a bool")),
        }
    }

    fn array(&self, key: &str) -> Result<&[MetaValue], LoadError> {
        match self.req(key)? {
            MetaValue::Array(a) => Ok(a),
            v => Err(self.wrong(key, v, "an array")),
        }
    }

    pub fn get_str_array(&self, key: &str) -> Result<Vec<&str>, LoadError> {
        self.array(key)?
            .iter()
            .map(|v| match v {
                MetaValue::Str(s) => Ok(s.as_str()),
                v => Err(self.wrong(key, v, "an array of strings")),
            })
            .collect()
    }

    pub fn get_f32_array(&self, key: &str) -> Result<Vec<f32>, LoadError> {
        self.array(key)?
            .iter()
            .map(|v| {
                v.as_f64()
                    .map(|x| x as f32)
                    .ok_or_else(|| self.wrong(key, v, "an array of numbers"))
            })
            .collect()
    }

    pub fn get_i32_array(&self, key: &str) -> Result<Vec<i32>, LoadError> {
        self.array(key)?
            .iter()
            .map(|v| {
                v.as_i64()
                    .and_then(|x| i32::try_from(x).ok())
                    .ok_or_else(|| self.wrong(key, v, "an array of integers"))
            })
            .collect()
    }

    pub fn tensor(&self, name: &str) -> Result<&TensorInfo, LoadError> {
        self.tensors
            .iter()
            .find(|t| t.name == name)
            .ok_or_else(|| LoadError::MissingTensor(name.into()))
    }

    /// Reads one tensor's bytes (exactly its size) from the open file.
    pub fn read_tensor<R: Read + Seek>(
        &self,
        r: &mut R,
        t: &TensorInfo,
    ) -> Result<HostTensor, LoadError> {
        r.seek(SeekFrom::Start(t.offset))?;
        let mut data = vec![0u8; t.bytes as usize];
        r.read_exact(&mut data).map_err(|_| LoadError::Truncated {
            what: format!("tensor '{}'", t.name),
            need: t.offset + t.bytes,
            len: self.file_len,
        })?;
        Ok(HostTensor::from_bytes(&t.shape, t.dtype, data)?)
    }
}

impl GgufFile {
    /// The tokenizer described by `tokenizer.ggml.*` metadata.
    pub fn tokenizer_spec(&self) -> Result<crate::tokenizer::TokenizerSpec, LoadError> {
        let key = |k: &str| format!("tokenizer.ggml.{k}");
        let strings = |k: &str| -> Result<Vec<String>, LoadError> {
            match self.get(&key(k)) {
                None => Ok(Vec::new()),
                Some(_) => Ok(self
                    .get_str_array(&key(k))?
                    .into_iter()
                    .map(String::from)
                    .collect()),
            }
        };
        let opt_u32 = |k: &str| self.get(&key(k)).map(|_| self.get_u32(&key(k))).transpose();
        let opt_bool = |k: &str, d: bool| -> Result<bool, LoadError> {
            self.get(&key(k)).map_or(Ok(d), |_| self.get_bool(&key(k)))
        };
        let model = self.get_str(&key("model"))?.to_string();
        let llama = model == "llama";
        Ok(crate::tokenizer::TokenizerSpec {
            pre: self
                .get(&key("pre"))
                .map(|_| self.get_str(&key("pre")).map(String::from))
                .transpose()?,
            tokens: self
                .get_str_array(&key("tokens"))?
                .into_iter()
                .map(String::from)
                .collect(),
            token_types: self
                .get(&key("token_type"))
                .map_or(Ok(Vec::new()), |_| self.get_i32_array(&key("token_type")))?,
            scores: self
                .get(&key("scores"))
                .map_or(Ok(Vec::new()), |_| self.get_f32_array(&key("scores")))?,
            merges: strings("merges")?,
            bos: opt_u32("bos_token_id")?,
            eos: opt_u32("eos_token_id")?,
            unk: opt_u32("unknown_token_id")?,
            pad: opt_u32("padding_token_id")?,
            add_bos: opt_bool("add_bos_token", llama)?,
            add_eos: opt_bool("add_eos_token", false)?,
            add_space_prefix: opt_bool("add_space_prefix", llama)?,
            model,
        })
    }

    /// The Jinja chat template, if the file has one.
    pub fn chat_template(&self) -> Option<&str> {
        self.get_str("tokenizer.chat_template").ok()
    }
}

/// A GGUF file as a [`super::WeightSource`]: tensors are uploaded unchanged.
pub struct GgufSource<'a, R> {
    pub file: &'a GgufFile,
    pub reader: &'a mut R,
}

impl<R: Read + Seek> super::WeightSource for GgufSource<'_, R> {
    fn info(&self, name: &str) -> Result<(Vec<usize>, DType), LoadError> {
        let t = self.file.tensor(name)?;
        Ok((t.shape.clone(), t.dtype))
    }

    fn read(&mut self, name: &str) -> Result<HostTensor, LoadError> {
        let t = self.file.tensor(name)?;
        self.file.read_tensor(self.reader, t)
    }
}
