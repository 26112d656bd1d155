//! Element-wise unary ops on f32: SiLU, GELU (tanh approximation, as ggml and
//! `gelu_pytorch_tanh`), GELU (exact, erf), quick GELU (`x·σ(1.702x)`, CLIP's
//! `quick_gelu`), ReLU, tanh and scale.
//!
//! `y[i] = f(x[i])` over any shape. Kernel: `shaders/unary.wgsl`, one thread per
//! element, the function picked by a uniform `kind`.

use super::{Backward, Dispatch, Op, PlanCtx, arity, f, grid, put_f32, require_dtype, u};
use crate::dtype::DType;
use crate::error::Result;
use crate::graph::{Graph, TensorId, TensorInfo};
use crate::host::HostTensor;
use crate::ops::Bind;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Unary {
    Silu,
    Gelu,
    GeluErf,
    Scale(f32),
    QuickGelu,
    Relu,
    Tanh,
}

impl Unary {
    fn kind(self) -> u32 {
        match self {
            Unary::Silu => 0,
            Unary::Gelu => 1,
            Unary::GeluErf => 2,
            Unary::Scale(_) => 3,
            Unary::QuickGelu => 4,
            Unary::Relu => 5,
            Unary::Tanh => 6,
        }
    }

    /// The reference function, evaluated in f64.
    pub fn eval(self, x: f64) -> f64 {
        match self {
            Unary::Silu => x / (1.0 + (-x).exp()),
            Unary::Gelu => {
                let c = (2.0 / std::f64::consts::PI).sqrt();
                0.5 * x * (1.0 + (c * (x + 0.044715 * x * x * x)).tanh())
            }
            Unary::GeluErf => 0.5 * x * (1.0 + erf(x / std::f64::consts::SQRT_2)),
            Unary::Scale(s) => x * s as f64,
            Unary::QuickGelu => x / (1.0 + (-1.702 * x).exp()),
            Unary::Relu => x.max(0.0),
            Unary::Tanh => x.tanh(),
        }
    }
}

/// erf by its Maclaurin series / continued fraction, accurate to ~1e-15 (oracle use).
pub fn erf(x: f64) -> f64 {
    if x.abs() < 3.0 {
        let mut sum = x;
        let mut term = x;
        let x2 = x * x;
        for n in 1..200 {
            term *= -x2 / n as f64;
            let add = term / (2 * n + 1) as f64;
            sum += add;
            if add.abs() < 1e-17 {
                break;
            }
        }
        2.0 / std::f64::consts::PI.sqrt() * sum
    } else {
        // erfc continued fraction (Lentz), x >= 3.
        let a = x.abs();
        let mut fr = 0.0f64;
        for n in (1..60).rev() {
            fr = (n as f64 / 2.0) / (a + fr);
        }
        let erfc = (-a * a).exp() / std::f64::consts::PI.sqrt() / (a + fr);
        (1.0 - erfc).copysign(x)
    }
}

impl Op for Unary {
    fn name(&self) -> &'static str {
        match self {
            Unary::Silu => "silu",
            Unary::Gelu => "gelu",
            Unary::GeluErf => "gelu_erf",
            Unary::Scale(_) => "scale",
            Unary::QuickGelu => "quick_gelu",
            Unary::Relu => "relu",
            Unary::Tanh => "tanh",
        }
    }

    fn infer(&self, inputs: &[&TensorInfo]) -> Result<(Vec<usize>, DType)> {
        arity(self.name(), inputs, &[1])?;
        require_dtype(self.name(), "x", inputs[0], &[DType::F32])?;
        Ok((inputs[0].shape.clone(), DType::F32))
    }

    fn backward(&self, g: &mut Graph, b: &Backward) -> Result<Vec<Option<TensorId>>> {
        let Unary::Scale(s) = *self else {
            return Err(crate::error::KilnError::BadParam {
                op: self.name(),
                detail: "has no backward (not differentiable here)".into(),
            });
        };
        Ok(vec![b.grad(0, || g.scale(b.dy, s))?])
    }

    fn cpu(&self, inputs: &[&HostTensor], out: &mut HostTensor, _syms: &[u32]) -> Result<()> {
        let x = inputs[0].to_f32()?;
        let y: Vec<f32> = x.iter().map(|v| self.eval(*v as f64) as f32).collect();
        put_f32(out, &y);
        Ok(())
    }

    fn wgsl(&self, ctx: &PlanCtx) -> Result<Vec<Dispatch>> {
        let n = ctx.output.numel();
        let s = if let Unary::Scale(s) = self { *s } else { 1.0 };
        Ok(vec![Dispatch {
            shader: "unary.wgsl",
            entry: "main",
            defines: vec![],
            bindings: vec![Bind::Input(0, 0), Bind::Output],
            params: vec![u(n)?, self.kind(), f(s)],
            groups: grid(n.div_ceil(256), ctx.caps)?,
        }])
    }
}

impl Graph {
    pub fn silu(&mut self, x: TensorId) -> Result<TensorId> {
        self.push(Unary::Silu, &[x])
    }
    pub fn gelu(&mut self, x: TensorId) -> Result<TensorId> {
        self.push(Unary::Gelu, &[x])
    }
    pub fn gelu_erf(&mut self, x: TensorId) -> Result<TensorId> {
        self.push(Unary::GeluErf, &[x])
    }
    pub fn quick_gelu(&mut self, x: TensorId) -> Result<TensorId> {
        self.push(Unary::QuickGelu, &[x])
    }
    pub fn relu(&mut self, x: TensorId) -> Result<TensorId> {
        self.push(Unary::Relu, &[x])
    }
    pub fn tanh(&mut self, x: TensorId) -> Result<TensorId> {
        self.push(Unary::Tanh, &[x])
    }
    pub fn scale(&mut self, x: TensorId, s: f32) -> Result<TensorId> {
        self.push(Unary::Scale(s), &[x])
    }
}
