//! Group normalization over NHWC activations, optionally fused with the
//! timestep embedding's scale-shift and a SiLU (the UNet's
//! `norm → (1 + scale)·h + shift → SiLU` in one pass).
//!
//! `x [B, .., C]` f32: the first dimension is the batch, the last the channels,
//! everything between is one spatial axis of `N` pixels. Channels split into
//! `G` groups of `C/G`; each (sample, group) is normalized over its `N·C/G`
//! values with the biased variance (PyTorch's GroupNorm):
//!
//! `y = (x − mean) / sqrt(var + eps) · γ[c] + β[c]`, then with `ss [B, 2C]`
//! (scale in the first C columns, shift in the last C, guided-diffusion's
//! `chunk(emb, 2)` order) `y = y · (1 + scale[b, c]) + shift[b, c]`, then
//! optionally `y = silu(y)`.
//!
//! Inputs: `x`, `γ [C]`, `β [C]`, optional `ss [B, 2C]`. Kernel:
//! `shaders/group_norm.wgsl`, one workgroup per (sample, group), two-pass
//! (mean, then squared deviations) so large groups keep their precision.

use super::{Bind, Dispatch, Op, PlanCtx, arity, f, grid, put_f32, require_dtype, shape_err, u};
use crate::dtype::DType;
use crate::error::Result;
use crate::graph::{Graph, TensorId, TensorInfo};
use crate::host::HostTensor;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GroupNorm {
    pub groups: usize,
    pub eps: f32,
    pub silu: bool,
}

impl GroupNorm {
    /// (batch, pixels per sample, channels).
    fn dims(x: &[usize]) -> (usize, usize, usize) {
        let b = x.first().copied().unwrap_or(1);
        let c = x.last().copied().unwrap_or(1);
        let n = x.iter().product::<usize>() / (b * c).max(1);
        (b, n, c)
    }
}

/// The largest group (values) the CPU adapters' barrier-free kernel takes:
/// lavapipe's loop guard cut its three passes short (Inf out) at groups of
/// 16,384 and 30,720 values; 12,000 passed.
const SERIAL_VALUES: usize = 8_192;

impl Op for GroupNorm {
    fn name(&self) -> &'static str {
        "group_norm"
    }

    fn infer(&self, inputs: &[&TensorInfo]) -> Result<(Vec<usize>, DType)> {
        arity(self.name(), inputs, &[3, 4])?;
        for t in inputs {
            require_dtype(self.name(), "x/γ/β/ss", t, &[DType::F32])?;
        }
        let x = inputs[0];
        if x.shape.len() < 2 {
            return Err(shape_err(
                self.name(),
                format!("x {:?} needs [B, .., C]", x.shape),
            ));
        }
        let (b, _, c) = Self::dims(&x.shape);
        if self.groups == 0 || c % self.groups != 0 {
            return Err(shape_err(
                self.name(),
                format!("{c} channels do not split into {} groups", self.groups),
            ));
        }
        for t in &inputs[1..3] {
            if t.shape != [c] {
                return Err(shape_err(
                    self.name(),
                    format!("γ/β {:?} must be [{c}]", t.shape),
                ));
            }
        }
        if let Some(ss) = inputs.get(3)
            && ss.shape != [b, 2 * c]
        {
            return Err(shape_err(
                self.name(),
                format!("scale-shift {:?} must be [{b}, {}]", ss.shape, 2 * c),
            ));
        }
        Ok((x.shape.clone(), DType::F32))
    }

    fn cpu(&self, inputs: &[&HostTensor], out: &mut HostTensor, _syms: &[u32]) -> Result<()> {
        let x = inputs[0].to_f32()?;
        let (gamma, beta) = (inputs[1].to_f32()?, inputs[2].to_f32()?);
        let ss = inputs.get(3).map(|t| t.to_f32()).transpose()?;
        let (batch, n, c) = Self::dims(&inputs[0].shape);
        let cg = c / self.groups;
        let mut y = vec![0f32; x.len()];
        for b in 0..batch {
            for g in 0..self.groups {
                let idx = |e: usize| (b * n + e / cg) * c + g * cg + e % cg;
                let count = (n * cg) as f64;
                let mean = (0..n * cg).map(|e| x[idx(e)] as f64).sum::<f64>() / count;
                let var = (0..n * cg)
                    .map(|e| (x[idx(e)] as f64 - mean).powi(2))
                    .sum::<f64>()
                    / count;
                let inv = 1.0 / (var + self.eps as f64).sqrt();
                for e in 0..n * cg {
                    let ch = g * cg + e % cg;
                    let mut v =
                        (x[idx(e)] as f64 - mean) * inv * gamma[ch] as f64 + beta[ch] as f64;
                    if let Some(ss) = &ss {
                        let row = &ss[b * 2 * c..(b + 1) * 2 * c];
                        v = v * (1.0 + row[ch] as f64) + row[c + ch] as f64;
                    }
                    if self.silu {
                        v /= 1.0 + (-v).exp();
                    }
                    y[idx(e)] = v as f32;
                }
            }
        }
        put_f32(out, &y);
        Ok(())
    }

    fn wgsl(&self, ctx: &PlanCtx) -> Result<Vec<Dispatch>> {
        let (b, n, c) = Self::dims(&ctx.inputs[0].shape);
        let has_ss = ctx.inputs.len() > 3;
        // GPUs: three dispatches that read memory in order (stats per chunk
        // of pixels, a merge per group, then every element); CPU adapters:
        // a workgroup per (sample, group).
        // Small groups (the low-resolution levels of a UNet: 8² pixels × 4
        // channels) take the one-dispatch `main` on GPUs too.
        let split = !ctx.caps.cpu && n * (c / self.groups.max(1)) > SMALL_GROUP;
        // About CHUNK_VALUES values per stats workgroup (so a batch-1 VAE
        // norm over 512² × 128 still fills the GPU with 4096 workgroups);
        // `finish` merges each group's chunks × channels in a workgroup.
        let len = (CHUNK_VALUES / c).clamp(1, n.max(1));
        let chunks = if split { n.div_ceil(len) } else { 1 };
        let mut bindings = vec![
            Bind::Input(0, 0),
            Bind::Input(1, 0),
            Bind::Input(2, 0),
            Bind::Input(if has_ss { 3 } else { 0 }, 0),
            Bind::Output,
        ];
        if split {
            let floats = 2 * b * chunks * c + 3 * b * c;
            bindings.push(Bind::Scratch(0, (4 * floats) as u64));
        }
        let dispatch = |entry: &'static str, workgroups: usize| -> Result<Dispatch> {
            Ok(Dispatch {
                shader: "group_norm.wgsl",
                entry,
                defines: if split { vec!["SPLIT"] } else { vec![] },
                bindings: bindings.clone(),
                params: vec![
                    u(n)?,
                    u(c)?,
                    u(self.groups)?,
                    u(b)?,
                    f(self.eps),
                    self.silu as u32,
                    has_ss as u32,
                    u(chunks)?,
                    u(len)?,
                ],
                groups: grid(workgroups, ctx.caps)?,
            })
        };
        // CPU adapters, small groups: an invocation per group, no barriers.
        let cg = c / self.groups.max(1);
        if ctx.caps.cpu && n * cg <= SERIAL_VALUES {
            let mut d = dispatch("serial", (b * self.groups).div_ceil(8))?;
            d.defines = vec!["SERIAL"];
            return Ok(vec![d]);
        }
        if split {
            // 4 channels (one vector) per invocation when C % 4 == 0.
            let vec4 = c.is_multiple_of(4);
            let mut apply = dispatch("apply", (b * n * c).div_ceil(if vec4 { 1024 } else { 256 }))?;
            if vec4 {
                apply.defines.push("APPLY4");
            }
            Ok(vec![
                dispatch("stats", b * chunks)?,
                dispatch("finish", b * self.groups)?,
                apply,
            ])
        } else {
            Ok(vec![dispatch("main", b * self.groups)?])
        }
    }
}

/// Values (pixels × channels) per workgroup of the GPU path's stats pass.
const CHUNK_VALUES: usize = 8192;
/// Values per group at or below which GPUs normalise a group in one
/// workgroup and one dispatch (`main`): three passes over ≤ 4 values per
/// invocation cost less than two more dispatches.
const SMALL_GROUP: usize = 1024;

impl Graph {
    /// Group norm of NHWC `x` with affine `gamma`/`beta`, an optional
    /// `[B, 2C]` scale-shift and an optional SiLU, in one kernel.
    pub fn group_norm(
        &mut self,
        x: TensorId,
        gamma: TensorId,
        beta: TensorId,
        scale_shift: Option<TensorId>,
        op: GroupNorm,
    ) -> Result<TensorId> {
        let inputs: Vec<TensorId> = [x, gamma, beta].into_iter().chain(scale_shift).collect();
        self.push(op, &inputs)
    }
}
