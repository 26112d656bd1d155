//! `kiln` — the command-line front end.
//!
//! * `kiln devices` — adapters with backend, type, features and limits.
//! * `kiln ops-test [--filter S] [--adapter A] [--seed N]` — the op-parity
//!   suite on a wgpu adapter against the CPU reference, as a table.
//! * `kiln generate`, `kiln chat`, `kiln bench` — LLM text generation with a
//!   GGUF model (default: the embedded SmolLM2-135M-Instruct), see `llm.rs`.
//! * `kiln diffuse` — terrain heightmaps from the diffusion UNet, see `diffuse.rs`.
//! * `kiln quantize` — a GGUF re-encoded with llama-quantize's mixtures, see `quantize.rs`.

#[cfg(not(target_arch = "wasm32"))]
mod device;
#[cfg(not(target_arch = "wasm32"))]
mod diffuse;
#[cfg(not(target_arch = "wasm32"))]
mod llm;
#[cfg(not(target_arch = "wasm32"))]
mod quantize;
#[cfg(not(target_arch = "wasm32"))]
mod train;

#[cfg(not(target_arch = "wasm32"))]
mod native {
    use std::process::ExitCode;

    use clap::{Parser, Subcommand};
    use kiln::backend::Backend;
    use kiln::backend::wgpu::{WgpuBackend, WgpuOptions, adapter_reports};
    use kiln::parity::{self, CaseResult};

    #[derive(Parser)]
    #[command(
        name = "kiln",
        version,
        about = "Quantized transformer inference on WebGPU"
    )]
    struct Cli {
        #[command(subcommand)]
        cmd: Cmd,
    }

    #[derive(Subcommand)]
    enum Cmd {
        /// List the CPU backend and GPU adapters (features, limits) and say
        /// which one the LLM commands pick by default.
        Devices,
        /// Run the op-parity suite (every op × dtype × shape vs the CPU reference).
        OpsTest {
            /// Only cases whose "op dtype shape" label contains this.
            #[arg(long, default_value = "")]
            filter: String,
            /// Adapter index or name substring (default: KILN_ADAPTER, else the best).
            #[arg(long)]
            adapter: Option<String>,
            /// Seed for the random inputs (default: time-based, printed).
            #[arg(long)]
            seed: Option<u64>,
            /// Print only failing rows and the summary.
            #[arg(long)]
            quiet: bool,
            /// Use the fallback kernels even where the adapter offers subgroups.
            #[arg(long)]
            no_subgroups: bool,
            /// Pick kernels as for a CPU adapter (true) or a GPU (false)
            /// instead of by the adapter's type.
            #[arg(long)]
            cpu_kernels: Option<bool>,
        },
        /// Generate text from a prompt (streams to stdout).
        Generate(super::llm::GenerateArgs),
        /// Chat interactively (one message per line; /reset, /quit).
        Chat(super::llm::ChatArgs),
        /// Benchmark prefill and decode speed (a benchmark, not a test).
        Bench(super::llm::BenchArgs),
        /// Generate terrain heightmaps with the diffusion UNet (ONNX).
        Diffuse(super::diffuse::DiffuseArgs),
        /// Accuracy of greedy answers to held-out questions (JSONL with "answer").
        EvalQa(super::llm::EvalQaArgs),
        /// Fine-tune a LoRA adapter (PEFT format) on chat JSONL or text.
        TrainLora(super::train::TrainArgs),
        /// Re-encode a GGUF with a llama.cpp file type (q4_k_m, q8_0, …),
        /// choosing each tensor's type as llama-quantize does.
        Quantize(super::quantize::QuantizeArgs),
    }

    pub fn main() -> ExitCode {
        let cli = Cli::parse();
        let result = match cli.cmd {
            Cmd::Devices => devices(),
            Cmd::Generate(a) => super::llm::generate(a),
            Cmd::Chat(a) => super::llm::chat(a),
            Cmd::Bench(a) => super::llm::bench(a),
            Cmd::Diffuse(a) => super::diffuse::diffuse(a),
            Cmd::TrainLora(a) => super::train::train_lora(a),
            Cmd::EvalQa(a) => super::llm::eval_qa(a),
            Cmd::Quantize(a) => super::quantize::quantize(a),
            Cmd::OpsTest {
                filter,
                adapter,
                seed,
                quiet,
                no_subgroups,
                cpu_kernels,
            } => ops_test(&filter, adapter, seed, quiet, no_subgroups, cpu_kernels),
        };
        match result {
            Ok(code) => code,
            Err(e) => {
                eprintln!("kiln: error: {e}");
                ExitCode::FAILURE
            }
        }
    }

    fn devices() -> Result<ExitCode, Box<dyn std::error::Error>> {
        let list = pollster::block_on(adapter_reports());
        let cpu = kiln::backend::cpu_fast::CpuFastBackend::default();
        println!("[cpu] {}", cpu.name());
        let args = crate::device::DeviceArgs {
            backend: crate::device::BackendChoice::Auto,
            adapter: None,
            threads: 0,
            activations: None,
        };
        match crate::device::pick(&args) {
            Ok((d, why)) => println!(
                "    generate/chat/bench use by default: {} ({why})",
                d.backend().name()
            ),
            Err(e) => println!("    no default device: {e}"),
        }
        if list.is_empty() {
            println!(
                "no GPU adapters found (install a Vulkan driver, e.g. mesa-vulkan-drivers for lavapipe)"
            );
            return Ok(ExitCode::SUCCESS);
        }
        for a in list {
            let i = &a.info;
            let l = &a.limits;
            println!(
                "[{}] {} ({:?}, {:?})",
                a.index, i.name, i.backend, i.device_type
            );
            println!("    driver: {} {}", i.driver, i.driver_info);
            println!("    features: {:?}", a.features);
            println!(
                "    subgroups: {}   shader-f16: {}   subgroup size: {}..{}",
                a.features.contains(wgpu::Features::SUBGROUP),
                a.features.contains(wgpu::Features::SHADER_F16),
                i.subgroup_min_size,
                i.subgroup_max_size
            );
            println!(
                "    max_storage_buffer_binding_size: {}",
                l.max_storage_buffer_binding_size
            );
            println!("    max_buffer_size: {}", l.max_buffer_size);
            println!(
                "    max_storage_buffers_per_shader_stage: {}",
                l.max_storage_buffers_per_shader_stage
            );
            println!(
                "    max_compute_workgroup_storage_size: {}",
                l.max_compute_workgroup_storage_size
            );
            println!(
                "    max_compute_invocations_per_workgroup: {}",
                l.max_compute_invocations_per_workgroup
            );
            println!(
                "    max_compute_workgroups_per_dimension: {}",
                l.max_compute_workgroups_per_dimension
            );
            println!(
                "    min_storage_buffer_offset_alignment: {}",
                l.min_storage_buffer_offset_alignment
            );
        }
        Ok(ExitCode::SUCCESS)
    }

    fn ops_test(
        filter: &str,
        adapter: Option<String>,
        seed: Option<u64>,
        quiet: bool,
        no_subgroups: bool,
        cpu_kernels: Option<bool>,
    ) -> Result<ExitCode, Box<dyn std::error::Error>> {
        let seed = seed.unwrap_or_else(parity::clock_seed);
        let mut backend = WgpuBackend::new(&WgpuOptions {
            adapter,
            ..Default::default()
        })?;
        if no_subgroups {
            backend = backend.without_subgroups();
        }
        if let Some(cpu) = cpu_kernels {
            backend = backend.with_cpu_kernels(cpu);
        }
        println!(
            "backend: {}   subgroups: {}   cpu kernels: {}   seed: {seed}",
            backend.name(),
            backend.caps.subgroups,
            backend.caps.cpu
        );
        let cases = parity::cases::all_cases(seed, filter)?;
        if let Some(min) = backend.caps.q8_activations.filter(|m| *m > 0) {
            println!(
                "8-bit activations for matrices of >= {min} weights: the cases' are smaller \
                 (KILN_Q8_MIN_WEIGHTS=0 tests the q8 kernels on every case)"
            );
        }
        println!(
            "{:<12} {:<6} {:<44} {:>10} {:>10} {:>10}  result",
            "op", "dtype", "shape", "max abs", "max rel", "nmse"
        );
        let (mut pass, mut fail) = (0, 0);
        let start = std::time::Instant::now();
        for case in &cases {
            let r = match case.binding_limit {
                // KILN_ACTIVATIONS=q8: products at 8 bits, checked against
                // their rounding bound (kiln::parity::q8).
                Some(limit) => {
                    parity::q8::run_case_q8(case, &backend.with_binding_limit(limit), &backend.caps)
                }
                None => parity::q8::run_case_q8(case, &backend, &backend.caps),
            };
            if r.pass {
                pass += 1
            } else {
                fail += 1
            }
            if !quiet || !r.pass {
                print_row(&r);
            }
        }
        println!(
            "{pass} passed, {fail} failed, {} cases in {:.1} s",
            cases.len(),
            start.elapsed().as_secs_f64()
        );
        Ok(if fail == 0 {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        })
    }

    fn print_row(r: &CaseResult) {
        let status = match &r.error {
            Some(e) => format!("ERROR {e}"),
            None if r.pass => "ok".into(),
            None => "FAIL".into(),
        };
        println!(
            "{:<12} {:<6} {:<44} {:>10.2e} {:>10.2e} {:>10.2e}  {status}",
            r.op,
            r.dtype.name(),
            r.shape,
            r.max_abs,
            r.max_rel,
            r.nmse
        );
    }
}

#[cfg(not(target_arch = "wasm32"))]
fn main() -> std::process::ExitCode {
    native::main()
}

/// The CLI drives native adapters; in the browser use the wasm API instead.
#[cfg(target_arch = "wasm32")]
fn main() {}
