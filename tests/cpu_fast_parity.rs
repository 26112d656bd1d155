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
//!   kernel) each output may move by the rounding of its inputs: the
//!   statistical bound of `kiln::parity::q8` (6σ of the rounding noise on
//!   top of the case's tolerance).

mod common;

use kiln::backend::Backend;
use kiln::backend::cpu_fast::{Activations, CpuFastBackend, CpuOptions, INTEGER_FORMATS};
use kiln::ops::matmul_fused::FusedMatMul;
use kiln::ops::matmul_q8::q8_round;
use kiln::parity::q8::{check_rounding_bound, q8_product};
use kiln::parity::{Case, run_case};
use kiln::{DType, HostTensor};

#[test]
fn every_op_matches_the_cpu_reference_on_the_fast_cpu_backend() {
    for activations in [Activations::F32, Activations::Q8] {
        let b = CpuFastBackend::new(CpuOptions {
            threads: 2,
            activations,
        });
        common::run_suite_with(&b.name(), &|case| {
            let node =
                q8_product(case, &INTEGER_FORMATS).filter(|_| activations == Activations::Q8);
            let Some(node) = node else {
                return run_case(case, &b);
            };
            if let Some(f) = node.op.as_any().downcast_ref::<FusedMatMul>()
                && f.norm_eps.is_some()
            {
                return check_rounding_bound(case, node, &b);
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
