//! `kiln diffuse` — terrain heightmaps from the consistency UNet (ONNX).
//!
//! `kiln diffuse --difficulty 60 --size 384x256 --seed 7 --out terrain.png`
//! writes a shaded relief (PNG), and optionally the heights as a 16-bit
//! grayscale PNG (`--heightmap`) or a NumPy array in metres (`--heights`).
//! `--from map.npy --strength 0.5 --variants 4` varies an existing map.
//!
//! With `--model DIR` a diffusers Stable-Diffusion folder: text to image,
//! `kiln diffuse --model sd-turbo/ --prompt "…" --steps 1 --guidance 0`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::Args;

use crate::device::{self, ActChoice, BackendChoice, Device, DeviceArgs};
use kiln::DType;
use kiln::backend::Backend;
use kiln::backend::cpu::CpuBackend;
use kiln::loader::onnx::OnnxModel;
use kiln::model::terrain::{Terrain, TerrainGenerator, TerrainRequest};
use kiln::model::terrain_post as post;
use kiln::model::unet::{UnetConfig, UnetOptions};

const DEFAULT_MODEL: &str = "models/terrain_consistency_unet_difficulty100.onnx";

#[derive(Args)]
pub struct DiffuseArgs {
    /// The UNet (ONNX; "terrain" or nothing: the fetched default model), or
    /// a diffusers Stable-Diffusion folder (text to image).
    #[arg(long)]
    model: Option<String>,
    /// Stable Diffusion: the prompt.
    #[arg(long)]
    prompt: Option<String>,
    /// Stable Diffusion: the negative prompt (with guidance > 1).
    #[arg(long, default_value = "")]
    negative: String,
    /// Stable Diffusion: denoising steps.
    #[arg(long, default_value_t = 20)]
    steps: usize,
    /// Stable Diffusion: euler, euler-a, ddim, dpm++2m, dpm++2m-karras or lcm.
    #[arg(long, default_value = "euler")]
    scheduler: String,
    /// Stable Diffusion: decode with this TAESD folder (diffusers
    /// `AutoencoderTiny`) instead of the folder's VAE.
    #[arg(long)]
    taesd: Option<PathBuf>,
    /// Stable Diffusion: decode the image in tiles of the VAE's
    /// `sample_size`, blended as diffusers' `enable_vae_tiling()` (less
    /// device memory for images larger than a tile).
    #[arg(long)]
    vae_tiling: bool,
    /// Stable Diffusion: classifier-free guidance scale (≤ 1: none, as
    /// SD-Turbo and SDXS are run).
    #[arg(long, default_value_t = 7.5)]
    guidance: f32,
    /// The UNet's config as guided-diffusion JSON (default: inferred from
    /// the ONNX export).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Terrain difficulty, 1 (gentle) to 100 (rugged).
    #[arg(long, default_value_t = 50)]
    difficulty: u32,
    /// Map size WIDTHxHEIGHT in pixels (maps over 128 are blended tiles;
    /// default 128x128); Stable Diffusion: the image size (default: the
    /// model's).
    #[arg(long)]
    size: Option<String>,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Output PNG: the shaded relief (default terrain.png; several maps:
    /// NAME-1.png, NAME-2.png, …), or the image (default image.png).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Also write the heights (metres) as a NumPy .npy file.
    #[arg(long)]
    heights: Option<PathBuf>,
    /// Also write a 16-bit grayscale PNG heightmap (0 … 22.17 m).
    #[arg(long)]
    heightmap: Option<PathBuf>,
    /// Vary this heightmap (.npy in metres, 2-D) instead of generating anew.
    #[arg(long)]
    from: Option<PathBuf>,
    /// Stable Diffusion img2img: start from this PNG (the output's size)
    /// instead of noise; --strength says how much of the schedule runs.
    #[arg(long)]
    init: Option<PathBuf>,
    /// Variation strength in [0, 1] (terrain --from; SD --init).
    #[arg(long, default_value_t = 0.5)]
    strength: f32,
    /// Number of maps (variants of --from).
    #[arg(long, default_value_t = 1)]
    variants: usize,
    /// 128² tiles per network call.
    #[arg(long, default_value_t = 4)]
    batch: usize,
    /// Weights on the device: f32, f16 or q8_0.
    #[arg(long, default_value = "f32")]
    weights: String,
    /// Where to run: a GPU through wgpu, the fast CPU backend, or auto (a
    /// real GPU if there is one, else the CPU backend).
    #[arg(long, value_enum, default_value_t = BackendChoice::Auto)]
    backend: BackendChoice,
    /// wgpu adapter index or name substring; "cpu" runs the CPU reference
    /// (plain Rust, f64 sums: slow, for checking).
    #[arg(long)]
    adapter: Option<String>,
    /// CPU backend: worker threads (default: one per core).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// After generating, time one network call kernel by kernel and print
    /// the per-kernel profile (slowest first; terrain and Stable Diffusion's
    /// UNet).
    #[arg(long)]
    profile: bool,
    /// Pick kernels as for a CPU adapter (true) or a GPU (false) instead of
    /// by the adapter's type.
    #[arg(long)]
    cpu_kernels: Option<bool>,
}

fn parse_size(s: &str) -> Result<(usize, usize), String> {
    let (w, h) = s
        .split_once(['x', 'X'])
        .ok_or(format!("--size {s}: expected WIDTHxHEIGHT"))?;
    let p = |v: &str| {
        v.trim()
            .parse::<usize>()
            .map_err(|_| format!("--size {s}: {v} is not a number"))
    };
    Ok((p(w)?, p(h)?))
}

fn numbered(path: &std::path::Path, i: usize, n: usize) -> PathBuf {
    if n == 1 {
        return path.to_path_buf();
    }
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let ext = path
        .extension()
        .map(|e| format!(".{}", e.to_string_lossy()))
        .unwrap_or_default();
    path.with_file_name(format!("{stem}-{}{ext}", i + 1))
}

fn backend(a: &DiffuseArgs) -> Result<Box<dyn Backend>, Box<dyn std::error::Error>> {
    if a.adapter.as_deref() == Some("cpu") {
        return Ok(Box::new(CpuBackend));
    }
    let (device, why) = device::pick(&DeviceArgs {
        backend: a.backend,
        adapter: a.adapter.clone(),
        threads: a.threads,
        activations: Some(ActChoice::F32),
    })?;
    eprintln!("backend: {} ({why})", device.backend().name());
    Ok(match device {
        Device::Cpu(b) => Box::new(b),
        Device::Gpu(b) => Box::new(match a.cpu_kernels {
            Some(cpu) => b.with_cpu_kernels(cpu),
            None => b,
        }),
    })
}

fn weight_dtype(w: &str) -> Result<Option<DType>, String> {
    match w {
        "f32" => Ok(None),
        "f16" => Ok(Some(DType::F16)),
        "q8_0" => Ok(Some(DType::Q8_0)),
        w => Err(format!("--weights {w}: expected f32, f16 or q8_0")),
    }
}

/// An 8-bit or 16-bit gray/RGB(A) PNG of exactly `size` pixels as NCHW RGB
/// in [0, 1] (alpha dropped).
fn read_png_rgb(
    path: &std::path::Path,
    (width, height): (usize, usize),
) -> Result<Vec<f32>, Box<dyn std::error::Error>> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut d = png::Decoder::new(std::io::Cursor::new(bytes));
    d.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut r = d
        .read_info()
        .map_err(|e| format!("{}: not a PNG ({e})", path.display()))?;
    let mut buf = vec![0; r.output_buffer_size().ok_or("PNG too large")?];
    let info = r
        .next_frame(&mut buf)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let (w, h) = (info.width as usize, info.height as usize);
    if (w, h) != (width, height) {
        return Err(format!(
            "--init {}: {w}×{h}, the output is {width}×{height} (resize it, or pass --size {w}x{h})",
            path.display()
        )
        .into());
    }
    let ch = info.color_type.samples();
    Ok(kiln::model::sd::pipeline::from_interleaved8(
        &buf,
        ch,
        (w, h),
    ))
}

/// Text to image from a diffusers Stable-Diffusion folder.
fn text_to_image(
    a: &DiffuseArgs,
    dir: &std::path::Path,
) -> Result<ExitCode, Box<dyn std::error::Error>> {
    use kiln::model::sd::pipeline::{InitImage, StableDiffusion, TextToImage};
    use kiln::model::sd::scheduler::SchedulerKind;
    use kiln::model::sd::{SdOptions, Unet2dConfig, VaeConfig};
    if !dir.join("unet").is_dir() || !dir.join("vae").is_dir() {
        return Err(format!(
            "{}: not a diffusers Stable-Diffusion folder (no unet/ and vae/)",
            dir.display()
        )
        .into());
    }
    let prompt = a
        .prompt
        .clone()
        .ok_or("--prompt is required with a Stable-Diffusion folder")?;
    let scheduler = SchedulerKind::parse(&a.scheduler).ok_or(format!(
        "--scheduler {}: expected euler, euler-a, ddim, dpm++2m, dpm++2m-karras or lcm",
        a.scheduler
    ))?;
    let (width, height) = match &a.size {
        Some(s) => parse_size(s)?,
        None => {
            let read = |m: &str| -> Result<serde_json::Value, Box<dyn std::error::Error>> {
                Ok(serde_json::from_slice(&std::fs::read(
                    dir.join(m).join("config.json"),
                )?)?)
            };
            let u = Unet2dConfig::from_json(&read("unet")?)?;
            let vae: serde_json::Value = match &a.taesd {
                Some(t) => serde_json::from_slice(&std::fs::read(t.join("config.json"))?)?,
                None => read("vae")?,
            };
            let scale =
                if vae.get("_class_name").and_then(|c| c.as_str()) == Some("AutoencoderTiny") {
                    kiln::model::sd::taesd::TaesdConfig::from_json(&vae)?.scale()
                } else {
                    VaeConfig::from_json(&vae)?.scale()
                };
            let px = u.sample_size * scale;
            (px, px)
        }
    };
    let backend = backend(a)?;
    let opts = SdOptions {
        weight_dtype: weight_dtype(&a.weights)?,
        vae_tiling: a.vae_tiling,
        ..Default::default()
    };
    let t0 = Instant::now();
    let guided = a.guidance > 1.0;
    let mut sd = StableDiffusion::open(
        dir,
        backend.as_ref(),
        (width, height),
        guided,
        a.taesd.as_deref(),
        &opts,
    )?;
    eprintln!(
        "loaded {} on {} in {:.2} s",
        dir.display(),
        backend.name(),
        t0.elapsed().as_secs_f64()
    );
    let init = match &a.init {
        Some(p) => {
            sd.load_encoder(dir, backend.as_ref(), &opts)?;
            Some(InitImage::Pixels(read_png_rgb(p, (width, height))?))
        }
        None => None,
    };
    let req = TextToImage {
        prompt,
        negative: a.negative.clone(),
        steps: a.steps,
        scheduler,
        guidance: a.guidance,
        seed: a.seed,
        init_latents: None,
        init,
        strength: a.strength,
    };
    let bar = indicatif::ProgressBar::new(a.steps as u64);
    let t1 = Instant::now();
    let img = sd.generate(&req, &mut |i, n| {
        bar.set_length(n as u64);
        bar.set_position(i as u64);
        true
    })?;
    bar.finish_and_clear();
    let (w, h) = (width, height);
    let rgba = kiln::model::sd::pipeline::to_rgba8(&img, (w, h));
    let out = a.out.clone().unwrap_or_else(|| PathBuf::from("image.png"));
    std::fs::write(&out, post::encode_png_rgba(&rgba, w, h)?)?;
    eprintln!(
        "{}×{} image, {} {} steps, guidance {}, seed {}: {:.2} s → {}",
        w,
        h,
        a.steps,
        a.scheduler,
        a.guidance,
        a.seed,
        t1.elapsed().as_secs_f64(),
        out.display()
    );
    let t = &sd.timings;
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    eprintln!(
        "text encoder {:.3} s · {} step(s) of {:.3} s mean (first {:.3} s) · decode {:.3} s",
        t.text_encoder,
        t.steps.len(),
        mean(&t.steps),
        t.steps.first().copied().unwrap_or(0.0),
        t.decode
    );
    if a.profile {
        // The UNet program again, kernel by kernel, on the last step's inputs.
        let prof = sd.unet.loaded.exe.profile(0, &[])?;
        crate::device::print_profile("one UNet call", &prof, 15);
    }
    Ok(ExitCode::SUCCESS)
}

pub fn diffuse(a: DiffuseArgs) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let path = match a.model.as_deref() {
        None | Some("terrain") => PathBuf::from(DEFAULT_MODEL),
        Some(p) => PathBuf::from(p),
    };
    if path.is_dir() {
        return text_to_image(&a, &path);
    }
    let (width, height) = parse_size(a.size.as_deref().unwrap_or("128x128"))?;
    if !path.exists() {
        return Err(format!(
            "{} not found (run tools/fetch_terrain.sh for the default model)",
            path.display()
        )
        .into());
    }
    let weight_dtype = weight_dtype(&a.weights)?;
    let source = match &a.from {
        Some(p) => {
            let (v, shape) = post::decode_npy_f32(&std::fs::read(p)?)?;
            let (sh, sw) = match shape[..] {
                [h, w] | [1, h, w] | [1, 1, h, w] => (h, w),
                _ => {
                    return Err(format!(
                        "{}: expected a 2-D heightmap, got {shape:?}",
                        p.display()
                    )
                    .into());
                }
            };
            Some((v, (sh, sw)))
        }
        None => None,
    };
    let backend = backend(&a)?;
    let t0 = Instant::now();
    let model = OnnxModel::read(&path)?;
    let opts = UnetOptions {
        weight_dtype,
        probes: false,
    };
    let config = match &a.config {
        Some(p) => Some(UnetConfig::from_json(&serde_json::from_slice(
            &std::fs::read(p)?,
        )?)?),
        None => None,
    };
    let mut generator =
        TerrainGenerator::load_with_config(model, config, backend.as_ref(), a.batch, &opts)?;
    let net = &generator.unet.net;
    let params: usize = net
        .weights
        .iter()
        .filter_map(|w| net.graph.info(w.id).ok())
        .map(|i| i.numel())
        .sum();
    eprintln!(
        "loaded {} ({:.2} M parameters, weights {}) on {} in {:.2} s",
        path.display(),
        params as f64 / 1e6,
        a.weights,
        backend.name(),
        t0.elapsed().as_secs_f64()
    );
    let req = TerrainRequest {
        difficulty: a.difficulty,
        height,
        width,
        seed: a.seed,
        count: a.variants.max(1),
        source,
        strength: a.strength,
    };
    let t1 = Instant::now();
    let maps = generator.generate(&req, &mut |done, total| {
        eprint!(
            "\rdenoising [{:<25}] {done}/{total} tiles",
            "#".repeat(done * 25 / total.max(1))
        );
        true
    })?;
    eprintln!(
        "\rgenerated {} map(s) of {width}×{height} in {:.2} s{}",
        maps.len(),
        t1.elapsed().as_secs_f64(),
        " ".repeat(20)
    );
    for (i, m) in maps.iter().enumerate() {
        write_outputs(&a, m, i, maps.len())?;
    }
    if a.profile {
        let prof = generator.unet.exe.profile(0, &[])?;
        crate::device::print_profile(&format!("one network call (batch {})", a.batch), &prof, 15);
    }
    Ok(ExitCode::SUCCESS)
}

fn write_outputs(
    a: &DiffuseArgs,
    m: &Terrain,
    i: usize,
    n: usize,
) -> Result<(), Box<dyn std::error::Error>> {
    let rgba = post::shaded_relief_rgba(&m.heights, m.height, m.width)?;
    let out = numbered(
        a.out
            .as_deref()
            .unwrap_or(std::path::Path::new("terrain.png")),
        i,
        n,
    );
    std::fs::write(&out, post::encode_png_rgba(&rgba, m.width, m.height)?)?;
    let max = m.heights.iter().cloned().fold(0f32, f32::max);
    eprintln!("wrote {} (relief {:.2} m)", out.display(), max);
    if let Some(p) = &a.heights {
        let p = numbered(p, i, n);
        std::fs::write(&p, post::encode_npy_f32(&m.heights, &[m.height, m.width])?)?;
        eprintln!("wrote {}", p.display());
    }
    if let Some(p) = &a.heightmap {
        let p = numbered(p, i, n);
        std::fs::write(
            &p,
            post::encode_png_gray16(&m.heights, m.width, m.height, post::HEIGHT_RANGE as f32)?,
        )?;
        eprintln!("wrote {}", p.display());
    }
    Ok(())
}
