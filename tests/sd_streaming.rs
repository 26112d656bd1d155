//! A diffusers folder is read one tensor at a time: loading a module reads
//! its config and its weight files' headers, and building a pipeline reads
//! each tensor's bytes once, in pieces no larger than the largest tensor —
//! never a whole weight file (what lets a multi-GB checkpoint load in a wasm
//! heap of at most 4 GiB). Damaged headers are typed errors at open time.

use std::cell::RefCell;
use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use kiln::backend::cpu::CpuBackend;
use kiln::loader::LoadError;
use kiln::loader::file::ModelFile;
use kiln::model::sd::pipeline::StableDiffusion;
use kiln::model::sd::{Component, SdOptions};

fn dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/sd")
        .join(name)
}

/// What was read from one file: total bytes and the largest single read.
#[derive(Default, Debug, Clone, Copy)]
struct Reads {
    total: u64,
    largest: u64,
}

type Log = Rc<RefCell<HashMap<String, Reads>>>;

/// A file's bytes behind a reader that logs every read.
struct Counting {
    inner: std::io::Cursor<Vec<u8>>,
    name: String,
    log: Log,
}

impl Read for Counting {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(out)?;
        let mut log = self.log.borrow_mut();
        let r = log.entry(self.name.clone()).or_default();
        r.total += n as u64;
        r.largest = r.largest.max(n as u64);
        Ok(n)
    }
}

impl Seek for Counting {
    fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
        self.inner.seek(to)
    }
}

fn counting(path: &Path, name: &str, log: &Log) -> Option<ModelFile> {
    let bytes = std::fs::read(path).ok()?;
    let len = bytes.len() as u64;
    let r = Counting {
        inner: std::io::Cursor::new(bytes),
        name: name.into(),
        log: log.clone(),
    };
    Some(ModelFile::new(name, Box::new(r), len))
}

fn header_bytes(path: &Path) -> u64 {
    let b = std::fs::read(path).unwrap();
    8 + u64::from_le_bytes(b[..8].try_into().unwrap())
}

#[test]
fn a_module_reads_only_headers_until_a_tensor_is_asked_for() {
    let d = dir("tiny_sd15").join("unet");
    let weights = d.join("diffusion_pytorch_model.safetensors");
    let log: Log = Rc::default();
    let mut get = |f: &str| Ok(counting(&d.join(f), f, &log));
    let c = Component::load("unet", "tiny_sd15/unet", &mut get).unwrap();
    let w = "diffusion_pytorch_model.safetensors";
    let head = header_bytes(&weights);
    assert_eq!(
        log.borrow()[w].total,
        head,
        "open read more than the header"
    );

    // One tensor: exactly its bytes more, equal to the file's values.
    let name = "conv_in.weight";
    let (shape, got) = c.tensor_f32(name).unwrap();
    let bytes = std::fs::read(&weights).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let view = st.tensor(name).unwrap();
    assert_eq!(shape, view.shape());
    let want: Vec<f32> = view
        .data()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    assert_eq!(got, want);
    assert_eq!(
        log.borrow()[w].total,
        head + view.data().len() as u64,
        "one tensor read more than its bytes"
    );
}

#[test]
fn a_pipeline_reads_each_weight_once_in_tensor_sized_pieces() {
    let root = dir("tiny_sd15");
    let log: Log = Rc::default();
    let mut get = |f: &str| Ok(counting(&root.join(f), f, &log));
    StableDiffusion::load(
        &mut get,
        "tiny_sd15",
        &CpuBackend,
        (16, 16),
        true,
        false,
        &SdOptions::default(),
    )
    .unwrap();
    let log = log.borrow();
    for sub in [
        "text_encoder/model.safetensors",
        "unet/diffusion_pytorch_model.safetensors",
        "vae/diffusion_pytorch_model.safetensors",
    ] {
        let path = root.join(sub);
        let bytes = std::fs::read(&path).unwrap();
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let largest = st
            .tensors()
            .iter()
            .map(|(_, v)| v.data().len() as u64)
            .max()
            .unwrap();
        let head = header_bytes(&path);
        let r = log[sub];
        assert!(
            r.largest <= largest.max(head - 8),
            "{sub}: a read of {} bytes (largest tensor {largest})",
            r.largest
        );
        assert!(
            r.total <= bytes.len() as u64,
            "{sub}: {} bytes read of {}",
            r.total,
            bytes.len()
        );
        // The text encoder and the UNet use every tensor, each read once;
        // the VAE's encoder half is not read for text to image.
        if sub.starts_with("vae") {
            assert!(
                r.total < bytes.len() as u64 * 3 / 4,
                "{sub}: {} bytes read",
                r.total
            );
        } else {
            assert_eq!(
                r.total,
                bytes.len() as u64,
                "{sub}: not every byte read once"
            );
        }
        eprintln!(
            "{sub}: {} of {} bytes read, largest piece {}",
            r.total,
            bytes.len(),
            r.largest
        );
    }
}

#[test]
fn damaged_weight_headers_fail_at_open() {
    let d = dir("tiny_sd15").join("unet");
    let config = std::fs::read(d.join("config.json")).unwrap();
    let bytes = std::fs::read(d.join("diffusion_pytorch_model.safetensors")).unwrap();
    let open = |b: Vec<u8>| {
        Component::from_memory("unet", &config, vec![("w.safetensors".into(), b)]).err()
    };
    // The data cut short: the last tensor's end is past the file.
    let e = open(bytes[..bytes.len() - 1].to_vec()).unwrap();
    assert!(matches!(e, LoadError::Truncated { .. }), "{e}");
    // A header length past the file.
    let mut b = bytes.clone();
    b[..8].copy_from_slice(&(bytes.len() as u64).to_le_bytes());
    assert!(matches!(open(b).unwrap(), LoadError::Truncated { .. }));
    // Fewer than 8 bytes.
    assert!(matches!(
        open(vec![1, 2, 3]).unwrap(),
        LoadError::Truncated { .. }
    ));
    // A header that is not JSON.
    let mut b = bytes.clone();
    b[8] = b'#';
    assert!(matches!(open(b).unwrap(), LoadError::Corrupt(_)));

    // An index naming a file outside the folder.
    let index = br#"{"weight_map": {"conv_in.weight": "../secret.safetensors"}}"#;
    let mut get = |f: &str| -> Result<Option<ModelFile>, LoadError> {
        Ok(match f {
            "config.json" => Some(ModelFile::from_bytes(f, config.clone())),
            "diffusion_pytorch_model.safetensors.index.json" => {
                Some(ModelFile::from_bytes(f, index.to_vec()))
            }
            _ => None,
        })
    };
    let e = Component::load("unet", "x/unet", &mut get).err().unwrap();
    assert!(
        matches!(&e, LoadError::Corrupt(m) if m.contains("secret")),
        "{e}"
    );
}
