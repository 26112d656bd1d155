//! `kiln quantize --model IN.gguf --type q4_k_m --out OUT.gguf`: a GGUF file
//! re-encoded with one of llama-quantize's mixtures
//! (`kiln::quant::recipe`), with a progress bar and a table of which
//! tensors got which type (and which fell back because their rows are not
//! whole blocks). IN may also be a Hugging Face safetensors folder: it is
//! first written as the F32 GGUF llama.cpp's converter writes
//! (`kiln::loader::hf_gguf`), beside OUT, and removed after.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use kiln::loader::hf_gguf::convert_hf_folder;
use kiln::quant::file::quantize_gguf;
use kiln::quant::recipe::FileType;

#[derive(Args)]
pub struct QuantizeArgs {
    /// The input: a GGUF file (F32/F16/BF16; a quantized one with
    /// --allow-requantize) or a Hugging Face safetensors folder (converted
    /// first, as llama.cpp's convert_hf_to_gguf.py does, to an F32 file beside
    /// OUT that is removed after; `--type f32` keeps just that).
    #[arg(long)]
    model: PathBuf,
    /// llama.cpp file type: f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1,
    /// q2_k, q3_k_s, q3_k_m, q3_k_l, q4_k_s, q4_k_m, q5_k_s, q5_k_m, q6_k,
    /// iq4_nl, iq4_xs.
    #[arg(long = "type")]
    ftype: String,
    /// The output GGUF file (written as OUT.gguf.part, then renamed).
    #[arg(long)]
    out: PathBuf,
    /// Re-quantize tensors that are already quantized (from their
    /// dequantized values; precision is lost, as with llama-quantize's flag).
    #[arg(long)]
    allow_requantize: bool,
    /// Print every tensor's type, not only the summary.
    #[arg(long)]
    verbose: bool,
}

pub fn quantize(a: QuantizeArgs) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let ft = FileType::parse(&a.ftype).ok_or_else(|| {
        format!(
            "unknown --type '{}' (one of: {})",
            a.ftype,
            FileType::names().join(", ")
        )
    })?;
    if a.out == a.model {
        return Err("--out must differ from --model (the input is never overwritten)".into());
    }
    let t0 = std::time::Instant::now();
    let bar = |what: &str| -> Result<indicatif::ProgressBar, Box<dyn std::error::Error>> {
        let b = indicatif::ProgressBar::new(0);
        b.set_style(indicatif::ProgressStyle::with_template(&format!(
            "{what} {{bar:30}} {{pos}}/{{len}} tensors {{elapsed}}"
        ))?);
        Ok(b)
    };
    let step = |b: &indicatif::ProgressBar| {
        let b = b.clone();
        move |done: usize, total: usize| {
            b.set_length(total as u64);
            b.set_position(done as u64);
            true
        }
    };
    // A safetensors folder: the converter's F32 GGUF first.
    let converted = if a.model.is_dir() {
        let tmp = if ft == FileType::F32 {
            a.out.clone()
        } else {
            a.out.with_extension("f32-from-hf.gguf")
        };
        if ft != FileType::F32 && tmp.exists() {
            return Err(format!(
                "{} exists: the conversion is written there first (move it away)",
                tmp.display()
            )
            .into());
        }
        let b = bar("converting")?;
        let r = convert_hf_folder(&a.model, &tmp, &mut step(&b))?;
        b.finish_and_clear();
        println!(
            "{} -> {}: {} ({} tensors, F32, {:.1} MB, as convert_hf_to_gguf.py writes it)",
            a.model.display(),
            tmp.display(),
            r.arch,
            r.tensors,
            r.bytes_out as f64 / 1e6
        );
        if ft == FileType::F32 {
            return Ok(ExitCode::SUCCESS);
        }
        Some(tmp)
    } else {
        None
    };
    let input = converted.as_deref().unwrap_or(&a.model);
    let b = bar("quantizing")?;
    let report = quantize_gguf(input, &a.out, ft, a.allow_requantize, &mut step(&b));
    if let Some(tmp) = &converted {
        let _ = std::fs::remove_file(tmp);
    }
    let report = report?;
    b.finish_and_clear();
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for t in &report.tensors {
        *counts.entry(t.to.to_string()).or_default() += 1;
        let fell = t
            .fell_back_from
            .map(|f| format!("  ({f} needs rows in whole blocks of {})", f.block_size()))
            .unwrap_or_default();
        if a.verbose || t.fell_back_from.is_some() {
            println!(
                "{:<36} {:>7} -> {:<7}{fell}",
                t.name,
                t.from.to_string(),
                t.to.to_string()
            );
        }
    }
    let summary: Vec<String> = counts.iter().map(|(k, v)| format!("{v} {k}")).collect();
    println!(
        "{} -> {} as {}: {} tensors ({}), {:.1} MB -> {:.1} MB in {:.1} s",
        a.model.display(),
        a.out.display(),
        ft.name().to_uppercase(),
        report.tensors.len(),
        summary.join(", "),
        report.bytes_in as f64 / 1e6,
        report.bytes_out as f64 / 1e6,
        t0.elapsed().as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
}
