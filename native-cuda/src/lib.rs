//! `kiln-cuda`: the CUDA twin of Kiln's WGSL backend.
//!
//! It implements the same [`kiln::Backend`] trait as the CPU reference and the
//! wgpu backend, so the op-parity suite and model parity can race and compare
//! all three on one GPU. CUDA is loaded dynamically (`cudarc` with
//! `dynamic-loading`), so this crate builds and its CPU-side tests run on
//! machines without CUDA; kernels are CUDA C in `kernels/`, compiled at run
//! time with NVRTC.
//!
//! Layout: [`kernels`] embeds the CUDA sources and maps every WGSL dispatch
//! to its CUDA twin; [`plan`] turns a graph node into launches (pure Rust, so
//! CI checks it without a GPU); `exec` allocates, launches and reads back.
//! Ops or dtypes without a kernel are [`BackendError::Unsupported`], never a
//! panic.

#[cfg(not(target_arch = "wasm32"))]
pub mod diffuse_parity;
pub(crate) mod exec;
pub mod kernels;
#[cfg(not(target_arch = "wasm32"))]
pub mod model_parity;
pub mod plan;
#[cfg(not(target_arch = "wasm32"))]
pub mod sd_parity;
pub mod train_parity;

use kiln::backend::{Backend, BackendError, Executable};
use kiln::graph::Graph;

/// A CUDA device (ordinal) with its name and compute capability.
#[derive(Clone, Debug)]
pub struct CudaDevice {
    pub ordinal: usize,
    pub name: String,
    pub compute_capability: (i32, i32),
}

/// Why no CUDA device is usable here, as a typed error.
pub fn probe() -> Result<Vec<CudaDevice>, BackendError> {
    imp::probe()
}

pub struct CudaBackend {
    pub device: CudaDevice,
    #[cfg(not(target_arch = "wasm32"))]
    ctx: std::sync::Arc<cudarc::driver::CudaContext>,
    #[cfg(not(target_arch = "wasm32"))]
    stream: std::sync::Arc<cudarc::driver::CudaStream>,
}

impl CudaBackend {
    /// Opens CUDA device `ordinal` (a typed error when there is no driver or
    /// no such device).
    pub fn new(ordinal: usize) -> Result<CudaBackend, BackendError> {
        let device = probe()?
            .into_iter()
            .find(|d| d.ordinal == ordinal)
            .ok_or_else(|| BackendError::NoAdapter(format!(": no CUDA device {ordinal}")))?;
        imp::open(device)
    }

    /// Compiles every kernel family now (NVRTC), so the first `compile` of a
    /// graph does not pay for it (benchmarks, parity timings).
    pub fn warm_up(&self) -> Result<(), BackendError> {
        imp::warm_up(self)
    }
}

impl Backend for CudaBackend {
    fn name(&self) -> String {
        let q8 = if crate::plan::caps().q8_activations.is_some() {
            ", 8-bit activations"
        } else {
            ""
        };
        format!(
            "cuda {} (sm_{}{}){q8}",
            self.device.name, self.device.compute_capability.0, self.device.compute_capability.1
        )
    }

    fn compile(&self, graph: &Graph) -> Result<Box<dyn Executable>, BackendError> {
        imp::compile(self, graph)
    }
}

#[cfg(not(target_arch = "wasm32"))]
mod imp {
    use super::{BackendError, CudaBackend, CudaDevice, Executable, Graph};
    use cudarc::driver::{CudaContext, sys};

    pub fn open(device: CudaDevice) -> Result<CudaBackend, BackendError> {
        let ctx = CudaContext::new(device.ordinal).map_err(crate::exec::driver_err)?;
        let stream = ctx.new_stream().map_err(crate::exec::driver_err)?;
        Ok(CudaBackend {
            device,
            ctx,
            stream,
        })
    }

    pub fn warm_up(b: &CudaBackend) -> Result<(), BackendError> {
        // Compile every family, reporting all failures at once.
        let errors: Vec<String> = crate::kernels::FAMILIES
            .iter()
            .filter_map(|(family, _)| crate::exec::module(&b.ctx, family).err())
            .map(|e| e.to_string())
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(BackendError::ShaderCompile {
                shader: format!(
                    "{} of {} kernel families",
                    errors.len(),
                    crate::kernels::FAMILIES.len()
                ),
                message: errors.join("\n"),
            })
        }
    }

    pub fn compile(b: &CudaBackend, graph: &Graph) -> Result<Box<dyn Executable>, BackendError> {
        Ok(Box::new(crate::exec::CudaExecutable::new(
            &b.ctx, &b.stream, graph,
        )?))
    }

    pub fn probe() -> Result<Vec<CudaDevice>, BackendError> {
        // SAFETY: only checks whether the driver library can be loaded.
        if !unsafe { sys::is_culib_present() } {
            return Err(BackendError::NoAdapter(
                ": the CUDA driver (libcuda) is not installed".into(),
            ));
        }
        let err = |e: cudarc::driver::DriverError| BackendError::NoAdapter(format!(": CUDA: {e}"));
        let n = CudaContext::device_count().map_err(err)?;
        (0..n.max(0) as usize)
            .map(|i| {
                let ctx = CudaContext::new(i).map_err(err)?;
                Ok(CudaDevice {
                    ordinal: i,
                    name: ctx.name().map_err(err)?,
                    compute_capability: ctx.compute_capability().map_err(err)?,
                })
            })
            .collect()
    }
}

#[cfg(target_arch = "wasm32")]
mod imp {
    use super::{BackendError, CudaBackend, CudaDevice, Executable, Graph};
    fn native_only() -> BackendError {
        BackendError::NoAdapter(": CUDA is native-only".into())
    }
    pub fn probe() -> Result<Vec<CudaDevice>, BackendError> {
        Err(native_only())
    }
    pub fn open(_: CudaDevice) -> Result<CudaBackend, BackendError> {
        Err(native_only())
    }
    pub fn warm_up(_: &CudaBackend) -> Result<(), BackendError> {
        Err(native_only())
    }
    pub fn compile(_: &CudaBackend, _: &Graph) -> Result<Box<dyn Executable>, BackendError> {
        Err(native_only())
    }
}

#[cfg(test)]
mod tests;

/// The backends a parity command compares: the CPU reference, wgpu (on
/// `adapter`, an index or name substring) and CUDA device 0, each when asked
/// for; a missing GPU is reported and skipped.
#[cfg(not(target_arch = "wasm32"))]
/// Prints a per-kernel profile (label, seconds, dispatches; slowest first):
/// its total, then the 12 slowest kernels.
pub fn print_profile(what: &str, prof: &[(String, f64, usize)]) {
    let total: f64 = prof.iter().map(|p| p.1).sum();
    let n: usize = prof.iter().map(|p| p.2).sum();
    eprintln!(
        "profile {what}: {:.2} ms in {n} dispatches (kernel by kernel)",
        total * 1e3
    );
    for (k, t, c) in prof.iter().take(12) {
        eprintln!(
            "  {:>9.3} ms {:>5.1}% {c:>4}×  {k}",
            t * 1e3,
            100.0 * t / total
        );
    }
}

pub fn backends(
    cpu: bool,
    wgpu: bool,
    cuda: bool,
    adapter: Option<String>,
) -> Vec<Box<dyn kiln::backend::Backend>> {
    use kiln::backend::wgpu::{WgpuBackend, WgpuOptions};
    let mut out: Vec<Box<dyn kiln::backend::Backend>> = Vec::new();
    if cpu {
        out.push(Box::new(kiln::backend::cpu::CpuBackend));
    }
    if wgpu {
        match WgpuBackend::new(&WgpuOptions {
            adapter,
            ..Default::default()
        }) {
            Ok(b) => out.push(Box::new(b)),
            Err(e) => eprintln!("wgpu: no adapter, skipped: {e}"),
        }
    }
    if cuda {
        match CudaBackend::new(0) {
            Ok(b) => out.push(Box::new(b)),
            Err(e) => eprintln!("cuda: no CUDA device, skipped: {e}"),
        }
    }
    out
}
