//! `kiln-parity diffuse`: the diffusion UNet (ONNX) on the CPU reference,
//! wgpu and CUDA with ONNX Runtime's reference inputs — per-block error (the
//! first block past tolerance named), output error, time per backend — and,
//! with `--bench`, network calls per second at several batch sizes on the
//! GPU backends (a benchmark, not a test).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use kiln::backend::Backend;
use kiln::backend::cpu::CpuBackend;
use kiln::loader::onnx::OnnxModel;
use kiln::model::unet::{Unet, UnetConfig, UnetOptions, UnetWeights};
use kiln::parity::unet_ref::{BLOCK_REL, OUTPUT_ABS, UnetReference};

#[derive(clap::Args)]
pub struct DiffuseArgs {
    /// The UNet (ONNX).
    #[arg(
        long,
        default_value = "models/terrain_consistency_unet_difficulty100.onnx"
    )]
    model: PathBuf,
    /// ONNX Runtime reference (JSON beside its .bin files).
    #[arg(long, default_value = "tests/fixtures/terrain/real_reference.json")]
    reference: PathBuf,
    #[arg(long)]
    adapter: Option<String>,
    #[arg(long)]
    no_cpu: bool,
    #[arg(long)]
    no_wgpu: bool,
    #[arg(long)]
    no_cuda: bool,
    /// Also run the reference batch with f16 and Q8_0 weights on each GPU
    /// backend and report their drift from f32 (PSNR of the output over its
    /// [-1, 1] range, max height error in metres).
    #[arg(long)]
    drift: bool,
    /// Batch sizes to time (e.g. "1,64"); nothing timed without it.
    #[arg(long)]
    bench: Option<String>,
    /// Timed calls per batch size (median reported, after one warm-up).
    #[arg(long, default_value_t = 10)]
    iters: usize,
    /// With --bench: also a per-kernel profile of one call per backend and batch.
    #[arg(long)]
    profile: bool,
    /// Weights on the device for --bench: f32, f16 or q8_0.
    #[arg(long, default_value = "f32")]
    weights: String,
    #[arg(long)]
    json: bool,
}

fn backends(a: &DiffuseArgs) -> Vec<Box<dyn Backend>> {
    crate::backends(!a.no_cpu, !a.no_wgpu, !a.no_cuda, a.adapter.clone())
}

/// Per-kernel (label, seconds, dispatches) of one call, slowest first.
type Profile = Vec<(String, f64, usize)>;

/// Median seconds per call of a UNet at `batch` 128² maps (and the
/// per-kernel profile of one call when asked).
fn time_batch(
    weights: &UnetWeights,
    cfg: &UnetConfig,
    b: &dyn Backend,
    batch: usize,
    iters: usize,
    opts: &UnetOptions,
    profile: bool,
) -> Result<(f64, Profile), Box<dyn std::error::Error>> {
    let (h, w) = (128, 128);
    let mut unet = Unet::load(weights, cfg, b, batch, (h, w), opts)?;
    let mut rng = kiln::rng::Rng::new(1);
    let noisy = rng.normals(batch * h * w, 80.0);
    let (sigma, label) = (vec![80.0; batch], vec![0.5; batch]);
    unet.denoise(&noisy, &sigma, &label)?;
    let mut ts = Vec::new();
    for _ in 0..iters.max(1) {
        let t0 = Instant::now();
        unet.denoise(&noisy, &sigma, &label)?;
        ts.push(t0.elapsed().as_secs_f64());
    }
    ts.sort_by(f64::total_cmp);
    // Where a call's time goes: the input upload alone, and the network
    // alone (run + read of the output, no host-side layout work).
    let input = kiln::host::HostTensor::from_f32(&[batch, h, w, 1], kiln::DType::F32, &noisy)?;
    let (mut up, mut dev) = (Vec::new(), Vec::new());
    for _ in 0..iters.max(1) {
        let t0 = Instant::now();
        unet.exe.write(unet.net.noisy, &input)?;
        let t1 = Instant::now();
        unet.exe.run(&[])?;
        unet.exe.read(unet.net.output)?;
        up.push((t1 - t0).as_secs_f64());
        dev.push(t1.elapsed().as_secs_f64());
    }
    up.sort_by(f64::total_cmp);
    dev.sort_by(f64::total_cmp);
    eprintln!(
        "split {} batch {batch}: call {:.2} ms = upload {:.2} ms + run and read {:.2} ms + host rest",
        b.name(),
        ts[ts.len() / 2] * 1e3,
        up[up.len() / 2] * 1e3,
        dev[dev.len() / 2] * 1e3
    );
    let prof = if profile {
        unet.exe.profile(0, &[])?
    } else {
        Vec::new()
    };
    Ok((ts[ts.len() / 2], prof))
}

/// (backend, weights, PSNR dB, max height error m).
type Drift = (String, &'static str, f64, f64);

/// The drift of f16 and Q8_0 weights from f32 on the reference batch (same
/// inputs, same backend).
fn weight_drift(
    r: &UnetReference,
    weights: &UnetWeights,
    b: &dyn Backend,
) -> Result<Vec<Drift>, Box<dyn std::error::Error>> {
    use kiln::model::terrain_post::to_heights;
    let cfg = UnetConfig::from_onnx(&weights.model, &weights.prefix)?;
    let [n, _, h, w] = r.noisy_shape[..] else {
        return Err("reference noisy shape".into());
    };
    let out = |dtype: Option<kiln::DType>| -> Result<Vec<f32>, Box<dyn std::error::Error>> {
        let opts = UnetOptions {
            weight_dtype: dtype,
            probes: false,
        };
        let mut unet = Unet::load(weights, &cfg, b, n, (h, w), &opts)?;
        Ok(unet.denoise(&r.noisy, &r.sigma, &r.label)?)
    };
    let base = out(None)?;
    let base_h = to_heights(&base, false);
    let mut rows = Vec::new();
    for (name, dtype) in [("f16", kiln::DType::F16), ("q8_0", kiln::DType::Q8_0)] {
        let y = out(Some(dtype))?;
        let mse = y
            .iter()
            .zip(&base)
            .map(|(a, b)| ((a - b) as f64).powi(2))
            .sum::<f64>()
            / y.len() as f64;
        // Peak-to-peak of the output range [-1, 1] is 2.
        let psnr = 10.0 * (4.0 / mse.max(1e-30)).log10();
        let metres = to_heights(&y, false)
            .iter()
            .zip(&base_h)
            .map(|(a, b)| (a - b).abs() as f64)
            .fold(
                0f64,
                |m, d| if d.is_nan() { f64::INFINITY } else { m.max(d) },
            );
        rows.push((b.name(), name, psnr, metres));
    }
    Ok(rows)
}

pub fn run(a: DiffuseArgs) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let dir = a.reference.parent().map(PathBuf::from).unwrap_or_default();
    let name = a
        .reference
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let reference = UnetReference::read(&dir, &name)?;
    let weights = UnetWeights::new(OnnxModel::read(&a.model)?)?;
    let mut ok = true;
    let mut rows = Vec::new();
    let list = backends(&a);
    for b in &list {
        let c = reference.compare(&weights, b.as_ref())?;
        ok &= c.pass();
        rows.push(c);
    }
    let mut drift = Vec::new();
    if a.drift {
        for b in list.iter().filter(|b| b.name() != CpuBackend.name()) {
            drift.extend(weight_drift(&reference, &weights, b.as_ref())?);
        }
        for (backend, dtype, psnr, metres) in &drift {
            eprintln!(
                "drift {backend:<44} {dtype:<5} vs f32: PSNR {psnr:.1} dB, max height error {metres:.4} m"
            );
        }
    }
    let mut bench = Vec::new();
    if let Some(spec) = &a.bench {
        let cfg = UnetConfig::from_onnx(&weights.model, &weights.prefix)?;
        let opts = UnetOptions {
            weight_dtype: match a.weights.as_str() {
                "f16" => Some(kiln::DType::F16),
                "q8_0" => Some(kiln::DType::Q8_0),
                _ => None,
            },
            probes: false,
        };
        for batch in spec
            .split(',')
            .filter_map(|s| s.trim().parse::<usize>().ok())
        {
            for b in list.iter().filter(|b| b.name() != CpuBackend.name()) {
                let (secs, prof) =
                    time_batch(&weights, &cfg, b.as_ref(), batch, a.iters, &opts, a.profile)?;
                if !prof.is_empty() {
                    crate::print_profile(&format!("{} batch {batch}", b.name()), &prof);
                }
                bench.push((b.name(), batch, secs));
            }
        }
    }
    if a.json {
        let v = serde_json::json!({
            "model": a.model.display().to_string(),
            "reference": a.reference.display().to_string(),
            "block_rel_tol": BLOCK_REL, "output_abs_tol": OUTPUT_ABS,
            "backends": rows.iter().map(|c| serde_json::json!({
                "backend": c.backend, "pass": c.pass(), "first_bad_block": c.first_bad,
                "output_abs": c.output_abs, "secs": c.secs,
                "blocks": c.blocks.iter().map(|(m, r)| serde_json::json!({"module": m, "rel": r})).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
            "weight_drift": drift.iter().map(|(b, d, p, m)| serde_json::json!({
                "backend": b, "weights": d, "psnr_db": p, "max_height_error_m": m,
            })).collect::<Vec<_>>(),
            "bench": bench.iter().map(|(b, n, s)| serde_json::json!({
                "backend": b, "batch": n, "weights": a.weights, "ms_per_call": s * 1e3, "maps_per_s": *n as f64 / s,
            })).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!(
            "model: {}   reference: {} (ONNX Runtime)   tolerance: block |Δ| ≤ {BLOCK_REL:.0e}·max|ref|, output |Δ| ≤ {OUTPUT_ABS:.0e}",
            a.model.display(),
            a.reference.display()
        );
        print!("{:<22}", "block");
        for c in &rows {
            print!(" {:>14.14}", c.backend);
        }
        println!();
        for (i, (m, _)) in rows
            .first()
            .map(|c| c.blocks.as_slice())
            .unwrap_or_default()
            .iter()
            .enumerate()
        {
            print!("{m:<22}");
            for c in &rows {
                print!(" {:>14.2e}", c.blocks.get(i).map_or(f64::NAN, |b| b.1));
            }
            println!();
        }
        for c in &rows {
            println!(
                "{:<44} output |Δ| {:.2e}   first bad block: {}   {:.1} ms   {}",
                c.backend,
                c.output_abs,
                c.first_bad.as_deref().unwrap_or("-"),
                c.secs * 1e3,
                if c.pass() { "ok" } else { "FAIL" }
            );
        }
        for (b, n, s) in &bench {
            println!(
                "bench {b:<44} batch {n:>3} ({}): {:>9.2} ms/call  {:>8.1} maps/s",
                a.weights,
                s * 1e3,
                *n as f64 / s
            );
        }
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
