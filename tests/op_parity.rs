//! The op-parity suite on the test adapter (lavapipe in CI) against the CPU
//! reference: every case of `kiln::parity::cases`, with the adapter's subgroup
//! kernels and with the fallback kernels. A fresh seed per run (printed), so
//! inputs differ every time; `KILN_SEED` pins one to reproduce a failure.

mod common;

use kiln::backend::Backend;
use kiln::backend::wgpu::WgpuExecutable;
use kiln::parity::{cases, run_case};
use kiln::{DType, Graph};

fn seed() -> u64 {
    std::env::var("KILN_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(kiln::parity::clock_seed)
}

fn run_suite(backend: &kiln::backend::wgpu::WgpuBackend, label: &str) {
    run_suite_with(label, &|case| match case.binding_limit {
        Some(l) => run_case(case, &backend.with_binding_limit(l)),
        None => run_case(case, backend),
    });
}

/// 8-bit activations (the fast CPU backend's default for Q4_0/Q4_1/Q8_0/
/// Q4_K/Q6_K weights) change a product's value, so those cases are checked two ways:
/// * without an RMSNorm prologue the test first rounds `x` to what the
///   kernel's quantizer produces (per block of 32, `d = max|x|/127`,
///   `x = round(x/d)·d`), which it then reproduces exactly: the reference
///   on the rounded `x` must match within the case's own tolerance;
/// * with the prologue (the normalized rows are quantized inside the
///   kernel) the output's normalized squared error must stay within
///   llama.cpp's test-backend-ops bound for MUL_MAT, 5e-4 (rounding to 8
///   bits gives about 2.5e-5 on Gaussian data; a wrong kernel gives ~1),
///   and every value must be finite.
const Q8_NMSE: f64 = 5e-4;

fn q8_round(x: &mut [f32]) {
    for b in x.chunks_mut(32) {
        let d = b.iter().fold(0f32, |m, v| m.max(v.abs())) / 127.0;
        let id = if d > 0.0 { 1.0 / d } else { 0.0 };
        for v in b {
            *v = (*v * id).round() * d;
        }
    }
}

/// For a product with 8-bit-eligible weights: whether it normalizes `x`
/// first, and the tensor holding `x`.
fn q8_product(case: &kiln::parity::Case) -> Option<(bool, kiln::TensorId)> {
    use kiln::ops::matmul::MatMul;
    use kiln::ops::matmul_fused::FusedMatMul;
    let n = case.graph.nodes.iter().find(|n| {
        let op = n.op.as_any();
        op.downcast_ref::<MatMul>().is_some() || op.downcast_ref::<FusedMatMul>().is_some()
    })?;
    let w = case.graph.tensors[n.inputs[1].0].dtype;
    if !matches!(w, DType::Q4_0 | DType::Q4_1 | DType::Q8_0 | DType::Q4_K | DType::Q6_K) {
        return None;
    }
    let norm =
        n.op.as_any()
            .downcast_ref::<FusedMatMul>()
            .is_some_and(|f| f.norm_eps.is_some());
    Some((norm, n.inputs[0]))
}

#[test]
fn every_op_matches_the_cpu_reference_on_the_fast_cpu_backend() {
    use kiln::backend::cpu_fast::{Activations, CpuFastBackend, CpuOptions};
    for activations in [Activations::F32, Activations::Q8] {
        // Two threads: the parallel split is exercised even on one core.
        let b = CpuFastBackend::new(CpuOptions {
            threads: 2,
            activations,
        });
        run_suite_with(&b.name(), &|case| {
            let q8 = q8_product(case).filter(|_| activations == Activations::Q8);
            match q8 {
                None => run_case(case, &b),
                Some((false, x)) => {
                    let rounded = kiln::parity::Case {
                        op: case.op,
                        dtype: case.dtype,
                        shape: case.shape.clone(),
                        graph: case.graph.clone(),
                        data: case
                            .data
                            .iter()
                            .map(|(t, d)| {
                                if *t != x {
                                    return (*t, d.clone());
                                }
                                let mut v = d.to_f32().unwrap();
                                q8_round(&mut v);
                                (
                                    *t,
                                    kiln::HostTensor::from_f32(&d.shape, DType::F32, &v).unwrap(),
                                )
                            })
                            .collect(),
                        syms: case.syms.clone(),
                        output: case.output,
                        tol: case.tol,
                        binding_limit: case.binding_limit,
                    };
                    run_case(&rounded, &b)
                }
                Some((true, _)) => {
                    let mut r = run_case(case, &b);
                    if !r.pass && r.error.is_none() {
                        r.pass = r.max_abs.is_finite() && r.nmse <= Q8_NMSE;
                    }
                    r
                }
            }
        });
    }
}

fn run_suite_with(label: &str, run: &dyn Fn(&kiln::parity::Case) -> kiln::parity::CaseResult) {
    let seed = seed();
    // KILN_OPS_FILTER narrows the suite while working on one op.
    let filter = std::env::var("KILN_OPS_FILTER").unwrap_or_default();
    let all = cases::all_cases(seed, &filter).expect("cases build");
    assert!(
        !filter.is_empty() || all.len() > 200,
        "suite unexpectedly small: {}",
        all.len()
    );
    let mut failures = Vec::new();
    for case in &all {
        let r = run(case);
        if !r.pass {
            failures.push(format!(
                "{} {} {}: max abs {:.3e} max rel {:.3e} nmse {:.3e} {}",
                r.op,
                r.dtype,
                r.shape,
                r.max_abs,
                r.max_rel,
                r.nmse,
                r.error.unwrap_or_default()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{label} (seed {seed}): {} of {} cases failed:\n{}",
        failures.len(),
        all.len(),
        failures.join("\n")
    );
    eprintln!("{label}: {} cases passed (seed {seed})", all.len());
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
