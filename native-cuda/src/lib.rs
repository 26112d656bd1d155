//! `kiln-cuda`: the CUDA twin of Kiln's WGSL backend.
//!
//! It implements the same [`kiln::Backend`] trait as the CPU reference and the
//! wgpu backend, so the op-parity suite and model parity can race and compare
//! all three on one GPU. CUDA is loaded dynamically (`cudarc` with
//! `dynamic-loading`), so this crate builds and its CPU-side tests run on
//! machines without CUDA; kernels are CUDA C in `kernels/`, compiled at run
//! time with NVRTC.
//!
//! Status: the device probe and the backend skeleton. Op kernels arrive with
//! the CUDA issue; until then `compile` declines every graph with
//! [`BackendError::Unsupported`] naming the first op, as a backend that does
//! not support an op must.

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
}

impl CudaBackend {
    pub fn new(ordinal: usize) -> Result<CudaBackend, BackendError> {
        let device = probe()?
            .into_iter()
            .find(|d| d.ordinal == ordinal)
            .ok_or_else(|| BackendError::NoAdapter(format!(": no CUDA device {ordinal}")))?;
        Ok(CudaBackend { device })
    }
}

impl Backend for CudaBackend {
    fn name(&self) -> String {
        format!(
            "cuda {} (sm_{}{})",
            self.device.name, self.device.compute_capability.0, self.device.compute_capability.1
        )
    }

    fn compile(&self, graph: &Graph) -> Result<Box<dyn Executable>, BackendError> {
        let op = graph.nodes.first().map_or("(empty graph)", |n| n.op.name());
        Err(BackendError::Unsupported {
            op: op.into(),
            backend: self.name(),
            reason: "CUDA kernels are not implemented yet".into(),
        })
    }
}

#[cfg(not(target_arch = "wasm32"))]
mod imp {
    use super::{BackendError, CudaDevice};
    use cudarc::driver::{CudaContext, sys};

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
    use super::{BackendError, CudaDevice};
    pub fn probe() -> Result<Vec<CudaDevice>, BackendError> {
        Err(BackendError::NoAdapter(": CUDA is native-only".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_never_panics_and_compile_declines_with_a_typed_error() {
        match CudaBackend::new(0) {
            Ok(b) => {
                let mut g = Graph::new();
                let x = g.input("x", &[4], kiln::DType::F32).unwrap();
                g.silu(x).unwrap();
                assert!(matches!(
                    b.compile(&g),
                    Err(BackendError::Unsupported { .. })
                ));
            }
            Err(e) => eprintln!("CUDA tests skipped: {e}"),
        }
    }
}
