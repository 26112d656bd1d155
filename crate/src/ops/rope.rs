//! Rotary position embedding on `x [t, h, d]` (f32), token `i` at position
//! `pos + i` where `pos` is a run-time symbol.
//!
//! Pairs rotated by angle `(pos+i)·θ_j`, `θ_j = base^(−2j/n_rot)`, j < n_rot/2:
//! * `Normal` (llama.cpp's default, GGUF Llama weights): pairs `(2j, 2j+1)`;
//! * `Neox` (HF Llama/Qwen2 layout): pairs `(j, j + n_rot/2)`.
//!
//! Dimensions `≥ n_rot` pass through. Optional Llama-3 frequency scaling (HF
//! `rope_type = "llama3"`): long wavelengths divided by `factor`, a smooth
//! blend between `low_freq_factor` and `high_freq_factor`. Optional second
//! input `factors [n_rot/2]` (f32): θ_j is divided by `factors[j]` — how
//! llama.cpp's GGUF files carry Llama-3 scaling (`rope_freqs.weight`). Like HF, `θ_j` and
//! the angle are f32 products; the oracle takes sin/cos of that f32 angle in
//! f64. Kernel: `shaders/rope.wgsl`, one thread per pair.

use super::{
    Backward, Dispatch, Op, PlanCtx, arity, f, grid, put_f32, require_dtype, shape_err, sym, u,
};
use crate::dtype::DType;
use crate::error::{KilnError, Result};
use crate::graph::{Graph, Sym, TensorId, TensorInfo};
use crate::host::HostTensor;
use crate::ops::Bind;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RopeMode {
    Normal,
    Neox,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Llama3Scaling {
    pub factor: f32,
    pub low_freq_factor: f32,
    pub high_freq_factor: f32,
    pub original_context: u32,
}

impl Llama3Scaling {
    /// Linear scaling (position interpolation: every θ_j / `factor`, HF's
    /// `rope_type: linear`, llama.cpp's `rope.scaling.type = linear`) as the
    /// Llama-3 formula with its band below every wavelength: θ_j ≤ 1, so
    /// each wavelength 2π/θ_j ≥ 2π exceeds `original_context / low` = 1 and
    /// takes the `θ_j / factor` branch on every backend, no kernel change.
    pub fn linear(factor: f32) -> Llama3Scaling {
        Llama3Scaling {
            factor,
            low_freq_factor: 1.0,
            high_freq_factor: 1.0,
            original_context: 1,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rope {
    pub mode: RopeMode,
    pub n_rot: usize,
    pub base: f32,
    pub scaling: Option<Llama3Scaling>,
    pub pos: Sym,
    /// 0: token `i` sits at `pos + i`. Otherwise rows are sequences of
    /// `period` tokens (a training batch): token `i` sits at `pos + i % period`.
    pub period: usize,
    /// Rotate by the negative angle: the inverse rotation, which is RoPE's
    /// gradient (the rotation is orthogonal).
    pub inverse: bool,
}

impl Rope {
    /// θ_j as an f32, with Llama-3 scaling applied (HF's formula).
    pub fn inv_freq(&self, j: usize) -> f32 {
        let inv = 1.0 / self.base.powf((2 * j) as f32 / self.n_rot as f32);
        let Some(s) = self.scaling else { return inv };
        let old = s.original_context as f32;
        let low_wl = old / s.low_freq_factor;
        let high_wl = old / s.high_freq_factor;
        let wl = 2.0 * std::f32::consts::PI / inv;
        if wl < high_wl {
            inv
        } else if wl > low_wl {
            inv / s.factor
        } else {
            let smooth = (old / wl - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
            (1.0 - smooth) * inv / s.factor + smooth * inv
        }
    }
}

impl Op for Rope {
    fn name(&self) -> &'static str {
        "rope"
    }

    fn infer(&self, inputs: &[&TensorInfo]) -> Result<(Vec<usize>, DType)> {
        arity(self.name(), inputs, &[1, 2])?;
        let x = inputs[0];
        require_dtype(self.name(), "x", x, &[DType::F32])?;
        if let Some(fac) = inputs.get(1) {
            require_dtype(self.name(), "factors", fac, &[DType::F32])?;
            if fac.shape != [self.n_rot / 2] {
                return Err(shape_err(
                    self.name(),
                    format!("factors {:?} must be [{}]", fac.shape, self.n_rot / 2),
                ));
            }
        }
        if x.shape.len() != 3 {
            return Err(shape_err(
                self.name(),
                format!("x {:?} must be [t, h, d]", x.shape),
            ));
        }
        let d = x.shape[2];
        if !d.is_multiple_of(2)
            || !self.n_rot.is_multiple_of(2)
            || self.n_rot == 0
            || self.n_rot > d
        {
            return Err(KilnError::BadParam {
                op: self.name(),
                detail: format!(
                    "head dim {d} and n_rot {} must be even with 0 < n_rot <= d",
                    self.n_rot
                ),
            });
        }
        Ok((x.shape.clone(), DType::F32))
    }

    fn syms(&self) -> Vec<Sym> {
        vec![self.pos]
    }

    /// The rotation is orthogonal: `dx` is `dy` rotated back.
    fn backward(&self, g: &mut Graph, b: &Backward) -> Result<Vec<Option<TensorId>>> {
        b.frozen(self.name(), 1, "frequency factors")?;
        let inv = Rope {
            inverse: !self.inverse,
            ..*self
        };
        let mut ins = vec![b.dy];
        ins.extend(b.inputs.get(1));
        Ok(vec![b.grad(0, || g.push(inv, &ins))?, None][..b.inputs.len()].to_vec())
    }

    fn cpu(&self, inputs: &[&HostTensor], out: &mut HostTensor, syms: &[u32]) -> Result<()> {
        let x = inputs[0].to_f32()?;
        let (t, h, d) = (inputs[0].shape[0], inputs[0].shape[1], inputs[0].shape[2]);
        let p0 = sym(syms, self.pos)?;
        let factors = inputs.get(1).map(|t| t.to_f32()).transpose()?;
        let mut y = x.clone();
        let half = self.n_rot / 2;
        for ti in 0..t {
            let pos = (p0 as usize
                + if self.period > 0 {
                    ti % self.period
                } else {
                    ti
                }) as f32;
            for hi in 0..h {
                let base = (ti * h + hi) * d;
                for j in 0..half {
                    let inv = match &factors {
                        Some(f) => self.inv_freq(j) / f[j],
                        None => self.inv_freq(j),
                    };
                    let angle = (pos * inv) as f64;
                    let (s, c) = angle.sin_cos();
                    let s = if self.inverse { -s } else { s };
                    let (a, b) = match self.mode {
                        RopeMode::Normal => (base + 2 * j, base + 2 * j + 1),
                        RopeMode::Neox => (base + j, base + j + half),
                    };
                    let (x0, x1) = (x[a] as f64, x[b] as f64);
                    y[a] = (x0 * c - x1 * s) as f32;
                    y[b] = (x0 * s + x1 * c) as f32;
                }
            }
        }
        put_f32(out, &y);
        Ok(())
    }

    fn wgsl(&self, ctx: &PlanCtx) -> Result<Vec<Dispatch>> {
        let x = ctx.inputs[0];
        let (t, h, d) = (x.shape[0], x.shape[1], x.shape[2]);
        Ok(vec![self.dispatch(ctx, t, h, d, 0, h * d)?])
    }
}

impl Rope {
    /// The kernel on `t` rows of `h` heads of `d`, read from rows of `ld`
    /// values starting at column `col0`.
    fn dispatch(
        &self,
        ctx: &PlanCtx,
        t: usize,
        h: usize,
        d: usize,
        col0: usize,
        ld: usize,
    ) -> Result<Dispatch> {
        Ok(Dispatch {
            shader: "rope.wgsl",
            entry: "main",
            defines: vec![],
            bindings: vec![
                Bind::Input(0, 0),
                Bind::Output,
                Bind::Syms,
                Bind::Input(ctx.inputs.len() - 1, 0),
            ],
            params: self.params(t, h, d, col0, ld, ctx.inputs.len() > 1)?,
            groups: grid((t * h * d / 2).div_ceil(256), ctx.caps)?,
        })
    }

    /// `rope_cache`: the window of input 1 (`t` rows of `ld`, `h` heads of
    /// `d` from column `col0`) roped and written into the cache, input 0
    /// (`[h, cap, d]`, f32 or f16, in place), at rows `pos..pos+t`.
    pub(crate) fn cache_dispatch(
        &self,
        ctx: &PlanCtx,
        t: usize,
        col0: usize,
        ld: usize,
    ) -> Result<Dispatch> {
        let cache = ctx.inputs[0];
        let (h, cap, d) = (cache.shape[0], cache.shape[1], cache.shape[2]);
        let mut params = self.params(t, h, d, col0, ld, ctx.inputs.len() > 2)?;
        params.push(u(cap)?);
        let mut defines = vec!["CACHE"];
        if cache.dtype == DType::F16 {
            defines.push("DST_F16");
        }
        Ok(Dispatch {
            shader: "rope.wgsl",
            entry: "rope_cache",
            defines,
            bindings: vec![
                Bind::Input(1, 0),
                Bind::Output,
                Bind::Syms,
                Bind::Input(ctx.inputs.len() - 1, 0),
            ],
            params,
            groups: grid((t * h * d / 2).div_ceil(256), ctx.caps)?,
        })
    }

    /// The kernel's parameter words (shaders/rope.wgsl `Params`, without
    /// the cache's `cap`).
    pub(crate) fn params(
        &self,
        t: usize,
        h: usize,
        d: usize,
        col0: usize,
        ld: usize,
        has_factors: bool,
    ) -> Result<Vec<u32>> {
        let s = self.scaling.unwrap_or(Llama3Scaling {
            factor: 1.0,
            low_freq_factor: 1.0,
            high_freq_factor: 2.0,
            original_context: 1,
        });
        Ok(vec![
            u(t)?,
            u(h)?,
            u(d)?,
            u(self.n_rot)?,
            (self.mode == RopeMode::Neox) as u32,
            self.pos.0,
            f(self.base),
            self.scaling.is_some() as u32,
            f(s.factor),
            f(s.low_freq_factor),
            f(s.high_freq_factor),
            s.original_context,
            has_factors as u32,
            u(self.period)?,
            self.inverse as u32,
            u(col0)?,
            u(ld)?,
        ])
    }
}

/// RoPE on a window of each row of `x [t, ld]`: `heads` heads of `d` values
/// starting at column `col0` (the Q or K part of a fused Q/K/V projection's
/// output), written as `[t, heads, d]`. The same kernel as [`Rope`], reading
/// through the window: no copy of the window first.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RopeWindow {
    pub rope: Rope,
    pub col0: usize,
    pub heads: usize,
    pub d: usize,
}

impl Op for RopeWindow {
    fn name(&self) -> &'static str {
        "rope_window"
    }

    fn infer(&self, inputs: &[&TensorInfo]) -> Result<(Vec<usize>, DType)> {
        arity(self.name(), inputs, &[1, 2])?;
        let x = inputs[0];
        require_dtype(self.name(), "x", x, &[DType::F32])?;
        let [t, ld] = x.shape[..] else {
            return Err(shape_err(
                self.name(),
                format!("x {:?} must be [t, columns]", x.shape),
            ));
        };
        if self.col0 + self.heads * self.d > ld || self.heads == 0 {
            return Err(shape_err(
                self.name(),
                format!(
                    "{} heads of {} from column {} do not fit rows of {ld}",
                    self.heads, self.d, self.col0
                ),
            ));
        }
        let win = TensorInfo {
            shape: vec![t, self.heads, self.d],
            ..x.clone()
        };
        let mut ins = vec![&win];
        ins.extend(inputs.get(1).copied());
        self.rope.infer(&ins)
    }

    fn syms(&self) -> Vec<Sym> {
        vec![self.rope.pos]
    }

    fn cpu(&self, inputs: &[&HostTensor], out: &mut HostTensor, syms: &[u32]) -> Result<()> {
        let win = window(inputs[0], self.col0, self.heads, self.d)?;
        let mut ins = vec![&win];
        ins.extend(inputs.get(1).copied());
        self.rope.cpu(&ins, out, syms)
    }

    fn wgsl(&self, ctx: &PlanCtx) -> Result<Vec<Dispatch>> {
        let x = ctx.inputs[0];
        let (t, ld) = (x.shape[0], x.shape[1]);
        Ok(vec![
            self.rope
                .dispatch(ctx, t, self.heads, self.d, self.col0, ld)?,
        ])
    }
}

/// Columns `col0 .. col0 + heads·d` of each row of f32 `x [t, ld]`, as
/// `[t, heads, d]` (the CPU references of the window ops).
pub(crate) fn window(x: &HostTensor, col0: usize, heads: usize, d: usize) -> Result<HostTensor> {
    let v = x.to_f32()?;
    let (t, ld) = (x.shape[0], x.shape[1]);
    let w = heads * d;
    let mut out = Vec::with_capacity(t * w);
    for r in 0..t {
        out.extend_from_slice(&v[r * ld + col0..r * ld + col0 + w]);
    }
    HostTensor::from_f32(&[t, heads, d], DType::F32, &out)
}

/// RMSNorm of every Q and K head over its `head_dim` values (Qwen3, Gemma 3),
/// before RoPE.
#[derive(Clone, Copy, Debug)]
pub struct QkNorm {
    pub q: TensorId,
    pub k: TensorId,
    pub eps: f32,
}

impl Graph {
    /// RoPE on `x [t, h, d]` with token 0 at position `pos`.
    pub fn rope(&mut self, x: TensorId, rope: Rope) -> Result<TensorId> {
        self.push(rope, &[x])
    }

    /// RoPE on `heads` heads of `d` from column `col0` of each row of
    /// `x [t, ld]` (with the optional `factors [n_rot/2]`), as `[t, heads, d]`.
    pub fn rope_window(
        &mut self,
        x: TensorId,
        factors: Option<TensorId>,
        op: RopeWindow,
    ) -> Result<TensorId> {
        let ins: Vec<TensorId> = std::iter::once(x).chain(factors).collect();
        self.push(op, &ins)
    }

    /// Q, K and V projections `[t, ·]` as heads `[t, heads, hd]`: biases
    /// added and Q/K heads normalised when the model has them, Q and K roped
    /// (the attention inputs of
    /// the Llama family's inference and training graphs).
    #[allow(clippy::too_many_arguments)]
    pub fn qkv_heads(
        &mut self,
        [q, k, v]: [TensorId; 3],
        bias: Option<[TensorId; 3]>,
        qk_norm: Option<QkNorm>,
        (heads, kv_heads, hd): (usize, usize, usize),
        rope: Rope,
        factors: Option<TensorId>,
    ) -> Result<[TensorId; 3]> {
        let [mut q, mut k, mut v] = [q, k, v];
        if let Some([bq, bk, bv]) = bias {
            q = self.add(q, bq)?;
            k = self.add(k, bk)?;
            v = self.add(v, bv)?;
        }
        let t = self.info(q)?.shape[0];
        let q = self.reshape(q, &[t, heads, hd])?;
        let k = self.reshape(k, &[t, kv_heads, hd])?;
        let v = self.reshape(v, &[t, kv_heads, hd])?;
        let (q, k) = match qk_norm {
            Some(n) => (
                self.rms_norm(q, Some(n.q), n.eps)?,
                self.rms_norm(k, Some(n.k), n.eps)?,
            ),
            None => (q, k),
        };
        let q = self.rope_maybe_factors(q, factors, rope)?;
        let k = self.rope_maybe_factors(k, factors, rope)?;
        Ok([q, k, v])
    }

    /// RoPE with per-frequency divisors when the model has them.
    pub fn rope_maybe_factors(
        &mut self,
        x: TensorId,
        factors: Option<TensorId>,
        rope: Rope,
    ) -> Result<TensorId> {
        match factors {
            Some(f) => self.rope_with_factors(x, f, rope),
            None => self.rope(x, rope),
        }
    }

    /// RoPE with per-frequency divisors `factors [n_rot/2]`.
    pub fn rope_with_factors(
        &mut self,
        x: TensorId,
        factors: TensorId,
        rope: Rope,
    ) -> Result<TensorId> {
        self.push(rope, &[x, factors])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Linear scaling divides every frequency by the factor, at every base
    /// and width (the Llama-3 branches it goes through are exact).
    #[test]
    fn linear_scaling_divides_every_frequency() {
        for (base, n_rot) in [(10_000.0f32, 64usize), (1_000_000.0, 128), (500.0, 16)] {
            let plain = Rope {
                mode: RopeMode::Neox,
                n_rot,
                base,
                scaling: None,
                pos: Sym(0),
                period: 0,
                inverse: false,
            };
            for factor in [8.0f32, 2.5, 0.5] {
                let lin = Rope {
                    scaling: Some(Llama3Scaling::linear(factor)),
                    ..plain
                };
                for j in 0..n_rot / 2 {
                    assert_eq!(
                        lin.inv_freq(j),
                        plain.inv_freq(j) / factor,
                        "base {base}, j {j}"
                    );
                }
            }
        }
    }
}
