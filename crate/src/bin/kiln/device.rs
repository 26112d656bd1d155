//! Which backend a command runs on: `--backend auto|gpu|cpu`.
//!
//! `auto` (the default) takes the best wgpu adapter when it is a real GPU
//! and the fast CPU backend when there is none or the only one is a
//! software rasterizer (lavapipe, SwiftShader, WARP): on those the CPU
//! backend is many times faster (docs/bench/2026-12-04-cpu-fast).

use clap::{Args, ValueEnum};
use kiln::backend::Backend;
use kiln::backend::cpu_fast::{Activations, CpuFastBackend, CpuOptions};
use kiln::backend::wgpu::{WgpuBackend, WgpuOptions};

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum BackendChoice {
    #[default]
    Auto,
    Gpu,
    Cpu,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ActChoice {
    /// 8-bit activations for Q4_0/Q4_1/Q8_0 weights (llama.cpp's scheme).
    #[default]
    Q8,
    /// f32 activations throughout (greedy tokens equal PyTorch's).
    F32,
}

#[derive(Args, Clone, Debug)]
pub struct DeviceArgs {
    /// Where to run: a GPU through wgpu, the fast CPU backend, or auto (a
    /// real GPU if there is one, else the CPU backend).
    #[arg(long, value_enum, default_value_t = BackendChoice::Auto)]
    pub backend: BackendChoice,
    /// Adapter index or name substring (default: KILN_ADAPTER, else the best).
    #[arg(long)]
    pub adapter: Option<String>,
    /// CPU backend: worker threads (default: one per core).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// How matrix products treat activations. Default: q8 on the CPU
    /// backend; f32 on GPUs, where q8 takes the products over large
    /// Q4_0/Q4_1/Q8_0 matrices to 8-bit integer dot products (faster,
    /// llama.cpp's GPU scheme; greedy tokens may then differ from PyTorch's).
    #[arg(long, value_enum)]
    pub activations: Option<ActChoice>,
}

pub enum Device {
    Gpu(WgpuBackend),
    Cpu(CpuFastBackend),
}

impl Device {
    pub fn backend(&self) -> &dyn Backend {
        match self {
            Device::Gpu(b) => b,
            Device::Cpu(b) => b,
        }
    }

    /// Kernels and graph choices as for a CPU (the CPU backend or a
    /// software adapter).
    pub fn is_cpu(&self) -> bool {
        match self {
            Device::Gpu(b) => b.caps.cpu,
            Device::Cpu(_) => true,
        }
    }
}

fn cpu(a: &DeviceArgs) -> Device {
    Device::Cpu(CpuFastBackend::new(CpuOptions {
        threads: a.threads,
        activations: match a.activations.unwrap_or_default() {
            ActChoice::Q8 => Activations::Q8,
            ActChoice::F32 => Activations::F32,
        },
    }))
}

/// The device for `a`, and a line saying why it was picked.
pub fn pick(a: &DeviceArgs) -> Result<(Device, String), Box<dyn std::error::Error>> {
    // GPUs: f32 activations unless asked (KILN_ACTIVATIONS=q8 also asks).
    let gpu = || {
        WgpuBackend::new(&WgpuOptions {
            adapter: a.adapter.clone(),
            ..Default::default()
        })
        .map(|b| match a.activations {
            Some(act) => b.with_q8_activations((act == ActChoice::Q8).then(|| {
                kiln::ops::GpuCaps::q8_min_weights(kiln::ops::matmul_q8::MIN_WEIGHTS_WGPU)
            })),
            None => b,
        })
    };
    Ok(match a.backend {
        BackendChoice::Cpu => (cpu(a), "--backend cpu".into()),
        BackendChoice::Gpu => (Device::Gpu(gpu()?), "--backend gpu".into()),
        BackendChoice::Auto if a.adapter.is_some() => {
            (Device::Gpu(gpu()?), "an adapter was named".into())
        }
        BackendChoice::Auto => match gpu() {
            Ok(b) if !b.caps.cpu => (Device::Gpu(b), "a GPU adapter was found".into()),
            Ok(b) => (
                cpu(a),
                format!(
                    "the only adapter, {}, is a software one (--backend gpu to use it)",
                    b.name()
                ),
            ),
            Err(e) => (cpu(a), format!("no GPU adapter ({e})")),
        },
    })
}

/// Prints a per-kernel profile (`Executable::profile`: label, seconds,
/// calls), slowest first, at most `top` rows.
pub fn print_profile(what: &str, prof: &[(String, f64, usize)], top: usize) {
    let total: f64 = prof.iter().map(|p| p.1).sum();
    println!(
        "profile of {what}: {:.2} ms in {} kernels",
        total * 1e3,
        prof.iter().map(|p| p.2).sum::<usize>()
    );
    for (k, secs, n) in prof.iter().take(top) {
        println!(
            "  {:>9.3} ms {:>5.1}%  {n:>4}×  {k}",
            secs * 1e3,
            100.0 * secs / total
        );
    }
}
