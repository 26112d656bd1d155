//! Sinusoidal timestep embedding (guided-diffusion's and diffusers'
//! `timestep_embedding`): `t [B]` f32 → `[B, dim]`,
//!
//! `freq_i = exp(−ln(max_period) · i / (half − freq_shift))` for `i < half =
//! dim/2`, `arg = t · freq_i`, row = `[cos(arg) | sin(arg)]` (`sin_first`
//! swaps the halves: diffusers' `flip_sin_to_cos = false`), a trailing zero
//! when `dim` is odd. Kernel: `shaders/timestep_embed.wgsl`, one invocation
//! per output element; sin/cos from `common/trig.wgsl` (accurate to 4e-7,
//! unlike the built-ins on software adapters).

use super::{Bind, Dispatch, Op, PlanCtx, arity, f, grid, put_f32, require_dtype, shape_err, u};
use crate::dtype::DType;
use crate::error::Result;
use crate::graph::{Graph, TensorId, TensorInfo};
use crate::host::HostTensor;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TimestepEmbed {
    pub dim: usize,
    pub max_period: f32,
    pub freq_shift: f32,
    pub sin_first: bool,
}

impl TimestepEmbed {
    /// guided-diffusion's embedding: cos first, max period 10000, no shift.
    pub fn guided(dim: usize) -> TimestepEmbed {
        TimestepEmbed {
            dim,
            max_period: 10000.0,
            freq_shift: 0.0,
            sin_first: false,
        }
    }
}

impl Op for TimestepEmbed {
    fn name(&self) -> &'static str {
        "timestep_embed"
    }

    fn infer(&self, inputs: &[&TensorInfo]) -> Result<(Vec<usize>, DType)> {
        arity(self.name(), inputs, &[1])?;
        let t = inputs[0];
        require_dtype(self.name(), "t", t, &[DType::F32])?;
        let half = self.dim / 2;
        if t.shape.len() != 1 || half == 0 || (half as f32 - self.freq_shift) <= 0.0 {
            return Err(shape_err(
                self.name(),
                format!(
                    "t {:?} must be [B]; dim {} must be ≥ 2 (and exceed 2·shift)",
                    t.shape, self.dim
                ),
            ));
        }
        Ok((vec![t.shape[0], self.dim], DType::F32))
    }

    fn cpu(&self, inputs: &[&HostTensor], out: &mut HostTensor, _syms: &[u32]) -> Result<()> {
        let t = inputs[0].to_f32()?;
        let half = self.dim / 2;
        let mut y = Vec::with_capacity(t.len() * self.dim);
        for tv in t {
            let arg = |i: usize| {
                let e = -(self.max_period as f64).ln() * i as f64
                    / (half as f64 - self.freq_shift as f64);
                tv as f64 * e.exp()
            };
            let halves = [
                (0..half).map(|i| arg(i).cos()).collect::<Vec<f64>>(),
                (0..half).map(|i| arg(i).sin()).collect(),
            ];
            let first = self.sin_first as usize;
            y.extend(halves[first].iter().map(|v| *v as f32));
            y.extend(halves[1 - first].iter().map(|v| *v as f32));
            if self.dim % 2 == 1 {
                y.push(0.0);
            }
        }
        put_f32(out, &y);
        Ok(())
    }

    fn wgsl(&self, ctx: &PlanCtx) -> Result<Vec<Dispatch>> {
        let n = ctx.output.numel();
        Ok(vec![Dispatch {
            shader: "timestep_embed.wgsl",
            entry: "main",
            defines: vec![],
            bindings: vec![Bind::Input(0, 0), Bind::Output],
            params: vec![
                u(n)?,
                u(self.dim)?,
                f(self.max_period.ln()),
                f(self.freq_shift),
                self.sin_first as u32,
            ],
            groups: grid(n.div_ceil(256), ctx.caps)?,
        }])
    }
}

impl Graph {
    /// Sinusoidal embedding of the timesteps `t [B]`.
    pub fn timestep_embed(&mut self, t: TensorId, op: TimestepEmbed) -> Result<TensorId> {
        self.push(op, &[t])
    }
}
