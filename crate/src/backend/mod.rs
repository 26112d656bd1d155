//! Backends execute a whole [`Graph`]: `compile` once (allocate, build
//! pipelines), then `write` weights/inputs, `run` with symbol values, `read`
//! results. The CPU reference is the oracle; wgpu is the WebGPU backend; the
//! CUDA twin lives in `native-cuda/`.

pub mod cpu;
pub mod cpu_fast;
pub mod pool;
pub mod shaders;
pub mod wgpu;

use thiserror::Error;

use crate::error::KilnError;
use crate::graph::{Graph, TensorId, TensorKind};
use crate::host::HostTensor;

#[derive(Debug, Error, Clone, PartialEq)]
pub enum BackendError {
    #[error(transparent)]
    Graph(#[from] KilnError),
    #[error("no GPU adapter found{0}")]
    NoAdapter(String),
    #[error("requesting a GPU device failed: {0}")]
    RequestDevice(String),
    #[error("the GPU device was lost: {0}")]
    DeviceLost(String),
    #[error("out of GPU memory: {0}")]
    OutOfMemory(String),
    #[error("op {op} is not supported by the {backend} backend: {reason}")]
    Unsupported {
        op: String,
        backend: String,
        reason: String,
    },
    #[error("shader {shader} failed to compile: {message}")]
    ShaderCompile { shader: String, message: String },
    #[error(
        "tensor '{name}' needs {bytes} bytes in one storage binding; the device allows {limit}"
    )]
    BindingTooLarge {
        name: String,
        bytes: u64,
        limit: u64,
    },
    #[error("GPU validation error: {0}")]
    Validation(String),
    #[error("tensor '{name}': {detail}")]
    Tensor { name: String, detail: String },
}

/// See [`Executable::read_ready`].
pub type ReadReady = std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>;

/// A compiled graph on one backend.
pub trait Executable {
    fn graph(&self) -> &Graph;

    /// Sets an input, weight or state tensor (shape and dtype must match).
    fn write(&mut self, t: TensorId, data: &HostTensor) -> Result<(), BackendError>;

    /// Fills a tensor's storage with one byte (0xFF: NaN poison in tests).
    fn fill(&mut self, t: TensorId, byte: u8) -> Result<(), BackendError>;

    /// Runs every node of program `p` once with these symbol values.
    fn run_program(&mut self, p: usize, syms: &[u32]) -> Result<(), BackendError>;

    /// Runs program 0.
    fn run(&mut self, syms: &[u32]) -> Result<(), BackendError> {
        self.run_program(0, syms)
    }

    /// Runs program `p` one kernel at a time and returns (kernel, seconds,
    /// dispatches) per kernel, slowest first. Backends without a profiler
    /// return an empty list.
    fn profile(
        &mut self,
        _p: usize,
        _syms: &[u32],
    ) -> Result<Vec<(String, f64, usize)>, BackendError> {
        Ok(Vec::new())
    }

    /// Kernel launches (dispatches) one run of program `p` makes (0 where a
    /// backend does not count them).
    fn dispatches(&self, _p: usize) -> usize {
        0
    }

    /// Bytes of device memory this executable holds (buffers of all kinds).
    fn device_bytes(&self) -> u64;

    /// Reads a tensor back. Intermediates are readable only if marked as graph
    /// outputs (others share pooled memory).
    fn read(&mut self, t: TensorId) -> Result<HostTensor, BackendError>;

    /// Starts reading `t` as it will be after the work submitted so far, and
    /// returns a ticket; the host may submit more runs before
    /// [`Executable::read_finish`] (so the device never idles waiting for it).
    fn read_start(&mut self, t: TensorId) -> Result<usize, BackendError>;

    /// Waits for a read started with [`Executable::read_start`]. On the web
    /// nothing may block: await [`Executable::read_ready`] first.
    fn read_finish(&mut self, ticket: usize) -> Result<HostTensor, BackendError>;

    /// Resolves once read `ticket` can be finished without blocking. Native
    /// backends finish reads synchronously, so the default is ready at once;
    /// the WebGPU backend in a browser resolves when `mapAsync` does.
    fn read_ready(&self, _ticket: usize) -> ReadReady {
        Box::pin(std::future::ready(()))
    }

    /// Copies tensor `src` into `dst` (same size) on the device at the start
    /// of the next run — e.g. the sampled token into the next step's input,
    /// without a round trip through the host.
    fn copy_before_next_run(&mut self, src: TensorId, dst: TensorId) -> Result<(), BackendError>;

    /// How many device buffers (row chunks) hold weight `t`: more than one
    /// where it exceeds the storage-binding limit (tests check splitting).
    fn weight_chunks(&self, _t: TensorId) -> usize {
        1
    }
}

pub trait Backend {
    fn name(&self) -> String;
    fn compile(&self, graph: &Graph) -> Result<Box<dyn Executable>, BackendError>;
}

/// Per-kernel times for [`Executable::profile`]: (label, seconds, dispatches).
#[derive(Debug, Default)]
pub struct KernelProfile(Vec<(String, f64, usize)>);

impl KernelProfile {
    pub fn add(&mut self, label: &str, secs: f64) {
        match self.0.iter_mut().find(|(l, _, _)| l == label) {
            Some(e) => {
                e.1 += secs;
                e.2 += 1;
            }
            None => self.0.push((label.to_string(), secs, 1)),
        }
    }

    /// The kernels, slowest first.
    pub fn finish(mut self) -> Vec<(String, f64, usize)> {
        self.0.sort_by(|a, b| b.1.total_cmp(&a.1));
        self.0
    }
}

/// Shared checks for [`Executable::write`]: the tensor exists, is writable and
/// the data matches; host-given inputs are validated by their consumers.
pub fn check_write(graph: &Graph, t: TensorId, data: &HostTensor) -> Result<(), BackendError> {
    let info = graph.info(t)?;
    let bad = |detail: String| BackendError::Tensor {
        name: info.name.clone(),
        detail,
    };
    if info.kind == TensorKind::Intermediate {
        return Err(bad("intermediate tensors are computed, not written".into()));
    }
    if info.shape != data.shape || info.dtype != data.dtype {
        return Err(bad(format!(
            "expects {} {:?}, got {} {:?}",
            info.dtype, info.shape, data.dtype, data.shape
        )));
    }
    if data.data.len() != info.bytes() {
        return Err(bad(format!(
            "expects {} bytes, got {}",
            info.bytes(),
            data.data.len()
        )));
    }
    for node in &graph.nodes {
        for (i, inp) in node.inputs.iter().enumerate() {
            if *inp == t {
                let infos: Vec<_> = node.inputs.iter().map(|x| &graph.tensors[x.0]).collect();
                node.op.check_input_data(i, data, &infos)?;
            }
        }
    }
    Ok(())
}

/// Reads the CPU backends finished at once, waiting for
/// [`Executable::read_finish`] under their tickets.
#[derive(Default)]
pub(crate) struct ReadyReads(Vec<(usize, HostTensor)>);

impl ReadyReads {
    /// Parks `data`; returns its ticket.
    pub fn push(&mut self, data: HostTensor) -> usize {
        let ticket = self.0.last().map_or(1, |r| r.0 + 1);
        self.0.push((ticket, data));
        ticket
    }

    pub fn take(&mut self, ticket: usize) -> Result<HostTensor, BackendError> {
        let i = self
            .0
            .iter()
            .position(|r| r.0 == ticket)
            .ok_or_else(|| BackendError::Validation(format!("no pending read {ticket}")))?;
        Ok(self.0.remove(i).1)
    }
}

/// Whether `src` may be copied into `dst` by
/// [`Executable::copy_before_next_run`]: both exist and have the same size.
pub fn check_copy(graph: &Graph, src: TensorId, dst: TensorId) -> Result<(), BackendError> {
    let (si, di) = (graph.info(src)?, graph.info(dst)?);
    if si.bytes() != di.bytes() {
        return Err(BackendError::Tensor {
            name: di.name.clone(),
            detail: format!("cannot copy '{}' into it", si.name),
        });
    }
    Ok(())
}

/// Whether tensor `t` may be read back after a run.
pub fn readable(graph: &Graph, t: TensorId) -> Result<(), BackendError> {
    let info = graph.info(t)?;
    if info.kind == TensorKind::Intermediate && !graph.outputs.contains(&t) {
        return Err(BackendError::Tensor {
            name: info.name.clone(),
            detail: "not a graph output (mark it with Graph::mark_output)".into(),
        });
    }
    Ok(())
}
