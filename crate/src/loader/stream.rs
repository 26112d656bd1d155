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

/// Receives each cut tensor: (name, bytes).
type TensorSink<'a> = dyn FnMut(&str, Vec<u8>) -> Result<(), LoadError> + 'a;

/// Cuts a file's bytes, arriving in order from offset `pos`, into the
/// tensors at known (name, offset, bytes), sorted by offset; gaps (padding,
/// tensors nobody wants) are skipped.
struct Cutter {
    pos: u64,
    items: Vec<(String, u64, u64)>,
    next: usize,
    buf: Vec<u8>,
}

impl Cutter {
    fn new(pos: u64, mut items: Vec<(String, u64, u64)>) -> Cutter {
        items.sort_by_key(|i| i.1);
        Cutter {
            pos,
            items,
            next: 0,
            buf: Vec::new(),
        }
    }

    fn done(&self) -> bool {
        self.next == self.items.len()
    }

    /// The tensor being waited for.
    fn pending(&self) -> Option<&str> {
        self.items.get(self.next).map(|i| i.0.as_str())
    }

    fn push(&mut self, mut bytes: &[u8], out: &mut TensorSink) -> Result<(), LoadError> {
        while !bytes.is_empty() {
            let Some((name, offset, size)) = self.items.get(self.next) else {
                // Trailing bytes after the last wanted tensor.
                self.pos += bytes.len() as u64;
                return Ok(());
            };
            if self.pos < *offset {
                let skip = ((offset - self.pos) as usize).min(bytes.len());
                bytes = &bytes[skip..];
                self.pos += skip as u64;
                continue;
            }
            if self.pos > *offset {
                return Err(LoadError::Corrupt(format!(
                    "tensor '{name}' overlaps the previous one"
                )));
            }
            if self.buf.capacity() == 0 {
                // Exactly one tensor's worth: no growth by doubling.
                self.buf.reserve_exact(*size as usize);
            }
            let take = (*size as usize - self.buf.len()).min(bytes.len());
            self.buf.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            if self.buf.len() as u64 == *size {
                self.pos = offset + size;
                self.next += 1;
                out(name, std::mem::take(&mut self.buf))?;
            }
        }
        Ok(())
    }
}

enum Phase {
    /// Collecting the header; try to parse once `try_at` bytes are in.
    Header { buf: Vec<u8>, try_at: usize },
    /// Streaming tensor data.
    Body(Cutter),
}

/// A GGUF file arriving in pieces of any size.
pub struct GgufStream {
    total: u64,
    /// File offset of the next byte pushed.
    pos: u64,
    phase: Phase,
    header: Option<GgufFile>,
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
        }
    }

    pub fn header(&self) -> Option<&GgufFile> {
        self.header.as_ref()
    }

    /// Whether every tensor has arrived.
    pub fn is_done(&self) -> bool {
        matches!(&self.phase, Phase::Body(c) if c.done())
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
                Phase::Body(cutter) => {
                    let header = self.header.as_ref().ok_or(LoadError::Cancelled)?;
                    cutter.push(bytes, &mut |name, data| {
                        let t = header.tensor(name)?;
                        out(Pushed::Tensor(
                            name.to_string(),
                            HostTensor::from_bytes(&t.shape, t.dtype, data)?,
                        ))
                    })?;
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
        let what = match &self.phase {
            Phase::Body(c) => format!("tensor '{}'", c.pending().unwrap_or("?")),
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
        let items = header
            .tensors
            .iter()
            .map(|t| (t.name.clone(), t.offset, t.bytes))
            .collect();
        let rest = std::mem::take(buf);
        let start = self.pos - rest.len() as u64;
        self.phase = Phase::Body(Cutter::new(start, items));
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

enum Shard {
    /// Collecting the 8 length bytes and the JSON header.
    Head(Vec<u8>),
    /// Header parsed; bytes after it that arrived before the model was
    /// compiled (at most one network chunk).
    Ready {
        data_at: u64,
        early: Vec<u8>,
    },
    Body(Cutter),
}

/// A Hugging Face safetensors model (one or more shards) arriving as byte
/// streams: read each shard until [`HfStream::header_done`], then stream
/// every shard's rest in any order. Weights go to the device as they arrive.
pub struct HfStream {
    model: super::safetensors::HfModel,
    tokenizer_json: Vec<u8>,
    names: Vec<String>,
    sizes: Vec<u64>,
    received: Vec<u64>,
    shards: Vec<Shard>,
    backend: Box<dyn crate::backend::Backend>,
    opts: crate::model::llama::LlamaOptions,
    loaded: Option<(crate::llm::Llm, WeightRouter)>,
}

impl HfStream {
    /// `shards` are (file name, size) in the order the index lists them.
    pub fn new(
        model: super::safetensors::HfModel,
        tokenizer_json: Vec<u8>,
        shards: Vec<(String, u64)>,
        backend: Box<dyn crate::backend::Backend>,
        opts: crate::model::llama::LlamaOptions,
    ) -> HfStream {
        HfStream {
            model,
            tokenizer_json,
            received: vec![0; shards.len()],
            sizes: shards.iter().map(|s| s.1).collect(),
            names: shards.into_iter().map(|s| s.0).collect(),
            shards: Vec::new(),
            backend,
            opts,
            loaded: None,
        }
    }

    pub fn header_done(&self, shard: usize) -> bool {
        !matches!(self.shards.get(shard), None | Some(Shard::Head(_)))
    }

    pub fn received(&self) -> u64 {
        self.received.iter().sum()
    }

    /// Takes the next bytes of shard `i`.
    pub fn push(&mut self, i: usize, bytes: &[u8]) -> Result<(), LoadError> {
        if self.shards.is_empty() {
            self.shards = self.sizes.iter().map(|_| Shard::Head(Vec::new())).collect();
        }
        let (Some(size), Some(got)) = (self.sizes.get(i), self.received.get_mut(i)) else {
            return Err(LoadError::Corrupt(format!("no shard #{i}")));
        };
        *got += bytes.len() as u64;
        if *got > *size {
            return Err(LoadError::Corrupt(format!(
                "{} is longer than the announced {size} bytes",
                self.names[i]
            )));
        }
        match &mut self.shards[i] {
            Shard::Head(buf) => {
                buf.extend_from_slice(bytes);
                if buf.len() < 8 {
                    return Ok(());
                }
                let first8: [u8; 8] = buf[..8].try_into().unwrap_or_default();
                let n = super::safetensors::header_len(&self.names[i], first8, *size)?;
                if (buf.len() as u64) < 8 + n {
                    return Ok(());
                }
                let early = buf.split_off(8 + n as usize);
                self.model.add_shard(i, &self.names[i], &buf[8..], *size)?;
                self.shards[i] = Shard::Ready {
                    data_at: 8 + n,
                    early,
                };
                if (0..self.shards.len()).all(|s| self.header_done(s)) {
                    self.compile()?;
                }
                Ok(())
            }
            Shard::Ready { early, .. } => {
                early.extend_from_slice(bytes);
                Ok(())
            }
            Shard::Body(cutter) => {
                let (model, loaded) = (&self.model, &mut self.loaded);
                let (llm, router) = loaded.as_mut().ok_or(LoadError::Cancelled)?;
                cutter.push(bytes, &mut |name, data| {
                    router.offer(name, model.convert(name, data)?, llm.exe.as_mut())
                })
            }
        }
    }

    /// All headers are in: build and compile the model, then cut each shard.
    fn compile(&mut self) -> Result<(), LoadError> {
        let config = self.model.llama_config()?;
        let model = &self.model;
        let llm = crate::llm::Llm::compile(
            &config,
            &|name| model.info(name),
            self.backend.as_ref(),
            &self.opts,
        )?;
        let mut wanted: Vec<Vec<(String, u64, u64)>> = vec![Vec::new(); self.shards.len()];
        let mut from_config = Vec::new();
        for (w, _) in &llm.model.weights {
            if let Some(t) = self.model.virtual_tensor(w) {
                from_config.push((w.clone(), t?));
                continue;
            }
            for part in w.split(crate::model::llama::CONCAT) {
                let (file, offset, bytes) = self.model.location(part)?;
                if !wanted[file].iter().any(|x| x.0 == part) {
                    wanted[file].push((part.to_string(), offset, bytes));
                }
            }
        }
        let mut router = WeightRouter::new(llm.model.weights.clone());
        let mut llm = llm;
        for (name, t) in from_config {
            router.offer(&name, t, llm.exe.as_mut())?;
        }
        self.loaded = Some((llm, router));
        for (i, items) in wanted.into_iter().enumerate() {
            let (data_at, early) = match std::mem::replace(&mut self.shards[i], Shard::Head(vec![]))
            {
                Shard::Ready { data_at, early } => (data_at, early),
                _ => return Err(LoadError::Corrupt("shard header missing".into())),
            };
            self.shards[i] = Shard::Body(Cutter::new(data_at, items));
            // Replay what arrived early (not counted twice).
            self.received[i] -= early.len() as u64;
            self.push(i, &early)?;
        }
        Ok(())
    }

    /// The loaded model, once every shard has arrived.
    pub fn finish(self) -> Result<crate::generate::TextModel, LoadError> {
        for (i, s) in self.shards.iter().enumerate() {
            let done = matches!(s, Shard::Body(c) if c.done());
            if !done || self.received[i] != self.sizes[i] {
                return Err(LoadError::Truncated {
                    what: self.names[i].clone(),
                    need: self.sizes[i],
                    len: self.received[i],
                });
            }
        }
        let Some((llm, router)) = self.loaded else {
            return Err(LoadError::Corrupt("the model has no shards".into()));
        };
        router.finish()?;
        let tokenizer = self.model.tokenizer(&self.tokenizer_json)?;
        let template = self.model.chat_template();
        let eos = self.model.special_ids("eos_token_id");
        crate::generate::TextModel::assemble(llm, tokenizer, template.as_deref(), eos)
    }
}
