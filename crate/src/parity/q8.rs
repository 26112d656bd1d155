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
/// errors uniform in ±u, u = 2⁻¹¹, variance u²/3 each). To first order an
/// output y_c = Σ_j w_j·v_jc moves by
/// Σ_j w_j·(δs_j·(v_jc − y_c) + v_jc·(δp_j + δv_jc)), the score error
/// δs_j = Σ_c q_c·k_jc·(ε_q + ε_k) having variance
/// 2u²/3·Σ_c (q_c·k_jc)². With the reference's own weights w_j (its f64
/// softmax of the roped q), each output must lie within the case's
/// tolerance plus 6 standard deviations of Σ_j w_j²·(those variances), plus
/// the f16 weights' absolute spacing (≤ 2⁻²⁵·|v_jc| each, over the sum of
/// weights). NaN anywhere fails.
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

/// q as the attention reference sees it: `[t, hq, d]`, roped with `rope_q`.
fn roped_q(case: &Case, node: &Node, a: Attention) -> Result<Vec<f32>, String> {
    let input = |i: usize| -> Result<&crate::HostTensor, String> {
        let id = node.inputs.get(i).ok_or("missing attention input")?;
        Ok(&case
            .data
            .iter()
            .find(|(t, _)| t == id)
            .ok_or("case data missing")?
            .1)
    };
    let Some(rq) = a.rope_q else {
        return input(0)?.to_f32().map_err(|e| e.to_string());
    };
    let d = case.graph.tensors[node.inputs[1].0].shape[2];
    let win =
        crate::ops::rope::window(input(0)?, rq.col0, rq.heads, d).map_err(|e| e.to_string())?;
    let mut ins = vec![&win];
    if node.inputs.len() > 3 {
        ins.push(input(3)?);
    }
    let mut y = crate::HostTensor::zeros(&win.shape, DType::F32).map_err(|e| e.to_string())?;
    use crate::ops::Op;
    rq.rope
        .cpu(&ins, &mut y, &case.syms)
        .map_err(|e| e.to_string())?;
    y.to_f32().map_err(|e| e.to_string())
}

fn attention_bound_holds(
    case: &Case,
    node: &Node,
    a: Attention,
    got: &[f32],
    want: &[f32],
) -> Result<bool, String> {
    let q = roped_q(case, node, a)?;
    let (k, v) = (data(case, node.inputs[1])?, data(case, node.inputs[2])?);
    let ks = &case.graph.tensors[node.inputs[1].0].shape;
    let (hkv, cap, d) = (ks[0], ks[1], ks[2]);
    let hq = a
        .rope_q
        .map_or(case.graph.tensors[node.inputs[0].0].shape[1], |r| r.heads);
    let t = q.len() / (hq * d).max(1);
    let pos = *case
        .syms
        .get(a.pos.0 as usize)
        .ok_or("no position symbol")? as usize;
    let (u2, scale) = (2f64.powi(-22) / 3.0, a.scale as f64);
    let mut pass = got.len() == want.len() && want.len() == t * hq * d && hkv > 0;
    for ti in 0..t {
        let keys = crate::ops::attention::key_range(pos + ti + 1, a.window);
        for h in 0..hq {
            let kvh = h / (hq / hkv).max(1);
            let qr = &q[(ti * hq + h) * d..(ti * hq + h + 1) * d];
            // Per visible key: its score, and its score error's variance.
            let (mut s, mut vs) = (Vec::new(), Vec::new());
            for j in keys.clone() {
                let kr = &k[(kvh * cap + j) * d..(kvh * cap + j + 1) * d];
                let prods = qr
                    .iter()
                    .zip(kr)
                    .map(|(q, k)| scale * *q as f64 * *k as f64);
                let (dot, sq) = prods.fold((0.0, 0.0), |(a, b), p| (a + p, b + p * p));
                s.push(dot);
                vs.push(2.0 * u2 * sq);
            }
            let m = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let e: Vec<f64> = s.iter().map(|s| (s - m).exp()).collect();
            let l: f64 = e.iter().sum();
            for c in 0..d {
                let o = (ti * hq + h) * d + c;
                let (Some(g), Some(y)) = (got.get(o), want.get(o)) else {
                    return Ok(false);
                };
                let (g, y) = (*g as f64, *y as f64);
                let (mut var, mut spacing) = (0f64, 0f64);
                for (i, j) in keys.clone().enumerate() {
                    let (w, vj) = (e[i] / l, v[(kvh * cap + j) * d + c] as f64);
                    var += w * w * ((vj - y).powi(2) * vs[i] + 2.0 * vj * vj * u2);
                    spacing += 2f64.powi(-25) * vj.abs() / l;
                }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::HostTensor;
    use crate::ops::Op;
    use half::f16;

    /// Attention as attention_coop.wgsl rounds it (q·scale, k, v and the
    /// weights to f16), in f64 otherwise; with `skip_first` the first
    /// visible key is left out (a broken mask).
    fn f16_attention(case: &Case, node: &Node, a: Attention, skip_first: bool) -> Vec<f32> {
        let q = data(case, node.inputs[0]).unwrap();
        let (k, v) = (
            data(case, node.inputs[1]).unwrap(),
            data(case, node.inputs[2]).unwrap(),
        );
        let qs = &case.graph.tensors[node.inputs[0].0].shape;
        let ks = &case.graph.tensors[node.inputs[1].0].shape;
        let (t, hq, hkv, cap, d) = (qs[0], qs[1], ks[0], ks[1], ks[2]);
        let r = |x: f32| f16::from_f32(x).to_f64();
        let pos = case.syms[a.pos.0 as usize] as usize;
        let mut y = vec![0f32; t * hq * d];
        for ti in 0..t {
            let mut keys = crate::ops::attention::key_range(pos + ti + 1, a.window);
            if skip_first && keys.len() > 1 {
                keys.start += 1;
            }
            for h in 0..hq {
                let kvh = h / (hq / hkv);
                let qr: Vec<f64> = (0..d)
                    .map(|c| r(q[(ti * hq + h) * d + c] * a.scale))
                    .collect();
                let s: Vec<f64> = keys
                    .clone()
                    .map(|j| (0..d).map(|c| qr[c] * r(k[(kvh * cap + j) * d + c])).sum())
                    .collect();
                let m = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let e: Vec<f64> = s.iter().map(|s| (s - m).exp()).collect();
                let l: f64 = e.iter().sum();
                for c in 0..d {
                    let acc: f64 = keys
                        .clone()
                        .zip(&e)
                        .map(|(j, e)| r(*e as f32) * r(v[(kvh * cap + j) * d + c]))
                        .sum();
                    y[(ti * hq + h) * d + c] = (acc / l) as f32;
                }
            }
        }
        y
    }

    /// The tensor-core attention's bound holds for attention rounded as
    /// the kernel rounds it on every prefill attention case without RoPE,
    /// and fails on each of them (with more than one key per query) when
    /// one visible key is dropped.
    #[test]
    fn attention_f16_bound_passes_f16_rounding_and_catches_a_lost_key() {
        let cases = crate::parity::cases::all_cases(7, "attention").unwrap();
        let mut checked = 0;
        for case in &cases {
            let Some((node, a)) = case.graph.nodes.iter().find_map(|n| {
                let a = *n.op.as_any().downcast_ref::<Attention>()?;
                (a.rope_q.is_none() && case.graph.tensors[n.inputs[0].0].shape[0] > 4)
                    .then_some((n, a))
            }) else {
                continue;
            };
            let ins: Vec<&HostTensor> = node
                .inputs
                .iter()
                .map(|t| &case.data.iter().find(|(id, _)| id == t).unwrap().1)
                .collect();
            let info = &case.graph.tensors[node.output.0];
            let mut out = HostTensor::zeros(&info.shape, info.dtype).unwrap();
            a.cpu(&ins, &mut out, &case.syms).unwrap();
            let want = out.to_f32().unwrap();
            let got = f16_attention(case, node, a, false);
            assert!(
                attention_bound_holds(case, node, a, &got, &want).unwrap(),
                "{}: f16 rounding outside the bound",
                case.shape
            );
            // (A window of one key leaves none to drop.)
            let broken = f16_attention(case, node, a, true);
            assert!(
                a.window == 1 || !attention_bound_holds(case, node, a, &broken, &want).unwrap(),
                "{}: a lost key inside the bound",
                case.shape
            );
            checked += 1;
        }
        assert!(checked >= 8, "only {checked} cases");
    }
}
