//! Tiled VAE decoding against diffusers' `AutoencoderKL.enable_tiling()` on
//! the tiny random-weight folders (`tools/sd_vae_tiling_fixture.py`):
//! latents that need 2 × 3 tiles (tiny_sd15, batch 2) and 3 × 4 tiles down
//! to one latent pixel (tiny_sd21), on the CPU reference and the test
//! adapter. The tiled image differs from the untiled one by up to 1.39 on
//! these random weights (the GroupNorms see one tile at a time), so the
//! check is against diffusers' tiled output, with the VAE bound of
//! tests/sd.rs (5e-6 of the largest value: each tile is the same f32
//! decoder, and the blend is 2 multiply-adds per value).

mod common;

use std::path::{Path, PathBuf};

use kiln::backend::Backend;
use kiln::backend::cpu::CpuBackend;
use kiln::model::sd::pipeline::VaeDecoder;
use kiln::model::sd::{Component, SdOptions};
use kiln::parity::vec_diff;

const VAE_REL: f64 = 5e-6;

fn dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/sd")
        .join(name)
}

fn tiled(folder: &str, backend: &dyn Backend, label: &str) {
    let bytes = std::fs::read(dir("vae_tiling/reference.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let (shape, z) = common::f32_tensor(&st, &format!("{folder}.latents"));
    let (_, want) = common::f32_tensor(&st, &format!("{folder}.tiled"));
    let (_, untiled) = common::f32_tensor(&st, &format!("{folder}.untiled"));
    let c = Component::open(&dir(folder).join("vae")).unwrap();
    let opts = SdOptions {
        vae_tiling: true,
        ..Default::default()
    };
    let size = (shape[2], shape[3]);
    let mut v = VaeDecoder::load(&c, backend, shape[0], size, &opts).unwrap();
    assert!(v.tiled(), "{folder}: {size:?} latents should be tiled");
    let got = v.decode_raw(&z).unwrap();
    let d = vec_diff(&got, &want).unwrap();
    let what = format!("{folder} tiled vae on {label}");
    assert!(
        d.rel() <= VAE_REL,
        "{what}: max |Δ| {:.3e} = {:.2e} of max |ref| {:.3e} at {}",
        d.max_abs,
        d.rel(),
        d.max_want,
        d.worst
    );
    // The check can fail: the untiled image is far from the tiled one.
    let u = vec_diff(&got, &untiled).unwrap();
    assert!(u.rel() > 100.0 * VAE_REL, "{what}: tiling changed nothing");
    // Off, the same latents decode whole.
    let whole = VaeDecoder::load(&c, backend, shape[0], size, &SdOptions::default()).unwrap();
    assert!(!whole.tiled());
    eprintln!(
        "{what}: within {:.1e} relative ({} device bytes tiled, {} whole)",
        d.rel(),
        v.loaded.exe.device_bytes(),
        whole.loaded.exe.device_bytes()
    );
}

#[test]
fn tiled_decode_matches_diffusers() {
    let gpu = common::gpu();
    for folder in ["tiny_sd15", "tiny_sd21"] {
        tiled(folder, &CpuBackend, "cpu reference");
        if let Some(g) = &gpu {
            tiled(folder, g, &g.name());
        }
    }
}

#[test]
fn small_latents_are_not_tiled() {
    let c = Component::open(&dir("tiny_sd15").join("vae")).unwrap();
    let opts = SdOptions {
        vae_tiling: true,
        ..Default::default()
    };
    // 16 latents: exactly one tile of this VAE (sample 32, scale 2).
    let v = VaeDecoder::load(&c, &CpuBackend, 1, (16, 16), &opts).unwrap();
    assert!(!v.tiled());
}
