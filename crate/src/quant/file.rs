//! `kiln quantize`: a GGUF file re-encoded with a llama.cpp file type's
//! mixture ([`super::recipe`]), metadata (tokenizer, chat template, every
//! hyper-parameter) carried over with `general.file_type` and
//! `general.quantization_version` set as llama-quantize sets them. Tensors
//! are read, converted and written one at a time; the output is written to
//! `OUT.part` and renamed when complete, so a failure or a cancel never
//! leaves a half-written file under the requested name.

use std::io::Write;
use std::path::Path;

use super::recipe::{FileType, TensorDesc, plan};
use crate::dtype::DType;
use crate::loader::LoadError;
use crate::loader::gguf::{GgufFile, MetaValue};
use crate::loader::gguf_write::{TensorHeader, header, write_data, write_file};

/// What happened to one tensor.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorOutcome {
    pub name: String,
    pub from: DType,
    pub to: DType,
    /// The recipe's type when a row was not whole blocks of it.
    pub fell_back_from: Option<DType>,
}

#[derive(Clone, Debug)]
pub struct Report {
    pub tensors: Vec<TensorOutcome>,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

/// Quantizes `input` to `output` as file type `ft`. Tensors already
/// quantized are re-quantized only with `allow_requantize` (their
/// dequantized values are the source, as llama-quantize's
/// `--allow-requantize`). `progress(done, total)` may return false to
/// cancel.
pub fn quantize_gguf(
    input: &Path,
    output: &Path,
    ft: FileType,
    allow_requantize: bool,
    progress: &mut dyn FnMut(usize, usize) -> bool,
) -> Result<Report, LoadError> {
    let (g, mut file) = GgufFile::open(input)?;
    let arch = g.get_str("general.architecture")?.to_string();
    let key = |k: &str| format!("{arch}.{k}");
    let n_layers = g.get_u32(&key("block_count"))? as usize;
    let heads = g.get_u32(&key("attention.head_count"))? as usize;
    let kv = match g.get(&key("attention.head_count_kv")) {
        Some(_) => g.get_u32(&key("attention.head_count_kv"))? as usize,
        None => heads,
    };
    let n_gqa = heads.checked_div(kv).unwrap_or(1);
    // llama-quantize's order (its loader's map): tensors outside the blocks
    // first, then block by block, by name within each. The layer counters
    // of the mixtures count in this order, and the output keeps it.
    let layer = |n: &str| -> i64 {
        n.strip_prefix("blk.")
            .and_then(|r| r.split('.').next())
            .and_then(|l| l.parse().ok())
            .unwrap_or(-1)
    };
    let mut order: Vec<&crate::loader::gguf::TensorInfo> = g.tensors.iter().collect();
    order.sort_by(|a, b| (layer(&a.name), &a.name).cmp(&(layer(&b.name), &b.name)));
    let descs: Vec<TensorDesc> = order
        .iter()
        .map(|t| TensorDesc {
            name: &t.name,
            shape: &t.shape,
            dtype: t.dtype,
        })
        .collect();
    let types = plan(&descs, ft, n_layers, n_gqa);
    if !allow_requantize
        && let Some((t, _)) = order
            .iter()
            .zip(&types)
            .find(|(t, (to, _))| t.dtype.is_quantized() && *to != t.dtype)
    {
        return Err(LoadError::Corrupt(format!(
            "tensor '{}' is already {}: re-quantizing loses precision; pass --allow-requantize (llama-quantize asks the same)",
            t.name, t.dtype
        )));
    }
    let mut metadata: Vec<(String, MetaValue)> = g
        .metadata
        .iter()
        .filter(|(k, _)| {
            k.as_str() != "general.file_type" && k.as_str() != "general.quantization_version"
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    metadata.push(("general.quantization_version".into(), MetaValue::U32(2)));
    metadata.push(("general.file_type".into(), MetaValue::U32(ft.id())));
    let infos: Vec<TensorHeader> = order
        .iter()
        .zip(&types)
        .map(|(t, (to, _))| TensorHeader {
            name: t.name.clone(),
            shape: t.shape.clone(),
            dtype: *to,
        })
        .collect();
    let (head, align) = header(&metadata, &infos)?;
    let mut outcomes = Vec::with_capacity(g.tensors.len());
    let total = g.tensors.len();
    let mut body = |w: &mut dyn Write| -> Result<u64, LoadError> {
        w.write_all(&head)?;
        let mut n = head.len() as u64;
        for (i, ((t, &(to, fell)), info)) in order.iter().zip(&types).zip(&infos).enumerate() {
            let host = g.read_tensor(&mut file, t)?;
            let data = if to == t.dtype {
                host.data
            } else {
                // The plan gives each tensor a type whose blocks tile its
                // rows, so one call over the whole tensor (spread over the
                // machine's threads) encodes the same blocks as row by row.
                super::quantize_rows(to, &host.to_f32()?, *t.shape.last().unwrap_or(&1))?
            };
            n += write_data(w, info, &data, align)?;
            outcomes.push(TensorOutcome {
                name: t.name.clone(),
                from: t.dtype,
                to,
                fell_back_from: fell,
            });
            if !progress(i + 1, total) {
                return Err(LoadError::Cancelled);
            }
        }
        Ok(n)
    };
    let bytes_out = write_file(output, &mut body)?;
    Ok(Report {
        tensors: outcomes,
        bytes_in: g.file_len,
        bytes_out,
    })
}
