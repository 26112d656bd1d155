#!/usr/bin/env python3
"""img2img references for Kiln (tests/sd.rs), from the tiny diffusers folders
tools/sd_fixtures.py wrote (tests/fixtures/sd/tiny_sd15, tiny_sd21):

  <folder>.enc.image    [1, 3, H, W] uniform in [-1, 1] (H = the pipeline's size)
  <folder>.enc.moments  quant_conv(encoder(enc.image)) [1, 8, h, w]: the
                        posterior's mean then log-variance (before clamping)
  <folder>.i2i.x0       [1, 4, h, w] ready latents (what the pipeline takes as
                        `image` when it has 4 channels: no VAE involved)
  <folder>.i2i.<run>.noise<j>  every randn_tensor drawn (noise0: add_noise's)
  <folder>.i2i.<run>.step<i>   latents after each step that ran
through StableDiffusionImg2ImgPipeline(prompt, negative '', strength 0.6,
5 steps (the last 3 run), guidance 7.5, output_type 'latent') for every
scheduler Kiln implements. Writes tests/fixtures/sd/img2img/reference.{safetensors,json}.

    python3 tools/sd_img2img_fixture.py
"""
import json
import pathlib
import sys

import numpy as np
import torch
from safetensors.torch import save_file

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from sd_fixtures import Capture, finite  # noqa: E402  (randn_tensor recorder; strict JSON)

ROOT = pathlib.Path(__file__).resolve().parent.parent / "tests/fixtures/sd"


def main():
    from diffusers import (StableDiffusionImg2ImgPipeline, EulerDiscreteScheduler, EulerAncestralDiscreteScheduler,
                           DDIMScheduler, DPMSolverMultistepScheduler, LCMScheduler)
    import diffusers
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    T, J = {}, {"generator": "tools/sd_img2img_fixture.py", "diffusers": diffusers.__version__,
                "torch": torch.__version__, "prompt": "a red cube on a table", "negative_prompt": "",
                "strength": 0.6, "num_inference_steps": 5, "guidance_scale": 7.5, "folders": {}}
    for k, name in enumerate(["tiny_sd15", "tiny_sd21"]):
        pipe = StableDiffusionImg2ImgPipeline.from_pretrained(str(ROOT / name), safety_checker=None,
                                                              requires_safety_checker=False, local_files_only=True)
        pipe.set_progress_bar_config(disable=True)
        rng = np.random.default_rng(4000 + k)
        vae = pipe.vae
        H = pipe.unet.config.sample_size * pipe.vae_scale_factor
        img = torch.from_numpy(rng.uniform(-1, 1, (1, 3, H, H)).astype(np.float32))
        with torch.no_grad():
            m = vae.encoder(img)
            if vae.quant_conv is not None:
                m = vae.quant_conv(m)
        T[f"{name}.enc.image"], T[f"{name}.enc.moments"] = img, m
        lat = H // pipe.vae_scale_factor
        x0 = torch.from_numpy(rng.standard_normal((1, 4, lat, lat), dtype=np.float32))
        T[f"{name}.i2i.x0"] = x0
        base = dict(pipe.scheduler.config)
        runs = {"euler": (EulerDiscreteScheduler, {}), "euler_ancestral": (EulerAncestralDiscreteScheduler, {}),
                "ddim": (DDIMScheduler, {}),
                "dpmpp_2m": (DPMSolverMultistepScheduler, dict(algorithm_type="dpmsolver++", solver_order=2)),
                "dpmpp_2m_karras": (DPMSolverMultistepScheduler,
                                    dict(algorithm_type="dpmsolver++", solver_order=2, use_karras_sigmas=True)),
                "lcm": (LCMScheduler, {})}
        J["folders"][name] = {"size": H, "runs": {}}
        for key, (cls, extra) in runs.items():
            pipe.scheduler = cls.from_config(base, **extra)
            steps, ts = [], []
            cb = lambda p, i, t, kw: (steps.append(kw["latents"].clone()), ts.append(float(t)), kw)[2]
            with Capture() as cap, torch.no_grad():
                pipe(J["prompt"], negative_prompt="", image=x0.clone(), strength=J["strength"],
                     num_inference_steps=J["num_inference_steps"], guidance_scale=J["guidance_scale"],
                     generator=torch.Generator().manual_seed(77), output_type="latent", callback_on_step_end=cb)
            for i, x in enumerate(steps):
                T[f"{name}.i2i.{key}.step{i}"] = x
            for j, x in enumerate(cap.draws):
                T[f"{name}.i2i.{key}.noise{j}"] = x
            s = pipe.scheduler
            J["folders"][name]["runs"][key] = {
                "config": {k: v for k, v in dict(s.config).items() if not k.startswith("_")},
                "timesteps_run": ts,
                "steps_run": len(steps), "noise_draws": len(cap.draws)}
    out = ROOT / "img2img"
    out.mkdir(exist_ok=True)
    save_file({k: v.float().contiguous() for k, v in sorted(T.items())}, str(out / "reference.safetensors"))
    (out / "reference.json").write_text(json.dumps(finite(J), indent=1, sort_keys=True, allow_nan=False) + "\n")
    print({k: tuple(v.shape) for k, v in T.items() if "step" not in k and "noise" not in k})
    print({n: {r: (v["steps_run"], v["noise_draws"]) for r, v in f["runs"].items()} for n, f in J["folders"].items()})


if __name__ == "__main__":
    main()
