//! A file of a model folder, opened for reading by byte range: a file on
//! disk, bytes in memory, or (in the browser) a `Blob`/`Uint8Array` the page
//! holds. Loaders read a header, then each tensor's bytes when its weight is
//! uploaded, so a multi-gigabyte checkpoint is never held whole in memory
//! (in wasm, whose heap is at most 4 GiB, that is what makes SD-class
//! checkpoints loadable at all).

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use super::LoadError;
use super::safetensors::ReadSeek;

/// The most bytes [`ModelFile::read_small`] reads: JSON configs, tokenizer
/// vocabularies and merges are a few MB; a bigger "config" is a mistake or
/// hostile, and gets a typed error instead of an allocation.
pub const SMALL_FILE_LIMIT: u64 = 64 << 20;

/// An opened file: its reader and its length.
pub struct ModelFile {
    name: String,
    reader: Box<dyn ReadSeek>,
    len: u64,
}

impl ModelFile {
    /// A file over any reader of `len` bytes; `name` is for messages.
    pub fn new(name: &str, reader: Box<dyn ReadSeek>, len: u64) -> ModelFile {
        ModelFile {
            name: name.into(),
            reader,
            len,
        }
    }

    /// Bytes already in memory.
    pub fn from_bytes(name: &str, bytes: Vec<u8>) -> ModelFile {
        let len = bytes.len() as u64;
        ModelFile::new(name, Box::new(std::io::Cursor::new(bytes)), len)
    }

    /// `path` on disk; `Ok(None)` when it is not a file.
    pub fn open(path: &Path) -> Result<Option<ModelFile>, LoadError> {
        if !path.is_file() {
            return Ok(None);
        }
        let io = |e: std::io::Error| LoadError::Io(format!("{}: {e}", path.display()));
        let f = std::fs::File::open(path).map_err(io)?;
        let len = f.metadata().map_err(io)?.len();
        Ok(Some(ModelFile::new(
            &path.display().to_string(),
            Box::new(f),
            len,
        )))
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// `n` bytes from `offset`: a typed `Truncated` error when the file ends
    /// first (checked before anything is allocated).
    pub fn read_at(&mut self, offset: u64, n: u64) -> Result<Vec<u8>, LoadError> {
        let end = offset.saturating_add(n);
        if end > self.len {
            return Err(LoadError::Truncated {
                what: self.name.clone(),
                need: end,
                len: self.len,
            });
        }
        let too_big = || LoadError::Io(format!("{}: {n} bytes do not fit in memory", self.name));
        let n = usize::try_from(n).map_err(|_| too_big())?;
        let io = |e: std::io::Error| LoadError::Io(format!("{}: {e}", self.name));
        self.reader.seek(SeekFrom::Start(offset)).map_err(io)?;
        let mut buf = Vec::new();
        buf.try_reserve_exact(n).map_err(|_| too_big())?;
        buf.resize(n, 0);
        self.reader.read_exact(&mut buf).map_err(io)?;
        Ok(buf)
    }

    /// The whole file, when it is at most [`SMALL_FILE_LIMIT`] bytes (JSON,
    /// tokenizer files).
    pub fn read_small(&mut self) -> Result<Vec<u8>, LoadError> {
        if self.len > SMALL_FILE_LIMIT {
            return Err(LoadError::Corrupt(format!(
                "{} is {} bytes; Kiln reads such a file whole only up to {} MiB",
                self.name,
                self.len,
                SMALL_FILE_LIMIT >> 20
            )));
        }
        self.read_at(0, self.len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_and_limits() {
        let mut f = ModelFile::from_bytes("x", (0..100u8).collect());
        assert_eq!(f.read_at(10, 3).unwrap(), vec![10, 11, 12]);
        assert_eq!(f.read_at(0, 0).unwrap(), Vec::<u8>::new());
        assert!(matches!(
            f.read_at(98, 3),
            Err(LoadError::Truncated {
                need: 101,
                len: 100,
                ..
            })
        ));
        assert!(matches!(
            f.read_at(u64::MAX, 2),
            Err(LoadError::Truncated { .. })
        ));
        assert_eq!(f.read_small().unwrap().len(), 100);
        let mut big = ModelFile::new("big", Box::new(std::io::empty()), SMALL_FILE_LIMIT + 1);
        assert!(matches!(big.read_small(), Err(LoadError::Corrupt(_))));
    }
}
