//! CPU-side checks (no GPU needed) and, where a CUDA device exists, the op
//! parity suite on it.

use super::*;
use crate::kernels::{
    FAMILIES, HEADERS, WGSL_TWINS, defines_kernel, entry_name, kernel_for, source, waits_itself,
};
use crate::plan::{Arg, OPS, plan, plan_graph};
use kiln::DType;
use kiln::graph::TensorInfo;
use kiln::host::HostTensor;
use kiln::ops::{Bind, Dispatch, Op, PlanCtx};

#[test]
fn every_family_has_a_source_and_a_wgsl_twin() {
    let shaders = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shaders");
    for (family, twins) in WGSL_TWINS {
        let src = source(family).unwrap_or_else(|| panic!("no source for {family}"));
        assert!(src.contains("extern \"C\" __global__ void"), "{family}");
        assert!(!src.contains("#include"), "{family}: unresolved include");
        for twin in twins {
            assert!(shaders.join(twin).exists(), "{family}: no shaders/{twin}");
        }
    }
    assert_eq!(FAMILIES.len(), WGSL_TWINS.len());
    // Every WGSL op file has a CUDA family.
    for entry in std::fs::read_dir(&shaders).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        if name.ends_with(".wgsl") {
            assert!(
                WGSL_TWINS.iter().any(|(_, t)| t.contains(&name.as_str())),
                "shaders/{name} has no CUDA twin"
            );
        }
    }
    for (h, text) in HEADERS {
        assert!(!text.is_empty(), "{h}");
    }
    // The decoders cover every weight dtype.
    let quant = HEADERS[1].1;
    for d in [
        "DF32", "DF16", "DBF16", "DQ8_0", "DQ4_0", "DQ4_1", "DQ5_0", "DQ5_1", "DQ2_K", "DQ3_K",
        "DQ4_K", "DQ5_K", "DQ6_K", "DIQ4_NL", "DIQ4_XS",
    ] {
        assert!(quant.contains(&format!("struct {d} {{")), "{d}");
    }
}

/// An entry's signature, up to its body.
const ENTRY_OPEN: &str = "(Params p, Ptrs b) {";

/// Programmatic dependent launch is safe only if every kernel the executor
/// may launch with the attribute waits for the grid before it first.
#[test]
fn every_entry_starts_with_the_launch_handshake() {
    for (family, _) in FAMILIES {
        let src = source(family).unwrap();
        let mut entries = 0;
        for line in src
            .lines()
            .filter(|l| l.starts_with("extern \"C\" __global__"))
        {
            if line.contains("kiln_hold(") {
                continue; // profiling only, launched without the attribute
            }
            let name = entry_name(line.trim_start_matches("extern \"C\" __global__ void "));
            if waits_itself(family, name) {
                // The function its body calls must call the handshake.
                let body = line.split_once(ENTRY_OPEN).map_or("", |(_, b)| b.trim());
                let callee = body.split(['<', '(']).next().unwrap_or("");
                let def = src
                    .find(&format!("void {callee}("))
                    .map(|i| &src[i..])
                    .unwrap_or_else(|| panic!("{family}: {name} calls {callee}, not found"));
                let def = &def[..def.find("\n}\n").unwrap_or(def.len())];
                assert_eq!(
                    def.matches("kiln_entry();").count(),
                    1,
                    "{family}: {name} is self-waiting but {callee} does not call kiln_entry() once"
                );
                entries += 1;
                continue;
            }
            assert!(
                line.contains("(Params p, Ptrs b) { kiln_entry();"),
                "{family}: entry without the handshake: {line}"
            );
            entries += 1;
        }
        assert!(entries > 0, "{family}");
    }
    // The f32 GEMM over Q8_0 weights is not one of mul_mat_q8's entries.
    assert!(!waits_itself("mul_mat", "mul_mat_q8_0"));
    assert!(
        source("mul_mat")
            .unwrap()
            .contains("mul_mat_q8_0(Params p, Ptrs b) { kiln_entry();")
    );
}

#[test]
fn every_parity_case_plans_onto_existing_kernels() {
    let cases = kiln::parity::cases::all_cases(1, "").unwrap();
    let mut used = std::collections::BTreeSet::new();
    let mut ops = std::collections::BTreeSet::new();
    for c in &cases {
        for node in &c.graph.nodes {
            ops.insert(node.op.name());
        }
        // The default kernels, and with 8-bit activations on every size
        // (ops/matmul_q8.rs), the one-token products with and without a
        // quantize dispatch of their own.
        let q8 = kiln::ops::GpuCaps {
            q8_activations: Some(0),
            q8_local: true,
            ..crate::plan::caps()
        };
        let q8_apart = kiln::ops::GpuCaps {
            q8_local: false,
            ..q8.clone()
        };
        let default = kiln::ops::GpuCaps {
            q8_activations: None,
            ..crate::plan::caps()
        };
        // The decode attention writing its cache rows (attention.cu `_kv`).
        let kv = kiln::ops::GpuCaps {
            kv_in_attention: !default.kv_in_attention,
            ..default.clone()
        };
        let launches = [&default, &q8, &q8_apart, &kv]
            .into_iter()
            .flat_map(|caps| crate::plan::plan_graph_with(&c.graph, caps).unwrap());
        for l in launches.flatten() {
            assert!(
                defines_kernel(l.kernel.family, &l.kernel.name),
                "{} {}: {}.cu lacks {}",
                c.op,
                c.shape,
                l.kernel.family,
                l.kernel.name
            );
            assert!(l.args.len() <= kernels::MAX_BINDINGS);
            used.insert(l.kernel.name.clone());
        }
    }
    for op in &ops {
        assert!(OPS.contains(op), "parity op {op} missing from plan::OPS");
    }
    for (family, _) in FAMILIES {
        assert!(
            used.iter().any(|k| kernels::defines_kernel(family, k)),
            "family {family} is never used by a parity case"
        );
    }
    // Weight kernels for every dtype, attention for both KV types.
    for d in DType::WEIGHTS {
        let s = d.name().to_lowercase();
        for k in [
            "mul_mat_vec",
            "mul_mat",
            "mul_mat64",
            "get_rows",
            "mul_mat_input_grad_tiled",
        ] {
            assert!(used.contains(&format!("{k}_{s}")), "{k}_{s} unused");
        }
    }
    // attn_rows is the CPU-adapter prefill kernel: the CUDA planner (a GPU)
    // picks attn_one, so its twin runs only under KILN_ATTN=rows.
    for k in [
        "attn_one_f16",
        "attn_one_f32_rope",
        "attn_split_f16",
        "attn_combine",
        "write_cache_f16",
    ] {
        assert!(used.contains(k), "{k} unused");
    }
    // Every entry of the training kernels.
    for k in [
        "mul_mat_weight_grad_split",
        "cross_entropy_loss",
        "cross_entropy_grad",
        "causal_attn_fwd",
        "causal_attn_stats",
        "causal_attn_dq",
        "causal_attn_dk",
        "causal_attn_dv",
        "causal_attn_tiled_fwd",
        "causal_attn_tiled_stats",
        "causal_attn_tiled_dq",
        "causal_attn_tiled_dk",
        "causal_attn_tiled_dv",
        "mul_mat_input_grad64_f32",
        "mul_mat_input_grad64_q4_1",
        "mul_mat_input_grad64_q4_k",
        "mul_mat_input_grad64_q8_0",
        "group_norm_stats",
        "group_norm_finish",
        "group_norm_apply",
        "group_norm_main",
        "strided_f32",
        "strided4_f32",
        // The 64-tile serves convolutions whose Cin is not a multiple of 4
        // (block weight types always are: the big kernel takes them).
        "conv2d64_f32",
        "conv2d_big_f32",
        "conv2d_big64_f16",
        "conv2d_big64_q8_0",
        "conv2d_big128_f32",
        "conv2d_splitk_sum",
        "spatial_attention_flash32",
        "spatial_attention_flash64",
        "spatial_attention_flash_combine",
        "optim_accumulate",
        "optim_zero",
        "optim_sq_norm",
        "optim_clip",
        "optim_moments",
        "optim_param",
        "dropout",
    ] {
        assert!(used.contains(k), "{k} unused");
    }
}

/// An op that plans bad dispatches (named like a supported op).
#[derive(Debug)]
struct Bad(&'static str, Dispatch);

impl Op for Bad {
    fn name(&self) -> &'static str {
        self.0
    }
    fn infer(&self, inputs: &[&TensorInfo]) -> kiln::error::Result<(Vec<usize>, DType)> {
        Ok((inputs[0].shape.clone(), DType::F32))
    }
    fn cpu(&self, _: &[&HostTensor], _: &mut HostTensor, _: &[u32]) -> kiln::error::Result<()> {
        Ok(())
    }
    fn wgsl(&self, _: &PlanCtx) -> kiln::error::Result<Vec<Dispatch>> {
        Ok(vec![self.1.clone()])
    }
}

fn dispatch(shader: &'static str, params: usize, bindings: Vec<Bind>) -> Dispatch {
    Dispatch {
        shader,
        entry: "main",
        defines: vec![],
        bindings,
        params: vec![0; params],
        groups: [1, 1, 1],
    }
}

fn plan_bad(op: Bad) -> Result<Vec<plan::Launch>, BackendError> {
    let mut g = Graph::new();
    let x = g.input("x", &[4], DType::F32).unwrap();
    g.push(op, &[x]).unwrap();
    plan(&g.nodes[0], &g)
}

#[test]
fn planning_rejects_bad_input_with_typed_errors() {
    let ok = vec![Bind::Input(0, 0), Bind::Output];
    // An op CUDA has no kernel for.
    let e = plan_bad(Bad("conv3d", dispatch("unary.wgsl", 3, ok.clone()))).unwrap_err();
    assert!(
        matches!(&e, BackendError::Unsupported { op, .. } if op == "conv3d"),
        "{e}"
    );
    // A dispatch of an unknown shader / entry.
    let e = plan_bad(Bad("silu", dispatch("conv.wgsl", 3, ok.clone()))).unwrap_err();
    assert!(matches!(&e, BackendError::Unsupported { reason, .. } if reason.contains("conv.wgsl")));
    // A weight kernel without a weight define.
    let e = kernel_for("mul_mat", &dispatch("mul_mat.wgsl", 6, ok.clone())).unwrap_err();
    assert!(matches!(e, BackendError::Unsupported { .. }));
    // Too many params, a missing input, a split chunk.
    let e = plan_bad(Bad("silu", dispatch("unary.wgsl", 40, ok.clone()))).unwrap_err();
    assert!(
        matches!(&e, BackendError::Validation(m) if m.contains("40 params")),
        "{e}"
    );
    let e = plan_bad(Bad(
        "silu",
        dispatch("unary.wgsl", 3, vec![Bind::Input(3, 0)]),
    ))
    .unwrap_err();
    assert!(
        matches!(&e, BackendError::Validation(m) if m.contains("missing input 3")),
        "{e}"
    );
    let e = plan_bad(Bad(
        "silu",
        dispatch("unary.wgsl", 3, vec![Bind::Input(0, 1)]),
    ))
    .unwrap_err();
    assert!(
        matches!(&e, BackendError::Validation(m) if m.contains("chunk 1")),
        "{e}"
    );
    // A good one resolves bindings in order.
    let l = plan_bad(Bad("silu", dispatch("unary.wgsl", 3, ok))).unwrap();
    assert_eq!(l[0].kernel.name, "unary");
    assert!(matches!(l[0].args[..], [Arg::Tensor(_), Arg::Tensor(_)]));
}

#[test]
fn reshape_plans_no_launch() {
    let mut g = Graph::new();
    let x = g.input("x", &[2, 3], DType::F32).unwrap();
    let v = g.reshape(x, &[6]).unwrap();
    g.silu(v).unwrap();
    let p = plan_graph(&g).unwrap();
    assert_eq!(p[0].len(), 1);
}

/// The whole op-parity suite on CUDA device 0 with a fresh seed. Ignored by
/// default, so `cargo test` lists it as a skip where there is no GPU; on the
/// GPU machine run `cargo test -- --include-ignored` (no device: a failure).
#[test]
#[ignore = "needs a CUDA device: run with --include-ignored on the GPU machine"]
fn cuda_op_parity() {
    let backend = CudaBackend::new(0).expect("no CUDA device");
    let seed = kiln::parity::clock_seed();
    eprintln!("cuda_op_parity: seed {seed}");
    let cases = kiln::parity::cases::all_cases(seed, "").unwrap();
    let failures: Vec<String> = cases
        .iter()
        .map(|c| kiln::parity::run_case(c, &backend))
        .filter(|r| !r.pass)
        .map(|r| {
            format!(
                "{} {} {}: {:?} abs {:.2e}",
                r.op, r.dtype, r.shape, r.error, r.max_abs
            )
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The model-level comparison fails on a planted NaN, a short trace and an
/// empty reference (it once folded NaN away with f32::max and zipped
/// vectors of different lengths).
#[test]
fn model_comparison_fails_on_nan_short_and_empty() {
    use crate::model_parity::{Trace, compare};
    let trace = |hidden: Vec<Vec<f32>>, logits: Vec<Vec<f32>>, tokens: Vec<u32>| Trace {
        backend: "t".into(),
        hidden,
        logits,
        tokens,
        prefill_secs: 0.0,
        decode_secs: 0.0,
    };
    let want = trace(
        vec![vec![1.0, 2.0], vec![3.0, 4.0]],
        vec![vec![0.5, -1.0, 2.0], vec![1.0, 1.0, 1.0]],
        vec![7, 8],
    );
    let same = trace(
        want.hidden.clone(),
        want.logits.clone(),
        want.tokens.clone(),
    );
    assert!(compare(&same, &want).pass(2));
    let mut nan_logit = same.logits.clone();
    nan_logit[1][2] = f32::NAN;
    let c = compare(&trace(want.hidden.clone(), nan_logit, vec![7, 8]), &want);
    assert!(!c.pass(2) && c.first_bad_step == Some(1));
    let mut nan_hidden = same.hidden.clone();
    nan_hidden[0][0] = f32::NAN;
    let c = compare(&trace(nan_hidden, want.logits.clone(), vec![7, 8]), &want);
    assert!(!c.pass(2) && c.first_bad_layer == Some(0));
    let short = vec![want.logits[0][..2].to_vec(), want.logits[1].clone()];
    assert!(!compare(&trace(want.hidden.clone(), short, vec![7, 8]), &want).pass(2));
    let fewer = vec![want.logits[0].clone()];
    assert!(!compare(&trace(want.hidden.clone(), fewer, vec![7, 8]), &want).pass(2));
    assert!(
        !compare(
            &trace(want.hidden.clone(), want.logits.clone(), vec![7]),
            &want
        )
        .pass(2)
    );
    let empty = trace(Vec::new(), Vec::new(), Vec::new());
    assert!(!compare(&empty, &empty).pass(0));
}

/// Every family compiles with NVRTC, which needs no GPU: for sm_90 (the PDL
/// handshake's instructions) and sm_75 (the guards that compile them out).
/// CI installs libnvrtc from PyPI (`nvidia-cuda-nvrtc`) and sets
/// `KILN_REQUIRE_NVRTC=1`, so there a missing library fails; on a machine
/// without it the test says so and passes.
#[test]
fn every_family_compiles_with_nvrtc() {
    // SAFETY: only checks whether the NVRTC library can be loaded.
    if !unsafe { cudarc::nvrtc::sys::is_culib_present() } {
        assert!(
            std::env::var("KILN_REQUIRE_NVRTC").as_deref() != Ok("1"),
            "KILN_REQUIRE_NVRTC=1 but libnvrtc is not on the library path"
        );
        eprintln!("libnvrtc not found: CUDA kernels not compiled");
        return;
    }
    // KILN_PTX_DIR=dir keeps the PTX (to assemble it with ptxas, which
    // checks the inline PTX that NVRTC passes through unread).
    let keep = std::env::var_os("KILN_PTX_DIR").map(std::path::PathBuf::from);
    for (major, minor) in [(9, 0), (7, 5)] {
        for (family, _) in FAMILIES {
            match crate::exec::compile(family, major, minor) {
                Ok(ptx) => {
                    if let Some(dir) = &keep {
                        let path = dir.join(format!("{family}.sm_{major}{minor}.ptx"));
                        std::fs::write(path, ptx.to_src()).unwrap();
                    }
                }
                Err(e) => panic!("{family} for sm_{major}{minor}: {e}"),
            }
        }
    }
}
