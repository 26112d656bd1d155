//! Element-wise unary ops ([`Unary`]: SiLU, the GELUs, scale, ReLU, tanh)
//! and the gradient accumulation of training ([`Optim::Accumulate`]) in f32
//! over chunks in parallel. The diffusion UNets run a SiLU per ResNet half
//! on whole feature maps, a LoRA step scales every gradient: the
//! reference's f64 loop is one thread and a libm call per element.
//!
//! Scale and the accumulation's add are one f32 operation (equal to the
//! reference's f64 result rounded once); the others use the vectorizable
//! `exp_f32` (2 ulp) and erf of `elementwise` (the WGSL kernels' own f32
//! forms), tanh libm's — within the cases' tolerance.
//!
//! [`Unary`]: crate::ops::unary::Unary
//! [`Optim::Accumulate`]: crate::ops::optim::Optim

use super::Ctx;
use super::elementwise::{each_chunk, erf_approx};
use super::kernels::{Kernel, f32s, f32s_mut};
use super::simd::exp_f32;
use crate::backend::BackendError;
use crate::host::HostTensor;
use crate::ops::unary::Unary;

/// `f(y, x)` over matching chunks of `y` and `x`, in parallel.
fn each(
    ctx: &mut Ctx,
    x: &[f32],
    y: &mut [f32],
    f: impl Fn(&mut [f32], &[f32]) + Sync,
) -> Result<(), BackendError> {
    if x.len() != y.len() {
        return Err(BackendError::Validation(format!(
            "element-wise op: {} inputs for {} outputs",
            x.len(),
            y.len()
        )));
    }
    each_chunk(ctx, y, |ys, r| f(ys, &x[r]))
}

pub(crate) struct UnaryKernel(pub Unary);

impl Kernel for UnaryKernel {
    fn label(&self) -> String {
        use crate::ops::Op;
        self.0.name().to_string()
    }

    fn run(
        &self,
        inputs: &[&HostTensor],
        out: &mut HostTensor,
        _syms: &[u32],
        ctx: &mut Ctx,
    ) -> Result<(), BackendError> {
        let x = f32s(inputs[0])?;
        let y = f32s_mut(out)?;
        let op = self.0;
        each(ctx, x, y, |y, x| {
            let z = y.iter_mut().zip(x);
            match op {
                Unary::Silu => z.for_each(|(y, x)| *y = x / (1.0 + exp_f32(-x))),
                Unary::QuickGelu => z.for_each(|(y, x)| *y = x / (1.0 + exp_f32(-1.702 * x))),
                Unary::Gelu => z.for_each(|(y, x)| {
                    // 0.5·x·(1 + tanh u) = x·(1 − 1/(e^{2u} + 1))
                    let u = 0.797_884_6 * (x + 0.044_715 * x * x * x);
                    *y = x * (1.0 - 1.0 / (exp_f32(2.0 * u) + 1.0));
                }),
                Unary::GeluErf => z.for_each(|(y, x)| {
                    *y = 0.5 * x * (1.0 + erf_approx(x * std::f32::consts::FRAC_1_SQRT_2));
                }),
                Unary::Scale(s) => z.for_each(|(y, x)| *y = x * s),
                Unary::Relu => z.for_each(|(y, x)| *y = x.max(0.0)),
                Unary::Tanh => z.for_each(|(y, x)| *y = x.tanh()),
            }
        })
    }
}

/// `dst += g` in place (`out` holds dst).
pub(crate) struct AccumulateKernel;

impl Kernel for AccumulateKernel {
    fn label(&self) -> String {
        "grad_accumulate".into()
    }

    fn run(
        &self,
        inputs: &[&HostTensor],
        out: &mut HostTensor,
        _syms: &[u32],
        ctx: &mut Ctx,
    ) -> Result<(), BackendError> {
        let g = f32s(inputs[1])?;
        each(ctx, g, f32s_mut(out)?, |y, g| {
            y.iter_mut().zip(g).for_each(|(y, g)| *y += g);
        })
    }
}
