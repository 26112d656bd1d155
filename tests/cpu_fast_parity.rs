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
use kiln::backend::cpu_fast::{Activations, CpuFastBackend, CpuOptions};
use kiln::parity::q8::run_case_cpu_q8;
use kiln::parity::run_case;

#[test]
fn every_op_matches_the_cpu_reference_on_the_fast_cpu_backend() {
    for activations in [Activations::F32, Activations::Q8] {
        let b = CpuFastBackend::new(CpuOptions {
            threads: 2,
            activations,
        });
        common::run_suite_with(&b.name(), &|case| match activations {
            Activations::F32 => run_case(case, &b),
            Activations::Q8 => run_case_cpu_q8(case, &b),
        });
    }
}
