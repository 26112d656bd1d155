#!/usr/bin/env python3
"""Parameter counts of the real Stable-Diffusion configurations in
tests/fixtures/sd/configs/ (verbatim hub config.json files), as diffusers and
transformers build them -- on torch's meta device, so no weights are made.

    python3 tools/sd_config_counts.py          # (re)writes tests/fixtures/sd/configs/param_counts.json
                                               # and sched_defaults.json (schedules, below)

Kiln's tests build each graph at the real configuration and check that its
weights hold exactly these many parameters (every module of the real model is
there, with the right shapes). Counted: the UNet; the VAE's decoder plus
post_quant_conv (what text-to-image runs); the CLIP text model.
"""
import json
import pathlib

import diffusers
import torch
import transformers
from diffusers import AutoencoderKL, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel

ROOT = pathlib.Path(__file__).resolve().parent.parent / "tests/fixtures/sd/configs"


def count(m):
    return sum(p.numel() for p in m.parameters())


def main():
    out = {"versions": {"torch": torch.__version__, "diffusers": diffusers.__version__,
                        "transformers": transformers.__version__}, "models": {}}
    for d in sorted(p for p in ROOT.iterdir() if (p / "unet/config.json").exists()):
        cfg = lambda sub: json.loads((d / sub / "config.json").read_text())
        with torch.device("meta"):
            unet = UNet2DConditionModel.from_config(cfg("unet"))
            vae = AutoencoderKL.from_config(cfg("vae"))
            text = CLIPTextModel(CLIPTextConfig(**cfg("text_encoder")))
        decoder = count(vae.decoder) + (count(vae.post_quant_conv) if vae.post_quant_conv is not None else 0)
        out["models"][d.name] = {"unet": count(unet), "vae_decoder": decoder,
                                 "text_encoder": count(text)}
        print(d.name, out["models"][d.name])
    (ROOT / "param_counts.json").write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()


def schedules():
    """Timesteps (and sigmas, init_noise_sigma) each scheduler derives from the
    real scheduler_config.json files, which mostly leave `timestep_spacing`
    unset (each class then uses its own default) -> sched_defaults.json."""
    from diffusers import (DDIMScheduler, DPMSolverMultistepScheduler, EulerAncestralDiscreteScheduler,
                           EulerDiscreteScheduler, LCMScheduler)
    kinds = {"euler": (EulerDiscreteScheduler, {}), "euler-a": (EulerAncestralDiscreteScheduler, {}),
             "ddim": (DDIMScheduler, {}), "dpm++2m": (DPMSolverMultistepScheduler, {}),
             "dpm++2m-karras": (DPMSolverMultistepScheduler, {"use_karras_sigmas": True}),
             "lcm": (LCMScheduler, {})}
    out = {}
    for d in sorted(p for p in ROOT.iterdir() if (p / "scheduler/scheduler_config.json").exists()):
        cfg = json.loads((d / "scheduler/scheduler_config.json").read_text())
        for name, (cls, extra) in kinds.items():
            for steps in (4, 7, 25):
                s = cls.from_config(cfg, **extra)
                s.set_timesteps(steps)
                sig = getattr(s, "sigmas", None)
                out[f"{d.name}/{name}/{steps}"] = {
                    "timesteps": [float(t) for t in s.timesteps],
                    "sigmas": [float(x) for x in sig] if sig is not None else None,
                    "init_noise_sigma": float(s.init_noise_sigma),
                }
    (ROOT / "sched_defaults.json").write_text(json.dumps(out, indent=0) + "\n")
    print(len(out), "schedules")


if __name__ == "__main__":
    schedules()
