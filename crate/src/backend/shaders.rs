//! The WGSL sources (every file of `shaders/`, embedded) and Kiln's tiny
//! preprocessor.
//!
//! Directives, each on its own line (leading spaces allowed):
//! * `#include "path.wgsl"` — pastes another file of `shaders/` (once per
//!   output: a second include of the same file is skipped);
//! * `#if NAME`, `#elif NAME`, `#else`, `#endif` — keeps a block when NAME is
//!   among the defines (nesting allowed). `!NAME` negates;
//! * `#define NAME` — adds NAME to the defines from here on (a kernel uses it
//!   to tell included files what it provides).
//!
//! Nothing else is rewritten: numbers and types stay in the WGSL text.

use std::collections::BTreeSet;

use super::BackendError;

macro_rules! shader_files {
    ($($name:literal),* $(,)?) => {
        /// (path relative to `shaders/`, source)
        pub const SHADERS: &[(&str, &str)] = &[
            $(($name, include_str!(concat!("../../../shaders/", $name)))),*
        ];
    };
}

shader_files!(
    "attention.wgsl",
    "attention_coop.wgsl",
    "binary.wgsl",
    "causal_attention.wgsl",
    "causal_attention_tiled.wgsl",
    "conv2d.wgsl",
    "copy.wgsl",
    "cross_entropy.wgsl",
    "dropout.wgsl",
    "get_rows.wgsl",
    "glu_back.wgsl",
    "group_norm.wgsl",
    "mul_mat.wgsl",
    "mul_mat_back.wgsl",
    "mul_mat_fused.wgsl",
    "mul_mat_q8.wgsl",
    "mul_mat_coop.wgsl",
    "mul_mat_coop_half.wgsl",
    "mul_mat_vec.wgsl",
    "norm.wgsl",
    "norm_back.wgsl",
    "optim.wgsl",
    "reduce.wgsl",
    "resample.wgsl",
    "rope.wgsl",
    "spatial_attention.wgsl",
    "spatial_attention_flash.wgsl",
    "spatial_attention_lanes.wgsl",
    "timestep_embed.wgsl",
    "unary.wgsl",
    "common/gemm_big.wgsl",
    "common/conv2d_gather.wgsl",
    "common/gemv_rows.wgsl",
    "common/conv2d_lanes.wgsl",
    "common/broadcast.wgsl",
    "common/erf.wgsl",
    "common/gemm64.wgsl",
    "common/matmul_io.wgsl",
    "common/reduce.wgsl",
    "common/tile32.wgsl",
    "common/tile64.wgsl",
    "common/trig.wgsl",
    "common/rope.wgsl",
    "common/attention_io.wgsl",
    "common/coop_out.wgsl",
    "common/weights.wgsl",
    "quant/bytes.wgsl",
    "quant/dot32.wgsl",
    "quant/plain.wgsl",
    "quant/f32.wgsl",
    "quant/f16.wgsl",
    "quant/bf16.wgsl",
    "quant/q8_0.wgsl",
    "quant/q4_0.wgsl",
    "quant/q4_1.wgsl",
    "quant/q5_0.wgsl",
    "quant/q5_1.wgsl",
    "quant/q2_k.wgsl",
    "quant/q3_k.wgsl",
    "quant/q4_k.wgsl",
    "quant/kscale.wgsl",
    "quant/q5_k.wgsl",
    "quant/q6_k.wgsl",
    "quant/kvalues.wgsl",
    "quant/iq4_nl.wgsl",
    "quant/iq4_xs.wgsl",
);

pub fn source(name: &str) -> Result<&'static str, BackendError> {
    SHADERS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, s)| *s)
        .ok_or_else(|| BackendError::ShaderCompile {
            shader: name.into(),
            message: "no such file in shaders/".into(),
        })
}

/// Expands includes and conditionals of `name` for the given defines.
pub fn preprocess(name: &str, defines: &[&str]) -> Result<String, BackendError> {
    let mut defs: BTreeSet<String> = defines.iter().map(|d| d.to_string()).collect();
    let mut out = String::new();
    let mut seen = BTreeSet::new();
    expand(name, &mut defs, &mut out, &mut seen, 0)?;
    Ok(out)
}

struct Frame {
    /// The enclosing block is active.
    parent: bool,
    /// Some branch of this #if chain has been taken.
    taken: bool,
    /// The current branch is active.
    active: bool,
}

fn expand(
    name: &str,
    defs: &mut BTreeSet<String>,
    out: &mut String,
    seen: &mut BTreeSet<String>,
    depth: usize,
) -> Result<(), BackendError> {
    let err = |line: usize, m: &str| BackendError::ShaderCompile {
        shader: name.into(),
        message: format!("line {}: {m}", line + 1),
    };
    if depth > 8 {
        return Err(err(0, "includes nest too deep"));
    }
    if !seen.insert(name.to_string()) {
        return Ok(());
    }
    let test = |defs: &BTreeSet<String>, arg: &str| match arg.strip_prefix('!') {
        Some(n) => !defs.contains(n.trim()),
        None => defs.contains(arg.trim()),
    };
    let mut stack: Vec<Frame> = Vec::new();
    for (i, line) in source(name)?.lines().enumerate() {
        let t = line.trim_start();
        let active = stack.last().is_none_or(|f| f.active);
        if let Some(arg) = t.strip_prefix("#if ") {
            let c = active && test(defs, arg);
            stack.push(Frame {
                parent: active,
                taken: c,
                active: c,
            });
        } else if let Some(arg) = t.strip_prefix("#elif ") {
            let f = stack
                .last_mut()
                .ok_or_else(|| err(i, "#elif without #if"))?;
            let c = f.parent && !f.taken && test(defs, arg);
            f.taken |= c;
            f.active = c;
        } else if t.starts_with("#else") {
            let f = stack
                .last_mut()
                .ok_or_else(|| err(i, "#else without #if"))?;
            f.active = f.parent && !f.taken;
            f.taken = true;
        } else if t.starts_with("#endif") {
            stack.pop().ok_or_else(|| err(i, "#endif without #if"))?;
        } else if let Some(arg) = t.strip_prefix("#define ") {
            if active {
                defs.insert(arg.trim().to_string());
            }
        } else if let Some(arg) = t.strip_prefix("#include ") {
            if active {
                let inc = arg.trim().trim_matches('"');
                expand(inc, defs, out, seen, depth + 1)?;
            }
        } else if t.starts_with('#') {
            return Err(err(i, &format!("unknown directive '{t}'")));
        } else if active {
            out.push_str(line);
            out.push('\n');
        }
    }
    if !stack.is_empty() {
        return Err(err(0, "unterminated #if"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditionals_and_includes() {
        let s = preprocess("quant/q4_0.wgsl", &[]).unwrap();
        assert!(s.contains("fn w4"));
        let w = preprocess("common/weights.wgsl", &["W_Q4_K"]).unwrap();
        assert!(w.contains("kq_scale_min") && !w.contains("i8x4(b32(off + 2u"));
        let w = preprocess("common/weights.wgsl", &["W_F32"]).unwrap();
        assert!(w.contains("fn w1") && !w.contains("kq_scale_min"));
        let r = preprocess("reduce.wgsl", &["ARGMAX"]).unwrap();
        assert!(r.contains("fn argmax") && !r.contains("fn softmax"));
        assert!(source("nope.wgsl").is_err());
    }
    /// The cooperative-matrix GEMMs (every variant `ops::matmul_q8` can
    /// pick) and the f16 conversion pass parse, validate and compile to
    /// SPIR-V with the capabilities an adapter offering them has: no local
    /// adapter runs them, so this is what catches a broken variant before a
    /// GPU machine does.
    #[cfg(not(target_arch = "wasm32"))]
    #[test]
    fn coop_kernels_compile_to_spirv() {
        use naga::valid::{Capabilities, ValidationFlags, Validator};
        let mut variants: Vec<(&str, Vec<&str>)> = vec![
            ("attention_coop.wgsl", vec!["KV_VEC4"]),
            ("attention_coop.wgsl", vec!["KV_F16", "ROPE_Q"]),
            ("attention_coop.wgsl", vec![]),
            ("mul_mat_coop.wgsl", vec!["W_Q4_0"]),
            ("mul_mat_coop.wgsl", vec!["W_Q8_0", "WIDE"]),
        ];
        for w in ["W_Q4_0", "W_Q4_1", "W_Q8_0", "W_F32"] {
            variants.push(("mul_mat_coop_half.wgsl", vec!["HALF", w]));
        }
        variants.push(("mul_mat_coop_half.wgsl", vec!["SUM"]));
        variants.push(("mul_mat_coop_half.wgsl", vec!["SUM", "SUM4"]));
        variants.push(("mul_mat_coop_half.wgsl", vec!["NORM"]));
        variants.push(("mul_mat_coop_half.wgsl", vec!["NORM", "SUBGROUPS"]));
        for (_, t) in crate::ops::matmul_q8::HALF_TILES {
            for n2 in t.n2_choices() {
                assert!(t.wg_bytes(n2) <= 49152, "{t:?}");
                // One weight block per invocation when decoding while staging.
                assert!(t.sw * t.bk <= 2048, "{t:?}");
                variants.push(("mul_mat_coop_half.wgsl", t.defines(n2)));
                for w in ["W_Q4_0", "W_Q4_1", "W_Q8_0"] {
                    let mut d = t.defines(n2);
                    d.extend(["WQ", w]);
                    variants.push(("mul_mat_coop_half.wgsl", d.clone()));
                    // The SwiGLU epilogue (32 weight rows per subgroup).
                    if t.sw == 32 {
                        d.push("GLU");
                        variants.push(("mul_mat_coop_half.wgsl", d));
                    }
                }
                if t.sw == 32 {
                    let mut d = t.defines(n2);
                    d.push("GLU");
                    variants.push(("mul_mat_coop_half.wgsl", d));
                }
                let mut d = t.defines(n2);
                d.extend(["WQ", "W_Q4_0", "XF32"]);
                variants.push(("mul_mat_coop_half.wgsl", d));
            }
        }
        // wgpu's mapping of SHADER_F16, SUBGROUP and
        // EXPERIMENTAL_COOPERATIVE_MATRIX (and a Vulkan adapter's
        // SHADER_F16_IN_F32) to naga's capabilities.
        let caps = Capabilities::COOPERATIVE_MATRIX
            | Capabilities::SHADER_FLOAT16
            | Capabilities::SHADER_FLOAT16_IN_FLOAT32
            | Capabilities::SUBGROUP;
        for (file, defines) in variants {
            let src = preprocess(file, &defines).unwrap();
            let module = naga::front::wgsl::parse_str(&src)
                .unwrap_or_else(|e| panic!("{file} {defines:?}: {}", e.emit_to_string(&src)));
            let info = Validator::new(ValidationFlags::all(), caps)
                .validate(&module)
                .unwrap_or_else(|e| panic!("{file} {defines:?}: {e:?}"));
            let opts = naga::back::spv::Options {
                lang_version: (1, 4),
                ..Default::default()
            };
            let words = naga::back::spv::write_vec(&module, &info, &opts, None)
                .unwrap_or_else(|e| panic!("{file} {defines:?}: {e:?}"));
            // KILN_DUMP_SPV=DIR: the SPIR-V of each variant (for spirv-dis).
            if let Some(dir) = std::env::var_os("KILN_DUMP_SPV").filter(|d| !d.is_empty()) {
                let dir = dir.to_string_lossy();
                let name = format!("{dir}/{file}-{}.spv", defines.join("_"));
                let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
                std::fs::write(name, bytes).unwrap();
            }
        }
    }
}
