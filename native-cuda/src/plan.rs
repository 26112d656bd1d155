//! Launch planning: a graph node → the CUDA launches that compute it, once at
//! compile time. Pure Rust (no CUDA needed), so CI checks it.
//!
//! The op's own dispatch plan (`Op::wgsl`, public on every op) is the single
//! source of truth for its parameters: eps, scales, RoPE settings, symbol
//! indices and sizes all arrive as the dispatch's uniform words, which the
//! CUDA twins read with the same layout. `plan` adds what is CUDA's own: the
//! capabilities kernels are planned for (warps of 32 play subgroups; no
//! binding limit, so weights are never split), the function and block shape
//! per dispatch ([`crate::kernels::kernel_for`]), and checks that turn any
//! mismatch into a typed error.

use kiln::backend::BackendError;
use kiln::graph::{Graph, Node, TensorId};
use kiln::ops::{Bind, Chunk, GpuCaps, PlanCtx};

use crate::kernels::{self, Kernel, MAX_BINDINGS, MAX_PARAMS};

/// Ops with CUDA kernels (by `Op::name`).
pub const OPS: [&str; 55] = [
    "dropout",
    "silu",
    "gelu",
    "gelu_erf",
    "scale",
    "add",
    "mul",
    "swiglu",
    "rms_norm",
    "layer_norm",
    "softmax",
    "argmax",
    "mul_mat",
    "mul_mat_lora",
    "mul_mat_fused",
    "get_rows",
    "rope",
    "rope_window",
    "attention",
    "write_cache",
    "write_cache_window",
    "cast",
    "transpose",
    "concat",
    "reshape",
    "conv2d",
    "group_norm",
    "avg_pool_2x2",
    "upsample_nearest_2x",
    "spatial_attention",
    "cross_attention",
    "geglu",
    "quick_gelu",
    "relu",
    "tanh",
    "timestep_embed",
    "slice_rows",
    "mul_mat_input_grad",
    "mul_mat_weight_grad",
    "rms_norm_back",
    "swiglu_back_gate",
    "swiglu_back_up",
    "cross_entropy",
    "cross_entropy_grad",
    "causal_attention",
    "causal_attention_stats",
    "causal_attention_grad_q",
    "causal_attention_grad_k",
    "causal_attention_grad_v",
    "grad_accumulate",
    "zero",
    "grad_norm",
    "clip_coef",
    "adamw_moments",
    "adamw_param",
];

/// What a launch binds, resolved to device addresses by the executor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arg {
    /// A tensor's buffer (input or output; views resolve to their root).
    Tensor(TensorId),
    /// The run's symbol values (`u32` each).
    Syms,
    /// Per-node scratch slot `s` (sized by the largest request).
    Scratch(u8, u64),
}

#[derive(Clone, Debug)]
pub struct Launch {
    pub kernel: Kernel,
    pub params: [u32; MAX_PARAMS],
    pub args: Vec<Arg>,
    pub grid: [u32; 3],
}

/// The capabilities CUDA kernels are planned for.
pub fn caps() -> GpuCaps {
    GpuCaps {
        // Warps play subgroups (mul_mat_vec: one row per warp, 2 per block of 64).
        subgroups: true,
        subgroup_size: 32,
        cpu: false,
        shader_f16: true,
        // gridDim.y's limit; x folds into y above it (ops::grid).
        max_workgroups_per_dim: 65535,
        // No storage-binding limit: weights are never split.
        max_binding_bytes: u64::MAX,
        // Static shared memory per block; threads per block.
        max_workgroup_storage: 48 * 1024,
        max_invocations: 1024,
        // One row per warp: with XREG's 4 the twin measured 665 vs 715 tok/s
        // (1B shape) and 159 vs 148 (8B) on an H100; KILN_GEMV_XREG=1 opts in.
        gemv_xreg: kiln::ops::env_switch("KILN_GEMV_XREG").unwrap_or(false),
        gemm_big: false,
        q8_activations: GpuCaps::q8_activations_from_env(kiln::ops::matmul_q8::MIN_WEIGHTS),
        // Off by default here: with graph replay the quantize launch is
        // cheap and the 256-thread GEMV measured slower (H100, 2026-12-06:
        // 1B decode 1080.7 → 1034.0 tok/s; wgpu 791.9 → 825.1 with it).
        q8_local: kiln::ops::env_switch("KILN_Q8_LOCAL").unwrap_or(false),
        // attention.cu's `_kv` entries (the WGSL NEW_KV twin): off, measured
        // slower here (H100, 2026-12-07: 1B decode 1038 → 962 tok/s,
        // SmolLM2 1107 → 987; with graphs and PDL the two cache-write
        // launches cost little and attention grows by the new key's RoPE;
        // docs/bench/2026-12-07-h100-newkv). KILN_NEW_KV=1 opts in.
        kv_in_attention: kiln::ops::env_switch("KILN_NEW_KV").unwrap_or(false),
        // attn_gqa is a WGSL kernel (the CUDA family keeps attn_tile).
        attn_gqa: None,
        // The prefill GEMM on wgpu's cooperative matrices has no twin here
        // (the 8-bit GEMM stays); tensor cores for CUDA are issue 14's.
        coop_f16: false,
        // The prefill GEMM's `mma.sync` variant (exec.rs picks it from
        // compute capability 8.0; H100, 2026-12-07: SmolLM2-shape prefill
        // 25.2k → 47.5k tok/s with every matrix at 8 bits;
        // docs/bench/2026-12-07-h100-tensor-cores). `KILN_CUDA_MMA=0`
        // keeps the __dp4a kernel and the minimum.
        q8_prefill_mma: std::env::var("KILN_CUDA_MMA").as_deref() != Ok("0"),
    }
}

fn unsupported(op: &str, reason: String) -> BackendError {
    BackendError::Unsupported {
        op: op.into(),
        backend: "cuda".into(),
        reason,
    }
}

/// The launches for one node (none for views such as `reshape`).
pub fn plan(node: &Node, graph: &Graph) -> Result<Vec<Launch>, BackendError> {
    plan_with(node, graph, &caps())
}

/// [`plan`] under the given capabilities (tests plan both kernel sets).
pub fn plan_with(node: &Node, graph: &Graph, caps: &GpuCaps) -> Result<Vec<Launch>, BackendError> {
    let op = node.op.name();
    if !OPS.contains(&op) {
        return Err(unsupported(op, "no CUDA kernel for this op".into()));
    }
    let inputs = node
        .inputs
        .iter()
        .map(|t| graph.info(*t))
        .collect::<Result<Vec<_>, _>>()?;
    let output = graph.info(node.output)?;
    if node.op.alias_input().is_some() {
        return Ok(Vec::new());
    }
    let ctx = PlanCtx {
        chunks: inputs
            .iter()
            .map(|t| {
                vec![Chunk {
                    row0: 0,
                    rows: t.shape[0],
                }]
            })
            .collect(),
        inputs,
        output,
        caps,
    };
    let bad = |detail: String| BackendError::Validation(format!("{op}: {detail}"));
    node.op
        .wgsl(&ctx)?
        .into_iter()
        .map(|d| {
            let kernel = kernels::kernel_for(op, &d)?;
            if d.params.len() > MAX_PARAMS {
                return Err(bad(format!(
                    "{} has {} params (CUDA kernels take {MAX_PARAMS})",
                    d.shader,
                    d.params.len()
                )));
            }
            if d.bindings.len() > MAX_BINDINGS {
                return Err(bad(format!(
                    "{} binds {} buffers",
                    d.shader,
                    d.bindings.len()
                )));
            }
            let mut params = [0u32; MAX_PARAMS];
            params[..d.params.len()].copy_from_slice(&d.params);
            let args = d
                .bindings
                .iter()
                .map(|b| match *b {
                    Bind::Input(k, c) | Bind::InputWrite(k, c) => match node.inputs.get(k) {
                        Some(t) if c == 0 => Ok(Arg::Tensor(*t)),
                        Some(_) => Err(bad(format!("binds chunk {c} of input {k} (never split)"))),
                        None => Err(bad(format!("binds missing input {k}"))),
                    },
                    Bind::Output => Ok(Arg::Tensor(node.output)),
                    Bind::Syms => Ok(Arg::Syms),
                    Bind::Scratch(s, bytes) => Ok(Arg::Scratch(s, bytes)),
                    // Sized by the dispatch that writes it.
                    Bind::ScratchRead(s) => Ok(Arg::Scratch(s, 0)),
                })
                .collect::<Result<Vec<_>, _>>()?;
            if d.groups.contains(&0) {
                return Err(bad(format!(
                    "{} has an empty grid {:?}",
                    d.shader, d.groups
                )));
            }
            Ok(Launch {
                kernel,
                params,
                args,
                grid: d.groups,
            })
        })
        .collect()
}

/// Plans every node of `graph`: launches per program.
pub fn plan_graph(graph: &Graph) -> Result<Vec<Vec<Launch>>, BackendError> {
    plan_graph_with(graph, &caps())
}

/// [`plan_graph`] under the given capabilities.
pub fn plan_graph_with(graph: &Graph, caps: &GpuCaps) -> Result<Vec<Vec<Launch>>, BackendError> {
    (0..graph.program_count())
        .map(|p| {
            let mut out = Vec::new();
            for node in &graph.nodes[graph.program(p)?] {
                out.extend(plan_with(node, graph, caps)?);
            }
            Ok(out)
        })
        .collect()
}
