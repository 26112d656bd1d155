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

/// The decode attention's cases with the cache rows written by dispatches
/// of their own (`GpuCaps::kv_in_attention` off; the suite above runs the
/// adapter's default, on), with both kernel sets.
#[test]
fn attention_new_kv_cases_match_with_the_writes_apart() {
    let Some(gpu) = common::gpu() else { return };
    let keep = |case: &kiln::parity::Case| case.shape.starts_with("new kv");
    for cpu in [gpu.caps.cpu, !gpu.caps.cpu] {
        let b = gpu
            .with_cpu_kernels(cpu)
            .with_kv_in_attention(!gpu.caps.kv_in_attention);
        common::run_suite_where(
            &format!(
                "kv_in_attention {} (cpu kernels: {cpu})",
                b.caps.kv_in_attention
            ),
            &keep,
            &|case| run_case(case, &b),
        );
    }
}

/// Prefill attention by `attn_gqa` (opt-in: `GpuCaps::attn_gqa`) with 4
/// and 8 lanes per row, the GPU kernels with and without subgroups.
#[test]
fn attention_cases_match_with_attn_gqa() {
    let Some(gpu) = common::gpu() else { return };
    let keep = |case: &kiln::parity::Case| case.op == "attention";
    for lanes in [4, 8] {
        let b = gpu.with_cpu_kernels(false).with_attn_gqa(Some(lanes));
        let mut sets = vec![(b.clone(), "subgroups")];
        if b.caps.subgroups {
            sets.push((b.without_subgroups(), "no subgroups"));
        }
        for (b, label) in sets {
            common::run_suite_where(
                &format!("attn_gqa, {lanes} lanes per row ({label})"),
                &keep,
                &|case| run_case(case, &b),
            );
        }
    }
}

/// The matrix products with 8-bit activations (ops/matmul_q8.rs: GPU
/// kernels with subgroups; the one-token GEMV and the prefill GEMM) on every
/// case with Q4_0/Q4_1/Q8_0 weights: the products they take against the
/// rounding bound of `kiln::parity::q8`, the rest (2..8 rows of x) with the
/// f32 kernels exactly as in the suite above.
#[test]
fn q8_activation_kernels_stay_within_their_rounding_bound() {
    let Some(gpu) = common::gpu() else { return };
    if !gpu.caps.subgroups {
        eprintln!("no subgroups on {}: the q8 kernels need them", gpu.name());
        return;
    }
    // Every size (the cases are small; the CLI's default skips small
    // matrices); one-token products with x quantized inside the GEMV and
    // in a dispatch of its own.
    let formats = kiln::ops::matmul_q8::Q8_FORMATS;
    let keep = |case: &kiln::parity::Case| kiln::parity::q8::q8_product(case, &formats).is_some();
    for local in [true, false] {
        let b = gpu
            .with_cpu_kernels(false)
            .with_q8_activations(Some(0))
            .with_q8_local(local);
        common::run_suite_where(
            &format!("q8 activations (GPU kernels, local quantize {local})"),
            &keep,
            &|case| match case.binding_limit {
                Some(l) => kiln::parity::q8::run_case_q8(case, &b.with_binding_limit(l), &b.caps),
                None => kiln::parity::q8::run_case_q8(case, &b, &b.caps),
            },
        );
    }
}

/// A NaN in x reaches the output through the 8-bit kernels as through the
/// f32 ones (the quantizer's max would otherwise skip it): the one-token
/// GEMV and the prefill GEMM, for every weight format they take.
#[test]
fn q8_activation_kernels_pass_nan_through() {
    let Some(gpu) = common::gpu() else { return };
    if !gpu.caps.subgroups {
        return;
    }
    let (n, k) = (8, 64);
    for local in [true, false] {
        let b = gpu
            .with_cpu_kernels(false)
            .with_q8_activations(Some(0))
            .with_q8_local(local);
        let w: Vec<f32> = (0..n * k)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 50.0)
            .collect();
        for dtype in kiln::ops::matmul_q8::Q8_FORMATS {
            for m in [1usize, 12] {
                let mut g = Graph::new();
                let x = g.input("x", &[m, k], DType::F32).unwrap();
                let wt = g.weight("w", &[n, k], dtype).unwrap();
                let y = g.matmul(x, wt).unwrap();
                g.mark_output(y).unwrap();
                let mut xv: Vec<f32> = (0..m * k).map(|i| ((i % 13) as f32 - 6.0) / 7.0).collect();
                // Row m − 1, block 1.
                xv[(m - 1) * k + 40] = f32::NAN;
                let mut exe = b.compile(&g).unwrap();
                exe.write(
                    x,
                    &kiln::HostTensor::from_f32(&[m, k], DType::F32, &xv).unwrap(),
                )
                .unwrap();
                let bytes = kiln::quant::quantize(dtype, &w).unwrap();
                exe.write(
                    wt,
                    &kiln::HostTensor::from_bytes(&[n, k], dtype, bytes).unwrap(),
                )
                .unwrap();
                exe.run(&[]).unwrap();
                let out = exe.read(y).unwrap().to_f32().unwrap();
                for (i, v) in out.iter().enumerate() {
                    let nan_row = i / n == m - 1;
                    assert_eq!(
                        v.is_nan(),
                        nan_row,
                        "{dtype} m {m} local {local}: output {i} = {v}"
                    );
                }
            }
        }
    }
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
