//! Spatial resampling of NHWC activations by a factor of two: 2×2 average
//! pooling (stride 2, floor for odd sizes, as PyTorch's `avg_pool2d(2)` and
//! ONNX `AveragePool` with kernel 2, stride 2) and nearest-neighbour 2×
//! upsampling (`interpolate(scale_factor=2, mode="nearest")`).
//!
//! `x [B, H, W, C]` f32 → `[B, H/2, W/2, C]` or `[B, 2H, 2W, C]`.
//! Kernel: `shaders/resample.wgsl`, one invocation per output element.

use super::{Bind, Dispatch, Op, PlanCtx, arity, grid, put_f32, require_dtype, shape_err, u};
use crate::dtype::DType;
use crate::error::Result;
use crate::graph::{Graph, TensorId, TensorInfo};
use crate::host::HostTensor;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resample {
    AvgPool2,
    Upsample2,
}

impl Op for Resample {
    fn name(&self) -> &'static str {
        match self {
            Resample::AvgPool2 => "avg_pool_2x2",
            Resample::Upsample2 => "upsample_nearest_2x",
        }
    }

    fn infer(&self, inputs: &[&TensorInfo]) -> Result<(Vec<usize>, DType)> {
        arity(self.name(), inputs, &[1])?;
        let x = inputs[0];
        require_dtype(self.name(), "x", x, &[DType::F32])?;
        let [b, h, w, c] = x.shape[..] else {
            return Err(shape_err(
                self.name(),
                format!("x {:?} must be [B, H, W, C]", x.shape),
            ));
        };
        match self {
            Resample::AvgPool2 if h < 2 || w < 2 => Err(shape_err(
                self.name(),
                format!("{h}×{w} is too small to pool"),
            )),
            Resample::AvgPool2 => Ok((vec![b, h / 2, w / 2, c], DType::F32)),
            Resample::Upsample2 => Ok((vec![b, 2 * h, 2 * w, c], DType::F32)),
        }
    }

    fn cpu(&self, inputs: &[&HostTensor], out: &mut HostTensor, _syms: &[u32]) -> Result<()> {
        let x = inputs[0].to_f32()?;
        let [_, h, w, c] = inputs[0].shape[..] else {
            return Err(shape_err(self.name(), "x must be 4-D".into()));
        };
        let [b, oh, ow, _] = out.shape[..] else {
            return Err(shape_err(self.name(), "y must be 4-D".into()));
        };
        let at =
            |n: usize, y: usize, xx: usize, ch: usize| x[((n * h + y) * w + xx) * c + ch] as f64;
        let mut y = Vec::with_capacity(b * oh * ow * c);
        for n in 0..b {
            for oy in 0..oh {
                for ox in 0..ow {
                    for ch in 0..c {
                        let v = match self {
                            Resample::AvgPool2 => {
                                (at(n, 2 * oy, 2 * ox, ch)
                                    + at(n, 2 * oy, 2 * ox + 1, ch)
                                    + at(n, 2 * oy + 1, 2 * ox, ch)
                                    + at(n, 2 * oy + 1, 2 * ox + 1, ch))
                                    / 4.0
                            }
                            Resample::Upsample2 => at(n, oy / 2, ox / 2, ch),
                        };
                        y.push(v as f32);
                    }
                }
            }
        }
        put_f32(out, &y);
        Ok(())
    }

    fn wgsl(&self, ctx: &PlanCtx) -> Result<Vec<Dispatch>> {
        let (x, y) = (&ctx.inputs[0].shape, &ctx.output.shape);
        let n = ctx.output.numel();
        Ok(vec![Dispatch {
            shader: "resample.wgsl",
            entry: "main",
            defines: vec![],
            bindings: vec![Bind::Input(0, 0), Bind::Output],
            params: vec![
                u(n)?,
                u(x[1])?,
                u(x[2])?,
                u(x[3])?,
                u(y[1])?,
                u(y[2])?,
                *self as u32,
            ],
            groups: grid(n.div_ceil(256), ctx.caps)?,
        }])
    }
}

impl Graph {
    /// 2×2 average pooling, stride 2, of NHWC `x`.
    pub fn avg_pool_2x2(&mut self, x: TensorId) -> Result<TensorId> {
        self.push(Resample::AvgPool2, &[x])
    }
    /// Nearest-neighbour 2× upsampling of NHWC `x`.
    pub fn upsample_nearest_2x(&mut self, x: TensorId) -> Result<TensorId> {
        self.push(Resample::Upsample2, &[x])
    }
}
