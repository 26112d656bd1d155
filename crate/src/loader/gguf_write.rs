//! GGUF v3 writer: the inverse of [`super::gguf`]'s reader, for `kiln
//! quantize`. Metadata is written in the order given, tensors too, each
//! tensor's data aligned to `general.alignment` (32 unless the metadata says
//! otherwise), dims innermost first. The header is built first (sizes follow
//! from shapes and types), then the data is streamed tensor by tensor, so a
//! model is never held in memory whole.

use std::io::Write;

use super::LoadError;
use super::gguf::MetaValue;
use crate::dtype::DType;

fn type_id(v: &MetaValue) -> u32 {
    match v {
        MetaValue::U8(_) => 0,
        MetaValue::I8(_) => 1,
        MetaValue::U16(_) => 2,
        MetaValue::I16(_) => 3,
        MetaValue::U32(_) => 4,
        MetaValue::I32(_) => 5,
        MetaValue::F32(_) => 6,
        MetaValue::Bool(_) => 7,
        MetaValue::Str(_) => 8,
        MetaValue::Array(_) => 9,
        MetaValue::U64(_) => 10,
        MetaValue::I64(_) => 11,
        MetaValue::F64(_) => 12,
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend((s.len() as u64).to_le_bytes());
    out.extend(s.as_bytes());
}

fn put_value(out: &mut Vec<u8>, v: &MetaValue) -> Result<(), LoadError> {
    match v {
        MetaValue::U8(x) => out.push(*x),
        MetaValue::I8(x) => out.extend(x.to_le_bytes()),
        MetaValue::U16(x) => out.extend(x.to_le_bytes()),
        MetaValue::I16(x) => out.extend(x.to_le_bytes()),
        MetaValue::U32(x) => out.extend(x.to_le_bytes()),
        MetaValue::I32(x) => out.extend(x.to_le_bytes()),
        MetaValue::F32(x) => out.extend(x.to_le_bytes()),
        MetaValue::Bool(x) => out.push(*x as u8),
        MetaValue::Str(s) => put_str(out, s),
        MetaValue::U64(x) => out.extend(x.to_le_bytes()),
        MetaValue::I64(x) => out.extend(x.to_le_bytes()),
        MetaValue::F64(x) => out.extend(x.to_le_bytes()),
        MetaValue::Array(items) => {
            // An empty array keeps no element type; u32 is as good as any.
            let elem = items.first().map_or(4, type_id);
            if items.iter().any(|i| type_id(i) != elem) {
                return Err(LoadError::Corrupt(
                    "a metadata array mixes element types".into(),
                ));
            }
            out.extend(elem.to_le_bytes());
            out.extend((items.len() as u64).to_le_bytes());
            for i in items {
                put_value(out, i)?;
            }
        }
    }
    Ok(())
}

/// A tensor's entry in the header: name, row-major shape, dtype.
pub struct TensorHeader {
    pub name: String,
    pub shape: Vec<usize>,
    pub dtype: DType,
}

/// The header bytes (padded to the alignment) for `metadata` and tensors
/// `infos`, whose data must then follow in order, each padded to the
/// returned alignment ([`write_data`]).
pub fn header(
    metadata: &[(String, MetaValue)],
    infos: &[TensorHeader],
) -> Result<(Vec<u8>, u64), LoadError> {
    let align = metadata
        .iter()
        .find(|(k, _)| k == "general.alignment")
        .and_then(|(_, v)| v.as_u64())
        .unwrap_or(32)
        .max(1);
    let pad = |n: u64| n.div_ceil(align) * align;
    let mut head = Vec::new();
    head.extend(b"GGUF");
    head.extend(3u32.to_le_bytes());
    head.extend((infos.len() as u64).to_le_bytes());
    head.extend((metadata.len() as u64).to_le_bytes());
    for (k, v) in metadata {
        put_str(&mut head, k);
        head.extend(type_id(v).to_le_bytes());
        put_value(&mut head, v)?;
    }
    let mut offset = 0u64;
    for t in infos {
        let bytes = crate::host::byte_size(&t.shape, t.dtype)? as u64;
        let id = t
            .dtype
            .ggml_type()
            .ok_or_else(|| LoadError::Corrupt(format!("{} has no GGUF type id", t.dtype)))?;
        put_str(&mut head, &t.name);
        head.extend((t.shape.len() as u32).to_le_bytes());
        for d in t.shape.iter().rev() {
            head.extend((*d as u64).to_le_bytes());
        }
        head.extend(id.to_le_bytes());
        head.extend(offset.to_le_bytes());
        offset = pad(offset + bytes);
    }
    let data_start = pad(head.len() as u64);
    head.resize(data_start as usize, 0);
    Ok((head, align))
}

/// Writes one tensor's data for header entry `t`, padded to `align`;
/// returns the bytes written.
pub fn write_data(
    out: &mut dyn Write,
    t: &TensorHeader,
    data: &[u8],
    align: u64,
) -> Result<u64, LoadError> {
    let want = crate::host::byte_size(&t.shape, t.dtype)?;
    if want != data.len() {
        return Err(LoadError::Corrupt(format!(
            "tensor '{}': {} bytes for {:?} {}, expected {want}",
            t.name,
            data.len(),
            t.shape,
            t.dtype
        )));
    }
    out.write_all(data)?;
    let n = data.len() as u64;
    let padded = n.div_ceil(align) * align;
    out.write_all(&vec![0u8; (padded - n) as usize])?;
    Ok(padded)
}

/// Writes `output` through `body` as `OUT.part` (a `.part` extension
/// appended to the name's extension), renamed to `output` when `body`
/// succeeds and removed when it fails: a failed or cancelled write never
/// leaves a half-written file under the requested name. Returns `body`'s
/// byte count.
pub fn write_file(
    output: &std::path::Path,
    body: &mut dyn FnMut(&mut dyn Write) -> Result<u64, LoadError>,
) -> Result<u64, LoadError> {
    let part = output.with_extension("gguf.part");
    let result = (|| -> Result<u64, LoadError> {
        let f = std::fs::File::create(&part)
            .map_err(|e| LoadError::Io(format!("{}: {e}", part.display())))?;
        let mut w = std::io::BufWriter::new(f);
        let n = body(&mut w)?;
        w.flush()?;
        Ok(n)
    })();
    match result {
        Ok(n) => {
            std::fs::rename(&part, output)
                .map_err(|e| LoadError::Io(format!("{}: {e}", output.display())))?;
            Ok(n)
        }
        Err(e) => {
            let _ = std::fs::remove_file(&part);
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loader::gguf::GgufFile;

    /// Every value type, an array of strings, odd tensor sizes (padding),
    /// read back by the reader: the same metadata, shapes, types, offsets
    /// aligned, and bytes.
    #[test]
    fn written_files_read_back_exactly() {
        let meta = vec![
            (
                "general.architecture".to_string(),
                MetaValue::Str("llama".into()),
            ),
            ("a.u8".into(), MetaValue::U8(7)),
            ("a.i8".into(), MetaValue::I8(-7)),
            ("a.u16".into(), MetaValue::U16(700)),
            ("a.i16".into(), MetaValue::I16(-700)),
            ("a.u32".into(), MetaValue::U32(70_000)),
            ("a.i32".into(), MetaValue::I32(-70_000)),
            ("a.f32".into(), MetaValue::F32(0.25)),
            ("a.bool".into(), MetaValue::Bool(true)),
            ("a.u64".into(), MetaValue::U64(1 << 40)),
            ("a.i64".into(), MetaValue::I64(-(1 << 40))),
            ("a.f64".into(), MetaValue::F64(-1.5)),
            (
                "a.strs".into(),
                MetaValue::Array(vec![
                    MetaValue::Str("x".into()),
                    MetaValue::Str("yz".into()),
                ]),
            ),
        ];
        let tensors = [
            (vec![3usize], DType::F32, (0u8..12).collect::<Vec<u8>>()),
            (vec![2, 32], DType::Q8_0, (0u8..68).collect()),
            (vec![5], DType::F16, (0u8..10).collect()),
        ];
        let infos: Vec<TensorHeader> = tensors
            .iter()
            .enumerate()
            .map(|(i, (s, d, _))| TensorHeader {
                name: format!("t{i}"),
                shape: s.clone(),
                dtype: *d,
            })
            .collect();
        let (head, align) = header(&meta, &infos).unwrap();
        let mut file = head.clone();
        for (info, (_, _, data)) in infos.iter().zip(&tensors) {
            write_data(&mut file, info, data, align).unwrap();
        }
        let g = GgufFile::parse(&mut std::io::Cursor::new(&file), file.len() as u64).unwrap();
        for (k, v) in &meta {
            assert_eq!(g.get(k), Some(v), "{k}");
        }
        let mut cur = std::io::Cursor::new(&file);
        for (info, (shape, dtype, data)) in infos.iter().zip(&tensors) {
            let t = g.tensor(&info.name).unwrap();
            assert_eq!((&t.shape, t.dtype), (shape, *dtype));
            assert_eq!(t.offset % align, 0);
            assert_eq!(&g.read_tensor(&mut cur, t).unwrap().data, data);
        }
        // A size that does not match its header entry is an error.
        assert!(write_data(&mut Vec::new(), &infos[1], &[0u8; 3], align).is_err());
    }
}
