#!/usr/bin/env python3
"""Random-weight Stable-Diffusion models at the REAL configurations
(tests/fixtures/sd/configs/<model>/, verbatim hub config.json files) and
diffusers' outputs on them -- the "real configuration" parity check of the
SD work. Too big for the repository: it writes to a folder of your choice.

    python3 tools/sd_real_config_ref.py sd15 /tmp/sd-real/sd15 [--latent 16] [--seed 0] [--device cuda]
    KILN_SD_REAL=/tmp/sd-real/sd15 cargo test -p kiln --test sd real_weights -- --ignored --nocapture

What it writes into OUT/:
  model_index.json, text_encoder/, unet/, vae/, scheduler/  a diffusers folder;
      weights are seeded random (diffusers'/transformers' own init, then
      every parameter re-drawn so that none is degenerate) stored as float16
      safetensors (half the size; the references below are computed in float32
      FROM the float16-rounded weights, so both sides use identical values).
  reference.safetensors  float32:
      text.ids [2, 77] (as float), text.hidden [2, 77, D]: CLIPTextModel
          last_hidden_state for two id sequences (BOS, random ids, EOS, pad);
      unet.sample [2, 4, L, L], unet.timestep [2] = (999, 250),
          unet.out = unet(sample, t, encoder_hidden_states=text.hidden).sample;
      vae.latents [1, 4, L, L] (already divided by the scaling factor),
          vae.image = vae.decode(vae.latents).sample [1, 3, 8L, 8L].
The latent size L (default 16: a 128x128 image) keeps the CPU run short; the
modules' structure and weights are the real ones at any size.
"""
import argparse
import json
import pathlib
import shutil

import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from safetensors.torch import save_file
from transformers import CLIPTextConfig, CLIPTextModel

CONFIGS = pathlib.Path(__file__).resolve().parent.parent / "tests/fixtures/sd/configs"


def randomize(m, g):
    """Every parameter re-drawn: weights N(0, 1/fan_in), vectors around their
    identity (norm scales 1 + N(0, 0.02²), biases N(0, 0.02²))."""
    with torch.no_grad():
        for name, p in m.named_parameters():
            if p.dim() >= 2:
                fan_in = p[0].numel()
                p.copy_(torch.randn(p.shape, generator=g) / fan_in ** 0.5)
            elif "norm" in name and name.endswith("weight"):
                p.copy_(1 + 0.02 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.02 * torch.randn(p.shape, generator=g))
    return m


def as_fp16_rounded(m):
    """Round every parameter through float16 (what is saved) and keep f32."""
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(p.half().float())
    return m.eval()


def save(m, folder, file, state=None):
    folder.mkdir(parents=True, exist_ok=True)
    sd = state if state is not None else m.state_dict()
    save_file({k: v.detach().half().cpu().contiguous() for k, v in sd.items()}, str(folder / file))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model", help="a folder of tests/fixtures/sd/configs (sd15, sd21, sd21-base)")
    ap.add_argument("out")
    ap.add_argument("--latent", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tokenizer", help="a CLIP tokenizer folder to copy in (vocab.json, merges.txt, ...): makes OUT a "
                    "whole pipeline folder for kiln-parity sd --bench and tools/sd_torch_bench.py")
    ap.add_argument("--device", default="cpu", help="where diffusers computes the references (f32; TF32 off)")
    a = ap.parse_args()
    dev = torch.device(a.device)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    src, out = CONFIGS / a.model, pathlib.Path(a.out)
    cfg = lambda sub: json.loads((src / sub / "config.json").read_text())
    g = torch.Generator().manual_seed(a.seed)
    torch.set_grad_enabled(False)
    ref = {}

    text = as_fp16_rounded(randomize(CLIPTextModel(CLIPTextConfig(**cfg("text_encoder"))), g))
    tc = text.config
    ids = torch.randint(0, tc.vocab_size - 2, (2, 77), generator=g)
    ids[:, 0] = tc.vocab_size - 2  # <|startoftext|>
    ids[0, 10] = tc.vocab_size - 1  # <|endoftext|> then padding
    ids[0, 11:] = tc.vocab_size - 1
    ids[1, 76] = tc.vocab_size - 1
    ref["text.ids"] = ids.float()
    ref["text.hidden"] = text.to(dev)(ids.to(dev))[0].cpu()
    # Hub layout: parameter names under text_model. (transformers 5 drops it).
    state = {k if k.startswith("text_model.") else f"text_model.{k}": v for k, v in text.state_dict().items()}
    save(text, out / "text_encoder", "model.safetensors", state)
    shutil.copy(src / "text_encoder/config.json", out / "text_encoder/config.json")
    del text

    unet = as_fp16_rounded(randomize(UNet2DConditionModel.from_config(cfg("unet")), g))
    L = a.latent
    sample = torch.randn((2, unet.config.in_channels, L, L), generator=g)
    t = torch.tensor([999.0, 250.0])
    ref["unet.sample"], ref["unet.timestep"] = sample, t
    ref["unet.out"] = unet.to(dev)(sample.to(dev), t.to(dev), encoder_hidden_states=ref["text.hidden"].to(dev)).sample.cpu()
    save(unet, out / "unet", "diffusion_pytorch_model.safetensors")
    shutil.copy(src / "unet/config.json", out / "unet/config.json")
    del unet

    vae = as_fp16_rounded(randomize(AutoencoderKL.from_config(cfg("vae")), g))
    z = torch.randn((1, vae.config.latent_channels, L, L), generator=g)
    ref["vae.latents"] = z
    ref["vae.image"] = vae.to(dev).decode(z.to(dev)).sample.cpu()
    save(vae, out / "vae", "diffusion_pytorch_model.safetensors")
    shutil.copy(src / "vae/config.json", out / "vae/config.json")
    del vae

    (out / "scheduler").mkdir(exist_ok=True)
    shutil.copy(src / "scheduler/scheduler_config.json", out / "scheduler/scheduler_config.json")
    shutil.copy(src / "model_index.json", out / "model_index.json")
    if a.tokenizer:
        shutil.copytree(a.tokenizer, out / "tokenizer", dirs_exist_ok=True)
    save_file({k: v.float().contiguous() for k, v in ref.items()}, str(out / "reference.safetensors"))
    print({k: tuple(v.shape) for k, v in ref.items()})


if __name__ == "__main__":
    main()
