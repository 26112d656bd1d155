//! Ops. One op (or one small family of ops sharing a kernel) per module: its
//! math and layout in the doc comment, shape/dtype inference, the CPU reference
//! (the oracle every backend is tested against) and its WGSL dispatch plan;
//! the kernel itself lives in `shaders/<op>.wgsl`. Parity cases are registered
//! in one table, [`crate::parity::registry`].
//!
//! Layout conventions: tensors are row-major and contiguous; the last dimension
//! is the fastest. Activations are f32; weight matrices are `[n_out, k]` in any
//! [`DType::WEIGHTS`] type (ggml's convention: `y = x · Wᵀ`).

pub mod attention;
pub mod binary;
pub mod causal_attention;
pub mod conv2d;
pub mod copy;
pub mod cross_entropy;
pub mod dropout;
pub mod embed;
pub mod glu_back;
pub mod group_norm;
pub mod matmul;
pub mod matmul_back;
pub mod matmul_fused;
pub mod matmul_q8;
pub mod norm;
pub mod norm_back;
pub mod optim;
pub mod reduce;
pub mod resample;
pub mod rope;
pub mod spatial_attention;
pub mod timestep;
pub mod unary;

use crate::dtype::DType;
use crate::error::{KilnError, Result};
use crate::graph::{Graph, Sym, TensorId, TensorInfo};
use crate::host::HostTensor;

/// Lets a backend outside this crate (the CUDA twin) read an op's
/// parameters: `node.op.as_any().downcast_ref::<ops::rope::Rope>()`.
pub trait AsAny {
    fn as_any(&self) -> &dyn std::any::Any;
}

impl<T: std::any::Any> AsAny for T {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

/// An operation of the graph. Implemented by one type per op (family).
pub trait Op: Send + Sync + std::fmt::Debug + AsAny {
    fn name(&self) -> &'static str;

    /// Output shape and dtype for these inputs, or a typed error.
    fn infer(&self, inputs: &[&TensorInfo]) -> Result<(Vec<usize>, DType)>;

    /// `Some(i)`: the op writes input `i` (a state tensor) in place.
    fn in_place(&self) -> Option<usize> {
        None
    }

    /// Symbols the op reads at run time.
    fn syms(&self) -> Vec<Sym> {
        Vec::new()
    }

    /// Validates symbol values before a run (e.g. a position past the cache).
    fn check_syms(&self, _inputs: &[&TensorInfo], _syms: &[u32], _names: &[String]) -> Result<()> {
        Ok(())
    }

    /// Validates host data given for input `idx` (e.g. token ids in range).
    fn check_input_data(
        &self,
        _idx: usize,
        _data: &HostTensor,
        _inputs: &[&TensorInfo],
    ) -> Result<()> {
        Ok(())
    }

    /// `Some(i)`: the output is a view of input `i` (same bytes, new shape);
    /// backends alias the storage and dispatch nothing.
    fn alias_input(&self) -> Option<usize> {
        None
    }

    /// The input that a GPU backend may split by rows across several buffers
    /// when it exceeds the device's storage-binding limit.
    fn splittable_input(&self) -> Option<usize> {
        None
    }

    /// CPU reference. `out` is pre-sized (zero-filled) or, for in-place ops,
    /// holds the current contents of the destination (then `inputs[i]` for the
    /// in-place index is an empty placeholder and must not be read).
    fn cpu(&self, inputs: &[&HostTensor], out: &mut HostTensor, syms: &[u32]) -> Result<()>;

    /// The WGSL dispatches that compute this node.
    fn wgsl(&self, ctx: &PlanCtx) -> Result<Vec<Dispatch>>;

    /// Reverse mode: pushes onto `g` the ordinary ops that compute the
    /// gradients of this node's inputs from the gradient of its output, and
    /// returns one entry per input (`None` where `need` is false). Ops off
    /// the training path keep this default: a typed error naming the op.
    fn backward(&self, _g: &mut Graph, _b: &Backward) -> Result<Vec<Option<TensorId>>> {
        Err(KilnError::BadParam {
            op: self.name(),
            detail: "has no backward (not differentiable here)".into(),
        })
    }
}

/// What [`Op::backward`] is given: the node's inputs and output (the
/// recomputed ones under checkpointing), the output's gradient, and which
/// inputs need a gradient.
#[derive(Clone, Debug)]
pub struct Backward {
    pub inputs: Vec<TensorId>,
    pub output: TensorId,
    pub dy: TensorId,
    pub need: Vec<bool>,
}

impl Backward {
    /// `Some(f())` for input `i` when it needs a gradient.
    pub fn grad(&self, i: usize, f: impl FnOnce() -> Result<TensorId>) -> Result<Option<TensorId>> {
        if self.need.get(i).copied().unwrap_or(false) {
            f().map(Some)
        } else {
            Ok(None)
        }
    }

    /// A typed error when input `i` (a frozen operand) is asked for a gradient.
    pub fn frozen(&self, op: &'static str, i: usize, what: &str) -> Result<()> {
        if self.need.get(i).copied().unwrap_or(false) {
            return Err(KilnError::BadParam {
                op,
                detail: format!("the gradient of its {what} is not supported (frozen)"),
            });
        }
        Ok(())
    }
}

/// The setting of switch `name` when it is 0 or 1 (None otherwise): the
/// benchmark switches (`KILN_GEMV_XREG`, `KILN_GEMV_XS`, `KILN_WGPU_AS_GPU`),
/// read when a plan or a context is made, not per run.
pub fn env_switch(name: &str) -> Option<bool> {
    match std::env::var(name).as_deref() {
        Ok("0") => Some(false),
        Ok("1") => Some(true),
        _ => None,
    }
}

/// What a GPU backend offers that kernels care about.
#[derive(Clone, Debug)]
pub struct GpuCaps {
    pub subgroups: bool,
    /// The subgroup size when the adapter reports one fixed size (0: unknown).
    pub subgroup_size: u32,
    /// A CPU implementation (lavapipe, SwiftShader): barriers are expensive,
    /// so kernels without workgroup barriers are preferred.
    pub cpu: bool,
    pub shader_f16: bool,
    pub max_workgroups_per_dim: u32,
    pub max_binding_bytes: u64,
    /// Workgroup (shared) memory per workgroup, bytes.
    pub max_workgroup_storage: u32,
    /// Invocations per workgroup.
    pub max_invocations: u32,
    /// Decode GEMVs (m = 1) take 4 rows per subgroup at a time with x in
    /// registers (`XREG`, common/gemv_rows.wgsl). On by default for wgpu on
    /// GPUs (`KILN_GEMV_XREG=0` turns it off); the CUDA twin keeps one row
    /// per warp unless `KILN_GEMV_XREG=1` (docs/bench/2026-12-06-h100-wgpu-gemv).
    pub gemv_xreg: bool,
    /// Prefill GEMMs with enough tiles take common/gemm_big.wgsl (the
    /// convolution's 8×4-per-invocation double-buffered kernel). On for wgpu
    /// (`KILN_GEMM_BIG=0` turns it off); the CUDA twin has its own GEMMs.
    pub gemm_big: bool,
    /// Products (one-token GEMVs and prefill GEMMs) over Q4_0 / Q4_1 / Q8_0
    /// weight matrices of at least this many weights quantize x to 8 bits
    /// and run on integer dot products (ops/matmul_q8.rs): opt-in with
    /// `KILN_ACTIVATIONS=q8` (`None`: the f32 kernels, the faithful default).
    pub q8_activations: Option<usize>,
    /// One-token 8-bit products over k ≤ `matmul_q8::LOCAL_MAX_K` quantize
    /// x inside the GEMV's workgroups (`XQ_LOCAL`) instead of in a
    /// dispatch of their own. On for wgpu (fewer dispatches), off for the
    /// CUDA twin (graph replay makes the launch cheap there); `KILN_Q8_LOCAL`
    /// overrides both (docs/bench/2026-12-06-h100-q8-local).
    pub q8_local: bool,
    /// 16×16×16 cooperative matrices (tensor cores) with f16 operands and
    /// f32 accumulation on 32-wide subgroups: with 8-bit activations on,
    /// prefill GEMMs run on them (mul_mat_coop_half.wgsl, ops/matmul_q8.rs).
    /// Native wgpu adapters offering `EXPERIMENTAL_COOPERATIVE_MATRIX`
    /// (`KILN_COOP=0` turns it off).
    pub coop_f16: bool,
    /// The 8-bit prefill GEMM runs on integer tensor cores (the CUDA twin's
    /// `mma.sync` kernel), where every matrix pays, so prefill products
    /// have no minimum size (the decode GEMVs keep theirs).
    pub q8_prefill_mma: bool,
    /// The decode step's attention writes its own K/V cache rows: the
    /// `deferred` cache writes of `Graph::attention_new_kv` dispatch nothing
    /// and attention runs its `NEW_KV` kernels (ops/attention.rs); off, the
    /// writes are dispatches of their own and attention the plain kernel.
    /// `KILN_NEW_KV=0|1` overrides the backend's default.
    pub kv_in_attention: bool,
    /// Prefill attention by `attn_gqa` with this many lanes per row (4 or
    /// 8) where it applies (ops/attention.rs), else `attn_tile`: off until
    /// timed on a GPU; `KILN_ATTN_GQA=4|8` natively.
    pub attn_gqa: Option<usize>,
}

impl GpuCaps {
    /// `KILN_ACTIVATIONS=q8`: 8-bit activations in the products over
    /// matrices of at least [`GpuCaps::q8_min_weights`] weights (`default`:
    /// the backend's, [`matmul_q8::MIN_WEIGHTS`] or
    /// [`matmul_q8::MIN_WEIGHTS_WGPU`]); `f32` or unset: the f32 kernels.
    pub fn q8_activations_from_env(default: usize) -> Option<usize> {
        let on = std::env::var("KILN_ACTIVATIONS").is_ok_and(|v| v.eq_ignore_ascii_case("q8"));
        on.then(|| Self::q8_min_weights(default))
    }

    /// The smallest matrix taken to 8 bits when they are on:
    /// `KILN_Q8_MIN_WEIGHTS`, else `default`.
    pub fn q8_min_weights(default: usize) -> usize {
        std::env::var("KILN_Q8_MIN_WEIGHTS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    }

    /// Whether a decode GEMV of `m` rows of x over `k` takes 4 rows per
    /// subgroup with x in registers (`XREG`, common/gemv_rows.wgsl): GPUs
    /// with subgroups and `gemv_xreg`, one row of x, whole 32-blocks.
    pub fn xreg_applies(&self, m: usize, k: usize) -> bool {
        self.gemv_xreg && !self.cpu && self.subgroups && m == 1 && k.is_multiple_of(32)
    }

    /// Rows per 64-invocation workgroup of the subgroup GEMV kernels: one
    /// per subgroup when the size is known (more workgroups in flight), else 8.
    /// `KILN_GEMV_ROWS=N` (1..=256) overrides it, for benchmarks.
    pub fn gemv_rows_per_workgroup(&self) -> usize {
        static ROWS: std::sync::OnceLock<Option<usize>> = std::sync::OnceLock::new();
        let forced = ROWS.get_or_init(|| {
            std::env::var("KILN_GEMV_ROWS")
                .ok()
                .and_then(|v| v.parse().ok())
                .filter(|n| (1..=256).contains(n))
        });
        if let Some(n) = *forced {
            return n;
        }
        match self.subgroup_size {
            s if (1..=64).contains(&s) && 64 % s == 0 => (64 / s) as usize,
            _ => 8,
        }
    }
}

/// A contiguous range of rows of a split input, bound as its own buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Chunk {
    pub row0: usize,
    pub rows: usize,
}

pub struct PlanCtx<'a> {
    pub inputs: Vec<&'a TensorInfo>,
    pub output: &'a TensorInfo,
    /// Per input: its row chunks (a single chunk when not split).
    pub chunks: Vec<Vec<Chunk>>,
    pub caps: &'a GpuCaps,
}

/// One kernel launch. Binding 0 is always the uniform `params` block (the
/// `params` words, f32 values as bits); bindings 1.. follow `bindings`.
#[derive(Clone, Debug)]
pub struct Dispatch {
    pub shader: &'static str,
    pub entry: &'static str,
    pub defines: Vec<&'static str>,
    pub bindings: Vec<Bind>,
    pub params: Vec<u32>,
    pub groups: [u32; 3],
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Bind {
    /// Input `i` (read-only), chunk `c`.
    Input(usize, usize),
    /// Input `i`, chunk `c`, bound read-write: a state tensor that an
    /// earlier node writes in place, its work deferred to this dispatch (the
    /// decode step's KV-cache rows inside attention, ops/attention.rs).
    InputWrite(usize, usize),
    /// The output (read-write); for in-place ops, the destination.
    Output,
    /// The run's symbol values, `array<u32>` (read-only).
    Syms,
    /// Per-node scratch of this many bytes (read-write), slot `s`.
    Scratch(u8, u64),
    /// Scratch slot `s` read-only (written by an earlier dispatch of the node).
    ScratchRead(u8),
}

impl Bind {
    pub fn writable(self) -> bool {
        matches!(
            self,
            Bind::Output | Bind::InputWrite(..) | Bind::Scratch(..)
        )
    }
}

/// Workgroup grid for `n` workgroups, folded into y when x would exceed the
/// per-dimension limit. Kernels use `wid.x + wid.y * nwg.x` and guard `>= n`.
pub fn grid(n: usize, caps: &GpuCaps) -> Result<[u32; 3]> {
    let max = caps.max_workgroups_per_dim.max(1) as usize;
    let x = n.clamp(1, max);
    let y = n.div_ceil(x);
    if y > max {
        return Err(KilnError::BadParam {
            op: "dispatch",
            detail: format!("{n} workgroups exceed the device's {max}x{max} grid"),
        });
    }
    Ok([x as u32, y as u32, 1])
}

pub fn f(v: f32) -> u32 {
    v.to_bits()
}

pub fn u(v: usize) -> Result<u32> {
    u32::try_from(v).map_err(|_| KilnError::BadParam {
        op: "dispatch",
        detail: format!("{v} does not fit in u32"),
    })
}

/// Arity check shared by every op's `infer`.
pub fn arity(op: &'static str, inputs: &[&TensorInfo], allowed: &[usize]) -> Result<()> {
    if allowed.contains(&inputs.len()) {
        Ok(())
    } else {
        Err(KilnError::Arity {
            op,
            expected: allowed[0],
            got: inputs.len(),
        })
    }
}

pub fn require_dtype(
    op: &'static str,
    operand: &'static str,
    t: &TensorInfo,
    allowed: &[DType],
) -> Result<()> {
    if allowed.contains(&t.dtype) {
        Ok(())
    } else {
        Err(KilnError::UnsupportedDType {
            op,
            operand,
            dtype: t.dtype,
        })
    }
}

/// A residual input added in an epilogue: f32 of exactly the output's shape.
pub fn require_residual(op: &'static str, r: &TensorInfo, shape: &[usize]) -> Result<()> {
    require_dtype(op, "res", r, &[DType::F32])?;
    if r.shape != shape {
        return Err(shape_err(
            op,
            format!("residual {:?} must be {shape:?}", r.shape),
        ));
    }
    Ok(())
}

pub fn shape_err(op: &'static str, detail: String) -> KilnError {
    KilnError::Shape { op, detail }
}

/// Writes f32 values into an f32 output tensor.
pub fn put_f32(out: &mut HostTensor, values: &[f32]) {
    out.data.clear();
    out.data.extend(values.iter().flat_map(|v| v.to_le_bytes()));
}

/// Looks up a symbol's value (the graph guarantees it exists).
pub fn sym(syms: &[u32], s: Sym) -> Result<u32> {
    syms.get(s.0 as usize).copied().ok_or(KilnError::BadParam {
        op: "run",
        detail: format!("symbol {} has no value", s.0),
    })
}
