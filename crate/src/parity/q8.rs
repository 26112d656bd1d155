//! Parity of products with 8-bit activations (the fast CPU backend's
//! `--activations q8`, the GPU kernels of [`crate::ops::matmul_q8`]).
//!
//! Rounding x to 8 bits changes a product's value, so such a case cannot
//! be compared with the CPU reference within f32 tolerances. The bound used
//! instead: rounding errors uniform in ±d/2 per element (d = max|v|/127 of
//! its block of 32) give an output variance of Σ w²·d²/12 (through SwiGLU,
//! (silu'(a)·b)²·Var a + silu(a)²·Var b). Each output must lie within the
//! case's tolerance plus 6 standard deviations of that, computed from the
//! case's own data; a wrong kernel (a lost scale, a nibble order, a sign)
//! misses by far more. NaN anywhere fails.

use super::{Case, CaseResult, run_case, run_case_outputs};
use crate::backend::Backend;
use crate::dtype::DType;
use crate::graph::{Node, TensorId};
use crate::ops::GpuCaps;
use crate::ops::matmul::MatMul;
use crate::ops::matmul_fused::FusedMatMul;
use crate::ops::matmul_q8::{self, Q8_FORMATS};

/// The product node of a case whose weights are one of `formats`, if any.
pub fn q8_product<'a>(case: &'a Case, formats: &[DType]) -> Option<&'a Node> {
    let n = case.graph.nodes.iter().find(|n| {
        let op = n.op.as_any();
        op.downcast_ref::<MatMul>().is_some() || op.downcast_ref::<FusedMatMul>().is_some()
    })?;
    formats
        .contains(&case.graph.tensors[n.inputs[1].0].dtype)
        .then_some(n)
}

/// `case` on a GPU `backend` planned with `caps`: the statistical bound
/// above for a product the 8-bit kernels take under them
/// ([`crate::ops::matmul_q8::applies`]), [`run_case`] (the case's own
/// tolerance) for every other case — the f32 kernels stay exact.
pub fn run_case_q8(case: &Case, backend: &dyn Backend, caps: &GpuCaps) -> CaseResult {
    let node = q8_product(case, &Q8_FORMATS).filter(|n| {
        let (x, w) = (
            &case.graph.tensors[n.inputs[0].0],
            &case.graph.tensors[n.inputs[1].0],
        );
        w.shape.len() == 2 && matmul_q8::applies(caps, x.rows(), w.shape[0], w.shape[1], w.dtype)
    });
    match node {
        Some(node) => {
            let m = case.graph.tensors[node.inputs[0].0].rows();
            let rounding = if m > 1 && matmul_q8::coop_applies(caps) {
                Rounding::F16
            } else {
                Rounding::Q8
            };
            check_bound(case, node, backend, rounding)
        }
        None => run_case(case, backend),
    }
}

/// `case` on the fast CPU backend `b` (`crate::backend::cpu_fast`) with
/// 8-bit activations: a product over one of its integer formats without an
/// RMSNorm prologue runs on `x` rounded as the kernel's quantizer rounds it
/// (per block of 32, `d = max|x|/127`), which the kernel then reproduces
/// exactly, so the reference on that `x` must match within the case's own
/// tolerance; with the prologue (rows normalized, then quantized inside
/// the kernel) the statistical bound above; every other case as usual.
pub fn run_case_cpu_q8(case: &Case, b: &dyn Backend) -> CaseResult {
    use crate::HostTensor;
    use crate::backend::cpu_fast::INTEGER_FORMATS;
    let Some(node) = q8_product(case, &INTEGER_FORMATS) else {
        return run_case(case, b);
    };
    if let Some(f) = node.op.as_any().downcast_ref::<FusedMatMul>()
        && f.norm_eps.is_some()
    {
        return check_rounding_bound(case, node, b);
    }
    let x = node.inputs[0];
    let mut data = Vec::with_capacity(case.data.len());
    for (t, d) in &case.data {
        if *t != x {
            data.push((*t, d.clone()));
            continue;
        }
        let v = d.to_f32().and_then(|mut v| {
            matmul_q8::q8_round(&mut v);
            HostTensor::from_f32(&d.shape, DType::F32, &v)
        });
        match v {
            Ok(v) => data.push((*t, v)),
            Err(e) => {
                return CaseResult {
                    error: Some(format!("rounding x: {e}")),
                    ..CaseResult::pending(case)
                };
            }
        }
    }
    let rounded = Case {
        op: case.op,
        dtype: case.dtype,
        shape: case.shape.clone(),
        graph: case.graph.clone(),
        data,
        syms: case.syms.clone(),
        output: case.output,
        tol: case.tol,
        binding_limit: case.binding_limit,
    };
    run_case(&rounded, b)
}

fn data(case: &Case, t: TensorId) -> Result<Vec<f32>, String> {
    let d = case
        .data
        .iter()
        .find(|(id, _)| *id == t)
        .ok_or("case data missing")?;
    crate::quant::dequantize(d.1.dtype, &d.1.data, d.1.numel()).map_err(|e| e.to_string())
}

/// How a kernel rounds a product's operands.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Rounding {
    /// x per block of 32 to `d·q`, `d = max|v|/127` (the 8-bit kernels):
    /// errors uniform in ±d/2, variance `w²·d²/12` per term.
    Q8,
    /// x and w each to f16 (the tensor-core GEMM, mul_mat_coop.wgsl):
    /// relative errors uniform in ±2⁻¹¹ each, variance `2·(w·x)²·2⁻²²/3`
    /// per term, plus f16's subnormal spacing 2⁻²⁴ as an absolute error
    /// of each operand.
    F16,
}

/// Every output of the product `node` (a plain or fused matmul) against
/// the reference within the case's tolerance plus 6σ of 8-bit rounding.
pub fn check_rounding_bound(case: &Case, node: &Node, b: &dyn Backend) -> CaseResult {
    check_bound(case, node, b, Rounding::Q8)
}

/// [`check_rounding_bound`] for the operands' `rounding`.
pub fn check_bound(case: &Case, node: &Node, b: &dyn Backend, rounding: Rounding) -> CaseResult {
    let (mut r, outputs) = run_case_outputs(case, b);
    let Some((got, want)) = outputs.filter(|_| r.error.is_none()) else {
        return r;
    };
    let fused = node.op.as_any().downcast_ref::<FusedMatMul>().copied();
    let (glu, norm) = fused.map_or((false, None), |f| (f.glu, f.norm_eps));
    let floats = got.to_f32().and_then(|g| Ok((g, want.to_f32()?)));
    let checked = floats
        .map_err(|e| e.to_string())
        .and_then(|(got, want)| bound_holds(case, node, &got, &want, (glu, norm), rounding));
    match checked {
        Ok(pass) => r.pass = pass,
        Err(e) => {
            r.error = Some(e);
            r.pass = false;
        }
    }
    r
}

fn bound_holds(
    case: &Case,
    node: &Node,
    got: &[f32],
    want: &[f32],
    (glu, norm): (bool, Option<f32>),
    rounding: Rounding,
) -> Result<bool, String> {
    let x = data(case, node.inputs[0])?;
    let w = data(case, node.inputs[1])?;
    let k = case.graph.tensors[node.inputs[1].0].shape[1];
    let nw = match norm {
        Some(_) => data(case, node.inputs[2])?,
        None => vec![1.0; k],
    };
    let rows = case.graph.tensors[node.inputs[1].0].shape[0];
    let n = if glu { rows / 2 } else { rows };
    let mut pass = got.len() == want.len() && x.len() % k == 0;
    for (i, xr) in x.chunks(k).enumerate() {
        let inv = match norm {
            Some(eps) => {
                let ms = xr.iter().map(|v| (*v as f64).powi(2)).sum::<f64>() / k as f64;
                1.0 / (ms + eps as f64).sqrt()
            }
            None => 1.0,
        };
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
                .map(|(j, a)| {
                    let a = *a as f64;
                    match rounding {
                        Rounding::Q8 => a.powi(2) * d[j / 32].powi(2) / 12.0,
                        Rounding::F16 => {
                            let (u, tiny) = (2f64.powi(-11), 2f64.powi(-24));
                            2.0 * (a * xn[j]).powi(2) * u * u / 3.0
                                + (a.powi(2) + xn[j].powi(2)) * tiny * tiny
                        }
                    }
                })
                .sum();
            (dot, var)
        };
        for c in 0..n {
            let var = if glu {
                let ((a, va), (bb, vb)) = (stats(c), stats(n + c));
                let s = 1.0 / (1.0 + (-a).exp());
                let silu_d = s * (1.0 + a * (1.0 - s));
                (silu_d * bb).powi(2) * va + (a * s).powi(2) * vb
            } else {
                stats(c).1
            };
            let (Some(g), Some(wv)) = (got.get(i * n + c), want.get(i * n + c)) else {
                return Ok(false);
            };
            let (g, wv) = (*g as f64, *wv as f64);
            let bound = case.tol.atol as f64 + case.tol.rtol as f64 * wv.abs() + 6.0 * var.sqrt();
            // NaN anywhere fails: the comparison is false.
            pass &= (g - wv).abs() <= bound;
        }
    }
    Ok(pass)
}
