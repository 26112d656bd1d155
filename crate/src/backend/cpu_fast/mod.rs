//! The fast CPU backend (`cpu`): the same graph as every other backend, run
//! on the host with SIMD kernels (`std::arch`, chosen at run time) on a
//! persistent spinning thread pool ([`pool`]). The CPU reference ([`super::cpu`]) stays
//! the oracle; this backend is tested against it op by op like the GPU ones.
//!
//! * Ops with a fast kernel ([`kernels::pick`]) run it; every other op runs
//!   its reference `cpu` function (correct, single-threaded, f64) — the
//!   profile names them, so a slow fallback is visible, not hidden.
//! * Matrix products keep weights in their GGUF block format. With
//!   [`Activations::Q8`] (the default, as llama.cpp's CPU backend does) the
//!   activations are quantized to 8 bits per block of 32 on the fly and
//!   Q4_0 / Q4_1 / Q5_0 / Q5_1 / Q8_0 / Q4_K / Q6_K weights are multiplied
//!   with integer dot products;
//!   with [`Activations::F32`] every weight row is decoded to f32 and
//!   multiplied in f32 (the setting whose greedy tokens equal PyTorch's).
//! * Tensors live in host memory as [`HostTensor`]s (weights as their file
//!   bytes); intermediates are allocated once at compile time and reused by
//!   every run, so a decode step allocates nothing in the fast kernels.

mod attention;
mod attention_train;
mod conv;
mod copy;
mod dot;
mod dot_k;
mod elementwise;
mod kernels;
mod loss;
mod matmul;
mod matmul_back;
mod norm;
mod par;
mod pool;
#[cfg(all(target_arch = "wasm32", target_feature = "atomics", feature = "web"))]
pub use pool::web_worker_entry;
mod simd;
mod spatial;
mod unary;

use std::sync::Arc;

use super::{
    Backend, BackendError, Executable, KernelProfile, ReadyReads, check_copy, check_write, readable,
};
use crate::dtype::DType;
use crate::graph::{Graph, TensorId};
use crate::host::HostTensor;

pub use dot::{FORMATS as INTEGER_FORMATS, simd_level, tiles_self_test};
pub use simd::f32_tiles_self_test;

/// How the fast matrix products treat activations.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Activations {
    /// Quantized to 8 bits per block of 32 for [`INTEGER_FORMATS`] weights
    /// (integer dot products, llama.cpp's scheme); other weights as F32.
    #[default]
    Q8,
    /// f32 throughout (weights decoded row by row): the faithful setting.
    F32,
}

#[derive(Clone, Copy, Debug, Default)]
pub struct CpuOptions {
    /// Worker threads; 0 = one per available core.
    pub threads: usize,
    pub activations: Activations,
}

#[derive(Clone)]
pub struct CpuFastBackend {
    pub opts: CpuOptions,
    pool: Option<Arc<pool::Pool>>,
}

impl CpuFastBackend {
    /// A backend with its own thread pool. Where threads cannot be started
    /// (a browser page without cross-origin isolation) it runs on the
    /// calling thread.
    pub fn new(opts: CpuOptions) -> CpuFastBackend {
        let threads = if opts.threads == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            opts.threads
        };
        // wasm32 has threads only in the package's threaded build (Web
        // Workers on shared memory, `pool.rs`).
        let can =
            !cfg!(target_arch = "wasm32") || cfg!(all(target_feature = "atomics", feature = "web"));
        let pool = if threads > 1 && can {
            pool::Pool::new(threads).map(Arc::new)
        } else {
            None
        };
        CpuFastBackend { opts, pool }
    }

    /// Threads that run kernels (1 without a pool).
    pub fn threads(&self) -> usize {
        self.pool.as_ref().map_or(1, |p| p.threads())
    }

    /// Whether every worker thread has started (in the browser they start
    /// asynchronously; until then kernels run on the calling thread).
    pub fn threads_ready(&self) -> bool {
        self.pool.as_ref().is_none_or(|p| p.ready())
    }
}

impl Default for CpuFastBackend {
    fn default() -> Self {
        CpuFastBackend::new(CpuOptions::default())
    }
}

/// What a kernel gets besides its inputs and output: the pool and the
/// executable's reusable scratch.
pub(crate) struct Ctx<'a> {
    pub par: par::Par<'a>,
    pub act: Activations,
    pub scratch: &'a mut Scratch,
}

/// Buffers reused across runs (grown, never shrunk).
#[derive(Default)]
pub(crate) struct Scratch {
    pub f: Vec<f32>,
    pub q: dot::Q8Rows,
    pub rope: Vec<(f64, f64)>,
    /// conv2d: the zero-bordered input, and weights decoded to f32.
    pub conv_x: Vec<f32>,
    pub conv_w: Vec<f32>,
    /// spatial attention: the keys transposed, per (sample, head).
    pub att_kt: Vec<f32>,
    /// group norm: per-chunk channel sums, per-channel factors.
    pub gn_part: Vec<f64>,
    pub gn_ab: Vec<f32>,
}

pub struct CpuFastExecutable {
    graph: Graph,
    tensors: Vec<HostTensor>,
    kernels: Vec<Option<Box<dyn kernels::Kernel>>>,
    reads: ReadyReads,
    opts: CpuOptions,
    pool: Option<Arc<pool::Pool>>,
    scratch: Scratch,
    /// Per program: a pending copy (src, dst) to do before its next run.
    copies: Vec<(TensorId, TensorId)>,
}

impl Backend for CpuFastBackend {
    fn name(&self) -> String {
        format!(
            "cpu ({} thread{}, {}, {} activations)",
            self.threads(),
            if self.threads() == 1 { "" } else { "s" },
            simd_level(),
            match self.opts.activations {
                Activations::Q8 => "8-bit",
                Activations::F32 => "f32",
            }
        )
    }

    fn compile(&self, graph: &Graph) -> Result<Box<dyn Executable>, BackendError> {
        let mut tensors = Vec::with_capacity(graph.tensors.len());
        let mut root: Vec<usize> = (0..graph.tensors.len()).collect();
        for node in &graph.nodes {
            if let Some(i) = node.op.alias_input() {
                root[node.output.0] = root[node.inputs[i].0];
            }
        }
        for (i, t) in graph.tensors.iter().enumerate() {
            // Views get no memory of their own (their node copies at run time).
            let shape = if root[i] == i {
                t.shape.clone()
            } else {
                vec![0]
            };
            tensors.push(HostTensor::zeros(&shape, t.dtype)?);
        }
        let kernels = graph
            .nodes
            .iter()
            .map(|n| kernels::pick(graph, n, self.opts.activations))
            .collect();
        Ok(Box::new(CpuFastExecutable {
            graph: graph.clone(),
            tensors,
            kernels,
            reads: ReadyReads::default(),
            opts: self.opts,
            pool: self.pool.clone(),
            scratch: Scratch::default(),
            copies: Vec::new(),
        }))
    }
}

impl CpuFastExecutable {
    fn run_node(&mut self, ni: usize, syms: &[u32]) -> Result<(), BackendError> {
        let node = &self.graph.nodes[ni];
        let out_id = node.output;
        if let Some(i) = node.op.alias_input() {
            // A view: the same bytes under a new shape.
            let src = node.inputs[i];
            let data = std::mem::take(&mut self.tensors[src.0].data);
            let mut view = std::mem::take(&mut self.tensors[out_id.0].data);
            view.clear();
            view.extend_from_slice(&data);
            self.tensors[src.0].data = data;
            self.tensors[out_id.0].data = view;
            self.tensors[out_id.0].shape = self.graph.tensors[out_id.0].shape.clone();
            return Ok(());
        }
        let in_place = node.op.in_place();
        let placeholder = HostTensor {
            shape: vec![],
            dtype: DType::F32,
            data: vec![],
        };
        let mut out = std::mem::replace(&mut self.tensors[out_id.0], placeholder.clone());
        let result = {
            let inputs: Vec<&HostTensor> = node
                .inputs
                .iter()
                .enumerate()
                .map(|(i, t)| {
                    if Some(i) == in_place {
                        &placeholder
                    } else {
                        &self.tensors[t.0]
                    }
                })
                .collect();
            match &self.kernels[ni] {
                Some(k) => {
                    let mut ctx = Ctx {
                        par: par::Par::new(self.pool.as_deref()),
                        act: self.opts.activations,
                        scratch: &mut self.scratch,
                    };
                    k.run(&inputs, &mut out, syms, &mut ctx)
                }
                None => {
                    // The reference expects a zero-filled output (or the
                    // destination's contents for in-place ops).
                    if in_place.is_none() {
                        out.data.fill(0);
                    }
                    node.op
                        .cpu(&inputs, &mut out, syms)
                        .map_err(BackendError::from)
                }
            }
        };
        self.tensors[out_id.0] = out;
        result
    }

    fn label(&self, ni: usize) -> String {
        let node = &self.graph.nodes[ni];
        match &self.kernels[ni] {
            Some(k) => k.label(),
            None if node.op.alias_input().is_some() => format!("{} (view)", node.op.name()),
            None => format!("{} (reference)", node.op.name()),
        }
    }

    fn apply_copies(&mut self) {
        for (src, dst) in std::mem::take(&mut self.copies) {
            let data = self.tensors[src.0].data.clone();
            self.tensors[dst.0].data = data;
        }
    }
}

/// In a browser: a future that resolves on the next macrotask, so that a
/// worker running this backend sees its messages (an abort) between
/// tokens and training steps; CPU reads are otherwise ready at once and a
/// whole generation would run inside one task.
#[cfg(all(target_arch = "wasm32", feature = "web"))]
fn next_task() -> crate::backend::ReadReady {
    use wasm_bindgen::prelude::*;
    #[wasm_bindgen(module = "/js/tasks.js")]
    extern "C" {
        #[wasm_bindgen(js_name = kilnNextTask)]
        fn next_task_promise() -> js_sys::Promise;
    }
    Box::pin(async {
        let _ = wasm_bindgen_futures::JsFuture::from(next_task_promise()).await;
    })
}

impl Executable for CpuFastExecutable {
    #[cfg(all(target_arch = "wasm32", feature = "web"))]
    fn read_ready(&self, _ticket: usize) -> crate::backend::ReadReady {
        next_task()
    }

    fn graph(&self) -> &Graph {
        &self.graph
    }

    fn write(&mut self, t: TensorId, data: &HostTensor) -> Result<(), BackendError> {
        check_write(&self.graph, t, data)?;
        let dst = &mut self.tensors[t.0];
        dst.data.clear();
        dst.data.extend_from_slice(&data.data);
        Ok(())
    }

    fn fill(&mut self, t: TensorId, byte: u8) -> Result<(), BackendError> {
        self.graph.info(t)?;
        self.tensors[t.0].data.fill(byte);
        Ok(())
    }

    fn run_program(&mut self, p: usize, syms: &[u32]) -> Result<(), BackendError> {
        self.graph.check_syms(p, syms)?;
        self.apply_copies();
        for ni in self.graph.program(p)? {
            self.run_node(ni, syms)?;
        }
        Ok(())
    }

    fn profile(
        &mut self,
        p: usize,
        syms: &[u32],
    ) -> Result<Vec<(String, f64, usize)>, BackendError> {
        self.graph.check_syms(p, syms)?;
        self.apply_copies();
        let mut prof = KernelProfile::default();
        for ni in self.graph.program(p)? {
            let t0 = web_time::Instant::now();
            self.run_node(ni, syms)?;
            prof.add(&self.label(ni), t0.elapsed().as_secs_f64());
        }
        Ok(prof.finish())
    }

    fn dispatches(&self, p: usize) -> usize {
        self.graph.program(p).map_or(0, |r| {
            r.filter(|&i| self.graph.nodes[i].op.alias_input().is_none())
                .count()
        })
    }

    fn device_bytes(&self) -> u64 {
        self.tensors.iter().map(|t| t.data.len() as u64).sum()
    }

    fn read(&mut self, t: TensorId) -> Result<HostTensor, BackendError> {
        readable(&self.graph, t)?;
        self.apply_copies();
        let mut h = self.tensors[t.0].clone();
        h.shape = self.graph.tensors[t.0].shape.clone();
        Ok(h)
    }

    fn read_start(&mut self, t: TensorId) -> Result<usize, BackendError> {
        let data = self.read(t)?;
        Ok(self.reads.push(data))
    }

    fn read_finish(&mut self, ticket: usize) -> Result<HostTensor, BackendError> {
        self.reads.take(ticket)
    }

    fn copy_before_next_run(&mut self, src: TensorId, dst: TensorId) -> Result<(), BackendError> {
        check_copy(&self.graph, src, dst)?;
        self.copies.push((src, dst));
        Ok(())
    }
}
