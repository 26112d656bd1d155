//! Dropout with a counter-based mask: `y_i = x_i / (1 − p)` where
//! `hash(seed, salt, i) ≥ p·2³²`, else 0. `seed` is a run-time symbol (a new
//! value per training step), `salt` tells the dropout sites of one graph
//! apart. The mask is a pure function of `(seed, salt, i)`, so recomputing a
//! block reproduces it and the backward is the same op on `dy`; and every
//! backend computes it bit for bit (integer hash: `lowbias32` of
//! `i ⊕ salt·φ ⊕ seed·K`, mirrored in `shaders/dropout.wgsl` and the CUDA twin).
//! (LoRA dropout: PEFT drops the input of `A`.)

use super::{Backward, Dispatch, Op, PlanCtx, arity, f, grid, put_f32, require_dtype, sym, u};
use crate::dtype::DType;
use crate::error::{KilnError, Result};
use crate::graph::{Graph, Sym, TensorId, TensorInfo};
use crate::host::HostTensor;
use crate::ops::Bind;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Dropout {
    /// Probability of dropping an element, in [0, 1).
    pub p: f32,
    pub salt: u32,
    pub seed: Sym,
}

/// The 32-bit hash behind the mask (Chris Wellons' `lowbias32`).
pub fn hash(seed: u32, salt: u32, i: u32) -> u32 {
    let mut x = i ^ salt.wrapping_mul(0x9E37_79B9) ^ seed.wrapping_mul(0x85EB_CA6B);
    x ^= x >> 16;
    x = x.wrapping_mul(0x7FEB_352D);
    x ^= x >> 15;
    x = x.wrapping_mul(0x846C_A68B);
    x ^= x >> 16;
    x
}

impl Dropout {
    /// Elements whose hash is below this are dropped.
    fn threshold(&self) -> u32 {
        (self.p as f64 * 4294967296.0).min(4294967295.0) as u32
    }
}

impl Op for Dropout {
    fn name(&self) -> &'static str {
        "dropout"
    }

    fn infer(&self, inputs: &[&TensorInfo]) -> Result<(Vec<usize>, DType)> {
        arity(self.name(), inputs, &[1])?;
        require_dtype(self.name(), "x", inputs[0], &[DType::F32])?;
        if !(0.0..1.0).contains(&self.p) {
            return Err(KilnError::BadParam {
                op: self.name(),
                detail: format!("p = {} must be in [0, 1)", self.p),
            });
        }
        Ok((inputs[0].shape.clone(), DType::F32))
    }

    fn syms(&self) -> Vec<Sym> {
        vec![self.seed]
    }

    fn cpu(&self, inputs: &[&HostTensor], out: &mut HostTensor, syms: &[u32]) -> Result<()> {
        let x = inputs[0].to_f32()?;
        let seed = sym(syms, self.seed)?;
        let (t, keep) = (self.threshold(), 1.0 / (1.0 - self.p as f64));
        let y: Vec<f32> = x
            .iter()
            .enumerate()
            .map(|(i, v)| {
                if hash(seed, self.salt, i as u32) < t {
                    0.0
                } else {
                    (*v as f64 * keep) as f32
                }
            })
            .collect();
        put_f32(out, &y);
        Ok(())
    }

    /// The same mask (same seed and salt) scales the gradient.
    fn backward(&self, g: &mut Graph, b: &Backward) -> Result<Vec<Option<TensorId>>> {
        Ok(vec![b.grad(0, || g.push(*self, &[b.dy]))?])
    }

    fn wgsl(&self, ctx: &PlanCtx) -> Result<Vec<Dispatch>> {
        let n = ctx.output.numel();
        Ok(vec![Dispatch {
            shader: "dropout.wgsl",
            entry: "main",
            defines: vec![],
            bindings: vec![Bind::Input(0, 0), Bind::Output, Bind::Syms],
            params: vec![
                u(n)?,
                self.seed.0,
                self.salt,
                self.threshold(),
                f((1.0 / (1.0 - self.p as f64)) as f32),
            ],
            groups: grid(n.div_ceil(256), ctx.caps)?,
        }])
    }
}

impl Graph {
    /// Dropout of `x` with probability `p`; `seed` varies per run, `salt` per site.
    pub fn dropout(&mut self, x: TensorId, p: f32, salt: u32, seed: Sym) -> Result<TensorId> {
        self.push(Dropout { p, salt, seed }, &[x])
    }
}
