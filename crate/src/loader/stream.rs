//! Loading a GGUF file as a byte stream (a `fetch` body in the browser): the
//! header is parsed as soon as it has arrived, then every tensor is handed
//! on the moment its last byte arrives, so at most one tensor (plus the parts
//! of a fused weight) is ever held in memory — never the whole file.

use std::collections::HashMap;

use super::LoadError;
use super::WeightSource;
use super::gguf::GgufFile;
use crate::graph::TensorId;
use crate::host::HostTensor;

/// A reader over the bytes received so far that remembers running out.
struct Partial<'a> {
    data: &'a [u8],
    pos: usize,
    ran_out: bool,
}

impl std::io::Read for Partial<'_> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let n = out.len().min(self.data.len() - self.pos);
        if n < out.len() {
            self.ran_out = true;
        }
        out[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

enum Phase {
    /// Collecting the header; try to parse once `try_at` bytes are in.
    Header {
        buf: Vec<u8>,
        try_at: usize,
    },
    /// Streaming tensor data: `next` indexes `order`, `buf` holds its bytes.
    Body {
        next: usize,
        buf: Vec<u8>,
    },
    Done,
}

/// A GGUF file arriving in pieces of any size.
pub struct GgufStream {
    total: u64,
    /// File offset of the next byte pushed.
    pos: u64,
    phase: Phase,
    header: Option<GgufFile>,
    /// Tensor indices in file order.
    order: Vec<usize>,
}

/// What a call to [`GgufStream::push`] produced.
pub enum Pushed<'a> {
    /// The header has arrived and been parsed (once).
    Header(&'a GgufFile),
    /// A tensor's bytes are complete.
    Tensor(String, HostTensor),
}

impl GgufStream {
    /// A stream for a file of `total` bytes (the Content-Length or Blob size).
    pub fn new(total: u64) -> GgufStream {
        GgufStream {
            total,
            pos: 0,
            phase: Phase::Header {
                buf: Vec::new(),
                try_at: 1 << 16,
            },
            header: None,
            order: Vec::new(),
        }
    }

    pub fn header(&self) -> Option<&GgufFile> {
        self.header.as_ref()
    }

    /// Whether every tensor has arrived.
    pub fn is_done(&self) -> bool {
        matches!(self.phase, Phase::Done)
    }

    /// Bytes received so far.
    pub fn received(&self) -> u64 {
        self.pos
    }

    /// Takes the next piece of the file; `out` receives the header and every
    /// tensor completed by it, in file order.
    pub fn push(
        &mut self,
        mut bytes: &[u8],
        out: &mut dyn FnMut(Pushed<'_>) -> Result<(), LoadError>,
    ) -> Result<(), LoadError> {
        if self.pos + bytes.len() as u64 > self.total {
            return Err(LoadError::Corrupt(format!(
                "the file is longer than the announced {} bytes",
                self.total
            )));
        }
        while !bytes.is_empty() {
            match &mut self.phase {
                Phase::Header { buf, try_at } => {
                    let room = (*try_at - buf.len()).min(bytes.len());
                    buf.extend_from_slice(&bytes[..room]);
                    bytes = &bytes[room..];
                    self.pos += room as u64;
                    if buf.len() == *try_at || self.pos == self.total {
                        self.try_header(out)?;
                    }
                }
                Phase::Body { next, buf } => {
                    let Some(&ti) = self.order.get(*next) else {
                        // Trailing bytes after the last tensor.
                        self.pos += bytes.len() as u64;
                        bytes = &[];
                        continue;
                    };
                    let header = self.header.as_ref().ok_or(LoadError::Cancelled)?;
                    let t = &header.tensors[ti];
                    if self.pos < t.offset {
                        // Padding (or an unused gap) before the tensor.
                        let skip = ((t.offset - self.pos) as usize).min(bytes.len());
                        bytes = &bytes[skip..];
                        self.pos += skip as u64;
                        continue;
                    }
                    if self.pos > t.offset {
                        return Err(LoadError::Corrupt(format!(
                            "tensor '{}' overlaps the previous one",
                            t.name
                        )));
                    }
                    if buf.capacity() == 0 {
                        // Exactly one tensor's worth: no growth by doubling.
                        buf.reserve_exact(t.bytes as usize);
                    }
                    let take = (t.bytes as usize - buf.len()).min(bytes.len());
                    buf.extend_from_slice(&bytes[..take]);
                    bytes = &bytes[take..];
                    if buf.len() as u64 == t.bytes {
                        let data = std::mem::take(buf);
                        self.pos = t.offset + t.bytes;
                        *next += 1;
                        let name = t.name.clone();
                        let host = HostTensor::from_bytes(&t.shape, t.dtype, data)?;
                        if *next == self.order.len() {
                            self.phase = Phase::Done;
                        }
                        out(Pushed::Tensor(name, host))?;
                    }
                }
                Phase::Done => {
                    self.pos += bytes.len() as u64;
                    bytes = &[];
                }
            }
        }
        Ok(())
    }

    /// Checks that the whole file arrived.
    pub fn finish(&self) -> Result<(), LoadError> {
        if self.is_done() && self.pos == self.total {
            return Ok(());
        }
        let what = match (&self.phase, &self.header) {
            (Phase::Body { next, .. }, Some(h)) => {
                format!("tensor '{}'", h.tensors[self.order[*next]].name)
            }
            _ => "the header".to_string(),
        };
        Err(LoadError::Truncated {
            what,
            need: self.total,
            len: self.pos,
        })
    }

    fn try_header(
        &mut self,
        out: &mut dyn FnMut(Pushed<'_>) -> Result<(), LoadError>,
    ) -> Result<(), LoadError> {
        let Phase::Header { buf, try_at } = &mut self.phase else {
            return Ok(());
        };
        let mut r = Partial {
            data: buf,
            pos: 0,
            ran_out: false,
        };
        let header = match GgufFile::parse(&mut r, self.total) {
            Ok(h) => h,
            Err(_) if r.ran_out && self.pos < self.total => {
                // Not all of the header is here yet: wait for twice as much.
                *try_at = (*try_at * 2).min(self.total as usize);
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        let mut order: Vec<usize> = (0..header.tensors.len()).collect();
        order.sort_by_key(|&i| header.tensors[i].offset);
        let rest = std::mem::take(buf);
        let start = self.pos - rest.len() as u64;
        self.order = order;
        self.phase = if self.order.is_empty() {
            Phase::Done
        } else {
            Phase::Body {
                next: 0,
                buf: Vec::new(),
            }
        };
        // Bytes past the header that already arrived go round again.
        self.pos = start;
        out(Pushed::Header(&header))?;
        self.header = Some(header);
        self.push(&rest, out)
    }
}

/// Routes tensors arriving in file order to the graph weights that need
/// them: most go straight to the device; the parts of fused (`a+b`) weights
/// wait until all of them are in.
pub struct WeightRouter {
    weights: Vec<(String, TensorId)>,
    written: Vec<bool>,
    parts: HashMap<String, HostTensor>,
    /// Bytes written to the device so far.
    pub bytes: u64,
}

impl WeightSource for WeightRouter {
    fn info(&self, name: &str) -> Result<(Vec<usize>, crate::DType), LoadError> {
        let t = self.get(name)?;
        Ok((t.shape.clone(), t.dtype))
    }

    fn read(&mut self, name: &str) -> Result<HostTensor, LoadError> {
        self.get(name).cloned()
    }
}

fn parts(weight: &str) -> impl Iterator<Item = &str> {
    weight.split(crate::model::llama::CONCAT)
}

impl WeightRouter {
    pub fn new(weights: Vec<(String, TensorId)>) -> WeightRouter {
        WeightRouter {
            written: vec![false; weights.len()],
            weights,
            parts: HashMap::new(),
            bytes: 0,
        }
    }

    fn get(&self, name: &str) -> Result<&HostTensor, LoadError> {
        self.parts
            .get(name)
            .ok_or_else(|| LoadError::MissingTensor(name.into()))
    }

    /// Writes `t` (file tensor `name`) to every weight it completes. Plain
    /// weights are written straight from `t`; only the parts of fused
    /// weights are kept (and concatenated once all are in).
    pub fn offer(
        &mut self,
        name: &str,
        t: HostTensor,
        exe: &mut dyn crate::backend::Executable,
    ) -> Result<(), LoadError> {
        let mut is_part = false;
        for i in 0..self.weights.len() {
            let (w, id) = &self.weights[i];
            if w == name {
                exe.write(*id, &t)?;
                self.written[i] = true;
                self.bytes += t.data.len() as u64;
            } else if parts(w).any(|p| p == name) {
                is_part = true;
            }
        }
        if !is_part {
            return Ok(());
        }
        self.parts.insert(name.to_string(), t);
        for i in 0..self.weights.len() {
            let (w, id) = self.weights[i].clone();
            if !self.written[i] && parts(&w).all(|p| self.parts.contains_key(p)) {
                let data = crate::llm::read_weight(self, &w)?;
                exe.write(id, &data)?;
                self.written[i] = true;
                self.bytes += data.data.len() as u64;
            }
        }
        // Keep only parts that a weight still waiting needs.
        let (weights, written) = (&self.weights, &self.written);
        self.parts.retain(|k, _| {
            weights
                .iter()
                .zip(written)
                .any(|((w, _), done)| !done && parts(w).any(|p| p == k))
        });
        Ok(())
    }

    /// Checks that every weight was written.
    pub fn finish(&self) -> Result<(), LoadError> {
        match self.written.iter().position(|w| !w) {
            Some(i) => Err(LoadError::MissingTensor(self.weights[i].0.clone())),
            None => Ok(()),
        }
    }
}

/// A whole text model (weights, tokenizer, chat template) loaded from a GGUF
/// byte stream onto a backend.
pub struct ModelStream {
    stream: GgufStream,
    backend: Box<dyn crate::backend::Backend>,
    opts: crate::model::llama::LlamaOptions,
    loaded: Option<(crate::llm::Llm, WeightRouter)>,
}

impl ModelStream {
    pub fn new(
        total: u64,
        backend: Box<dyn crate::backend::Backend>,
        opts: crate::model::llama::LlamaOptions,
    ) -> ModelStream {
        ModelStream {
            stream: GgufStream::new(total),
            backend,
            opts,
            loaded: None,
        }
    }

    /// Bytes received so far.
    pub fn received(&self) -> u64 {
        self.stream.received()
    }

    /// Takes the next piece of the file: builds and compiles the model once
    /// the header is in, uploads each tensor as soon as it is complete.
    pub fn push(&mut self, bytes: &[u8]) -> Result<(), LoadError> {
        let (backend, opts, loaded) = (&self.backend, &self.opts, &mut self.loaded);
        self.stream.push(bytes, &mut |p| match p {
            Pushed::Header(h) => {
                let config = crate::model::LlamaConfig::from_gguf(h)?;
                let info = |name: &str| {
                    let t = h.tensor(name)?;
                    Ok((t.shape.clone(), t.dtype))
                };
                let llm = crate::llm::Llm::compile(&config, &info, backend.as_ref(), opts)?;
                let router = WeightRouter::new(llm.model.weights.clone());
                *loaded = Some((llm, router));
                Ok(())
            }
            Pushed::Tensor(name, t) => {
                let (llm, router) = loaded.as_mut().ok_or(LoadError::Cancelled)?;
                router.offer(&name, t, llm.exe.as_mut())
            }
        })
    }

    /// The loaded model, once the whole file has arrived.
    pub fn finish(self) -> Result<crate::generate::TextModel, LoadError> {
        self.stream.finish()?;
        let (Some(header), Some((llm, router))) = (self.stream.header, self.loaded) else {
            return Err(LoadError::Corrupt("the file has no header".into()));
        };
        router.finish()?;
        let tokenizer = crate::tokenizer::Tokenizer::from_spec(&header.tokenizer_spec()?)
            .map_err(|e| LoadError::Tokenizer(e.to_string()))?;
        crate::generate::TextModel::assemble(llm, tokenizer, header.chat_template(), Vec::new())
    }
}
