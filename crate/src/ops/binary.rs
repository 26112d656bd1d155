//! Element-wise binary ops on f32: add, mul (with row broadcast of `b`) and
//! SwiGLU (`silu(a) * b`, the Llama FFN gate); and [`Geglu`], diffusers'
//! gated feed-forward over one packed projection.
//!
//! `a` has any shape; `b` has the same shape, or — for add/mul — a shape that
//! broadcasts over one block of `a`'s dimensions: right-aligned, `b`'s
//! dimensions equal `a`'s except one contiguous run of 1s (a bias `[d]` over
//! rows `[n, d]`; a per-sample, per-channel `[B, 1, 1, C]` over an NHWC
//! `[B, H, W, C]`; a per-sample scalar `[B, 1, 1, 1]`). With `inner` the size
//! of the equal trailing dimensions and `rep` that of the broadcast run,
//! element `i` of `a` meets `b[(i / (rep·inner))·inner + i % inner]`.
//! Kernel: `shaders/binary.wgsl`.

use super::{Backward, Dispatch, Op, PlanCtx, arity, grid, put_f32, require_dtype, shape_err, u};
use crate::dtype::DType;
use crate::error::Result;
use crate::graph::{Graph, TensorId, TensorInfo};
use crate::host::HostTensor;
use crate::ops::Bind;
use crate::ops::glu_back::GluBack;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Binary {
    Add,
    Mul,
    SwiGlu,
}

impl Binary {
    pub fn eval(self, a: f64, b: f64) -> f64 {
        match self {
            Binary::Add => a + b,
            Binary::Mul => a * b,
            Binary::SwiGlu => a / (1.0 + (-a).exp()) * b,
        }
    }
}

/// `(inner, rep)` for broadcasting `b` over `a` (module docs), or None.
pub fn broadcast(a: &[usize], b: &[usize]) -> Option<(usize, usize)> {
    if b.len() > a.len() {
        return None;
    }
    let pad = a.len() - b.len();
    let bd = |k: usize| if k < pad { 1 } else { b[k - pad] };
    let n = a.len();
    let outer = (0..n).take_while(|&k| bd(k) == a[k]).count();
    if outer == n {
        return Some((a.iter().product(), 1));
    }
    let inner = (0..n).rev().take_while(|&k| bd(k) == a[k]).count();
    if (outer..n - inner).any(|k| bd(k) != 1) {
        return None;
    }
    Some((
        a[n - inner..].iter().product(),
        a[outer..n - inner].iter().product(),
    ))
}

impl Op for Binary {
    fn name(&self) -> &'static str {
        match self {
            Binary::Add => "add",
            Binary::Mul => "mul",
            Binary::SwiGlu => "swiglu",
        }
    }

    fn infer(&self, inputs: &[&TensorInfo]) -> Result<(Vec<usize>, DType)> {
        arity(self.name(), inputs, &[2])?;
        let (a, b) = (inputs[0], inputs[1]);
        require_dtype(self.name(), "a", a, &[DType::F32])?;
        require_dtype(self.name(), "b", b, &[DType::F32])?;
        let broadcast = *self != Binary::SwiGlu && broadcast(&a.shape, &b.shape).is_some();
        if a.shape != b.shape && !broadcast {
            return Err(shape_err(
                self.name(),
                format!(
                    "a {:?} and b {:?} must match (or b broadcast over one run of a's dims)",
                    a.shape, b.shape
                ),
            ));
        }
        Ok((a.shape.clone(), DType::F32))
    }

    /// Same-shape operands only (the training graph broadcasts nothing).
    fn backward(&self, g: &mut Graph, b: &Backward) -> Result<Vec<Option<TensorId>>> {
        let (x, y, dy) = (b.inputs[0], b.inputs[1], b.dy);
        if g.info(x)?.shape != g.info(y)?.shape {
            return Err(shape_err(
                self.name(),
                "no backward for a broadcast operand".into(),
            ));
        }
        Ok(match self {
            Binary::Add => vec![b.grad(0, || Ok(dy))?, b.grad(1, || Ok(dy))?],
            Binary::Mul => vec![b.grad(0, || g.mul(dy, y))?, b.grad(1, || g.mul(dy, x))?],
            Binary::SwiGlu => vec![
                b.grad(0, || g.swiglu_back(GluBack::Gate, x, y, dy))?,
                b.grad(1, || g.swiglu_back(GluBack::Up, x, y, dy))?,
            ],
        })
    }

    fn cpu(&self, inputs: &[&HostTensor], out: &mut HostTensor, _syms: &[u32]) -> Result<()> {
        let a = inputs[0].to_f32()?;
        let b = inputs[1].to_f32()?;
        let (inner, rep) = broadcast(&inputs[0].shape, &inputs[1].shape).unwrap_or((a.len(), 1));
        let y: Vec<f32> = a
            .iter()
            .enumerate()
            .map(|(i, av)| {
                let bi = (i / (rep * inner)) * inner + i % inner;
                self.eval(*av as f64, b[bi] as f64) as f32
            })
            .collect();
        put_f32(out, &y);
        Ok(())
    }

    fn wgsl(&self, ctx: &PlanCtx) -> Result<Vec<Dispatch>> {
        let n = ctx.output.numel();
        Ok(vec![Dispatch {
            shader: "binary.wgsl",
            entry: "main",
            defines: vec![],
            bindings: vec![Bind::Input(0, 0), Bind::Input(1, 0), Bind::Output],
            params: {
                let (inner, rep) =
                    broadcast(&ctx.inputs[0].shape, &ctx.inputs[1].shape).unwrap_or((n, 1));
                vec![
                    u(n)?,
                    u(ctx.inputs[1].numel())?,
                    *self as u32,
                    0,
                    0,
                    u(inner)?,
                    u(rep)?,
                ]
            },
            groups: grid(n.div_ceil(256), ctx.caps)?,
        }])
    }
}

/// GEGLU over a packed projection (diffusers' `GEGLU`: `hidden, gate =
/// proj(x).chunk(2, -1)`): `a [.., 2n]` → `y [.., n]`, `y[r, c] = a[r, c] ·
/// gelu_erf(a[r, n + c])`. Kernel: `shaders/binary.wgsl`, kind 4.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geglu;

impl Op for Geglu {
    fn name(&self) -> &'static str {
        "geglu"
    }

    fn infer(&self, inputs: &[&TensorInfo]) -> Result<(Vec<usize>, DType)> {
        arity(self.name(), inputs, &[1])?;
        let a = inputs[0];
        require_dtype(self.name(), "a", a, &[DType::F32])?;
        match a.shape.last() {
            Some(&n2) if n2 > 0 && n2 % 2 == 0 => {
                let mut s = a.shape.clone();
                *s.last_mut().unwrap_or(&mut 0) = n2 / 2;
                Ok((s, DType::F32))
            }
            _ => Err(shape_err(
                self.name(),
                format!("a {:?} needs an even, non-zero last dimension", a.shape),
            )),
        }
    }

    fn cpu(&self, inputs: &[&HostTensor], out: &mut HostTensor, _syms: &[u32]) -> Result<()> {
        let a = inputs[0].to_f32()?;
        let n = inputs[0].shape.last().copied().unwrap_or(0) / 2;
        let y: Vec<f32> = (0..a.len() / 2)
            .map(|i| {
                let (r, c) = (i / n, i % n);
                let g = a[r * 2 * n + n + c] as f64;
                let gelu = 0.5 * g * (1.0 + crate::ops::unary::erf(g / std::f64::consts::SQRT_2));
                (a[r * 2 * n + c] as f64 * gelu) as f32
            })
            .collect();
        put_f32(out, &y);
        Ok(())
    }

    fn wgsl(&self, ctx: &PlanCtx) -> Result<Vec<Dispatch>> {
        let n = ctx.output.numel();
        let cols = ctx.output.shape.last().copied().unwrap_or(1);
        Ok(vec![Dispatch {
            shader: "binary.wgsl",
            entry: "main",
            defines: vec![],
            bindings: vec![Bind::Input(0, 0), Bind::Input(0, 0), Bind::Output],
            params: vec![u(n)?, u(n)?, 4, u(cols)?, 0, 1, 1],
            groups: grid(n.div_ceil(256), ctx.caps)?,
        }])
    }
}

impl Graph {
    /// diffusers' GEGLU of a packed `[.., 2n]` projection → `[.., n]`.
    pub fn geglu(&mut self, a: TensorId) -> Result<TensorId> {
        self.push(Geglu, &[a])
    }
    pub fn add(&mut self, a: TensorId, b: TensorId) -> Result<TensorId> {
        self.push(Binary::Add, &[a, b])
    }
    pub fn mul(&mut self, a: TensorId, b: TensorId) -> Result<TensorId> {
        self.push(Binary::Mul, &[a, b])
    }
    pub fn swiglu(&mut self, gate: TensorId, up: TensorId) -> Result<TensorId> {
        self.push(Binary::SwiGlu, &[gate, up])
    }
}

#[cfg(test)]
mod tests {
    use super::broadcast;

    #[test]
    fn broadcast_runs() {
        assert_eq!(broadcast(&[4, 5], &[4, 5]), Some((20, 1)));
        assert_eq!(broadcast(&[4, 5], &[5]), Some((5, 4)));
        assert_eq!(broadcast(&[2, 3, 5, 7], &[2, 1, 1, 7]), Some((7, 15)));
        assert_eq!(broadcast(&[3, 4, 5, 6], &[3, 1, 1, 1]), Some((1, 120)));
        assert_eq!(broadcast(&[7, 5], &[7, 1]), Some((1, 5)));
        // Two broadcast runs, a mismatched dim, b longer than a: refused.
        assert_eq!(broadcast(&[2, 3, 4, 5], &[2, 1, 4, 1]), None);
        assert_eq!(broadcast(&[2, 3], &[2, 4]), None);
        assert_eq!(broadcast(&[3], &[2, 3]), None);
    }
}
