//! Files the page hands to the wasm side (feature `web`, wasm32 only), read
//! by byte range as [`ModelFile`]s: a `Uint8Array` (or `ArrayBuffer`) the
//! page holds — each range copied into wasm memory when a loader asks for
//! it — or, in a worker, a `Blob`/`File` read with `FileReaderSync`, so a
//! picked or cached multi-gigabyte checkpoint never enters memory whole.

use std::io::{Read, Seek, SeekFrom};

use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;

use crate::loader::LoadError;
use crate::loader::file::ModelFile;

/// A `Uint8Array` read in place.
struct JsBytes {
    bytes: js_sys::Uint8Array,
    pos: u64,
}

/// A `Blob` read slice by slice (workers only: `FileReaderSync`).
struct JsBlob {
    blob: web_sys::Blob,
    reader: web_sys::FileReaderSync,
    pos: u64,
}

fn seek(pos: &mut u64, len: u64, to: SeekFrom) -> std::io::Result<u64> {
    let p = match to {
        SeekFrom::Start(p) => Some(p),
        SeekFrom::End(d) => len.checked_add_signed(d),
        SeekFrom::Current(d) => pos.checked_add_signed(d),
    };
    *pos = p.ok_or_else(|| std::io::Error::other("seek before the start"))?;
    Ok(*pos)
}

/// How many bytes a read of `want` from `pos` gets from `len`.
fn span(pos: u64, len: u64, want: usize) -> u64 {
    len.saturating_sub(pos).min(want as u64)
}

impl Read for JsBytes {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let n = span(self.pos, self.bytes.length() as u64, out.len());
        if n > 0 {
            let (a, b) = (self.pos as u32, (self.pos + n) as u32);
            self.bytes.subarray(a, b).copy_to(&mut out[..n as usize]);
            self.pos += n;
        }
        Ok(n as usize)
    }
}

impl Seek for JsBytes {
    fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
        seek(&mut self.pos, self.bytes.length() as u64, to)
    }
}

impl Read for JsBlob {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let n = span(self.pos, self.blob.size() as u64, out.len());
        if n == 0 {
            return Ok(0);
        }
        let (a, b) = (self.pos as f64, (self.pos + n) as f64);
        let fail =
            |e: JsValue| std::io::Error::other(e.as_string().unwrap_or_else(|| format!("{e:?}")));
        let slice = self.blob.slice_with_f64_and_f64(a, b).map_err(fail)?;
        let buf = self.reader.read_as_array_buffer(&slice).map_err(fail)?;
        let got = js_sys::Uint8Array::new(&buf);
        let m = (got.length() as usize).min(n as usize);
        got.subarray(0, m as u32).copy_to(&mut out[..m]);
        self.pos += m as u64;
        Ok(m)
    }
}

impl Seek for JsBlob {
    fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
        seek(&mut self.pos, self.blob.size() as u64, to)
    }
}

/// `v` (a `Uint8Array`, `ArrayBuffer` or `Blob`/`File`) as a file named
/// `name`; a `Blob` outside a worker is an error the page avoids by passing
/// bytes there (`FileReaderSync` exists only in workers).
pub fn js_file(name: &str, v: &JsValue) -> Result<ModelFile, LoadError> {
    if let Some(blob) = v.dyn_ref::<web_sys::Blob>() {
        let reader = web_sys::FileReaderSync::new().map_err(|_| {
            LoadError::Io(format!(
                "{name}: a Blob can only be read in a worker; pass its bytes on the main thread"
            ))
        })?;
        let len = blob.size() as u64;
        let r = JsBlob {
            blob: blob.clone(),
            reader,
            pos: 0,
        };
        return Ok(ModelFile::new(name, Box::new(r), len));
    }
    let bytes = if let Some(b) = v.dyn_ref::<js_sys::Uint8Array>() {
        b.clone()
    } else if v.is_instance_of::<js_sys::ArrayBuffer>() {
        js_sys::Uint8Array::new(v)
    } else {
        return Err(LoadError::Io(format!(
            "{name}: expected a Uint8Array, ArrayBuffer or Blob"
        )));
    };
    let len = bytes.length() as u64;
    Ok(ModelFile::new(
        name,
        Box::new(JsBytes { bytes, pos: 0 }),
        len,
    ))
}
