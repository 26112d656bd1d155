#!/usr/bin/env python3
"""PyTorch re-implementation of the terrain consistency UNet, checked against ORT, and a GPU benchmark.

What it implements (docs/terrain-onnx.md is the spec): the guided-diffusion `UNetModel` of
`models/terrain_consistency_unet_difficulty100.onnx` (model_channels 32, channel_mult (1,1,2,3,4),
4 res blocks, attention at ds 4/8/16 with 32-channel heads, new-order QKV attention, scale-shift
norm, ResBlock up/down = avg-pool / nearest x2 applied to both h and x, GroupNorm 32 groups eps 1e-5,
skip concat h-first) inside the EDM/consistency preconditioning wrapper: c_skip, c_out, c_in from
sigma (sigma_min 0.002, sigma_data 0.5), timestep sinusoid [cos | sin] of c_noise = 250*ln(sigma)
(freqs exactly as the export's f32 constant), label MLP on the already normalised difficulty (d-1)/99,
output clipped to [-1, 1]. All f32. Attention is `F.scaled_dot_product_attention` by default
(default scale 1/sqrt(32) == the export's 32**-0.25 applied to q and to k); `--attn explicit` uses
einsum + softmax exactly like the ONNX graph.

Weights: the module's submodule names equal the guided-diffusion state-dict names, so every
`network.*` ONNX initializer loads by name (`load_state_dict(strict=True)`: nothing missing or extra,
all shapes equal). The 139 GroupNorm affines are anonymous constant-folded `val_N` [C,1,1]
initializers; they are named with `trace_groupnorm_params` imported from tools/terrain_fixtures.py
(follows InstanceNormalization -> Reshape -> Mul/Add -> first Conv; `in_layers.2` -> `in_layers.0`,
`out_layers.3` -> `out_layers.0`, `qkv` -> `norm`, `out.2` -> `out.0`) and reshaped to [C]. If that
import fails, tests/fixtures/terrain/real_initializer_map.json (same map, real model only) is used.

Modes (run from the repository root):
  python3 tools/terrain_torch_bench.py --check
      CPU f32, both attention variants, on the fixture batch (tests/fixtures/terrain/real_reference.json,
      real/{noisy,sigma,difficulty}.bin; sample 0 sigma 80 / d 10, sample 1 sigma 2.5 / d 75) vs ORT's
      real/denoised.bin; also the two tiny random-weight models (tiny_a/tiny_b .onnx + fixtures).
      Exit 1 if any max abs diff > 1e-4.
  python3 tools/terrain_torch_bench.py --model PATH --bench --device cuda [--batches 1,64 --iters 20]
      Modes (--modes): eager (f32), cudagraph (torch.cuda.graph capture of the whole forward at a fixed
      batch, static input buffers; timed = copy inputs in + replay), compile (torch.compile with
      --compile-mode, default reduce-overhead, dynamic=False, one compile per batch size; failures and
      the --compile-timeout budget (SIGALRM, total over batches) are reported, not raised), eager_tf32
      (TF32 convs + matmuls). Any mode may take a _tf32 suffix. "f32" modes set
      torch.backends.cudnn.allow_tf32 = False explicitly (PyTorch's default is True for convs!) and
      torch.backends.cuda.matmul.allow_tf32 = False; tf32 modes set both True (legacy flags: mixing them
      with the new fp32_precision API raises in torch 2.11). Inputs at batch B are the two fixture
      samples repeated (deterministic), so every mode also reports max_abs_vs_ort. Per call: --warmup
      untimed calls, then --iters timed calls each bracketed by torch.cuda.synchronize(); the median
      is reported. peak_mem_bytes = torch.cuda.max_memory_allocated() after resetting the peak before
      each mode and batch (includes the ~42 MB of weights and, for graphs, the graph's private pool).
      One JSON object goes to stdout, human-readable lines to stderr.
  python3 tools/terrain_torch_bench.py --bench --device cpu --batches 1 --iters 2   (code path test;
      cudagraph and tf32 modes are reported as skipped on CPU; compile uses inductor's C++ backend and
      needs more than 5 minutes on 2 cores, so leave it out there: --modes eager)

Measured on one H200 (torch 2.11+cu130, cuDNN 9.19, sdpa, --iters 20): B=1 / B=64 ms per call:
eager f32 29.3 / 85.2, cudagraph f32 7.7 / 82.5, compile reduce-overhead f32 7.6 / 74.3 (~72 s compile
per batch size), eager tf32 28.7 / 54.1 (max abs vs ORT 2e-3 / 7e-3; f32 modes 3-4e-6). With
--cudnn-benchmark: cudagraph f32 8.1 / 72.8, cudagraph_tf32 5.9 / 50.8. max-autotune-no-cudagraphs did
not finish batch 1 within 330 s (reported as a timeout; inductor also logs the interrupted kernel).

On the GPU machine the model is git-ignored, so bring it along (e.g. carry
models/terrain_consistency_unet_difficulty100.onnx, 45 MB) or pass --model. Needs torch, numpy, onnx
(onnxruntime only because tools/terrain_fixtures.py imports it; with the JSON-map fallback it is not needed).
"""
import argparse
import json
import math
import signal
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
FIX = ROOT / "tests" / "fixtures" / "terrain"
DEFAULT_MODEL = ROOT / "models" / "terrain_consistency_unet_difficulty100.onnx"
TOL = 1e-4


# ------------------------------------------------------------------------------------------ model
class ResBlock(nn.Module):
    def __init__(self, cin, cout, ted, groups, eps, updown=None):
        super().__init__()
        self.updown = updown
        self.in_layers = nn.Sequential(nn.GroupNorm(groups, cin, eps), nn.SiLU(), nn.Conv2d(cin, cout, 3, padding=1))
        self.emb_layers = nn.Sequential(nn.SiLU(), nn.Linear(ted, 2 * cout))
        self.out_layers = nn.Sequential(nn.GroupNorm(groups, cout, eps), nn.SiLU(), nn.Identity(),  # dropout 0
                                        nn.Conv2d(cout, cout, 3, padding=1))
        self.skip_connection = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x, emb):
        h = self.in_layers[1](self.in_layers[0](x))
        if self.updown == "down":
            h, x = F.avg_pool2d(h, 2), F.avg_pool2d(x, 2)
        elif self.updown == "up":
            h, x = F.interpolate(h, scale_factor=2.0, mode="nearest"), F.interpolate(x, scale_factor=2.0, mode="nearest")
        h = self.in_layers[2](h)
        scale, shift = self.emb_layers(emb)[:, :, None, None].chunk(2, dim=1)  # scale = first half
        h = self.out_layers[0](h) * (1 + scale) + shift
        h = self.out_layers[3](self.out_layers[1](h))
        return self.skip_connection(x) + h


class AttentionBlock(nn.Module):
    """New-order QKVAttention: qkv channel o = part*C + head*hc + c (part 0 q, 1 k, 2 v)."""

    def __init__(self, ch, head_ch, groups, eps, impl):
        super().__init__()
        self.heads, self.impl = ch // head_ch, impl
        self.norm = nn.GroupNorm(groups, ch, eps)
        self.qkv = nn.Conv2d(ch, 3 * ch, 1)          # export stores a 4-D [3C,C,1,1] conv weight
        self.proj_out = nn.Conv2d(ch, ch, 1)

    def forward(self, x):
        B, C, H, W = x.shape
        nh = self.heads
        q, k, v = self.qkv(self.norm(x)).reshape(B, 3, nh, C // nh, H * W).unbind(1)  # [B, nh, hc, T]
        if self.impl == "sdpa":
            a = F.scaled_dot_product_attention(q.transpose(-1, -2), k.transpose(-1, -2),
                                               v.transpose(-1, -2)).transpose(-1, -2)
        else:
            s = (C // nh) ** -0.25
            w = torch.einsum("bnct,bncs->bnts", q * s, k * s).softmax(dim=-1)
            a = torch.einsum("bnts,bncs->bnct", w, v)
        return x + self.proj_out(a.reshape(B, C, H, W))


class Seq(nn.ModuleList):  # guided-diffusion TimestepEmbedSequential
    def forward(self, h, emb):
        for m in self:
            h = m(h, emb) if isinstance(m, ResBlock) else m(h)
        return h


class UNet(nn.Module):
    def __init__(self, c, attn_impl):
        super().__init__()
        mc, ted, G, eps = c["model_channels"], c["time_embed_dim"], c["norm_num_groups"], c["norm_eps"]
        hc, attn, nrb, mult = c["num_head_channels"], set(c["attention_resolutions"]), c["num_res_blocks"], c["channel_mult"]
        res = lambda i, o, ud=None: ResBlock(i, o, ted, G, eps, ud)
        att = lambda ch: AttentionBlock(ch, hc, G, eps, attn_impl)
        self.time_embed = nn.Sequential(nn.Linear(mc, ted), nn.SiLU(), nn.Linear(ted, ted))
        self.label_emb = nn.Sequential(nn.Linear(1, ted), nn.SiLU(), nn.Linear(ted, ted))
        self.input_blocks = nn.ModuleList([Seq([nn.Conv2d(c["in_channels"], mc, 3, padding=1)])])
        chans, ch, ds = [mc], mc, 1
        for level, m in enumerate(mult):
            for _ in range(nrb):
                layers = [res(ch, m * mc)]
                ch = m * mc
                if ds in attn:
                    layers.append(att(ch))
                self.input_blocks.append(Seq(layers))
                chans.append(ch)
            if level != len(mult) - 1:
                self.input_blocks.append(Seq([res(ch, ch, "down")]))
                chans.append(ch)
                ds *= 2
        self.middle_block = Seq([res(ch, ch), att(ch), res(ch, ch)])
        self.output_blocks = nn.ModuleList()
        for level, m in list(enumerate(mult))[::-1]:
            for i in range(nrb + 1):
                layers = [res(ch + chans.pop(), mc * m)]
                ch = mc * m
                if ds in attn:
                    layers.append(att(ch))
                if level and i == nrb:
                    layers.append(res(ch, ch, "up"))
                    ds //= 2
                self.output_blocks.append(Seq(layers))
        self.out = nn.Sequential(nn.GroupNorm(G, ch, eps), nn.SiLU(), nn.Conv2d(mc, c["out_channels"], 3, padding=1))

    def forward(self, x, temb, label):
        emb = self.time_embed(temb) + self.label_emb(label[:, None])
        hs, h = [], x
        for blk in self.input_blocks:
            h = blk(h, emb)
            hs.append(h)
        h = self.middle_block(h, emb)
        for blk in self.output_blocks:
            h = blk(torch.cat([h, hs.pop()], dim=1), emb)  # h first, skip second
        return self.out(h)


class TerrainDenoiser(nn.Module):
    """(noisy [B,1,H,W], sigma [B], difficulty=(d-1)/99 [B]) -> denoised [B,1,H,W] in [-1, 1]."""

    def __init__(self, cfg, attn_impl="sdpa"):
        super().__init__()
        self.c = cfg
        self.network = UNet(cfg, attn_impl)
        half = cfg["model_channels"] // 2  # same f32 expression as the export's constant `unsqueeze_4`
        freqs = np.exp(-math.log(cfg["timestep_max_period"]) * np.arange(half, dtype=np.float32) / half)
        self.register_buffer("freqs", torch.from_numpy(np.asarray(freqs, np.float32)), persistent=False)

    def forward(self, noisy, sigma, difficulty):
        smin, sd2 = self.c["sigma_min"], self.c["sigma_data"] ** 2
        sub = sigma - smin
        sq = torch.sqrt(sigma * sigma + sd2)
        c_skip = sd2 / (sub * sub + sd2)
        c_out = sub * self.c["sigma_data"] / sq
        c_in = 1.0 / sq
        args = (self.c["c_noise_scale"] * torch.log(sigma))[:, None] * self.freqs[None]
        temb = torch.cat([torch.cos(args), torch.sin(args)], dim=1)  # cos first
        f = self.network(c_in[:, None, None, None] * noisy, temb, difficulty)
        y = c_out[:, None, None, None] * f + c_skip[:, None, None, None] * noisy
        return y.clamp(*self.c["output_clip"])


def load_model(path, cfg=None, attn_impl="sdpa"):
    import onnx
    from onnx import numpy_helper
    m = onnx.load(str(path))
    try:
        sys.dont_write_bytecode = True
        sys.path.insert(0, str(ROOT / "tools"))
        from terrain_fixtures import REAL_CONFIG, trace_groupnorm_params
        gn_map, how = trace_groupnorm_params(m)[0], "traced graph (tools/terrain_fixtures.py)"
    except ImportError as e:  # real model only
        REAL_CONFIG = json.loads((FIX / "real_reference.json").read_text())["config"]
        gn_map = {e_["name"]: e_["param"] for e_ in json.loads((FIX / "real_initializer_map.json").read_text())
                  ["initializers"] if "param" in e_}
        how = f"real_initializer_map.json ({e})"
    model = TerrainDenoiser(cfg or REAL_CONFIG, attn_impl)
    sd = {}
    for t in m.graph.initializer:
        name = t.name if t.name.startswith("network.") else gn_map.get(t.name)
        if name:
            a = torch.from_numpy(numpy_helper.to_array(t).astype(np.float32))
            sd[name] = a.reshape(-1) if t.name in gn_map else a
    model.load_state_dict(sd, strict=True)
    return model.eval(), how, len(sd)


def fixture(jname):
    j = json.loads((FIX / jname).read_text())
    rd = lambda e: np.fromfile(FIX / e["file"], "<f4").reshape(e["shape"])
    return ({k: rd(v) for k, v in j["inputs"].items()}, rd(j["outputs"]["denoised"]), j["config"])


# ------------------------------------------------------------------------------------------ check
def check(args):
    torch.set_grad_enabled(False)
    ok = True
    cases = [("real", args.model, "real_reference.json"),
             ("tiny_a", FIX / "tiny_a.onnx", "tiny_a.json"), ("tiny_b", FIX / "tiny_b.onnx", "tiny_b.json")]
    for name, path, jname in cases:
        inp, ref, cfg = fixture(jname)
        for impl in ("sdpa", "explicit"):
            model, how, n = load_model(path, cfg, impl)
            t0 = time.perf_counter()
            out = model(*(torch.from_numpy(inp[k]) for k in ("noisy", "sigma", "difficulty"))).numpy()
            d = float(np.max(np.abs(out.astype(np.float64) - ref)))
            ok &= d <= TOL
            print(f"{name:6s} attn={impl:8s} {n} tensors loaded via {how}; CPU f32 {time.perf_counter() - t0:.2f}s; "
                  f"max abs diff vs ORT denoised = {d:.3e} ({'OK' if d <= TOL else 'FAIL'} <= {TOL:g})")
    print("check", "PASSED" if ok else "FAILED")
    return 0 if ok else 1


# ------------------------------------------------------------------------------------------ bench
class CompileTimeout(Exception):
    pass


def set_tf32(dev, on):
    if dev.type == "cuda":  # legacy flags only (see docstring)
        torch.backends.cuda.matmul.allow_tf32 = on
        torch.backends.cudnn.allow_tf32 = on
    return {"cuda.matmul.fp32_precision": torch.backends.cuda.matmul.fp32_precision,
            "cudnn.conv.fp32_precision": torch.backends.cudnn.conv.fp32_precision} if dev.type == "cuda" else None


def make_callable(kind, model, x, s, d, args, state):
    """Returns (fn, info): fn() runs one forward on inputs x, s, d and returns the output."""
    if kind == "eager":
        return (lambda: model(x, s, d)), {}
    if kind == "cudagraph":
        static = [x.clone(), s.clone(), d.clone()]
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(3):
                model(*static)
        torch.cuda.current_stream().wait_stream(side)
        g = torch.cuda.CUDAGraph()
        with torch.cuda.graph(g):
            out = model(*static)

        def fn():
            for dst, src in zip(static, (x, s, d)):
                dst.copy_(src)
            g.replay()
            return out
        return fn, {}
    if kind == "compile":
        if "compiled" not in state:
            state["compiled"] = torch.compile(model, mode=args.compile_mode, dynamic=False)
        cm = state["compiled"]
        budget = args.compile_timeout - state.get("compile_s", 0.0)
        if budget < 1:
            raise CompileTimeout(f"compile budget of {args.compile_timeout}s used up")

        def fn():
            torch.compiler.cudagraph_mark_step_begin()
            return cm(x, s, d)

        def alarm(*_):
            raise CompileTimeout(f"compile exceeded the {args.compile_timeout}s budget")
        old = signal.signal(signal.SIGALRM, alarm)
        signal.alarm(int(math.ceil(budget)))
        t0 = time.perf_counter()
        try:
            fn()
            sync(x.device)
        finally:
            signal.alarm(0)
            signal.signal(signal.SIGALRM, old)
            state["compile_s"] = state.get("compile_s", 0.0) + time.perf_counter() - t0
        return fn, {"compile_mode": args.compile_mode, "first_call_s": round(time.perf_counter() - t0, 2)}
    raise ValueError(kind)


def sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def bench(args):
    dev = torch.device(args.device)
    torch.set_grad_enabled(False)
    torch.backends.cudnn.benchmark = args.cudnn_benchmark
    inp, ref, _ = fixture("real_reference.json")
    model, how, _ = load_model(args.model, None, args.attn)
    model = model.to(dev)
    batches = [int(b) for b in args.batches.split(",")]
    info = {"device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)",
            "torch": torch.__version__, "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version() if dev.type == "cuda" else None,
            "attention": f"{args.attn} ({'F.scaled_dot_product_attention' if args.attn == 'sdpa' else 'einsum+softmax'})",
            "cudnn_benchmark": args.cudnn_benchmark, "iters": args.iters, "warmup": args.warmup,
            "timing": "median over iters of wall time per call, torch.cuda.synchronize() before and after each call",
            "inputs": "fixture samples (sigma 80/d 10, sigma 2.5/d 75) repeated to batch B",
            "weights_loaded_via": how, "results": {}}
    log = lambda msg: print(msg, file=sys.stderr, flush=True)
    log(f"# {info['device']}  torch {torch.__version__}  attn {args.attn}")
    for mode in args.modes.split(","):
        kind, tf32 = mode.removesuffix("_tf32"), mode.endswith("_tf32")
        label = f"{mode}" if tf32 else f"{mode}_f32"
        res = info["results"][label] = {}
        state = {}
        for B in batches:
            if dev.type != "cuda" and (kind == "cudagraph" or tf32):
                res[str(B)] = {"skipped": "cuda only"}
                continue
            idx = np.arange(B) % 2
            x, s, d = (torch.from_numpy(np.ascontiguousarray(inp[k][idx])).to(dev) for k in ("noisy", "sigma", "difficulty"))
            entry = {"precision": set_tf32(dev, tf32)}
            try:
                if dev.type == "cuda":
                    torch.cuda.empty_cache()
                    torch.cuda.reset_peak_memory_stats(dev)
                fn = None
                fn, extra = make_callable(kind, model, x, s, d, args, state)
                entry.update(extra)
                for _ in range(args.warmup):
                    fn()
                sync(dev)
                times = []
                for _ in range(args.iters):
                    sync(dev)
                    t0 = time.perf_counter()
                    fn()
                    sync(dev)
                    times.append(time.perf_counter() - t0)
                out = fn().float().cpu().numpy()
                ms = statistics.median(times) * 1e3
                entry.update(ms_per_call=round(ms, 4), maps_per_s=round(B / ms * 1e3, 2),
                             ms_min=round(min(times) * 1e3, 4),
                             peak_mem_bytes=torch.cuda.max_memory_allocated(dev) if dev.type == "cuda" else None,
                             max_abs_vs_ort=float(np.max(np.abs(out.astype(np.float64) - ref[idx]))))
                log(f"{label:28s} B={B:<4d} {ms:10.3f} ms/call {entry['maps_per_s']:10.1f} maps/s  "
                    f"peak {(entry['peak_mem_bytes'] or 0) / 2**20:8.1f} MiB  max|d| vs ORT {entry['max_abs_vs_ort']:.2e}")
            except Exception as e:  # report, don't crash (compile timeouts/failures, capture errors, OOM)
                entry["error"] = f"{type(e).__name__}: {str(e)[:500]}"
                log(f"{label:28s} B={B:<4d} FAILED {entry['error'][:200]}")
                if kind == "compile":
                    torch._dynamo.reset()
                    state.pop("compiled", None)
            res[str(B)] = entry
            fn = out = x = s = d = None  # frees the previous batch's graph / buffers before the next one
        state.clear()
        if kind == "compile":
            torch._dynamo.reset()
    set_tf32(dev, False)
    print(json.dumps(info, indent=1))
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    ap.add_argument("--check", action="store_true")
    ap.add_argument("--bench", action="store_true")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--batches", default="1,64")
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--modes", default="eager,cudagraph,eager_tf32,compile",
                    help="comma list of eager|cudagraph|compile, each optionally with _tf32")
    ap.add_argument("--attn", choices=("sdpa", "explicit"), default="sdpa")
    ap.add_argument("--compile-mode", default="reduce-overhead",
                    help="torch.compile mode, e.g. reduce-overhead, max-autotune-no-cudagraphs, default")
    ap.add_argument("--compile-timeout", type=float, default=300.0, help="seconds, total over all batch sizes")
    ap.add_argument("--cudnn-benchmark", action="store_true", help="torch.backends.cudnn.benchmark = True")
    args = ap.parse_args()
    if not args.check and not args.bench:
        ap.error("give --check and/or --bench")
    if not args.model.exists():
        sys.exit(f"{args.model} missing: run tools/fetch_terrain.sh or pass --model")
    rc = check(args) if args.check else 0
    if args.bench:
        rc |= bench(args)
    return rc


if __name__ == "__main__":
    sys.exit(main())
