//! Gradient checks: every backward on the training path against central
//! finite differences on the CPU reference. For `y = f(x₁, …)` and a random
//! projection `r`, `L = Σ r·y` (f64 on the host); the analytic gradient is
//! what [`super::autodiff::gradients`] builds from the ops' backwards, the
//! numeric one `(L(x + εe) − L(x − εe)) / 2ε` per sampled element.
//!
//! ε = 1e-2: truncation error ε²/6·|f‴| ≈ 2e-5 for the O(1)-curvature ops
//! here; the outputs are stored as f32, so L carries ≈ √n·6e-8 of rounding
//! noise (n ≤ 600 outputs), ≈ 1e-4 after dividing by 2ε. Tolerance:
//! `|num − ana| ≤ 2e-3 + 2e-3·|ana|` — a wrong term or sign is O(0.1–1).

use crate::backend::Backend;
use crate::backend::cpu::CpuBackend;
use crate::dtype::DType;
use crate::error::Result;
use crate::graph::{Graph, TensorId};
use crate::host::HostTensor;
use crate::rng::Rng;

const EPS: f32 = 1e-2;

/// Builds `y` from the inputs (declared by the check, f32, given shapes).
type Build<'a> = &'a dyn Fn(&mut Graph, &[TensorId]) -> Result<TensorId>;

/// Runs the check; returns the worst `|num − ana| / (2e-3 + 2e-3·|ana|)`
/// (≤ 1 passes) and a description of where.
fn check(shapes: &[&[usize]], checkpoint: bool, build: Build, seed: u64) -> (f64, String) {
    let mut rng = Rng::new(seed);
    let mut g = Graph::new();
    let xs: Vec<TensorId> = shapes
        .iter()
        .map(|s| g.input("x", s, DType::F32).unwrap())
        .collect();
    let y = build(&mut g, &xs).unwrap();
    let end = g.nodes.len();
    let ys = g.info(y).unwrap().shape.clone();
    let r = g.input("r", &ys, DType::F32).unwrap();
    let ckpt: Vec<std::ops::Range<usize>> = if checkpoint {
        std::iter::once(0..end).collect()
    } else {
        Vec::new()
    };
    let grads = super::autodiff::gradients(&mut g, 0..end, &[(y, r)], &xs, &ckpt).unwrap();
    g.mark_output(y).unwrap();
    for d in &grads {
        g.mark_output(*d).unwrap();
    }
    let mut data: Vec<Vec<f32>> = shapes
        .iter()
        .map(|s| rng.normals(s.iter().product(), 1.0))
        .collect();
    let rv = rng.normals(ys.iter().product(), 1.0);
    let mut exe = CpuBackend.compile(&g).unwrap();
    exe.write(r, &HostTensor::from_f32(&ys, DType::F32, &rv).unwrap())
        .unwrap();
    // Frozen weights the build declared: random, in their own dtype.
    for (i, t) in g.tensors.iter().enumerate() {
        if t.kind == crate::graph::TensorKind::Weight {
            let v = rng.normals(t.numel(), 0.5);
            let h = HostTensor::from_f32(&t.shape, t.dtype, &v).unwrap();
            exe.write(TensorId(i), &h).unwrap();
        }
    }
    let syms = vec![0u32; g.syms.len()];
    let mut eval = |data: &[Vec<f32>]| -> (f64, Vec<Vec<f32>>) {
        for ((x, s), v) in xs.iter().zip(shapes).zip(data) {
            exe.write(*x, &HostTensor::from_f32(s, DType::F32, v).unwrap())
                .unwrap();
        }
        exe.run(&syms).unwrap();
        let yv = exe.read(y).unwrap().to_f32().unwrap();
        let l = yv.iter().zip(&rv).map(|(a, b)| *a as f64 * *b as f64).sum();
        let gs = grads
            .iter()
            .map(|d| exe.read(*d).unwrap().to_f32().unwrap())
            .collect();
        (l, gs)
    };
    let (_, ana) = eval(&data);
    let mut worst = (0.0f64, String::new());
    for i in 0..xs.len() {
        let n = data[i].len();
        for j in (0..n).step_by((n / 12).max(1)) {
            let v = data[i][j];
            data[i][j] = v + EPS;
            let (lp, _) = eval(&data);
            data[i][j] = v - EPS;
            let (lm, _) = eval(&data);
            data[i][j] = v;
            let num = (lp - lm) / (2.0 * EPS as f64);
            let a = ana[i][j] as f64;
            let e = (num - a).abs() / (2e-3 + 2e-3 * a.abs());
            if e > worst.0 || e.is_nan() {
                worst = (
                    e,
                    format!("input {i} elem {j}: numeric {num:.6} analytic {a:.6}"),
                );
            }
        }
    }
    worst
}

fn assert_ok(name: &str, shapes: &[&[usize]], build: Build) {
    for ckpt in [false, true] {
        let (e, at) = check(shapes, ckpt, build, 7);
        assert!(e <= 1.0, "{name} (checkpoint {ckpt}): {at} (ratio {e:.2})");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::causal_attention::{AttnMode, CausalAttention};
    use crate::ops::rope::{Rope, RopeMode};

    #[test]
    fn matmul_input_weight_and_residual() {
        assert_ok("matmul", &[&[5, 12], &[7, 12], &[5, 7]], &|g, x| {
            g.matmul_add(x[0], x[1], x[2])
        });
    }

    #[test]
    fn matmul_through_a_quantized_frozen_weight() {
        // dx flows through a Q8_0 weight decoded on the fly; W has no gradient.
        assert_ok("matmul q8_0", &[&[3, 32]], &|g, x| {
            let w = g.weight("w", &[5, 32], DType::Q8_0)?;
            let y = g.matmul(x[0], w)?;
            g.mul(y, y)
        });
    }

    #[test]
    fn rms_norm() {
        assert_ok("rms_norm", &[&[4, 9]], &|g, x| {
            let w = g.weight("w", &[9], DType::F32)?;
            let y = g.rms_norm(x[0], Some(w), 1e-5)?;
            let y = g.mul(y, x[0])?;
            g.rms_norm(y, None, 1e-5)
        });
    }

    #[test]
    fn rope_both_modes_batched() {
        for mode in [RopeMode::Normal, RopeMode::Neox] {
            assert_ok("rope", &[&[6, 2, 8]], &|g, x| {
                let pos = g.sym("pos");
                let rope = Rope {
                    mode,
                    n_rot: 8,
                    base: 100.0,
                    scaling: None,
                    pos,
                    period: 3,
                    inverse: false,
                };
                g.rope(x[0], rope)
            });
        }
    }

    #[test]
    fn causal_attention_gqa() {
        assert_ok(
            "attention",
            &[&[6, 4, 8], &[6, 2, 8], &[6, 2, 8]],
            &|g, x| g.causal_attention(x[0], x[1], x[2], 3, 0.4),
        );
        // The op alone too (its Forward mode is what the backward differentiates).
        let op = CausalAttention {
            mode: AttnMode::Forward,
            seq: 5,
            scale: 0.5,
        };
        assert_ok(
            "attention 1 seq",
            &[&[5, 2, 4], &[5, 1, 4], &[5, 1, 4]],
            &|g, x| g.push(op, x),
        );
    }

    #[test]
    fn swiglu_add_mul_scale_reshape() {
        assert_ok("elementwise", &[&[3, 10], &[3, 10]], &|g, x| {
            let s = g.swiglu(x[0], x[1])?;
            let a = g.add(s, x[0])?;
            let m = g.mul(a, x[1])?;
            let m = g.scale(m, -0.7)?;
            g.reshape(m, &[30])
        });
    }

    #[test]
    fn dropout_mask_is_its_own_gradient() {
        assert_ok("dropout", &[&[5, 40]], &|g, x| {
            let seed = g.sym("seed");
            let y = g.dropout(x[0], 0.3, 5, seed)?;
            g.mul(y, x[0])
        });
    }

    #[test]
    fn dropout_keeps_1_minus_p_and_the_mean() {
        use crate::ops::dropout::hash;
        let (n, p) = (200_000u32, 0.3f64);
        let t = (p * 4294967296.0) as u32;
        let kept = (0..n).filter(|i| hash(17, 3, *i) >= t).count() as f64 / n as f64;
        assert!((kept - (1.0 - p)).abs() < 0.005, "kept {kept}");
        // Different salts and seeds draw different masks.
        let same = (0..1000u32)
            .filter(|i| (hash(17, 3, *i) < t) == (hash(17, 4, *i) < t))
            .count();
        assert!(same < 700, "salts 3 and 4 agree on {same}/1000");
        let same = (0..1000u32)
            .filter(|i| (hash(17, 3, *i) < t) == (hash(18, 3, *i) < t))
            .count();
        assert!(same < 700, "seeds 17 and 18 agree on {same}/1000");
    }

    #[test]
    fn cross_entropy_grad_is_the_loss_gradient() {
        use crate::ops::cross_entropy::{CrossEntropy, MASKED};
        // L = scale·Σ loss(z); CrossEntropy::Grad must be dL/dz.
        let (rows, v, scale) = (4, 11, 0.25f32);
        let labels = [3u32, MASKED, 0, 10];
        let mut rng = Rng::new(3);
        let z = rng.normals(rows * v, 2.0);
        let mut g = Graph::new();
        let zt = g.input("z", &[rows, v], DType::F32).unwrap();
        let lt = g.input("l", &[rows], DType::U32).unwrap();
        let st = g.input("s", &[1], DType::F32).unwrap();
        let loss = g.push(CrossEntropy::Loss, &[zt, lt]).unwrap();
        let grad = g.push(CrossEntropy::Grad, &[zt, lt, st]).unwrap();
        g.mark_output(loss).unwrap();
        g.mark_output(grad).unwrap();
        let mut exe = CpuBackend.compile(&g).unwrap();
        exe.write(lt, &HostTensor::from_u32(&[rows], &labels).unwrap())
            .unwrap();
        exe.write(
            st,
            &HostTensor::from_f32(&[1], DType::F32, &[scale]).unwrap(),
        )
        .unwrap();
        let mut run = |z: &[f32]| {
            exe.write(
                zt,
                &HostTensor::from_f32(&[rows, v], DType::F32, z).unwrap(),
            )
            .unwrap();
            exe.run(&[]).unwrap();
            let l: f64 = exe
                .read(loss)
                .unwrap()
                .to_f32()
                .unwrap()
                .iter()
                .map(|x| *x as f64)
                .sum();
            (l * scale as f64, exe.read(grad).unwrap().to_f32().unwrap())
        };
        let (_, ana) = run(&z);
        for j in 0..rows * v {
            let mut zp = z.clone();
            zp[j] += EPS;
            let mut zm = z.clone();
            zm[j] -= EPS;
            let num = (run(&zp).0 - run(&zm).0) / (2.0 * EPS as f64);
            let a = ana[j] as f64;
            assert!(
                (num - a).abs() <= 2e-3 + 2e-3 * a.abs(),
                "elem {j}: {num} vs {a}"
            );
        }
    }
}
