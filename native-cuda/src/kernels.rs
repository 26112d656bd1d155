//! The kernel registry: CUDA C sources (`native-cuda/kernels/*.cu`, one per
//! WGSL file family), embedded with `include_str!`, and the mapping from a
//! WGSL [`Dispatch`] (shader, entry, defines) to the CUDA function that is its
//! twin, with that function's block size.
//!
//! Every CUDA kernel takes `(Params p, Ptrs b)`: the dispatch's uniform words
//! unchanged and the device addresses of its bindings in order (see
//! `kernels/common.cuh`), so a launch is fully described by the op's own
//! dispatch plan and nothing about an op's parameters is duplicated here.

use kiln::backend::BackendError;
use kiln::ops::Dispatch;

/// Shared headers, inlined where a source `#include`s them (NVRTC gets one
/// self-contained translation unit per family).
pub const HEADERS: [(&str, &str); 6] = [
    ("common.cuh", include_str!("../kernels/common.cuh")),
    ("quant.cuh", include_str!("../kernels/quant.cuh")),
    ("gemv1.cuh", include_str!("../kernels/gemv1.cuh")),
    ("tile32.cuh", include_str!("../kernels/tile32.cuh")),
    ("tile64.cuh", include_str!("../kernels/tile64.cuh")),
    ("rope.cuh", include_str!("../kernels/rope.cuh")),
];

/// One source per op family, named like its WGSL twin(s).
pub const FAMILIES: [(&str, &str); 22] = [
    ("unary", include_str!("../kernels/unary.cu")),
    ("binary", include_str!("../kernels/binary.cu")),
    ("norm", include_str!("../kernels/norm.cu")),
    ("reduce", include_str!("../kernels/reduce.cu")),
    ("mul_mat", include_str!("../kernels/mul_mat.cu")),
    ("mul_mat_q8", include_str!("../kernels/mul_mat_q8.cu")),
    ("get_rows", include_str!("../kernels/get_rows.cu")),
    ("rope", include_str!("../kernels/rope.cu")),
    ("attention", include_str!("../kernels/attention.cu")),
    ("copy", include_str!("../kernels/copy.cu")),
    ("conv2d", include_str!("../kernels/conv2d.cu")),
    ("group_norm", include_str!("../kernels/group_norm.cu")),
    ("resample", include_str!("../kernels/resample.cu")),
    (
        "spatial_attention",
        include_str!("../kernels/spatial_attention.cu"),
    ),
    (
        "timestep_embed",
        include_str!("../kernels/timestep_embed.cu"),
    ),
    ("mul_mat_back", include_str!("../kernels/mul_mat_back.cu")),
    ("norm_back", include_str!("../kernels/norm_back.cu")),
    ("glu_back", include_str!("../kernels/glu_back.cu")),
    ("cross_entropy", include_str!("../kernels/cross_entropy.cu")),
    (
        "causal_attention",
        include_str!("../kernels/causal_attention.cu"),
    ),
    ("optim", include_str!("../kernels/optim.cu")),
    ("dropout", include_str!("../kernels/dropout.cu")),
];

/// The WGSL file each family mirrors.
pub const WGSL_TWINS: [(&str, &[&str]); 22] = [
    ("unary", &["unary.wgsl"]),
    ("binary", &["binary.wgsl"]),
    ("norm", &["norm.wgsl"]),
    ("reduce", &["reduce.wgsl"]),
    (
        "mul_mat",
        &["mul_mat_vec.wgsl", "mul_mat.wgsl", "mul_mat_fused.wgsl"],
    ),
    // The mul_mat_coop kernels (wgpu's f16 tensor-core prefill GEMMs of the
    // 8-bit mode) have their CUDA counterpart here: the integer tensor-core
    // `_tc` GEMM of the same mode.
    (
        "mul_mat_q8",
        &[
            "mul_mat_q8.wgsl",
            "mul_mat_coop.wgsl",
            "mul_mat_coop_half.wgsl",
        ],
    ),
    ("get_rows", &["get_rows.wgsl"]),
    ("rope", &["rope.wgsl"]),
    // attention_coop.wgsl (wgpu's tensor-core prefill attention, an
    // experiment) is attn_tile's variant; the CUDA family has attn_tile.
    ("attention", &["attention.wgsl", "attention_coop.wgsl"]),
    ("copy", &["copy.wgsl"]),
    ("conv2d", &["conv2d.wgsl"]),
    ("group_norm", &["group_norm.wgsl"]),
    ("resample", &["resample.wgsl"]),
    (
        "spatial_attention",
        &[
            "spatial_attention.wgsl",
            "spatial_attention_flash.wgsl",
            // CPU adapters only (never planned for a GPU): the same op's
            // math, twinned by this family's kernels.
            "spatial_attention_lanes.wgsl",
        ],
    ),
    ("timestep_embed", &["timestep_embed.wgsl"]),
    ("mul_mat_back", &["mul_mat_back.wgsl"]),
    ("norm_back", &["norm_back.wgsl"]),
    ("glu_back", &["glu_back.wgsl"]),
    ("cross_entropy", &["cross_entropy.wgsl"]),
    (
        "causal_attention",
        &["causal_attention.wgsl", "causal_attention_tiled.wgsl"],
    ),
    ("optim", &["optim.wgsl"]),
    ("dropout", &["dropout.wgsl"]),
];

/// The most uniform words a kernel's `Params` holds.
pub const MAX_PARAMS: usize = 32;
/// The most bindings a kernel's `Ptrs` holds.
pub const MAX_BINDINGS: usize = 8;

/// A CUDA function: its family (module), name and block shape.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Kernel {
    pub family: &'static str,
    pub name: String,
    pub block: [u32; 3],
}

/// Every entry's signature (`kernels/common.cuh`).
const ENTRY: &str = "(Params p, Ptrs b) {";

/// Entries that call `kiln_entry()` themselves, after work that does not
/// depend on the grid before them: the decode GEMVs ask L2 for their weight
/// rows first (`prefetch_rows` in quant.cuh). (family, name prefix): a
/// prefix alone also matched `mul_mat_q8_0`, the f32 GEMM over Q8_0 weights
/// in `mul_mat`, which then had no handshake at all and, launched with the
/// attribute, could read x before the kernel writing it finished (a fused
/// norm's scratch on an H100, 2026-12-07).
pub const SELF_WAITING: [(&str, &str); 5] = [
    ("mul_mat_q8", "mul_mat_q8_"),
    ("mul_mat", "mul_mat_vec_"),
    ("mul_mat", "mul_mat_fused_"),
    ("mul_mat", "mul_mat_vec4_"),
    ("mul_mat", "mul_mat_fused4_"),
];

/// The entry name of an `extern "C" __global__` line's rest (after
/// `void `, past a `__launch_bounds__(…)`).
pub fn entry_name(rest: &str) -> &str {
    let rest = match rest.strip_prefix("__launch_bounds__(") {
        Some(r) => r.split_once(") ").map_or(r, |(_, n)| n),
        None => rest,
    };
    rest.split('(').next().unwrap_or(rest)
}

/// Whether `name` of `family` calls `kiln_entry()` itself.
pub fn waits_itself(family: &str, name: &str) -> bool {
    SELF_WAITING
        .iter()
        .any(|(f, w)| *f == family && name.starts_with(w))
}

/// The full source of `family` with its headers inlined, and every entry
/// (an `extern "C" __global__` line) starting with `kiln_entry();`, the
/// programmatic-dependent-launch handshake (`common.cuh`), so no kernel can
/// forget it: the executor may launch any of them with the attribute
/// ([`SELF_WAITING`] entries call it themselves).
pub fn source(family: &str) -> Option<String> {
    let (_, src) = FAMILIES.iter().find(|(f, _)| *f == family)?;
    let mut out = String::new();
    for line in src.lines() {
        let entry = line.strip_prefix("extern \"C\" __global__ void ");
        let waits_itself = entry.is_some_and(|e| waits_itself(family, entry_name(e)));
        if entry.is_some() && line.contains(ENTRY) && !waits_itself {
            out.push_str(&line.replacen(ENTRY, &format!("{ENTRY} kiln_entry();"), 1));
            out.push('\n');
            continue;
        }
        let inc = line
            .trim()
            .strip_prefix("#include \"")
            .and_then(|r| r.strip_suffix('"'));
        match inc.and_then(|name| HEADERS.iter().find(|(h, _)| *h == name)) {
            Some((name, text)) => {
                out.push_str(&format!("// ---- {name}\n{text}\n// ---- end {name}\n"));
            }
            None => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    Some(out)
}

/// The dtype suffix for a weight-decoder define (`W_Q4_K` → `q4_k`).
fn weight_suffix(defines: &[&str]) -> Option<String> {
    defines
        .iter()
        .find_map(|d| d.strip_prefix("W_"))
        .map(str::to_lowercase)
}

/// The CUDA twin of a WGSL dispatch, or `Unsupported` naming it.
pub fn kernel_for(op: &str, d: &Dispatch) -> Result<Kernel, BackendError> {
    let has = |s: &str| d.defines.contains(&s);
    let unsupported = || BackendError::Unsupported {
        op: op.into(),
        backend: "cuda".into(),
        reason: format!(
            "no CUDA kernel for {}:{} with defines {:?}",
            d.shader, d.entry, d.defines
        ),
    };
    let k = |family: &'static str, name: String, block: [u32; 3]| {
        Ok(Kernel {
            family,
            name,
            block,
        })
    };
    let half = if has("KV_F16") { "f16" } else { "f32" };
    let rope = match (has("ROPE_Q"), has("NEW_KV")) {
        (true, true) => "_rope_kv",
        (true, false) => "_rope",
        _ => "",
    };
    match (d.shader, d.entry) {
        ("unary.wgsl", "main") => k("unary", "unary".into(), [256, 1, 1]),
        ("binary.wgsl", "main") => k("binary", "binary".into(), [256, 1, 1]),
        ("norm.wgsl", "main") => k("norm", "norm_rows".into(), [256, 1, 1]),
        ("reduce.wgsl", "softmax") => k("reduce", "softmax".into(), [256, 1, 1]),
        ("reduce.wgsl", "argmax") => k("reduce", "argmax".into(), [256, 1, 1]),
        ("reduce.wgsl", "argmax_part") => k("reduce", "argmax_part".into(), [256, 1, 1]),
        ("reduce.wgsl", "argmax_combine") => k("reduce", "argmax_combine".into(), [256, 1, 1]),
        ("mul_mat_vec.wgsl", "main") if !has("ROW_PER_THREAD") => {
            let w = weight_suffix(&d.defines).ok_or_else(unsupported)?;
            let x4 = if has("XREG") { "4" } else { "" };
            k("mul_mat", format!("mul_mat_vec{x4}_{w}"), [64, 1, 1])
        }
        ("mul_mat_fused.wgsl", "main") if !has("ROW_PER_THREAD") => {
            let w = weight_suffix(&d.defines).ok_or_else(unsupported)?;
            let x4 = if has("XREG") { "4" } else { "" };
            k("mul_mat", format!("mul_mat_fused{x4}_{w}"), [64, 1, 1])
        }
        ("mul_mat_q8.wgsl", "quantize") => k("mul_mat_q8", "quantize_q8".into(), [64, 1, 1]),
        ("mul_mat_q8.wgsl", "gemv") if has("XQ_LOCAL") => {
            let w = weight_suffix(&d.defines).ok_or_else(unsupported)?;
            let wb = if has("WBLOCK") { "wb_" } else { "" };
            k(
                "mul_mat_q8",
                format!("mul_mat_q8_local_{wb}{w}"),
                [256, 1, 1],
            )
        }
        ("mul_mat_q8.wgsl", "gemv") => {
            let w = weight_suffix(&d.defines).ok_or_else(unsupported)?;
            let wb = if has("WBLOCK") { "wb_" } else { "" };
            k("mul_mat_q8", format!("mul_mat_q8_{wb}{w}"), [64, 1, 1])
        }
        ("mul_mat_q8.wgsl", "gemm") => {
            let w = weight_suffix(&d.defines).ok_or_else(unsupported)?;
            k("mul_mat_q8", format!("mul_mat_q8_gemm_{w}"), [256, 1, 1])
        }
        ("mul_mat.wgsl", "main") if has("TILE64") => {
            let w = weight_suffix(&d.defines).ok_or_else(unsupported)?;
            k("mul_mat", format!("mul_mat64_{w}"), [16, 16, 1])
        }
        ("mul_mat.wgsl", "main") => {
            let w = weight_suffix(&d.defines).ok_or_else(unsupported)?;
            k("mul_mat", format!("mul_mat_{w}"), [16, 16, 1])
        }
        ("get_rows.wgsl", "main") => {
            let w = weight_suffix(&d.defines).ok_or_else(unsupported)?;
            k("get_rows", format!("get_rows_{w}"), [256, 1, 1])
        }
        ("rope.wgsl", "main") => k("rope", "rope".into(), [256, 1, 1]),
        ("rope.wgsl", "rope_cache") => {
            let to = if has("DST_F16") { "f16" } else { "f32" };
            k("rope", format!("rope_cache_{to}"), [256, 1, 1])
        }
        ("attention.wgsl", "attn_rows") => {
            k("attention", format!("attn_rows_{half}{rope}"), [64, 1, 1])
        }
        ("attention.wgsl", "attn_tile") => {
            k("attention", format!("attn_tile_{half}{rope}"), [256, 1, 1])
        }
        ("attention.wgsl", "attn_one") => {
            k("attention", format!("attn_one_{half}{rope}"), [256, 1, 1])
        }
        ("attention.wgsl", "attn_split") => {
            k("attention", format!("attn_split_{half}{rope}"), [64, 1, 1])
        }
        ("attention.wgsl", "attn_combine") => k("attention", "attn_combine".into(), [64, 1, 1]),
        ("copy.wgsl", "strided") => {
            let src = if has("SRC_F16") {
                "f16"
            } else if has("SRC_BF16") {
                "bf16"
            } else {
                "f32"
            };
            let per = if has("VEC4") { "4" } else { "" };
            k("copy", format!("strided{per}_{src}"), [256, 1, 1])
        }
        ("copy.wgsl", "to_half") => {
            let to = if has("BF16") { "bf16" } else { "f16" };
            k("copy", format!("to_half_{to}"), [256, 1, 1])
        }
        ("copy.wgsl", "write_cache") => {
            let to = if has("DST_F16") { "f16" } else { "f32" };
            k("copy", format!("write_cache_{to}"), [256, 1, 1])
        }
        ("conv2d.wgsl", "big") => {
            let w = weight_suffix(&d.defines).ok_or_else(unsupported)?;
            let (tile, threads) = if has("BN64") {
                ("big64", 256)
            } else if has("BM128") {
                ("big128", 128)
            } else {
                ("big", 256)
            };
            k("conv2d", format!("conv2d_{tile}_{w}"), [threads, 1, 1])
        }
        ("conv2d.wgsl", "splitk_sum") => k("conv2d", "conv2d_splitk_sum".into(), [256, 1, 1]),
        ("conv2d.wgsl", "main") if has("TILE64") => {
            let w = weight_suffix(&d.defines).ok_or_else(unsupported)?;
            k("conv2d", format!("conv2d64_{w}"), [16, 16, 1])
        }
        ("conv2d.wgsl", "main") => {
            let w = weight_suffix(&d.defines).ok_or_else(unsupported)?;
            k("conv2d", format!("conv2d_{w}"), [16, 16, 1])
        }
        ("group_norm.wgsl", "main") => k("group_norm", "group_norm_main".into(), [256, 1, 1]),
        ("group_norm.wgsl", e @ ("stats" | "finish" | "apply")) => {
            k("group_norm", format!("group_norm_{e}"), [256, 1, 1])
        }
        ("resample.wgsl", "main") => k("resample", "resample".into(), [256, 1, 1]),
        ("spatial_attention_flash.wgsl", "combine") => k(
            "spatial_attention",
            "spatial_attention_flash_combine".into(),
            [256, 1, 1],
        ),
        ("spatial_attention_flash.wgsl", "main") => {
            let dm = if has("D64") { 64 } else { 32 };
            k(
                "spatial_attention",
                format!("spatial_attention_flash{dm}"),
                [256, 1, 1],
            )
        }
        ("spatial_attention.wgsl", "partial") => k(
            "spatial_attention",
            "spatial_attention_partial".into(),
            [64, 1, 1],
        ),
        ("spatial_attention.wgsl", "combine") => k(
            "spatial_attention",
            "spatial_attention_combine".into(),
            [256, 1, 1],
        ),
        ("timestep_embed.wgsl", "main") => {
            k("timestep_embed", "timestep_embed".into(), [256, 1, 1])
        }
        ("mul_mat_back.wgsl", "main") if has("INPUT_GRAD") && has("TILE64") => {
            let w = weight_suffix(&d.defines).ok_or_else(unsupported)?;
            k(
                "mul_mat_back",
                format!("mul_mat_input_grad64_{w}"),
                [16, 16, 1],
            )
        }
        ("mul_mat_back.wgsl", "main") if has("INPUT_GRAD") && has("TILED") => {
            let w = weight_suffix(&d.defines).ok_or_else(unsupported)?;
            k(
                "mul_mat_back",
                format!("mul_mat_input_grad_tiled_{w}"),
                [16, 16, 1],
            )
        }
        ("mul_mat_back.wgsl", "main") if has("INPUT_GRAD") => {
            let w = weight_suffix(&d.defines).ok_or_else(unsupported)?;
            k(
                "mul_mat_back",
                format!("mul_mat_input_grad_{w}"),
                [64, 1, 1],
            )
        }
        ("mul_mat_back.wgsl", "main") if has("WEIGHT_GRAD") && has("SPLIT_M") => k(
            "mul_mat_back",
            "mul_mat_weight_grad_split".into(),
            [64, 1, 1],
        ),
        ("mul_mat_back.wgsl", "main") if has("WEIGHT_GRAD") => {
            k("mul_mat_back", "mul_mat_weight_grad".into(), [64, 1, 1])
        }
        ("norm_back.wgsl", "main") => k("norm_back", "norm_back".into(), [256, 1, 1]),
        ("glu_back.wgsl", "main") => k("glu_back", "glu_back".into(), [256, 1, 1]),
        ("dropout.wgsl", "main") => k("dropout", "dropout".into(), [256, 1, 1]),
        ("cross_entropy.wgsl", "main") => {
            let what = if has("LOSS") { "loss" } else { "grad" };
            k(
                "cross_entropy",
                format!("cross_entropy_{what}"),
                [256, 1, 1],
            )
        }
        ("causal_attention.wgsl" | "causal_attention_tiled.wgsl", "main") => {
            let tiled = if d.shader == "causal_attention.wgsl" {
                ""
            } else {
                "tiled_"
            };
            let entry = match (has("FWD"), has("STATS"), has("DQ"), has("KEYS")) {
                (true, false, false, false) => "fwd",
                (false, true, false, false) => "stats",
                (false, false, true, false) => "dq",
                (false, false, false, true) if has("DK") => "dk",
                (false, false, false, true) if has("DV") => "dv",
                _ => return Err(unsupported()),
            };
            k(
                "causal_attention",
                format!("causal_attn_{tiled}{entry}"),
                [64, 1, 1],
            )
        }
        ("optim.wgsl", "main") => {
            let entry = [
                ("ACCUMULATE", "accumulate"),
                ("ZERO", "zero"),
                ("SQ_NORM", "sq_norm"),
                ("CLIP", "clip"),
                ("MOMENTS", "moments"),
                ("PARAM", "param"),
            ]
            .iter()
            .find(|(def, _)| has(def))
            .map(|(_, e)| *e)
            .ok_or_else(unsupported)?;
            k("optim", format!("optim_{entry}"), [256, 1, 1])
        }
        _ => Err(unsupported()),
    }
}

/// Whether `family`'s source defines `extern "C" __global__ void
/// [__launch_bounds__(n)] name(`.
pub fn defines_kernel(family: &str, name: &str) -> bool {
    FAMILIES
        .iter()
        .find(|(f, _)| *f == family)
        .is_some_and(|(_, src)| {
            let decl = format!(" {name}(");
            src.lines()
                .any(|l| l.starts_with("extern \"C\" __global__") && l.contains(&decl))
        })
}
