//! Compiling a graph for CUDA and running it (the twin of the wgpu executor).
//!
//! `compile`: give weights, inputs, state and graph outputs a device buffer
//! each, and the other intermediates pooled buffers by liveness
//! ([`kiln::backend::pool`]; views such as `reshape` alias their source), plan every node's launches once ([`crate::plan`]), load each
//! family's NVRTC module (compiled once per process and device) and resolve
//! every launch to a function, its parameter words and buffer addresses.
//! `run`: write the symbol values into a small device buffer, launch every
//! kernel of the program on one stream; nothing is allocated or planned per
//! run. `read` copies back (and synchronizes).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use cudarc::driver::{
    CudaContext, CudaFunction, CudaGraph, CudaModule, CudaSlice, CudaStream, DevicePtr, DeviceRepr,
    DriverError, LaunchConfig, PushKernelArg, result, sys,
};
use cudarc::nvrtc::{CompileOptions, compile_ptx_with_opts};

use kiln::backend::{BackendError, Executable, check_write, readable};
use kiln::graph::{Graph, TensorId};
use kiln::host::HostTensor;

use crate::kernels::{self, MAX_BINDINGS, MAX_PARAMS};
use crate::plan::{self, Arg};

#[repr(C)]
#[derive(Clone, Copy)]
struct KParams([u32; MAX_PARAMS]);
#[repr(C)]
#[derive(Clone, Copy)]
struct KPtrs([u64; MAX_BINDINGS]);
// SAFETY: plain-old-data structs with the C layout of `Params`/`Ptrs` in
// kernels/common.cuh, passed by value as kernel arguments.
unsafe impl DeviceRepr for KParams {}
unsafe impl DeviceRepr for KPtrs {}

pub(crate) fn driver_err(e: DriverError) -> BackendError {
    if e.0 == sys::cudaError_enum::CUDA_ERROR_OUT_OF_MEMORY {
        BackendError::OutOfMemory(format!("CUDA: {e}"))
    } else {
        BackendError::DeviceLost(format!("CUDA: {e}"))
    }
}

/// The process-wide module cache: (device ordinal, family) → loaded module.
type ModuleCache = Mutex<HashMap<(usize, &'static str), Arc<CudaModule>>>;
fn module_cache() -> &'static ModuleCache {
    static CACHE: OnceLock<ModuleCache> = OnceLock::new();
    CACHE.get_or_init(Default::default)
}

/// Loads (compiling with NVRTC on first use) the module of `family`.
pub(crate) fn module(
    ctx: &Arc<CudaContext>,
    family: &'static str,
) -> Result<Arc<CudaModule>, BackendError> {
    let key = (ctx.ordinal(), family);
    let mut cache = module_cache().lock().unwrap_or_else(|e| e.into_inner());
    if let Some(m) = cache.get(&key) {
        return Ok(m.clone());
    }
    // SAFETY: only checks whether the NVRTC library can be loaded.
    if !unsafe { cudarc::nvrtc::sys::is_culib_present() } {
        return Err(BackendError::ShaderCompile {
            shader: format!("{family}.cu"),
            message: "NVRTC (libnvrtc) is not installed or not on the library path".into(),
        });
    }
    let (major, minor) = ctx.compute_capability().map_err(driver_err)?;
    let ptx = compile(family, major, minor)?;
    let m = ctx.load_module(ptx).map_err(driver_err)?;
    cache.insert(key, m.clone());
    Ok(m)
}

/// NVRTC's PTX of `family` for compute capability `major.minor`.
pub(crate) fn compile(
    family: &'static str,
    major: i32,
    minor: i32,
) -> Result<cudarc::nvrtc::Ptx, BackendError> {
    let src = kernels::source(family).ok_or_else(|| BackendError::ShaderCompile {
        shader: format!("{family}.cu"),
        message: "no such kernel family".into(),
    })?;
    let mut options = vec![
        format!("--gpu-architecture=compute_{major}{minor}"),
        "-default-device".into(),
        "--std=c++17".into(),
    ];
    // The decode GEMVs take gemv1.cuh's wide-load path unless
    // `KILN_CUDA_GEMV=generic` (H100, 2026-12-06: SmolLM2 decode 1003 vs
    // 744 tok/s; docs/bench/2026-12-06-h100-cuda-decode.md).
    let wide = std::env::var("KILN_CUDA_GEMV").as_deref() != Ok("generic");
    options.push(format!("-DKILN_GEMV_HALF={}", wide as u32));
    let opts = CompileOptions {
        name: Some(format!("{family}.cu")),
        use_fast_math: Some(false),
        options,
        ..Default::default()
    };
    compile_ptx_with_opts(&src, opts).map_err(|e| BackendError::ShaderCompile {
        shader: format!("{family}.cu"),
        message: match e {
            cudarc::nvrtc::CompileError::CompileError { log, .. } => {
                log.to_string_lossy().into_owned()
            }
            other => other.to_string(),
        },
    })
}

struct Step {
    label: String,
    func: CudaFunction,
    params: KParams,
    ptrs: KPtrs,
    grid: (u32, u32, u32),
    block: (u32, u32, u32),
}

pub struct CudaExecutable {
    stream: Arc<CudaStream>,
    graph: Graph,
    bufs: Vec<CudaSlice<u8>>,
    /// Buffer index per tensor (views share their root's).
    slot: Vec<usize>,
    syms_buf: usize,
    steps: Vec<Vec<Step>>,
    bytes: u64,
    /// Reads in flight: (ticket, tensor, a stream-ordered snapshot).
    reads: Vec<(usize, TensorId, CudaSlice<u8>)>,
    next_ticket: usize,
    /// (src buffer, dst buffer, bytes) copied at the start of the next run.
    pending_copies: Vec<(usize, usize, usize)>,
    /// Per program: how its launches are replayed (see `run_program`).
    replay: Vec<Replay>,
    /// Launch with programmatic stream serialization (see [`pdl_enabled`]).
    pdl: bool,
}

/// A program's launches are fixed at compile time (symbolic sizes are read
/// from the symbols buffer on the device, grids cover their maxima), so after
/// one direct run they are captured once into a CUDA graph and replayed with
/// one driver call per run: hundreds of launches cost one.
enum Replay {
    /// Not run yet: the first run launches directly (launch errors surface
    /// with the kernel's name).
    First,
    Capture,
    Graph(CudaGraph),
    /// Capturing failed or is disabled (`KILN_CUDA_GRAPHS=0`): launch directly.
    Direct,
}

/// The tensor-core twin of a kernel where one exists and the GPU has TF32
/// tensor cores (compute capability 8.0 or later): the `big` convolutions
/// run as 3xTF32 `mma.sync` (f32 accuracy; conv2d.cu). `KILN_CUDA_TF32X3=0`
/// keeps the FFMA kernels (for comparisons).
///
/// The prefill GEMMs with 8-bit activations likewise run on integer tensor
/// cores (`mma.sync` s8, the same integer sums; mul_mat_q8.cu);
/// `KILN_CUDA_MMA=0` keeps their `__dp4a` kernels.
fn tensor_core_variant(ctx: &Arc<CudaContext>, name: &str) -> Result<String, BackendError> {
    let off = if name.starts_with("conv2d_big") {
        std::env::var("KILN_CUDA_TF32X3").as_deref() == Ok("0")
    } else if name.starts_with("mul_mat_q8_gemm_") {
        std::env::var("KILN_CUDA_MMA").as_deref() == Ok("0")
    } else {
        true
    };
    if off {
        return Ok(name.to_string());
    }
    let (major, _) = ctx.compute_capability().map_err(driver_err)?;
    Ok(if major >= 8 {
        format!("{name}_tc")
    } else {
        name.to_string()
    })
}

/// Programmatic dependent launch on compute capability 9.0 or later, unless
/// `KILN_CUDA_PDL=0`: every launch lets the next kernel start launching
/// while this one finishes (each entry waits for the grid before it:
/// `kiln_entry` in common.cuh). H100, 2026-12-06: SmolLM2 decode 1073 vs
/// 1003 tok/s; with the wide GEMV, the 1B shape 669 vs 256 with neither.
fn pdl_enabled(ctx: &Arc<CudaContext>) -> Result<bool, BackendError> {
    if std::env::var("KILN_CUDA_PDL").as_deref() == Ok("0") {
        return Ok(false);
    }
    let (major, _) = ctx.compute_capability().map_err(driver_err)?;
    Ok(major >= 9)
}

fn graphs_enabled() -> bool {
    std::env::var("KILN_CUDA_GRAPHS").map_or(true, |v| v != "0")
}

fn align4(n: usize) -> usize {
    n.div_ceil(4).max(1) * 4
}

impl CudaExecutable {
    pub fn new(
        ctx: &Arc<CudaContext>,
        stream: &Arc<CudaStream>,
        graph: &Graph,
    ) -> Result<CudaExecutable, BackendError> {
        let graph = graph.clone();
        let programs = plan::plan_graph(&graph)?;
        let pool = kiln::backend::pool::plan(&graph);
        let mut bufs: Vec<CudaSlice<u8>> = Vec::new();
        let mut alloc = |bytes: usize| -> Result<usize, BackendError> {
            bufs.push(
                stream
                    .alloc_zeros::<u8>(align4(bytes))
                    .map_err(driver_err)?,
            );
            Ok(bufs.len() - 1)
        };
        let mut own: Vec<Option<usize>> = vec![None; graph.tensors.len()];
        for (i, info) in graph.tensors.iter().enumerate() {
            if pool.root[i] == i && pool.pinned[i] {
                own[i] = Some(alloc(info.bytes())?);
            }
        }
        let pool_bufs = pool
            .pool_bytes
            .iter()
            .map(|b| alloc(*b as usize))
            .collect::<Result<Vec<usize>, _>>()?;
        let slot: Vec<usize> = (0..graph.tensors.len())
            .map(|i| match pool.pooled[i] {
                Some(b) => pool_bufs[b],
                None => own[pool.root[i]].unwrap_or(usize::MAX),
            })
            .collect();
        let syms_buf = alloc(4 * graph.syms.len())?;
        let mut scratch: HashMap<u8, u64> = HashMap::new();
        for l in programs.iter().flatten() {
            for a in &l.args {
                if let Arg::Scratch(s, b) = a {
                    let e = scratch.entry(*s).or_insert(0);
                    *e = (*e).max(*b);
                }
            }
        }
        let mut scratch_buf: HashMap<u8, usize> = HashMap::new();
        for (s, b) in &scratch {
            scratch_buf.insert(*s, alloc(*b as usize)?);
        }
        let ptr = |i: usize| -> u64 {
            let (p, _sync) = bufs[i].device_ptr(stream);
            p
        };
        let mut steps = Vec::new();
        for launches in programs {
            let mut prog = Vec::new();
            for l in launches {
                let m = module(ctx, l.kernel.family)?;
                let name = tensor_core_variant(ctx, &l.kernel.name)?;
                let func = m
                    .load_function(&name)
                    .map_err(|e| BackendError::ShaderCompile {
                        shader: format!("{}.cu", l.kernel.family),
                        message: format!("function {name}: {e}"),
                    })?;
                let mut ptrs = [0u64; MAX_BINDINGS];
                for (j, a) in l.args.iter().enumerate() {
                    ptrs[j] = match a {
                        Arg::Tensor(t) => ptr(slot[t.0]),
                        Arg::Syms => ptr(syms_buf),
                        Arg::Scratch(s, _) => ptr(scratch_buf[s]),
                    };
                }
                let [gx, gy, gz] = l.grid;
                let [bx, by, bz] = l.kernel.block;
                prog.push(Step {
                    label: format!("{}:{name}", l.kernel.family),
                    func,
                    params: KParams(l.params),
                    ptrs: KPtrs(ptrs),
                    grid: (gx, gy, gz),
                    block: (bx, by, bz),
                });
            }
            steps.push(prog);
        }
        let bytes = bufs.iter().map(|b| b.len() as u64).sum();
        let replay = (0..steps.len())
            .map(|_| {
                if graphs_enabled() {
                    Replay::First
                } else {
                    Replay::Direct
                }
            })
            .collect();
        Ok(CudaExecutable {
            stream: stream.clone(),
            graph,
            bufs,
            slot,
            syms_buf,
            steps,
            bytes,
            reads: Vec::new(),
            next_ticket: 0,
            pending_copies: Vec::new(),
            replay,
            pdl: pdl_enabled(ctx)?,
        })
    }

    fn launch_all(&self, p: usize) -> Result<(), BackendError> {
        for s in &self.steps[p] {
            self.launch(s)?;
        }
        Ok(())
    }

    /// Captures program `p`'s launches into a graph (`None`: nothing to
    /// capture, or the driver refused; the caller then launches directly).
    fn capture(&self, p: usize) -> Result<Option<CudaGraph>, BackendError> {
        let mode = sys::CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_THREAD_LOCAL;
        if self.stream.begin_capture(mode).is_err() {
            return Ok(None);
        }
        let launched = self.launch_all(p);
        let graph = self.stream.end_capture(sys::CUgraphInstantiate_flags(0));
        launched?;
        Ok(graph.ok().flatten())
    }

    fn write_syms(&mut self, syms: &[u32]) -> Result<(), BackendError> {
        if syms.is_empty() {
            return Ok(());
        }
        let bytes: Vec<u8> = syms.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.stream
            .memcpy_htod(&bytes, &mut self.bufs[self.syms_buf])
            .map_err(driver_err)
    }

    fn launch(&self, s: &Step) -> Result<(), BackendError> {
        if self.pdl {
            return self.launch_pdl(s);
        }
        let mut b = self.stream.launch_builder(&s.func);
        b.arg(&s.params).arg(&s.ptrs);
        let cfg = LaunchConfig {
            grid_dim: s.grid,
            block_dim: s.block,
            shared_mem_bytes: 0,
        };
        // SAFETY: the arguments match the kernel's `(Params, Ptrs)` signature;
        // every address points into a live buffer of this executable, sized
        // for the tensor the op planned it for.
        unsafe { b.launch(cfg) }
            .map(|_| ())
            .map_err(|e| BackendError::Validation(format!("launch {}: {e}", s.label)))
    }
}

impl CudaExecutable {
    /// `launch` with the programmatic-stream-serialization attribute
    /// (`cuLaunchKernelEx`; cudarc's builder has no launch attributes).
    fn launch_pdl(&self, s: &Step) -> Result<(), BackendError> {
        // SAFETY: an all-zero launch attribute value is a valid union value.
        let mut value: sys::CUlaunchAttributeValue = unsafe { std::mem::zeroed() };
        value.programmaticStreamSerializationAllowed = 1;
        let mut attr = sys::CUlaunchAttribute {
            id: sys::CUlaunchAttributeID::CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION,
            pad: [0; 4],
            value,
        };
        let cfg = sys::CUlaunchConfig {
            gridDimX: s.grid.0,
            gridDimY: s.grid.1,
            gridDimZ: s.grid.2,
            blockDimX: s.block.0,
            blockDimY: s.block.1,
            blockDimZ: s.block.2,
            sharedMemBytes: 0,
            hStream: self.stream.cu_stream(),
            attrs: &mut attr,
            numAttrs: 1,
        };
        let (mut params, mut ptrs) = (s.params, s.ptrs);
        let mut args: [*mut std::ffi::c_void; 2] = [
            (&mut params as *mut KParams).cast(),
            (&mut ptrs as *mut KPtrs).cast(),
        ];
        self.stream.context().bind_to_thread().map_err(driver_err)?;
        // SAFETY: as in `launch`: the two arguments are the kernel's
        // `(Params, Ptrs)`, passed by address as the driver API expects and
        // alive for the call; `cfg` and `attr` outlive it too.
        unsafe {
            sys::cuLaunchKernelEx(
                &cfg,
                s.func.cu_function(),
                args.as_mut_ptr(),
                std::ptr::null_mut(),
            )
        }
        .result()
        .map_err(|e| BackendError::Validation(format!("launch {}: {e}", s.label)))
    }
}

impl Executable for CudaExecutable {
    fn graph(&self) -> &Graph {
        &self.graph
    }

    fn write(&mut self, t: TensorId, data: &HostTensor) -> Result<(), BackendError> {
        check_write(&self.graph, t, data)?;
        let i = self.slot[t.0];
        self.stream
            .memcpy_htod(&data.data, &mut self.bufs[i])
            .map_err(driver_err)
    }

    fn fill(&mut self, t: TensorId, byte: u8) -> Result<(), BackendError> {
        self.graph.info(t)?;
        let buf = &self.bufs[self.slot[t.0]];
        let (p, _sync) = buf.device_ptr(&self.stream);
        // SAFETY: `p` addresses `buf.len()` bytes of a live allocation.
        unsafe { result::memset_d8_async(p, byte, buf.len(), self.stream.cu_stream()) }
            .map_err(driver_err)
    }

    fn run_program(&mut self, p: usize, syms: &[u32]) -> Result<(), BackendError> {
        self.graph.check_syms(p, syms)?;
        self.write_syms(syms)?;
        for (src, dst, n) in std::mem::take(&mut self.pending_copies) {
            let (sp, _s) = self.bufs[src].device_ptr(&self.stream);
            let (dp, _d) = self.bufs[dst].device_ptr(&self.stream);
            // SAFETY: both buffers are live and hold at least `n` bytes
            // (checked in copy_before_next_run).
            unsafe { result::memcpy_dtod_async(dp, sp, n, self.stream.cu_stream()) }
                .map_err(driver_err)?;
        }
        match std::mem::replace(&mut self.replay[p], Replay::Direct) {
            Replay::First => {
                self.replay[p] = Replay::Capture;
                self.launch_all(p)
            }
            Replay::Capture => match self.capture(p)? {
                Some(g) => {
                    g.launch().map_err(driver_err)?;
                    self.replay[p] = Replay::Graph(g);
                    Ok(())
                }
                None => self.launch_all(p),
            },
            Replay::Graph(g) => {
                let r = g.launch().map_err(driver_err);
                self.replay[p] = Replay::Graph(g);
                r
            }
            Replay::Direct => self.launch_all(p),
        }
    }

    /// GPU time per kernel from CUDA events recorded between the launches.
    /// A `kiln_hold` kernel first holds the stream until every launch is
    /// queued, so a delta is a kernel plus the gap before the next one on
    /// the GPU, not the host's launch rate. Launches go without the PDL
    /// attribute here (events between kernels would break its overlap).
    fn profile(
        &mut self,
        p: usize,
        syms: &[u32],
    ) -> Result<Vec<(String, f64, usize)>, BackendError> {
        self.graph.check_syms(p, syms)?;
        self.write_syms(syms)?;
        self.stream.synchronize().map_err(driver_err)?;
        let ctx = self.stream.context().clone();
        let hold = module(&ctx, "copy")?
            .load_function("kiln_hold")
            .map_err(driver_err)?;
        let n = self.steps[p].len();
        let mut words = [0u32; MAX_PARAMS];
        // 50 µs per launch queued behind it, at least 20 ms.
        words[0] = (50 * n as u32).max(20_000);
        let gate = Step {
            label: "hold".into(),
            func: hold,
            params: KParams(words),
            ptrs: KPtrs([0; MAX_BINDINGS]),
            grid: (1, 1, 1),
            block: (1, 1, 1),
        };
        let pdl = std::mem::replace(&mut self.pdl, false);
        let timing = Some(sys::CUevent_flags::CU_EVENT_DEFAULT);
        let run = (|| {
            self.launch(&gate)?;
            let mut events = vec![self.stream.record_event(timing).map_err(driver_err)?];
            for s in &self.steps[p] {
                self.launch(s)?;
                events.push(self.stream.record_event(timing).map_err(driver_err)?);
            }
            self.stream.synchronize().map_err(driver_err)?;
            let mut out = kiln::backend::KernelProfile::default();
            // KILN_PROFILE_GRID=1 keeps launches of one kernel with
            // different grids apart (e.g. a model's GEMV shapes).
            let by_grid = std::env::var("KILN_PROFILE_GRID").as_deref() == Ok("1");
            for (s, w) in self.steps[p].iter().zip(events.windows(2)) {
                let ms = w[0].elapsed_ms(&w[1]).map_err(driver_err)?;
                if by_grid {
                    let blocks = s.grid.0 * s.grid.1 * s.grid.2;
                    out.add(&format!("{} ({blocks} blocks)", s.label), ms as f64 / 1e3);
                } else {
                    out.add(&s.label, ms as f64 / 1e3);
                }
            }
            Ok(out.finish())
        })();
        self.pdl = pdl;
        run
    }

    fn dispatches(&self, p: usize) -> usize {
        self.steps.get(p).map_or(0, Vec::len)
    }

    fn device_bytes(&self) -> u64 {
        self.bytes
    }

    fn read(&mut self, t: TensorId) -> Result<HostTensor, BackendError> {
        let ticket = self.read_start(t)?;
        self.read_finish(ticket)
    }

    fn read_start(&mut self, t: TensorId) -> Result<usize, BackendError> {
        readable(&self.graph, t)?;
        let n = self.graph.info(t)?.bytes();
        let snap = self
            .stream
            .clone_dtod(&self.bufs[self.slot[t.0]].slice(0..n))
            .map_err(driver_err)?;
        self.next_ticket += 1;
        self.reads.push((self.next_ticket, t, snap));
        Ok(self.next_ticket)
    }

    fn read_finish(&mut self, ticket: usize) -> Result<HostTensor, BackendError> {
        let i = self
            .reads
            .iter()
            .position(|r| r.0 == ticket)
            .ok_or_else(|| BackendError::Validation(format!("no pending read {ticket}")))?;
        let (_, t, snap) = self.reads.remove(i);
        let info = self.graph.info(t)?.clone();
        let mut data = vec![0u8; info.bytes()];
        self.stream
            .memcpy_dtoh(&snap, &mut data)
            .map_err(driver_err)?;
        self.stream.synchronize().map_err(driver_err)?;
        Ok(HostTensor::from_bytes(&info.shape, info.dtype, data)?)
    }

    fn copy_before_next_run(&mut self, src: TensorId, dst: TensorId) -> Result<(), BackendError> {
        let (si, di) = (self.graph.info(src)?, self.graph.info(dst)?);
        let (sb, db) = (self.slot[src.0], self.slot[dst.0]);
        if si.bytes() != di.bytes() || sb == db {
            return Err(BackendError::Tensor {
                name: di.name.clone(),
                detail: format!("cannot copy '{}' into it", si.name),
            });
        }
        self.pending_copies.push((sb, db, si.bytes()));
        Ok(())
    }
}
