//! Shared test helpers: the wgpu backend on the adapter CI uses (lavapipe),
//! or the one named by `KILN_ADAPTER`.

use kiln::backend::wgpu::{WgpuBackend, WgpuOptions};

/// The test adapter. Without one the test fails with a clear message, unless
/// `KILN_SKIP_GPU=1` is set (then `None`, and the caller skips with one line).
#[allow(dead_code)] // the tokenizer tests need no GPU
pub fn gpu() -> Option<WgpuBackend> {
    if std::env::var_os("XDG_RUNTIME_DIR").is_none() {
        // Silences Vulkan loader noise on headless machines.
        let dir = std::env::temp_dir().join("kiln-xdg");
        let _ = std::fs::create_dir_all(&dir);
        // SAFETY: set before any thread of this test reads the environment.
        unsafe { std::env::set_var("XDG_RUNTIME_DIR", &dir) };
    }
    match WgpuBackend::new(&WgpuOptions::default()) {
        Ok(b) => Some(b),
        Err(e) if std::env::var("KILN_SKIP_GPU").as_deref() == Ok("1") => {
            eprintln!("skipping GPU test (KILN_SKIP_GPU=1): {e}");
            None
        }
        Err(e) => panic!(
            "no wgpu adapter: {e}. Install lavapipe (apt-get install mesa-vulkan-drivers libvulkan1) \
             or set KILN_SKIP_GPU=1"
        ),
    }
}

/// A JSON array of token ids (fixture files).
#[allow(dead_code)] // not every test crate that includes this module reads fixtures
pub fn ids(v: &serde_json::Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

/// The model file at `path` on the CPU reference (64-token context): the
/// greedy tokens it generates after `reference`'s `prompt_ids`, as many as
/// its `greedy_ids`, and those expected ones (at least one).
#[allow(dead_code)]
pub fn greedy_vs_reference(
    path: &std::path::Path,
    reference: &serde_json::Value,
) -> (Vec<u32>, Vec<u32>) {
    use kiln::backend::cpu::CpuBackend;
    use kiln::llm::Llm;
    let opts = kiln::model::llama::LlamaOptions {
        max_ctx: 64,
        prefill_chunk: 16,
        ..Default::default()
    };
    let (mut llm, _) = Llm::open(path, &CpuBackend, &opts, &mut |_, _| true).unwrap();
    let want = ids(&reference["greedy_ids"]);
    assert!(!want.is_empty(), "the reference has no greedy tokens");
    llm.feed(&ids(&reference["prompt_ids"])).unwrap();
    let mut got = Vec::new();
    for _ in 0..want.len() {
        let t = llm.greedy().unwrap();
        got.push(t);
        llm.feed(&[t]).unwrap();
    }
    (got, want)
}

/// An f32 tensor of a safetensors file: shape and values (fixture files).
#[allow(dead_code)] // only the diffusion tests read safetensors fixtures
pub fn f32_tensor(st: &safetensors::SafeTensors, name: &str) -> (Vec<usize>, Vec<f32>) {
    let t = st
        .tensor(name)
        .unwrap_or_else(|_| panic!("reference has no {name}"));
    assert_eq!(t.dtype(), safetensors::Dtype::F32, "{name}");
    let v = t
        .data()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    (t.shape().to_vec(), v)
}

/// Runs every registry case (a fresh seed per run, printed; `KILN_SEED` pins
/// one, `KILN_OPS_FILTER` narrows the suite) through `run` and fails with
/// the list of failing cases.
#[allow(dead_code)] // only the parity test crates run the suite
pub fn run_suite_with(label: &str, run: &dyn Fn(&kiln::parity::Case) -> kiln::parity::CaseResult) {
    run_suite_where(label, &|_| true, run)
}

/// As [`run_suite_with`], over the cases `keep` accepts (at least one).
#[allow(dead_code)]
pub fn run_suite_where(
    label: &str,
    keep: &dyn Fn(&kiln::parity::Case) -> bool,
    run: &dyn Fn(&kiln::parity::Case) -> kiln::parity::CaseResult,
) {
    let seed = std::env::var("KILN_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(kiln::parity::clock_seed);
    // KILN_OPS_FILTER narrows the suite while working on one op.
    let filter = std::env::var("KILN_OPS_FILTER").unwrap_or_default();
    let all = kiln::parity::cases::all_cases(seed, &filter).expect("cases build");
    assert!(
        !filter.is_empty() || all.len() > 200,
        "suite unexpectedly small: {}",
        all.len()
    );
    let all: Vec<_> = all.into_iter().filter(|c| keep(c)).collect();
    assert!(!all.is_empty(), "{label}: no case selected");
    let mut failures = Vec::new();
    for case in &all {
        let r = run(case);
        if !r.pass {
            failures.push(format!(
                "{} {} {}: max abs {:.3e} max rel {:.3e} nmse {:.3e} {}",
                r.op,
                r.dtype,
                r.shape,
                r.max_abs,
                r.max_rel,
                r.nmse,
                r.error.unwrap_or_default()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{label} (seed {seed}): {} of {} cases failed:\n{}",
        failures.len(),
        all.len(),
        failures.join("\n")
    );
    eprintln!("{label}: {} cases passed (seed {seed})", all.len());
}
