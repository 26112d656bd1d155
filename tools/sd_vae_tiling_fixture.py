#!/usr/bin/env python3
"""Tiled VAE decode references for Kiln (tests/sd_tiling.rs), from the tiny
diffusers folders tools/sd_fixtures.py wrote (tests/fixtures/sd/tiny_sd15,
tiny_sd21): diffusers' `AutoencoderKL.enable_tiling()` decode of seeded
latents whose size needs several tiles, with smaller tiles at the right and
bottom edges (down to one latent pixel), and the untiled decode of the same
latents for comparison:

  <folder>.latents   [B, 4, h, w] N(0, 1), what `vae.decode` gets (already
                     divided by the scaling factor)
  <folder>.tiled     vae.decode(latents) with tiling on   [B, 3, h·s, w·s]
  <folder>.untiled   vae.decode(latents) with tiling off

Writes tests/fixtures/sd/vae_tiling/reference.{safetensors,json}. CPU, f32.

    python3 tools/sd_vae_tiling_fixture.py
"""
import json
import pathlib

import numpy as np
import torch
from safetensors.torch import save_file

ROOT = pathlib.Path(__file__).resolve().parent.parent / "tests/fixtures/sd"
# (folder, batch, latent h, latent w): tiny_sd15 has 16-pixel latent tiles
# (step 12), tiny_sd21 8-pixel ones (step 6, so 13 × 19 leaves 1-pixel tiles).
CASES = [("tiny_sd15", 2, 20, 28), ("tiny_sd21", 1, 13, 19)]


def main():
    from diffusers import AutoencoderKL
    import diffusers
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    T, J = {}, {"generator": "tools/sd_vae_tiling_fixture.py", "diffusers": diffusers.__version__,
                "torch": torch.__version__, "cases": {}}
    for k, (name, b, h, w) in enumerate(CASES):
        vae = AutoencoderKL.from_pretrained(str(ROOT / name / "vae"), local_files_only=True).eval()
        rng = np.random.default_rng(5000 + k)
        z = torch.from_numpy(rng.standard_normal((b, 4, h, w), dtype=np.float32))
        with torch.no_grad():
            vae.disable_tiling()
            untiled = vae.decode(z).sample
            vae.enable_tiling()
            tiled = vae.decode(z).sample
        T[f"{name}.latents"], T[f"{name}.tiled"], T[f"{name}.untiled"] = z, tiled, untiled
        J["cases"][name] = {
            "latents": list(z.shape), "image": list(tiled.shape),
            "tile_sample_min_size": vae.tile_sample_min_size, "tile_latent_min_size": vae.tile_latent_min_size,
            "tile_overlap_factor": vae.tile_overlap_factor,
            "max_abs_tiled_vs_untiled": float((tiled - untiled).abs().max()),
        }
        print(name, J["cases"][name])
    out = ROOT / "vae_tiling"
    out.mkdir(exist_ok=True)
    save_file({k: v.contiguous() for k, v in T.items()}, str(out / "reference.safetensors"))
    (out / "reference.json").write_text(json.dumps(J, indent=1) + "\n")


if __name__ == "__main__":
    main()
