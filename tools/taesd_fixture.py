#!/usr/bin/env python3
"""A tiny random-weight TAESD (diffusers AutoencoderTiny) and its decoder's
output, for Kiln's TAESD decoder test.

    python3 tools/taesd_fixture.py      # (re)writes tests/fixtures/sd/tiny_taesd/

Writes config.json + diffusion_pytorch_model.safetensors (f32, seeded; every
parameter re-drawn N(0, 1/fan_in) / N(0, 0.02²) so none is degenerate) and
reference.safetensors: `latents` [1, 4, 8, 8] N(0, 1)·2 (reaching the tanh
clamp), `image` = vae.decode(latents).sample [1, 3, 64, 64] (diffusers'
AutoencoderTiny: tanh(x/3)·3, conv + ReLU, blocks, nearest 2× + conv, …,
then ·2 − 1). Versions in reference_versions.json.
"""
import json
import pathlib

import diffusers
import torch
from diffusers import AutoencoderTiny
from safetensors.torch import save_file

OUT = pathlib.Path(__file__).resolve().parent.parent / "tests/fixtures/sd/tiny_taesd"


def main():
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(7)
    vae = AutoencoderTiny(
        in_channels=3, out_channels=3,
        encoder_block_out_channels=(8, 8, 8, 8), decoder_block_out_channels=(8, 8, 8, 8),
        num_encoder_blocks=(1, 1, 1, 1), num_decoder_blocks=(2, 1, 1, 1),
        latent_channels=4, act_fn="relu", upsampling_scaling_factor=2,
    ).eval()
    with torch.no_grad():
        for _, p in vae.named_parameters():
            if p.dim() >= 2:
                p.copy_(torch.randn(p.shape, generator=g) / p[0].numel() ** 0.5 * 1.4)
            else:
                p.copy_(0.02 * torch.randn(p.shape, generator=g))
        z = 2 * torch.randn((1, 4, 8, 8), generator=g)
        image = vae.decode(z).sample
    OUT.mkdir(parents=True, exist_ok=True)
    vae.save_pretrained(str(OUT), safe_serialization=True)
    save_file({"latents": z.contiguous(), "image": image.contiguous()}, str(OUT / "reference.safetensors"))
    (OUT / "reference_versions.json").write_text(json.dumps(
        {"torch": torch.__version__, "diffusers": diffusers.__version__}, indent=1) + "\n")
    print(image.shape, float(image.abs().max()), sorted(vae.state_dict().keys())[:40])


if __name__ == "__main__":
    main()
