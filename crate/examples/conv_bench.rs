//! Times one 3×3 convolution (stride 1, "same" padding, f32 weights) on a
//! wgpu adapter: the micro-benchmark behind the CPU-adapter conv kernels
//! (docs/bench/2026-12-03-chromium-terrain-cpu/).
//!
//! `cargo run --release -p kiln --example conv_bench -- ADAPTER [HW CIN COUT BATCH ITERS]`
//! (defaults 128 32 32 1 3). `NOSG=1` hides subgroups; `CPUK=0|1` picks GPU or
//! CPU-adapter kernels; natively `KILN_CONV=direct` forces the older kernel.
//! Prints ms per call (upload excluded, read-back included) and GFLOP/s.

use kiln::backend::Backend;
use kiln::backend::wgpu::{WgpuBackend, WgpuOptions};
use kiln::dtype::DType;
use kiln::graph::Graph;
use kiln::host::HostTensor;
use kiln::ops::conv2d::Conv2d;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a: Vec<String> = std::env::args().collect();
    let adapter = a.get(1).cloned();
    let num = |i: usize, d: usize| -> Result<usize, std::num::ParseIntError> {
        a.get(i).map_or(Ok(d), |s| s.parse())
    };
    let (hw, cin, cout, b, iters) = (
        num(2, 128)?,
        num(3, 32)?,
        num(4, 32)?,
        num(5, 1)?,
        num(6, 3)?,
    );
    let mut backend = WgpuBackend::new(&WgpuOptions {
        adapter,
        ..Default::default()
    })?;
    if std::env::var("NOSG").is_ok() {
        backend = backend.without_subgroups();
    }
    if let Ok(v) = std::env::var("CPUK") {
        backend = backend.with_cpu_kernels(v == "1");
    }
    let mut g = Graph::new();
    let x = g.input("x", &[b, hw, hw, cin], DType::F32)?;
    let w = g.weight("w", &[cout, 9 * cin], DType::F32)?;
    let bias = g.weight("b", &[cout], DType::F32)?;
    let y = g.conv2d(x, w, bias, None, Conv2d::same(3, 1))?;
    g.mark_output(y)?;
    let mut exe = backend.compile(&g)?;
    // Deterministic values in [-0.5, 0.5).
    let vals = |n: usize, s: u32| -> Vec<f32> {
        (0..n)
            .map(|i| (((i as u32).wrapping_mul(2_654_435_761) ^ s) % 1000) as f32 / 1000.0 - 0.5)
            .collect()
    };
    exe.write(
        x,
        &HostTensor::from_f32(&[b, hw, hw, cin], DType::F32, &vals(b * hw * hw * cin, 1))?,
    )?;
    exe.write(
        w,
        &HostTensor::from_f32(&[cout, 9 * cin], DType::F32, &vals(cout * 9 * cin, 2))?,
    )?;
    exe.write(
        bias,
        &HostTensor::from_f32(&[cout], DType::F32, &vals(cout, 3))?,
    )?;
    exe.run(&[])?;
    let sum: f64 = exe.read(y)?.to_f32()?.iter().map(|v| *v as f64).sum();
    let t = std::time::Instant::now();
    for _ in 0..iters {
        exe.run(&[])?;
        exe.read(y)?;
    }
    let dt = t.elapsed().as_secs_f64() / iters.max(1) as f64;
    let flop = 2.0 * (b * hw * hw * cout * 9 * cin) as f64;
    println!(
        "{}: conv 3x3 {hw}x{hw}x{cin}->{cout} batch {b}: {:.2} ms, {:.2} GFLOP/s (checksum {sum:.6})",
        backend.name(),
        dt * 1e3,
        flop / dt / 1e9
    );
    Ok(())
}
