#!/usr/bin/env python3
"""diffusers on the same Stable-Diffusion folder Kiln times (`kiln-parity sd
--bench`): a one-step text-to-image without guidance (SD-Turbo's way) at one
size, per phase -- text encoder, one UNet call, VAE decode -- and the whole
image, in fp16 and fp32 (TF32 off: true f32), eager; `fp16_compile` is fp16
with `torch.compile` on the UNet and the VAE decoder (labelled as such).
Peak CUDA memory per mode (`torch.cuda.max_memory_allocated` over the timed
images, weights included). One JSON line per mode on stdout.

    python3 tools/sd_torch_bench.py DIR --size 512 --iters 5 --modes fp16,fp32,fp16_compile
"""
import argparse
import json
import time

import torch
from diffusers import (AutoencoderKL, EulerAncestralDiscreteScheduler, StableDiffusionPipeline,
                       UNet2DConditionModel)
from transformers import CLIPTextModel, CLIPTokenizer

PROMPT = "a photograph of a red fox in fresh snow, golden hour"


def sync():
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def timed(fn, iters):
    fn()
    sync()
    ts = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        sync()
        ts.append(time.perf_counter() - t0)
    ts.sort()
    return ts[len(ts) // 2] * 1e3


def run(d, mode, size, iters, dev):
    dtype = torch.float16 if mode.startswith("fp16") else torch.float32
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    if dev == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    pipe = StableDiffusionPipeline(
        vae=AutoencoderKL.from_pretrained(d, subfolder="vae", torch_dtype=dtype),
        text_encoder=CLIPTextModel.from_pretrained(d, subfolder="text_encoder", torch_dtype=dtype),
        tokenizer=CLIPTokenizer.from_pretrained(d, subfolder="tokenizer"),
        unet=UNet2DConditionModel.from_pretrained(d, subfolder="unet", torch_dtype=dtype),
        scheduler=EulerAncestralDiscreteScheduler.from_pretrained(d, subfolder="scheduler"),
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    ).to(dev)
    pipe.set_progress_bar_config(disable=True)
    load_s = time.perf_counter() - t0
    if mode.endswith("_compile"):
        pipe.unet = torch.compile(pipe.unet)
        pipe.vae.decoder = torch.compile(pipe.vae.decoder)
    g = torch.Generator(dev).manual_seed(7)
    lat = size // pipe.vae_scale_factor
    with torch.inference_mode():
        emb, _ = pipe.encode_prompt(PROMPT, dev, 1, False)
        z = torch.randn((1, pipe.unet.config.in_channels, lat, lat), generator=g, device=dev, dtype=dtype)
        t = torch.tensor([999.0], device=dev)
        t0 = time.perf_counter()
        pipe.unet(z, t, encoder_hidden_states=emb)  # compiles in compile mode
        pipe.vae.decode(z / pipe.vae.config.scaling_factor)
        sync()
        warm_s = time.perf_counter() - t0
        r = {
            "mode": mode, "size": size, "torch": torch.__version__, "gpu": torch.cuda.get_device_name() if dev == "cuda" else "cpu",
            "load_s": load_s, "first_call_s": warm_s,
            "text_encoder_ms": timed(lambda: pipe.encode_prompt(PROMPT, dev, 1, False), iters),
            "unet_step_ms": timed(lambda: pipe.unet(z, t, encoder_hidden_states=emb), iters),
            "decode_ms": timed(lambda: pipe.vae.decode(z / pipe.vae.config.scaling_factor), iters),
            "image_ms": timed(lambda: pipe(PROMPT, num_inference_steps=1, guidance_scale=0.0, height=size,
                                           width=size, generator=g, output_type="np"), iters),
        }
    if dev == "cuda":
        r["peak_allocated_gb"] = torch.cuda.max_memory_allocated() / 1e9
        r["peak_reserved_gb"] = torch.cuda.max_memory_reserved() / 1e9
    del pipe
    return r


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("folder")
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--modes", default="fp16,fp32,fp16_compile")
    ap.add_argument("--device", default="cuda")
    a = ap.parse_args()
    for mode in a.modes.split(","):
        try:
            print(json.dumps(run(a.folder, mode, a.size, a.iters, a.device)), flush=True)
        except Exception as e:  # one mode failing must not lose the others
            print(json.dumps({"mode": mode, "error": repr(e)[:500]}), flush=True)


if __name__ == "__main__":
    main()
