//! The op-parity suite on the fast CPU backend (`backend::cpu_fast`)
//! against the CPU reference: every registry case, with f32 activations
//! (the cases' own tolerances) and with 8-bit activations, two threads so
//! the parallel split runs even on one core.
//!
//! 8-bit activations (the default for the weight formats with integer
//! kernels, `cpu_fast::INTEGER_FORMATS`) change a product's value, so those
//! cases are checked two ways:
//! * without an RMSNorm prologue the test first rounds `x` to what the
//!   kernel's quantizer produces (per block of 32, `d = max|x|/127`,
//!   `x = round(x/d)·d`), which the kernel then reproduces exactly: the
//!   reference on the rounded `x` must match within the case's tolerance;
//! * with the prologue (the normalized rows are quantized inside the
//!   kernel) each output may move by the rounding of its inputs: rounding
//!   errors uniform in ±d/2 give an output variance of Σ w²·d²/12 (through
//!   SwiGLU, (silu'(a)·b)²·Var a + silu(a)²·Var b). The test computes that
//!   variance from the case's own data and allows 6 standard deviations on
//!   top of the case's tolerance; a wrong kernel misses by far more.

mod common;

use kiln::backend::Backend;
use kiln::backend::cpu::CpuBackend;
use kiln::backend::cpu_fast::{Activations, CpuFastBackend, CpuOptions, INTEGER_FORMATS};
use kiln::ops::matmul::MatMul;
use kiln::ops::matmul_fused::FusedMatMul;
use kiln::parity::{Case, CaseResult, run_case};
use kiln::{DType, HostTensor, TensorId};

fn q8_round(x: &mut [f32]) {
    for b in x.chunks_mut(32) {
        let d = b.iter().fold(0f32, |m, v| m.max(v.abs())) / 127.0;
        let id = if d > 0.0 { 1.0 / d } else { 0.0 };
        for v in b {
            *v = (*v * id).round() * d;
        }
    }
}

/// The product node of a case with integer-kernel weights, if any.
fn q8_product(case: &Case) -> Option<&kiln::graph::Node> {
    let n = case.graph.nodes.iter().find(|n| {
        let op = n.op.as_any();
        op.downcast_ref::<MatMul>().is_some() || op.downcast_ref::<FusedMatMul>().is_some()
    })?;
    INTEGER_FORMATS
        .contains(&case.graph.tensors[n.inputs[1].0].dtype)
        .then_some(n)
}

fn data(case: &Case, t: TensorId) -> Vec<f32> {
    let d = case
        .data
        .iter()
        .find(|(id, _)| *id == t)
        .expect("case data");
    kiln::quant::dequantize(d.1.dtype, &d.1.data, d.1.numel()).expect("decodes")
}

fn output(case: &Case, b: &dyn Backend) -> Result<Vec<f32>, String> {
    let mut exe = b.compile(&case.graph).map_err(|e| e.to_string())?;
    for (t, d) in &case.data {
        exe.write(*t, d).map_err(|e| e.to_string())?;
    }
    exe.fill(case.output, 0xFF).map_err(|e| e.to_string())?;
    exe.run(&case.syms).map_err(|e| e.to_string())?;
    exe.read(case.output)
        .and_then(|h| h.to_f32().map_err(Into::into))
        .map_err(|e| e.to_string())
}

/// A fused product with an RMSNorm prologue: every output against the
/// reference within the case's tolerance plus 6σ of 8-bit rounding.
fn check_norm_case(
    case: &Case,
    f: &FusedMatMul,
    node: &kiln::graph::Node,
    b: &dyn Backend,
) -> CaseResult {
    let mut r = run_case(case, b);
    if r.error.is_some() {
        return r;
    }
    let (want, got) = match (output(case, &CpuBackend), output(case, b)) {
        (Ok(w), Ok(g)) => (w, g),
        (Err(e), _) | (_, Err(e)) => {
            r.error = Some(e);
            r.pass = false;
            return r;
        }
    };
    let (x, w, nw) = (
        data(case, node.inputs[0]),
        data(case, node.inputs[1]),
        data(case, node.inputs[2]),
    );
    let k = nw.len();
    let rows = case.graph.tensors[node.inputs[1].0].shape[0];
    let n = if f.glu { rows / 2 } else { rows };
    let eps = f.norm_eps.unwrap_or(0.0) as f64;
    let mut pass = got.len() == want.len();
    for (i, xr) in x.chunks(k).enumerate() {
        let ms = xr.iter().map(|v| (*v as f64).powi(2)).sum::<f64>() / k as f64;
        let inv = 1.0 / (ms + eps).sqrt();
        let xn: Vec<f64> = xr
            .iter()
            .zip(&nw)
            .map(|(v, g)| ((*v as f64 * inv * *g as f64) as f32) as f64)
            .collect();
        let d: Vec<f64> = xn
            .chunks(32)
            .map(|b| b.iter().fold(0f64, |m, v| m.max(v.abs())) / 127.0)
            .collect();
        let stats = |row: usize| {
            let wr = &w[row * k..(row + 1) * k];
            let dot: f64 = wr.iter().zip(&xn).map(|(a, b)| *a as f64 * b).sum();
            let var: f64 = wr
                .iter()
                .enumerate()
                .map(|(j, a)| (*a as f64).powi(2) * d[j / 32].powi(2) / 12.0)
                .sum();
            (dot, var)
        };
        for c in 0..n {
            let var = if f.glu {
                let ((a, va), (bb, vb)) = (stats(c), stats(n + c));
                let s = 1.0 / (1.0 + (-a).exp());
                let silu_d = s * (1.0 + a * (1.0 - s));
                (silu_d * bb).powi(2) * va + (a * s).powi(2) * vb
            } else {
                stats(c).1
            };
            let (g, wv) = (got[i * n + c] as f64, want[i * n + c] as f64);
            let bound = case.tol.atol as f64 + case.tol.rtol as f64 * wv.abs() + 6.0 * var.sqrt();
            // NaN anywhere fails: the comparison is false.
            let within = (g - wv).abs() <= bound;
            pass &= within;
        }
    }
    r.pass = pass;
    r
}

#[test]
fn every_op_matches_the_cpu_reference_on_the_fast_cpu_backend() {
    for activations in [Activations::F32, Activations::Q8] {
        let b = CpuFastBackend::new(CpuOptions {
            threads: 2,
            activations,
        });
        common::run_suite_with(&b.name(), &|case| {
            let node = q8_product(case).filter(|_| activations == Activations::Q8);
            let Some(node) = node else {
                return run_case(case, &b);
            };
            if let Some(f) = node.op.as_any().downcast_ref::<FusedMatMul>()
                && f.norm_eps.is_some()
            {
                return check_norm_case(case, f, node, &b);
            }
            let x = node.inputs[0];
            let rounded = Case {
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
                        (*t, HostTensor::from_f32(&d.shape, DType::F32, &v).unwrap())
                    })
                    .collect(),
                syms: case.syms.clone(),
                output: case.output,
                tol: case.tol,
                binding_limit: case.binding_limit,
            };
            run_case(&rounded, &b)
        });
    }
}
