//! Which node runs which fast kernel. Nodes not matched here run their op's
//! CPU reference (the executable's fallback).

use super::attention::{AttnKernel, CacheKernel, RopeKernel};
use super::attention_train::CausalAttnKernel;
use super::conv::ConvKernel;
use super::copy::ConcatKernel;
use super::elementwise::{BinaryKernel, GegluKernel, GluBackKernel};
use super::loss::CrossEntropyKernel;
use super::matmul::MatMulKernel;
use super::matmul_back::{InputGradKernel, WeightGradKernel};
use super::norm::{GroupNormKernel, RowNormKernel};
use super::spatial::{AttnKind, SpatialKernel};
use super::unary::{AccumulateKernel, UnaryKernel};
use super::{Activations, Ctx};
use crate::backend::BackendError;
use crate::graph::{Graph, Node};
use crate::host::HostTensor;
use crate::ops::attention::{Attention, MAX_HEAD_DIM};
use crate::ops::binary::{Binary, Geglu};
use crate::ops::causal_attention::CausalAttention;
use crate::ops::conv2d::Conv2d;
use crate::ops::copy::{Concat, WriteCache, WriteCacheWindow};
use crate::ops::cross_entropy::CrossEntropy;
use crate::ops::glu_back::GluBack;
use crate::ops::group_norm::GroupNorm;
use crate::ops::matmul::MatMul;
use crate::ops::matmul_back::{MatMulInputGrad, MatMulWeightGrad};
use crate::ops::matmul_fused::FusedMatMul;
use crate::ops::norm::Norm;
use crate::ops::norm_back::RmsNormBack;
use crate::ops::optim::Optim;
use crate::ops::rope::Rope;
use crate::ops::spatial_attention::{CrossAttention, SpatialAttention};
use crate::ops::unary::Unary;

pub(crate) trait Kernel: Send + Sync {
    fn label(&self) -> String;

    /// Computes the node: `inputs` as in [`crate::ops::Op::cpu`], `out`
    /// sized for the output (or the in-place destination's contents).
    fn run(
        &self,
        inputs: &[&HostTensor],
        out: &mut HostTensor,
        syms: &[u32],
        ctx: &mut Ctx,
    ) -> Result<(), BackendError>;
}

fn misaligned(what: &str) -> BackendError {
    BackendError::Validation(format!("{what}: host buffer is not 4-byte aligned"))
}

/// An f32 tensor's values (host buffers come from the allocator, which
/// aligns them to at least 8 bytes; checked, never assumed).
pub(crate) fn f32s(t: &HostTensor) -> Result<&[f32], BackendError> {
    bytemuck::try_cast_slice(&t.data).map_err(|_| misaligned("read"))
}

pub(crate) fn f32s_mut(t: &mut HostTensor) -> Result<&mut [f32], BackendError> {
    bytemuck::try_cast_slice_mut(&mut t.data).map_err(|_| misaligned("write"))
}

/// The fast kernel for `node`, if it has one.
pub(crate) fn pick(graph: &Graph, node: &Node, _act: Activations) -> Option<Box<dyn Kernel>> {
    let op = node.op.as_any();
    let info = |i: usize| &graph.tensors[node.inputs[i].0];
    let weight = || {
        let w = info(1);
        format!(
            "{} {}",
            w.dtype,
            w.shape
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join("×")
        )
    };
    if op.downcast_ref::<MatMul>().is_some() {
        return Some(Box::new(MatMulKernel {
            name: format!("mul_mat {}", weight()),
            norm: None,
            glu: false,
            res: (node.inputs.len() == 3).then_some(2),
        }));
    }
    if let Some(f) = op.downcast_ref::<FusedMatMul>() {
        let norm = f.norm_eps.map(|e| (2, e));
        return Some(Box::new(MatMulKernel {
            name: format!("mul_mat_fused {}", weight()),
            norm,
            glu: f.glu,
            res: f.residual.then_some(2 + norm.is_some() as usize),
        }));
    }
    if let Some(b) = op.downcast_ref::<Binary>() {
        return Some(Box::new(BinaryKernel(*b)));
    }
    if let Some(u) = op.downcast_ref::<Unary>() {
        return Some(Box::new(UnaryKernel(*u)));
    }
    if op.downcast_ref::<Optim>() == Some(&Optim::Accumulate) {
        return Some(Box::new(AccumulateKernel));
    }
    if let Some(a) = op.downcast_ref::<CausalAttention>() {
        return Some(Box::new(CausalAttnKernel(*a)));
    }
    if op.downcast_ref::<MatMulInputGrad>().is_some() {
        return Some(Box::new(InputGradKernel {
            name: format!("mul_mat_input_grad {}", weight()),
        }));
    }
    if let Some(n) = op.downcast_ref::<Norm>() {
        return Some(Box::new(RowNormKernel::Forward(*n)));
    }
    if let Some(b) = op.downcast_ref::<RmsNormBack>() {
        return Some(Box::new(RowNormKernel::RmsBack(*b)));
    }
    if let Some(g) = op.downcast_ref::<GluBack>() {
        return Some(Box::new(GluBackKernel(*g)));
    }
    if let Some(c) = op.downcast_ref::<CrossEntropy>() {
        return Some(Box::new(CrossEntropyKernel(*c)));
    }
    if op.downcast_ref::<MatMulWeightGrad>().is_some() {
        return Some(Box::new(WeightGradKernel));
    }
    if let Some(a) = op.downcast_ref::<Attention>() {
        let d = info(1).shape.get(2).copied().unwrap_or(0);
        return (d <= MAX_HEAD_DIM).then(|| Box::new(AttnKernel(*a)) as Box<dyn Kernel>);
    }
    if let Some(w) = op.downcast_ref::<WriteCache>() {
        let d = info(0).shape.get(2).copied().unwrap_or(0);
        return (d <= MAX_HEAD_DIM).then(|| {
            Box::new(CacheKernel {
                pos: w.0,
                col0: 0,
                rope: None,
            }) as Box<dyn Kernel>
        });
    }
    if let Some(w) = op.downcast_ref::<WriteCacheWindow>() {
        let d = info(0).shape.get(2).copied().unwrap_or(0);
        return (d <= MAX_HEAD_DIM).then(|| {
            Box::new(CacheKernel {
                pos: w.pos,
                col0: w.col0,
                rope: w.rope,
            }) as Box<dyn Kernel>
        });
    }
    if let Some(c) = op.downcast_ref::<Conv2d>() {
        return Some(Box::new(ConvKernel {
            conv: *c,
            name: format!("conv2d {}×{} {}", c.kh, c.kw, weight()),
        }));
    }
    if let Some(c) = op.downcast_ref::<Concat>() {
        return (info(0).dtype == crate::DType::F32 && info(1).dtype == crate::DType::F32)
            .then(|| Box::new(ConcatKernel(c.0)) as Box<dyn Kernel>);
    }
    if let Some(g) = op.downcast_ref::<GroupNorm>() {
        return Some(Box::new(GroupNormKernel(*g)));
    }
    if let Some(a) = op.downcast_ref::<SpatialAttention>() {
        return Some(Box::new(SpatialKernel(AttnKind::Spatial(*a))));
    }
    if let Some(a) = op.downcast_ref::<CrossAttention>() {
        return Some(Box::new(SpatialKernel(AttnKind::Cross(*a))));
    }
    if let Some(r) = op.downcast_ref::<Rope>() {
        return Some(Box::new(RopeKernel(*r)));
    }
    if let Some(g) = op.downcast_ref::<Geglu>() {
        return (info(0).dtype == crate::DType::F32)
            .then(|| Box::new(GegluKernel(*g)) as Box<dyn Kernel>);
    }
    None
}
