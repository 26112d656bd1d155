//! Parity cases of the training ops (registered in [`super::registry`]): the
//! matmul gradients (every weight dtype, a weight split across bindings),
//! RMSNorm and SwiGLU backward, cross-entropy with masked rows, causal
//! attention forward and backward (GQA, several sequences, odd lengths), and
//! the optimizer ops.
//!
//! Tolerances reuse the families of [`super`]: the matmul gradients are
//! GEMMs of length ≤ 300 with O(1) operands (`MATMUL`); norms, cross-entropy
//! and attention reduce over ≤ 1000 values in another order than the f64
//! oracle (`REDUCTION`); SwiGLU backward is a few transcendental ops
//! (`TRANSCENDENTAL`); AdamW is a handful of f32 operations per element
//! whose only inexact step is sqrt/division (a few ulp: `TRANSCENDENTAL`).

use super::{B, EXACT_ISH, MATMUL, REDUCTION, TRANSCENDENTAL};
use crate::dtype::DType;
use crate::error::Result;
use crate::host::HostTensor;
use crate::ops::causal_attention::{AttnMode, CausalAttention};
use crate::ops::cross_entropy::{CrossEntropy, MASKED};
use crate::ops::glu_back::GluBack;
use crate::ops::optim::{HYPER_LEN, Optim};
use crate::parity::Case;
use crate::rng::Rng;

pub(super) fn matmul_grads(rng: &mut Rng) -> Result<Vec<Case>> {
    let mut out = Vec::new();
    // (m, n, k, dtype, split): input gradient through any weight dtype.
    let f = DType::F32;
    for (m, n, k, dtype, split) in [
        (1, 1, 4, f, false),
        (5, 7, 9, f, false),
        (33, 17, 64, f, false),
        (9, 40, 96, DType::F16, false),
        (6, 33, 64, DType::BF16, false),
        (7, 19, 96, DType::Q8_0, false),
        (10, 24, 64, DType::Q4_0, false),
        (13, 21, 96, DType::Q4_1, false),
        (12, 23, 96, DType::Q5_0, false),
        (5, 26, 64, DType::Q5_1, false),
        (4, 9, 256, DType::Q4_K, false),
        (6, 11, 256, DType::Q5_K, false),
        (5, 13, 256, DType::Q3_K, false),
        (7, 10, 256, DType::Q2_K, false),
        (6, 15, 64, DType::IQ4_NL, false),
        (4, 12, 256, DType::IQ4_XS, false),
        (3, 5, 256, DType::Q6_K, false),
        (11, 70, 64, DType::Q4_1, true),
        // A vocabulary-sized reduction (the loss head's input gradient):
        // llvmpipe cuts loops past 65535 iterations per invocation.
        (3, 40000, 32, DType::Q8_0, false),
        // ≥ 128 tiles of 64×64 (m × k): the large tile on GPUs.
        (200, 40, 2600, f, false),
        (130, 37, 4096, DType::Q4_1, false),
        (129, 20, 4096, DType::Q4_K, false),
        (130, 70, 4096, DType::Q8_0, true),
    ] {
        let mut b = B::new(rng);
        let dy = b.input(&[m, n], DType::F32, 1.0)?;
        let w = b.weight(&[n, k], dtype, 1.0 / (n as f32).sqrt())?;
        let y = b.g.matmul_input_grad(dy, w)?;
        let desc = format!("[{m},{n}]·W[{n},{k}]{}", if split { " split" } else { "" });
        let mut c = b.case("mul_mat_input_grad", dtype, desc, y, vec![], MATMUL)?;
        if split {
            c.binding_limit = Some((4 * m * k.max(n)).max(9 * dtype.row_bytes(k)?) as u64);
        }
        out.push(c);
    }
    // Small and awkward, then LoRA's shapes (A's gradient: rank rows ×
    // hidden columns; B's: output rows × rank columns) and blocks of 64
    // both ways (the fast CPU kernel's tasks).
    for (m, n, k) in [
        (1, 1, 1),
        (7, 5, 9),
        (64, 8, 33),
        (300, 3, 10),
        (128, 8, 576),
        (128, 130, 8),
        (70, 100, 200),
    ] {
        let mut b = B::new(rng);
        let dy = b.input(&[m, n], DType::F32, 1.0)?;
        let x = b.input(&[m, k], DType::F32, 1.0 / (m as f32).sqrt())?;
        let y = b.g.matmul_weight_grad(dy, x)?;
        let desc = format!("dy[{m},{n}]ᵀ·x[{m},{k}]");
        out.push(b.case("mul_mat_weight_grad", DType::F32, desc, y, vec![], MATMUL)?);
    }
    Ok(out)
}

pub(super) fn norm_glu_back(rng: &mut Rng) -> Result<Vec<Case>> {
    let mut out = Vec::new();
    for (shape, with_w) in [
        (&[1usize, 1][..], true),
        (&[3, 7], false),
        (&[5, 300], true),
        (&[2, 3, 1000], true),
        (&[40, 576], true),
    ] {
        let d = shape[shape.len() - 1];
        let mut b = B::new(rng);
        let x = b.input(shape, DType::F32, 1.5)?;
        let w = if with_w {
            Some(b.input(&[d], DType::F32, 1.0)?)
        } else {
            None
        };
        let dy = b.input(shape, DType::F32, 1.0)?;
        let y = b.g.rms_norm_back(x, w, dy, 1e-5)?;
        let desc = format!("{shape:?}{}", if with_w { " w" } else { "" });
        out.push(b.case("rms_norm_back", DType::F32, desc, y, vec![], REDUCTION)?);
    }
    for which in [GluBack::Gate, GluBack::Up] {
        // The last spans several of the fast CPU kernel's chunks.
        for shape in [&[1usize][..], &[257, 3], &[2, 1000], &[40, 1536]] {
            let mut b = B::new(rng);
            let g = b.input(shape, DType::F32, 3.0)?;
            let u = b.input(shape, DType::F32, 1.0)?;
            let dy = b.input(shape, DType::F32, 1.0)?;
            let y = b.g.swiglu_back(which, g, u, dy)?;
            let name = crate::ops::Op::name(&which);
            let desc = format!("{shape:?}");
            out.push(b.case(name, DType::F32, desc, y, vec![], TRANSCENDENTAL)?);
        }
    }
    Ok(out)
}

pub(super) fn cross_entropy(rng: &mut Rng) -> Result<Vec<Case>> {
    let mut out = Vec::new();
    // Small and awkward, then a real vocabulary's width (odd: a tail past the
    // fast kernel's eight lanes).
    for (rows, vocab) in [(1, 1), (3, 7), (9, 300), (4, 1000), (5, 49157)] {
        for mode in [CrossEntropy::Loss, CrossEntropy::Grad] {
            let mut b = B::new(rng);
            let z = b.input(&[rows, vocab], DType::F32, 4.0)?;
            // Every third row masked; the others a random label.
            let labels: Vec<u32> = (0..rows)
                .map(|r| {
                    if r % 3 == 2 {
                        MASKED
                    } else {
                        b.rng.below(vocab as u32)
                    }
                })
                .collect();
            let lt = b.g.input("labels", &[rows], DType::U32)?;
            b.data.push((lt, HostTensor::from_u32(&[rows], &labels)?));
            let mut inputs = vec![z, lt];
            if mode == CrossEntropy::Grad {
                let s = b.g.input("scale", &[1], DType::F32)?;
                b.put(s, &[1], DType::F32, &[0.37])?;
                inputs.push(s);
            }
            let y = b.g.push(mode, &inputs)?;
            let name = crate::ops::Op::name(&mode);
            let desc = format!("[{rows},{vocab}]");
            out.push(b.case(name, DType::F32, desc, y, vec![], REDUCTION)?);
        }
    }
    Ok(out)
}

/// The LoRA epilogue `x·Wᵀ + h·Bᵀ (+ res)` on the GEMV (m ≤ 8), the 32-tile
/// and the 64-tile (≥ 128 tiles), several weight dtypes and ranks, a split
/// weight.
pub(super) fn mul_mat_lora(rng: &mut Rng) -> Result<Vec<Case>> {
    let mut out = Vec::new();
    // (m, n, k, rank, dtype, residual, split)
    for (m, n, k, r, dtype, res, split) in [
        (1, 7, 32, 1, DType::F32, false, false),
        (3, 65, 64, 8, DType::Q4_1, true, false),
        (8, 70, 96, 3, DType::Q8_0, false, true),
        (9, 33, 256, 16, DType::Q4_K, true, false),
        (40, 70, 128, 8, DType::F16, true, false),
        (130, 4100, 64, 8, DType::Q4_1, false, false),
        // GPUs' big GEMM with 128×64 tiles, LoRA and residual in its epilogue.
        (300, 4096, 64, 4, DType::Q8_0, true, false),
    ] {
        let mut b = B::new(rng);
        let x = b.input(&[m, k], DType::F32, 1.0)?;
        let w = b.weight(&[n, k], dtype, 1.0 / (k as f32).sqrt())?;
        let h = b.input(&[m, r], DType::F32, 1.0)?;
        let lb = b.input(&[n, r], DType::F32, 0.5)?;
        let rs = if res {
            Some(b.input(&[m, n], DType::F32, 1.0)?)
        } else {
            None
        };
        let y = b.g.matmul_lora(x, w, h, lb, rs)?;
        let desc = format!(
            "m{m} n{n} k{k} r{r}{}{}",
            if res { " +res" } else { "" },
            if split { " split" } else { "" }
        );
        let mut c = b.case("mul_mat_lora", dtype, desc, y, vec![], MATMUL)?;
        if split {
            c.binding_limit = Some((4 * m * k.max(n)).max(9 * dtype.row_bytes(k)?) as u64);
        }
        out.push(c);
    }
    Ok(out)
}

pub(super) fn causal_attention(rng: &mut Rng) -> Result<Vec<Case>> {
    let mut out = Vec::new();
    // (sequences, seq, hq, hkv, d)
    for (ns, seq, hq, hkv, d) in [
        (1, 1, 1, 1, 4),
        (2, 5, 3, 1, 8),
        (1, 17, 4, 2, 64),
        (3, 7, 6, 3, 36),
        (2, 33, 2, 2, 16),
        // d > 64: the per-row kernel on GPUs too.
        (2, 9, 2, 1, 80),
    ] {
        let t = ns * seq;
        let scale = 1.0 / (d as f32).sqrt();
        for mode in [
            AttnMode::Forward,
            AttnMode::Stats,
            AttnMode::GradQ,
            AttnMode::GradK,
            AttnMode::GradV,
        ] {
            let op = CausalAttention { mode, seq, scale };
            let mut b = B::new(rng);
            let q = b.input(&[t, hq, d], DType::F32, 1.0)?;
            let k = b.input(&[t, hkv, d], DType::F32, 1.0)?;
            let v = b.input(&[t, hkv, d], DType::F32, 1.0)?;
            let y = match mode {
                AttnMode::Forward => b.g.push(op, &[q, k, v])?,
                AttnMode::Stats => {
                    let o = b.input(&[t, hq, d], DType::F32, 1.0)?;
                    let d_o = b.input(&[t, hq, d], DType::F32, 1.0)?;
                    b.g.push(op, &[q, k, v, o, d_o])?
                }
                _ => {
                    // Consistent stats: computed in-graph from the forward.
                    let d_o = b.input(&[t, hq, d], DType::F32, 1.0)?;
                    let fwd = CausalAttention {
                        mode: AttnMode::Forward,
                        ..op
                    };
                    let o = b.g.push(fwd, &[q, k, v])?;
                    let st = CausalAttention {
                        mode: AttnMode::Stats,
                        ..op
                    };
                    let stats = b.g.push(st, &[q, k, v, o, d_o])?;
                    b.g.push(op, &[q, k, v, d_o, stats])?
                }
            };
            let name = crate::ops::Op::name(&op);
            let desc = format!("{ns}×{seq} hq{hq} hkv{hkv} d{d}");
            out.push(b.case(name, DType::F32, desc, y, vec![], REDUCTION)?);
        }
    }
    Ok(out)
}

pub(super) fn optim(rng: &mut Rng) -> Result<Vec<Case>> {
    let mut out = Vec::new();
    for n in [1usize, 7, 1000, 4099] {
        for op in [
            Optim::Accumulate,
            Optim::Zero,
            Optim::SqNorm { slot: 2 },
            Optim::Clip { max_norm: 1.0 },
            Optim::Clip { max_norm: 0.0 },
            Optim::Moments,
            Optim::Param,
        ] {
            let mut b = B::new(rng);
            let hyper = |b: &mut B| -> Result<_> {
                let h = b.g.input("hyper", &[HYPER_LEN], DType::F32)?;
                let v = [0.99998, 2e-3, 0.0316, 1e-8, 0.1, 0.999, 1e-3];
                b.put(h, &[HYPER_LEN], DType::F32, &v)
            };
            let y = match op {
                Optim::Accumulate => {
                    let acc = b.state(&[n], DType::F32)?;
                    let g = b.input(&[n], DType::F32, 1.0)?;
                    b.g.push(op, &[acc, g])?
                }
                Optim::Zero => {
                    let acc = b.state(&[n], DType::F32)?;
                    b.g.push(op, &[acc])?
                }
                Optim::SqNorm { .. } => {
                    let norms = b.state(&[5], DType::F32)?;
                    let g = b.input(&[n], DType::F32, 1.0)?;
                    b.g.push(op, &[norms, g])?
                }
                Optim::Clip { .. } => {
                    let norms = b.input(&[n], DType::F32, 0.5)?;
                    b.g.push(op, &[norms])?
                }
                Optim::Moments => {
                    let mv = b.g.state("mv", &[2, n], DType::F32)?;
                    let v: Vec<f32> = (0..2 * n)
                        .map(|i| {
                            if i < n {
                                b.rng.normal()
                            } else {
                                b.rng.uniform()
                            }
                        })
                        .collect();
                    b.put(mv, &[2, n], DType::F32, &v)?;
                    let g = b.input(&[n], DType::F32, 1.0)?;
                    let clip = b.g.input("clip", &[2], DType::F32)?;
                    b.put(clip, &[2], DType::F32, &[3.0, 0.3])?;
                    let h = hyper(&mut b)?;
                    b.g.push(op, &[mv, g, clip, h])?
                }
                Optim::Param => {
                    let p = b.state(&[n], DType::F32)?;
                    let mv = b.g.input("mv", &[2, n], DType::F32)?;
                    let v: Vec<f32> = (0..2 * n)
                        .map(|i| {
                            if i < n {
                                b.rng.normal()
                            } else {
                                b.rng.uniform()
                            }
                        })
                        .collect();
                    b.put(mv, &[2, n], DType::F32, &v)?;
                    let h = hyper(&mut b)?;
                    b.g.push(op, &[p, mv, h])?
                }
            };
            let tol = match op {
                Optim::Accumulate | Optim::Zero => EXACT_ISH,
                Optim::SqNorm { .. } | Optim::Clip { .. } => REDUCTION,
                _ => TRANSCENDENTAL,
            };
            let name = crate::ops::Op::name(&op);
            out.push(b.case(name, DType::F32, format!("[{n}] {op:?}"), y, vec![], tol)?);
        }
    }
    Ok(out)
}

pub(super) fn slice_rows(rng: &mut Rng) -> Result<Vec<Case>> {
    let mut out = Vec::new();
    for (rows, cols, start, count) in [(1, 1, 0, 1), (9, 7, 2, 5), (300, 33, 299, 1)] {
        let mut b = B::new(rng);
        let x = b.input(&[rows, cols], DType::F32, 1.0)?;
        let y = b.g.slice_rows(x, start, count)?;
        let desc = format!("[{rows},{cols}] rows {start}+{count}");
        out.push(b.case("slice_rows", DType::F32, desc, y, vec![], EXACT_ISH)?);
    }
    Ok(out)
}

pub(super) fn dropout(rng: &mut Rng) -> Result<Vec<Case>> {
    let mut out = Vec::new();
    for (shape, p, salt, seed) in [
        (&[1usize][..], 0.0f32, 0u32, 0u32),
        (&[257, 3], 0.1, 7, 12345),
        (&[2, 1000], 0.5, 3, 99),
        (&[33, 65], 0.9, 1, u32::MAX),
    ] {
        let mut b = B::new(rng);
        let s = b.g.sym("seed");
        let x = b.input(shape, DType::F32, 1.0)?;
        let y = b.g.dropout(x, p, salt, s)?;
        let desc = format!("{shape:?} p{p} salt{salt} seed{seed}");
        // Exact: the mask is integer math on both sides; the kept values are
        // one f32 product (the oracle rounds the f64 product once).
        out.push(b.case("dropout", DType::F32, desc, y, vec![seed], EXACT_ISH)?);
    }
    Ok(out)
}
