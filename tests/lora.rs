//! LoRA training against PyTorch + PEFT: the fixtures in
//! tests/fixtures/lora/llama3/ (made by tools/lora_reference.py on the tiny
//! Llama-3 fixture model) are replayed step by step — same initial adapter,
//! same batches, same AdamW / schedule / clipping — on the CPU reference and
//! on the test GPU adapter (lavapipe in CI).
//!
//! Tolerances: the per-step loss within 1e-3 relative (the bar);
//! the global gradient norm within 1e-3 relative; the step-0 gradients of
//! every factor and the final adapter after 30 AdamW steps within 1e-4 of
//! each factor's largest magnitude. Observed (2026-12-02): loss ≤ 2e-7,
//! gradients ≤ 1.8e-6, final adapter ≤ 2.1e-6 on the CPU reference and on
//! lavapipe — f32 sums in another order than PyTorch's; AdamW's division by
//! sqrt(v) can amplify such differences where a gradient element is near
//! zero, hence the margin.

mod common;

use std::path::{Path, PathBuf};

use kiln::backend::Backend;
use kiln::backend::cpu::CpuBackend;
use kiln::parity::lora_ref::{LoraReference, locate, replay};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn check(fixture: &str, backend: &dyn Backend) {
    check_model(fixture, "tests/fixtures/models/llama3", backend);
}

fn check_model(fixture: &str, model: &str, backend: &dyn Backend) {
    let dir = root().join("tests/fixtures/lora/llama3").join(fixture);
    let r = LoraReference::load(&dir).unwrap();
    let rep = replay(&r, &root().join(model), backend).unwrap();
    for (k, (l, rl, g, rg)) in rep.steps.iter().enumerate() {
        eprintln!("{fixture} step {k:2}: loss {l:.6} ref {rl:.6}   grad norm {g:.5} ref {rg:.5}");
    }
    eprintln!(
        "{fixture} on {}: loss rel {:.2e}, grad-norm rel {:.2e}, step-0 grads {:.2e} ({}), final adapter {:.2e} ({})",
        backend.name(),
        rep.max_loss_rel,
        rep.max_grad_norm_rel,
        rep.grad0_rel.0,
        rep.grad0_rel.1,
        rep.final_rel.0,
        rep.final_rel.1
    );
    assert_eq!(rep.steps.len(), r.steps.len());
    assert!(rep.max_loss_rel <= 1e-3, "loss off: {}", rep.max_loss_rel);
    assert!(
        rep.max_grad_norm_rel <= 1e-3,
        "grad norm off: {}",
        rep.max_grad_norm_rel
    );
    assert!(
        rep.grad0_rel.0 <= 1e-4,
        "step-0 gradient {} off: {}",
        rep.grad0_rel.1,
        rep.grad0_rel.0
    );
    assert!(
        rep.final_rel.0 <= 1e-4,
        "final {} off: {}",
        rep.final_rel.1,
        rep.final_rel.0
    );
}

#[test]
fn peft_parity_cpu_reference() {
    for f in ["facts", "facts_brandom", "random_rslora"] {
        check(f, &CpuBackend);
    }
}

/// The same runs from the model's GGUF file: llama.cpp stores Q/K rows
/// permuted for interleaved RoPE and Llama-3 scaling as `rope_freqs`, so
/// this checks the LoRA B row mapping and the factored RoPE gradient.
#[test]
fn peft_parity_from_gguf_cpu_reference() {
    for f in ["facts_brandom", "random_rslora"] {
        check_model(
            f,
            "tests/fixtures/models/llama3/llama3.F32.gguf",
            &CpuBackend,
        );
    }
}

#[test]
fn peft_parity_gpu() {
    let Some(gpu) = common::gpu() else { return };
    for f in ["facts", "facts_brandom", "random_rslora"] {
        check(f, &gpu);
    }
}

/// `locate` (kiln-parity train's op-by-op search) walks the step in program
/// order: the GPU agrees with the CPU reference op by op within 1e-4, and
/// with a tolerance below f32 reordering it names an early forward op.
#[test]
fn locate_names_the_first_divergent_op() {
    let Some(gpu) = common::gpu() else { return };
    let dir = root().join("tests/fixtures/lora/llama3/facts");
    let r = LoraReference::load(&dir).unwrap();
    let model = root().join("tests/fixtures/models/llama3");
    let none = locate(&r, &model, &gpu, &CpuBackend, 1e-4).unwrap();
    assert!(none.is_none(), "{none:?}");
    let d = locate(&r, &model, &gpu, &CpuBackend, 1e-9)
        .unwrap()
        .expect("f32 reordering exceeds 1e-9 somewhere");
    assert!(d.rel > 1e-9 && d.rel < 1e-4, "{d:?}");
    let step = locate(&r, &model, &CpuBackend, &CpuBackend, 0.0).unwrap();
    assert!(
        step.is_none(),
        "the CPU reference is deterministic: {step:?}"
    );
}

/// Per-block recomputation bounds activation memory, and the pool that
/// backends allocate stays near the liveness lower bound.
#[test]
fn recompute_bounds_pooled_memory() {
    use kiln::backend::pool;
    use kiln::loader::safetensors::HfFolder;
    use kiln::train::graph::{self, TrainShape};
    let r = LoraReference::load(&root().join("tests/fixtures/lora/llama3/facts")).unwrap();
    let folder = HfFolder::open(&root().join("tests/fixtures/models/llama3"), None).unwrap();
    let config = folder.llama_config().unwrap();
    let mut peaks = Vec::new();
    for recompute in [true, false] {
        let shape = TrainShape {
            recompute,
            batch: 4,
            seq: 64,
            head_rows: 64,
            max_grad_norm: 1.0,
        };
        let tg = graph::build(&config, &r.lora, &shape, &|n| folder.info(n)).unwrap();
        let plan = pool::plan(&tg.graph);
        let peak = pool::peak_live_bytes(&tg.graph, &plan);
        let total: u64 = plan.pool_bytes.iter().sum();
        assert!(total >= peak, "pool {total} below the live peak {peak}");
        assert!(
            total as f64 <= 1.6 * peak as f64,
            "pool {total} B vs live peak {peak} B (recompute {recompute})"
        );
        peaks.push(peak);
    }
    assert!(
        peaks[0] < peaks[1],
        "recomputation saves nothing: {peaks:?}"
    );
}

/// A checkpoint taken mid-run and resumed in a fresh trainer gives the
/// same next steps as the uninterrupted run (adapter, AdamW moments, step).
#[test]
fn resume_gives_the_same_next_steps() {
    use kiln::loader::safetensors::HfFolder;
    use kiln::train::Trainer;
    use kiln::train::graph::{self, TrainShape};
    let dir = root().join("tests/fixtures/lora/llama3/facts_brandom");
    let r = LoraReference::load(&dir).unwrap();
    let model = root().join("tests/fixtures/models/llama3");
    let mut folder = HfFolder::open(&model, None).unwrap();
    let config = folder.llama_config().unwrap();
    let shape = TrainShape {
        recompute: true,
        batch: r.batch,
        seq: r.seq,
        head_rows: 64,
        max_grad_norm: r.max_grad_norm,
    };
    let new = |folder: &mut HfFolder| {
        let tg = graph::build(&config, &r.lora, &shape, &|n| folder.info(n)).unwrap();
        Trainer::new(tg, &CpuBackend, folder, &r.init, r.hyper.clone()).unwrap()
    };
    let mut a = new(&mut folder);
    let ckpt = std::env::temp_dir().join(format!("kiln-resume-{}", std::process::id()));
    let mut losses = Vec::new();
    for (k, b) in r.batches[..6].iter().enumerate() {
        if k == 3 {
            a.save_checkpoint(&ckpt, "llama3").unwrap();
        }
        losses.push(a.train_step(std::slice::from_ref(b)).unwrap().loss);
    }
    let mut b = new(&mut folder);
    assert_eq!(b.load_checkpoint(&ckpt).unwrap(), 3);
    for (k, batch) in r.batches[3..6].iter().enumerate() {
        let l = b.train_step(std::slice::from_ref(batch)).unwrap().loss;
        assert_eq!(l, losses[3 + k], "step {}", 3 + k);
    }
    assert_eq!(a.adapter().unwrap(), b.adapter().unwrap());
    let _ = std::fs::remove_dir_all(&ckpt);
}

/// Adapters at inference (unmerged, in the Llama graph's LoRA slots): the
/// logits at the end of the reference's probe sequence equal PEFT's for the
/// base (no adapter), the initial and the trained adapter, and switching
/// adapters or scales needs no reload. Tolerance: 1e-4 of the largest logit
/// (f32 GEMV sums of ≤ 96 terms per layer in another order).
#[test]
fn adapters_at_inference_match_peft_logits() {
    use kiln::llm::Llm;
    use kiln::loader::safetensors::HfFolder;
    use kiln::model::llama::{LlamaOptions, LoraSlots};
    use kiln::parity::vec_diff;
    use kiln::train::lora::{Adapter, Target};
    let dir = root().join("tests/fixtures/lora/llama3/facts");
    let probe = Probe::load(&dir);
    let floats = |k: &str| probe.floats(k);
    let ids = probe.ids();
    let init = Adapter::load_dir(&dir.join("init_adapter")).unwrap();
    let fin = Adapter::load_dir(&dir.join("final_adapter")).unwrap();
    let opts = |fused: bool| LlamaOptions {
        max_ctx: 64,
        prefill_chunk: 16,
        lora: Some(LoraSlots {
            fused,
            rank: 16,
            targets: Target::ALL.to_vec(),
        }),
        ..Default::default()
    };
    let gpu = common::gpu();
    let mut runs: Vec<(&dyn Backend, bool)> = vec![(&CpuBackend, true)];
    if let Some(g) = &gpu {
        // The LoRA path in the GEMM epilogue, and as separate GEMMs.
        runs.push((g, true));
        runs.push((g, false));
    }
    for (b, fused) in runs {
        let opts = opts(fused);
        let mut folder =
            HfFolder::open(&root().join("tests/fixtures/models/llama3"), None).unwrap();
        let config = folder.llama_config().unwrap();
        let mut llm = Llm::load(&config, &mut folder, b, &opts, &mut |_, _| true).unwrap();
        let logits = |llm: &mut Llm| {
            llm.reset();
            llm.feed(&ids).unwrap();
            llm.logits().unwrap()
        };
        for (what, adapters, want) in [
            ("final", vec![(&fin, 1.0)], floats("final")),
            ("base", vec![], floats("base")),
            ("init", vec![(&init, 1.0)], floats("init")),
            // Half the trained adapter twice = the trained adapter.
            (
                "final as 2 × 0.5",
                vec![(&fin, 0.5), (&fin, 0.5)],
                floats("final"),
            ),
        ] {
            llm.set_adapters(&adapters).unwrap();
            let d = vec_diff(&logits(&mut llm), &want).unwrap();
            eprintln!(
                "{} {what}: max |Δ| {:.2e} (max |logit| {:.2})",
                b.name(),
                d.max_abs,
                d.max_want
            );
            assert!(d.within(1e-4, 0.0), "{what} on {}: {d:?}", b.name());
        }
        // The adapter must change something (the check above is not vacuous).
        let base = floats("base");
        let fin_l = floats("final");
        assert!(vec_diff(&fin_l, &base).unwrap().max_abs > 1e-3);
        // More rank than the slots hold is a typed error.
        let e = llm
            .set_adapters(&[(&fin, 1.0), (&fin, 1.0), (&fin, 1.0)])
            .unwrap_err();
        assert_eq!(e.code(), "BAD_ADAPTER");
    }
}

/// llama.cpp's LoRA GGUF (`tools/lora_to_gguf.py` lays out PEFT's trained
/// adapter as `convert_lora_to_gguf.py` does): read back equal to the PEFT
/// files (Q/K rows un-permuted), and on the GGUF model it gives PEFT's
/// probe logits.
#[test]
fn llama_cpp_gguf_lora_adapter() {
    use kiln::llm::Llm;
    use kiln::loader::gguf::GgufFile;
    use kiln::model::LlamaConfig;
    use kiln::model::llama::{LlamaOptions, LoraSlots};
    use kiln::parity::vec_diff;
    use kiln::train::lora::{Adapter, Target};
    use kiln::train::lora_gguf;
    let dir = root().join("tests/fixtures/lora/llama3/facts_brandom");
    let model = root().join("tests/fixtures/models/llama3/llama3.F32.gguf");
    let (g, mut file) = GgufFile::open(&model).unwrap();
    let config = LlamaConfig::from_gguf(&g).unwrap();
    let from_gguf = lora_gguf::open(&dir.join("final_adapter.lora.gguf"), &config).unwrap();
    let peft = Adapter::load_dir(&dir.join("final_adapter")).unwrap();
    assert_eq!(
        from_gguf.tensors, peft.tensors,
        "factors equal PEFT's, row for row"
    );
    assert_eq!((from_gguf.config.rank, from_gguf.config.alpha), (8, 16.0));
    assert_eq!(from_gguf.config.targets, Target::ALL.to_vec());
    let opts = LlamaOptions {
        max_ctx: 64,
        prefill_chunk: 16,
        lora: Some(LoraSlots {
            fused: true,
            rank: 8,
            targets: Target::ALL.to_vec(),
        }),
        ..Default::default()
    };
    let mut llm = Llm::from_gguf(&g, &mut file, &CpuBackend, &opts, &mut |_, _| true).unwrap();
    llm.set_adapters(&[(&from_gguf, 1.0)]).unwrap();
    let probe = Probe::load(&dir);
    let want = probe.floats("final");
    llm.feed(&probe.ids()).unwrap();
    let d = vec_diff(&llm.logits().unwrap(), &want).unwrap();
    assert!(d.within(1e-4, 0.0), "{d:?}");
    // A model file is not an adapter: a typed error.
    let e = lora_gguf::open(&model, &config).unwrap_err();
    assert_eq!(e.code(), "BAD_ADAPTER");
}

/// LoRA dropout: the masks are integer hashes of (step, micro-batch, site,
/// element), so the CPU reference and the GPU train identically, and the
/// loss differs from the run without dropout. (PEFT's torch RNG cannot be
/// replayed; its dropout convention — the input of A, in train mode only —
/// is the same.)
#[test]
fn lora_dropout_is_deterministic_across_backends() {
    use kiln::loader::safetensors::HfFolder;
    use kiln::train::Trainer;
    use kiln::train::graph::{self, TrainShape};
    let dir = root().join("tests/fixtures/lora/llama3/facts_brandom");
    let r = LoraReference::load(&dir).unwrap();
    let model = root().join("tests/fixtures/models/llama3");
    let run = |backend: &dyn Backend, dropout: f32| -> Vec<f64> {
        let mut folder = HfFolder::open(&model, None).unwrap();
        let config = folder.llama_config().unwrap();
        let mut lora = r.lora.clone();
        lora.dropout = dropout;
        let shape = TrainShape {
            recompute: true,
            batch: r.batch,
            seq: r.seq,
            head_rows: 64,
            max_grad_norm: r.max_grad_norm,
        };
        let tg = graph::build(&config, &lora, &shape, &|n| folder.info(n)).unwrap();
        let mut init = r.init.clone();
        init.config.dropout = dropout;
        let mut t = Trainer::new(tg, backend, &mut folder, &init, r.hyper.clone()).unwrap();
        r.batches[..4]
            .iter()
            .map(|b| t.train_step(std::slice::from_ref(b)).unwrap().loss)
            .collect()
    };
    let plain = run(&CpuBackend, 0.0);
    let cpu = run(&CpuBackend, 0.2);
    assert!(cpu.iter().all(|l| l.is_finite()));
    assert!(
        (cpu[0] - plain[0]).abs() > 1e-4,
        "dropout changes the loss: {cpu:?} vs {plain:?}"
    );
    if let Some(gpu) = common::gpu() {
        let g = run(&gpu, 0.2);
        for (a, b) in g.iter().zip(&cpu) {
            assert!(((a - b) / b).abs() < 1e-5, "gpu {g:?} vs cpu {cpu:?}");
        }
    }
}

/// Merged adapters (`train::merge`): the trained adapter folded into f32
/// weights gives PEFT's probe logits, from the HF folder and from the GGUF
/// (permuted Q/K); f16 weights stay within f16's rounding (2⁻¹¹ relative per
/// weight, sums of ≤ 96 terms: 2e-3 of the largest logit; observed 3.7e-4).
#[test]
fn merged_adapter_matches_peft_logits() {
    use kiln::DType;
    use kiln::llm::Llm;
    use kiln::loader::gguf::{GgufFile, GgufSource};
    use kiln::loader::safetensors::HfFolder;
    use kiln::model::LlamaConfig;
    use kiln::model::llama::LlamaOptions;
    use kiln::parity::vec_diff;
    use kiln::train::lora::Adapter;
    use kiln::train::merge::merged;
    let dir = root().join("tests/fixtures/lora/llama3/facts_brandom");
    let fin = Adapter::load_dir(&dir.join("final_adapter")).unwrap();
    let probe = Probe::load(&dir);
    let want = probe.floats("final");
    let ids = probe.ids();
    let opts = LlamaOptions {
        max_ctx: 64,
        prefill_chunk: 16,
        ..Default::default()
    };
    let logits = |llm: &mut Llm| {
        llm.feed(&ids).unwrap();
        llm.logits().unwrap()
    };
    for (dtype, tol) in [(DType::F32, 1e-4), (DType::F16, 2e-3)] {
        let mut folder =
            HfFolder::open(&root().join("tests/fixtures/models/llama3"), None).unwrap();
        let config = folder.llama_config().unwrap();
        let mut m = merged(&mut folder, &config, vec![(fin.clone(), 1.0)], dtype).unwrap();
        let mut llm = Llm::load(&config, &mut m, &CpuBackend, &opts, &mut |_, _| true).unwrap();
        let d = vec_diff(&logits(&mut llm), &want).unwrap();
        eprintln!("merged {dtype} (HF folder): max |Δ| {:.2e}", d.max_abs);
        assert!(d.within(tol, 0.0), "{dtype}: {d:?}");
    }
    let (g, mut f) =
        GgufFile::open(&root().join("tests/fixtures/models/llama3/llama3.F32.gguf")).unwrap();
    let config = LlamaConfig::from_gguf(&g).unwrap();
    let mut src = GgufSource {
        file: &g,
        reader: &mut f,
    };
    let mut m = merged(&mut src, &config, vec![(fin.clone(), 1.0)], DType::F32).unwrap();
    let mut llm = Llm::load(&config, &mut m, &CpuBackend, &opts, &mut |_, _| true).unwrap();
    let d = vec_diff(&logits(&mut llm), &want).unwrap();
    eprintln!("merged f32 (GGUF): max |Δ| {:.2e}", d.max_abs);
    assert!(d.within(1e-4, 0.0), "{d:?}");
    // Q8_0 cannot hold a sum: a typed error.
    let mut src = GgufSource {
        file: &g,
        reader: &mut f,
    };
    assert!(merged(&mut src, &config, vec![(fin, 1.0)], DType::Q8_0).is_err());
}

/// A fixture's `probe.json` (tools/lora_reference.py): probe ids and PEFT's
/// logits for them with the base, initial and final adapters.
struct Probe(serde_json::Value);

impl Probe {
    fn load(dir: &Path) -> Probe {
        Probe(
            serde_json::from_str(&std::fs::read_to_string(dir.join("probe.json")).unwrap())
                .unwrap(),
        )
    }

    fn floats(&self, key: &str) -> Vec<f32> {
        self.0[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect()
    }

    fn ids(&self) -> Vec<u32> {
        common::ids(&self.0["ids"])
    }
}
