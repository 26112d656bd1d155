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
//! misses by far more. NaN anywhere fails. Prefill attention on tensor
//! cores (the same opt-in mode) has its own f16 bound
//! ([`check_attention_bound`]).

use super::{Case, CaseResult, run_case, run_case_outputs};
use crate::backend::Backend;
use crate::dtype::DType;
use crate::graph::{Node, TensorId};
use crate::ops::GpuCaps;
use crate::ops::attention::Attention;
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
    if let Some((node, a)) = coop_attention(case, caps) {
        return check_attention_bound(case, node, a, backend);
    }
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

/// The attention node of `case` if the tensor-core kernel takes it under
/// `caps` ([`Attention::on_tensor_cores`]).
fn coop_attention<'a>(case: &'a Case, caps: &GpuCaps) -> Option<(&'a Node, Attention)> {
    case.graph.nodes.iter().find_map(|n| {
        let a = *n.op.as_any().downcast_ref::<Attention>()?;
        let k = &case.graph.tensors[n.inputs[1].0].shape;
        let t = case.graph.tensors[n.inputs[0].0].shape[0];
        let (cap, d) = (*k.get(1)?, *k.get(2)?);
        a.on_tensor_cores(caps, t, cap, d).then_some((n, a))
    })
}

/// Attention on tensor cores (attention_coop.wgsl) rounds the scaled,
/// roped q, the keys, the values and the softmax weights to f16 (relative
/// errors uniform in ±u, u = 2⁻¹¹, variance u²/3). To first order an
/// output y_c = Σ_j w_j·v_jc moves by Σ_j w_j·(δs_j·(v_jc − y_c) + v_jc·(δp_j +
/// δv_jc)), with the score error δs_j = Σ_c q_c·k_jc·(ε_q + ε_k) of variance
/// ≤ 2u²/3·|q|²·max_c k_jc² (|q| is RoPE's invariant: the raw q's norm
/// times the scale). With Σ_j w_j² ≤ 1 the output's variance is at most
/// the largest term over the visible keys; each output must lie within
/// the case's tolerance plus 6 standard deviations of that, plus the f16
/// weights' absolute spacing (2⁻²⁵ each, n keys). NaN anywhere fails.
fn check_attention_bound(case: &Case, node: &Node, a: Attention, b: &dyn Backend) -> CaseResult {
    let (mut r, outputs) = run_case_outputs(case, b);
    let Some((got, want)) = outputs.filter(|_| r.error.is_none()) else {
        return r;
    };
    let checked = got
        .to_f32()
        .and_then(|g| Ok((g, want.to_f32()?)))
        .map_err(|e| e.to_string())
        .and_then(|(got, want)| attention_bound_holds(case, node, a, &got, &want));
    match checked {
        Ok(pass) => r.pass = pass,
        Err(e) => {
            r.error = Some(e);
            r.pass = false;
        }
    }
    r
}

fn attention_bound_holds(
    case: &Case,
    node: &Node,
    a: Attention,
    got: &[f32],
    want: &[f32],
) -> Result<bool, String> {
    let q = data(case, node.inputs[0])?;
    let (k, v) = (data(case, node.inputs[1])?, data(case, node.inputs[2])?);
    let qs = &case.graph.tensors[node.inputs[0].0].shape;
    let ks = &case.graph.tensors[node.inputs[1].0].shape;
    let (t, hkv, cap, d) = (qs[0], ks[0], ks[1], ks[2]);
    let (hq, q_at): (usize, Box<dyn Fn(usize, usize) -> usize>) = match a.rope_q {
        Some(rq) => (
            rq.heads,
            Box::new(move |ti, h| ti * qs[1] + rq.col0 + h * d),
        ),
        None => (qs[1], Box::new(move |ti, h| (ti * qs[1] + h) * d)),
    };
    let pos = *case
        .syms
        .get(a.pos.0 as usize)
        .ok_or("no position symbol")? as usize;
    let u2 = 2f64.powi(-22) / 3.0;
    let row_max = |j: usize| {
        k[j * d..(j + 1) * d]
            .iter()
            .fold(0f64, |m, x| m.max((*x as f64).abs()))
    };
    let mut pass = got.len() == want.len() && want.len() == t * hq * d;
    for ti in 0..t {
        let keys = crate::ops::attention::key_range(pos + ti + 1, a.window);
        for h in 0..hq {
            let kvh = h / (hq / hkv.max(1)).max(1);
            let qb = q_at(ti, h);
            let qn2 = q[qb..qb + d]
                .iter()
                .map(|x| (*x as f64).powi(2))
                .sum::<f64>()
                * (a.scale as f64).powi(2);
            for c in 0..d {
                let o = (ti * hq + h) * d + c;
                let (Some(g), Some(y)) = (got.get(o), want.get(o)) else {
                    return Ok(false);
                };
                let (g, y) = (*g as f64, *y as f64);
                let (mut var, mut vmax) = (0f64, 0f64);
                for j in keys.clone() {
                    let row = kvh * cap + j;
                    let vj = v[row * d + c] as f64;
                    let km = row_max(row);
                    var = var.max((vj - y).powi(2) * 2.0 * u2 * qn2 * km * km + 2.0 * vj * vj * u2);
                    vmax = vmax.max(vj.abs());
                }
                let spacing = keys.len() as f64 * 2f64.powi(-25) * vmax;
                let bound = case.tol.atol as f64
                    + case.tol.rtol as f64 * y.abs()
                    + 6.0 * var.sqrt()
                    + spacing;
                // NaN anywhere fails: the comparison is false.
                pass &= (g - y).abs() <= bound;
            }
        }
    }
    Ok(pass)
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
