//! The op-parity suite (after llama.cpp's test-backend-ops): every op × dtype ×
//! awkward shape runs on a backend and on the CPU reference with fresh random
//! inputs; outputs are poisoned (0xFF bytes = NaN) before each run and
//! compared element-wise with a per-case tolerance.
//!
//! Tolerances (per op family, justified in [`cases`]) bound f32 rounding
//! differences only: quantized weights are decoded from the same bits on both
//! sides, so quantization error never enters a parity comparison.

pub mod cases;
pub mod diff;
#[cfg(not(target_arch = "wasm32"))]
pub mod lora_ref;
pub mod q8;
pub mod unet_ref;

pub use diff::{VecDiff, same_tokens, sparse_diff, tokens_agree, vec_diff};

use crate::backend::{Backend, BackendError};
use crate::dtype::DType;
use crate::graph::{Graph, TensorId};
use crate::host::HostTensor;

/// A fresh seed for the suite's random inputs (nanoseconds of the clock),
/// for runs that are not given one; callers print it so a run can be repeated.
pub fn clock_seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1)
}

/// `|got − want| ≤ atol + rtol·|want|` per element (u32 outputs: exact).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Tol {
    pub atol: f32,
    pub rtol: f32,
}

/// One parity case: a graph, its data, symbol values and the output to compare.
pub struct Case {
    pub op: &'static str,
    pub dtype: DType,
    pub shape: String,
    pub graph: Graph,
    pub data: Vec<(TensorId, HostTensor)>,
    pub syms: Vec<u32>,
    pub output: TensorId,
    pub tol: Tol,
    /// Run with this storage-binding limit (bytes) to force weight splitting.
    pub binding_limit: Option<u64>,
}

#[derive(Clone, Debug)]
pub struct CaseResult {
    pub op: &'static str,
    pub dtype: DType,
    pub shape: String,
    pub max_abs: f64,
    pub max_rel: f64,
    /// Normalized mean squared error, Σ(got−want)² / Σ want².
    pub nmse: f64,
    pub pass: bool,
    pub error: Option<String>,
}

impl CaseResult {
    /// A result for `case` that has not passed (yet): NaN errors, no message.
    pub(crate) fn pending(case: &Case) -> CaseResult {
        CaseResult {
            op: case.op,
            dtype: case.dtype,
            shape: case.shape.clone(),
            max_abs: f64::NAN,
            max_rel: f64::NAN,
            nmse: f64::NAN,
            pass: false,
            error: None,
        }
    }
}

/// Runs `case` on the CPU reference and on `backend`; never panics.
pub fn run_case(case: &Case, backend: &dyn Backend) -> CaseResult {
    run_case_outputs(case, backend).0
}

/// [`run_case`], and the backend's and the reference's outputs (`got`,
/// `want`) when both ran, for checks beyond the element-wise tolerance.
pub(crate) fn run_case_outputs(
    case: &Case,
    backend: &dyn Backend,
) -> (CaseResult, Option<(HostTensor, HostTensor)>) {
    let mut r = CaseResult::pending(case);
    let run = |b: &dyn Backend| -> Result<HostTensor, BackendError> {
        let mut exe = b.compile(&case.graph)?;
        for (t, d) in &case.data {
            exe.write(*t, d)?;
        }
        if !case.data.iter().any(|(t, _)| *t == case.output) {
            exe.fill(case.output, 0xFF)?;
        }
        exe.run(&case.syms)?;
        exe.read(case.output)
    };
    let want = match run(&crate::backend::cpu::CpuBackend) {
        Ok(w) => w,
        Err(e) => {
            r.error = Some(format!("cpu reference: {e}"));
            return (r, None);
        }
    };
    let got = match run(backend) {
        Ok(g) => g,
        Err(e) => {
            r.error = Some(e.to_string());
            return (r, None);
        }
    };
    compare(&got, &want, case.tol, &mut r);
    (r, Some((got, want)))
}

fn compare(got: &HostTensor, want: &HostTensor, tol: Tol, r: &mut CaseResult) {
    if got.shape != want.shape || got.dtype != want.dtype {
        r.error = Some(format!(
            "got {} {:?}, want {} {:?}",
            got.dtype, got.shape, want.dtype, want.shape
        ));
        return;
    }
    if want.dtype == DType::U32 {
        let exact = got.data == want.data;
        r.max_abs = if exact { 0.0 } else { f64::INFINITY };
        r.max_rel = r.max_abs;
        r.nmse = r.max_abs;
        r.pass = exact;
        return;
    }
    let (g, w) = match (got.to_f32(), want.to_f32()) {
        (Ok(g), Ok(w)) => (g, w),
        (Err(e), _) | (_, Err(e)) => {
            r.error = Some(e.to_string());
            return;
        }
    };
    let (mut max_abs, mut max_rel, mut se, mut sw) = (0f64, 0f64, 0f64, 0f64);
    let mut pass = true;
    if g.len() != w.len() {
        r.error = Some(format!("got {} values, want {}", g.len(), w.len()));
        return;
    }
    for (a, b) in g.iter().zip(&w) {
        let d = diff::elem_diff(*a, *b);
        let b = *b as f64;
        let bound = tol.atol as f64 + tol.rtol as f64 * b.abs();
        if bound.is_nan() || d > bound {
            pass = false;
        }
        max_abs = max_abs.max(d);
        if b.abs() > tol.atol as f64 {
            max_rel = max_rel.max(d / b.abs());
        }
        se += d * d;
        sw += b * b;
    }
    r.max_abs = max_abs;
    r.max_rel = max_rel;
    r.nmse = if sw > 0.0 { se / sw } else { se };
    r.pass = pass;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(got: &[f32], want: &[f32]) -> CaseResult {
        let mut r = CaseResult {
            op: "t",
            dtype: DType::F32,
            shape: String::new(),
            max_abs: f64::NAN,
            max_rel: f64::NAN,
            nmse: f64::NAN,
            pass: false,
            error: None,
        };
        let t = |v: &[f32]| HostTensor::from_f32(&[v.len()], DType::F32, v).unwrap();
        compare(&t(got), &t(want), cases::EXACT_ISH, &mut r);
        r
    }

    #[test]
    fn case_comparison_fails_on_nan_either_side_and_on_shape() {
        assert!(result(&[1.0, 2.0], &[1.0, 2.0]).pass);
        assert!(!result(&[1.0, f32::NAN], &[1.0, 2.0]).pass);
        assert!(!result(&[1.0, 2.0], &[1.0, f32::NAN]).pass);
        assert!(!result(&[1.0, 2.0], &[1.0, 2.0, 3.0]).pass);
        assert!(!result(&[1.0, 2.5], &[1.0, 2.0]).pass);
    }
}
