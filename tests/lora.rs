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
use kiln::parity::lora_ref::{LoraReference, replay};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn check(fixture: &str, backend: &dyn Backend) {
    let dir = root().join("tests/fixtures/lora/llama3").join(fixture);
    let r = LoraReference::load(&dir).unwrap();
    let rep = replay(&r, &root().join("tests/fixtures/models/llama3"), backend).unwrap();
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

#[test]
fn peft_parity_gpu() {
    let Some(gpu) = common::gpu() else { return };
    for f in ["facts", "facts_brandom", "random_rslora"] {
        check(f, &gpu);
    }
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
