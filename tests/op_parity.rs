//! The op-parity suite on the test adapter (lavapipe in CI) against the CPU
//! reference: every case of `kiln::parity::cases`, with the adapter's subgroup
//! kernels and with the fallback kernels. A fresh seed per run (printed), so
//! inputs differ every time; `KILN_SEED` pins one to reproduce a failure.

mod common;

use kiln::backend::Backend;
use kiln::backend::wgpu::WgpuExecutable;
use kiln::parity::run_case;
use kiln::{DType, Graph};

fn run_suite(backend: &kiln::backend::wgpu::WgpuBackend, label: &str) {
    common::run_suite_with(label, &|case| match case.binding_limit {
        Some(l) => run_case(case, &backend.with_binding_limit(l)),
        None => run_case(case, backend),
    });
}

#[test]
fn every_op_matches_the_cpu_reference() {
    let Some(gpu) = common::gpu() else { return };
    // Every kernel variant this adapter can run: with and without subgroups,
    // and (lavapipe is a CPU) the CPU-adapter kernels and the GPU ones.
    for cpu in [gpu.caps.cpu, !gpu.caps.cpu] {
        let b = gpu.with_cpu_kernels(cpu);
        run_suite(&b, &format!("{} (cpu kernels: {cpu})", gpu.name()));
        if gpu.caps.subgroups {
            run_suite(
                &b.without_subgroups(),
                &format!("no subgroups (cpu kernels: {cpu})"),
            );
        }
    }
}

/// The decode GEMVs with 8-bit activations (ops/matmul_q8.rs: GPU kernels
/// with subgroups), on every case whose product they can take, against the
/// rounding bound of `kiln::parity::q8` (products they cannot take, m > 1
/// among them, run the f32 kernels under the same bound).
#[test]
fn q8_activation_kernels_stay_within_their_rounding_bound() {
    let Some(gpu) = common::gpu() else { return };
    if !gpu.caps.subgroups {
        eprintln!("no subgroups on {}: the q8 kernels need them", gpu.name());
        return;
    }
    // Every size (the cases are small; the CLI's default skips small matrices).
    let b = gpu.with_cpu_kernels(false).with_q8_activations(Some(0));
    let formats = kiln::ops::matmul_q8::Q8_FORMATS;
    let keep = |case: &kiln::parity::Case| kiln::parity::q8::q8_product(case, &formats).is_some();
    common::run_suite_where(
        "q8 activations (GPU kernels)",
        &keep,
        &|case| match case.binding_limit {
            Some(l) => kiln::parity::q8::run_case_q8(case, &b.with_binding_limit(l), &formats),
            None => kiln::parity::q8::run_case_q8(case, &b, &formats),
        },
    );
}

#[test]
fn weights_over_the_binding_limit_are_split() {
    let Some(gpu) = common::gpu() else { return };
    let mut g = Graph::new();
    let x = g.input("x", &[1, 64], DType::F32).unwrap();
    let w = g.weight("w", &[100, 64], DType::Q4_0).unwrap();
    let y = g.matmul(x, w).unwrap();
    g.mark_output(y).unwrap();
    let row = DType::Q4_0.row_bytes(64).unwrap() as u64;
    let small = gpu.with_binding_limit(30 * row);
    let exe = WgpuExecutable::new(small.ctx.clone(), small.caps.clone(), &g).unwrap();
    assert_eq!(exe.chunk_count(w), 4, "100 rows at 30 rows per binding");
    assert_eq!(exe.chunk_count(x), 1);
}
