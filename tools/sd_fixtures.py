#!/usr/bin/env python3
"""Deterministic Stable-Diffusion fixtures for Kiln (CLIP BPE tokenizer, CLIPTextModel, UNet2DConditionModel,
AutoencoderKL, schedulers, full pipeline). CPU only, fp32, random weights, no network, no model hub.

How to run (from the repository root; python3.11 with torch, diffusers, transformers, safetensors, numpy,
open_clip_torch (only for its bundled bpe_simple_vocab_16e6.txt.gz; it is never imported), ftfy, regex):

    python3 tools/sd_fixtures.py                 # (re)writes tests/fixtures/sd/
    python3 tools/sd_fixtures.py --check-only    # regenerate in memory/temp, compare to the stored files
    python3 tools/sd_fixtures.py --tf4 DIR       # also cross-check tokenization against the real transformers
                                                 # 4.x *slow* CLIPTokenizer (a `pip install --target DIR
                                                 # transformers==4.57.3 huggingface_hub==0.36.0 tokenizers==0.22.1`)

What it writes into tests/fixtures/sd/:
  tokenizer_reference.json   ids for ~15 prompts: truncated (2514-token) and full (49408-token) CLIP vocab, both
                             pad styles, pipeline path (installed transformers CLIPTokenizer) + inline copy of the
                             transformers-4.x slow tokenizer with and without ftfy; bpe file sha256.
  tiny_sd15/, tiny_sd21/     diffusers pipeline folders (model_index.json, tokenizer/, text_encoder/, unet/, vae/,
                             scheduler/) with seeded random fp32 weights, plus reference.safetensors + reference.json
                             computed from the pipeline as loaded back from disk.
  manifest.json, README.md
"""
from __future__ import annotations

import argparse, gzip, hashlib, html, importlib.metadata as md, importlib.util, json, os, shutil, subprocess
import sys, tempfile, unicodedata
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
import numpy as np
import regex as re
import torch
from torch import nn
from safetensors.torch import save_file, load_file

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "fixtures" / "sd"
N_TINY_MERGES = 2000
EOT, SOT = "<|endoftext|>", "<|startoftext|>"
PROMPTS = [
    "", "a photograph of an astronaut riding a horse", "Hello, World!! It's 3:45pm...",
    "  lots\tof   whitespace\n\nand\r\nnew  lines \t", "café naïve", "cafe\u0301 decomposed accent",
    "an emoji 🚀🔥 in text", "12345 6789", "don't we'll they're I'M you've", "don\u2019t \u201cquoted\u201d",
    "before <|endoftext|> after <|startoftext|>", "<|ENDOFTEXT|> upper-case literal", "fish &amp; chips",
    "Ｆｕｌｌｗｉｄｔｈ ﬁne", "日本語のテキスト",
    " ".join(f"word{i} and the quick brown fox jumps over the lazy dog number {i}," for i in range(8)),
]

# ----------------------------------------------------------------------------------------------- tokenizer
def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b); cs.append(256 + n); n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


def bpe_file() -> Path:
    return Path(importlib.util.find_spec("open_clip").submodule_search_locations[0]) / "bpe_simple_vocab_16e6.txt.gz"


def clip_merges(n=None):
    lines = gzip.open(bpe_file()).read().decode("utf-8").split("\n")
    merges = lines[1:49152 - 256 - 2 + 1]  # exactly CLIP / transformers: line 0 is a version header
    return merges[:n] if n else merges


def clip_vocab(merges):
    v = list(bytes_to_unicode().values())
    v = v + [t + "</w>" for t in v] + ["".join(m.split()) for m in merges] + [SOT, EOT]
    return {t: i for i, t in enumerate(v)}


def jdump(obj) -> str:
    return json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False) + "\n"


def write_tokenizer(d: Path, merges, pad):
    """The four files transformers 4.x `CLIPTokenizer.save_pretrained` writes (byte-identical; --tf4 verifies)."""
    d.mkdir(parents=True, exist_ok=True)
    vocab = clip_vocab(merges)
    (d / "vocab.json").write_text(jdump(vocab), encoding="utf-8")
    (d / "merges.txt").write_text("#version: 0.2\n" + "".join(m + "\n" for m in merges), encoding="utf-8")
    tok = lambda s, norm=True: {"content": s, "lstrip": False, "normalized": norm, "rstrip": False, "single_word": False}
    stm = {"bos_token": tok(SOT), "eos_token": tok(EOT), "unk_token": tok(EOT),
           "pad_token": pad if pad == "!" else tok(EOT)}
    (d / "special_tokens_map.json").write_text(jdump(stm), encoding="utf-8")
    added = {str(vocab[SOT]): {**tok(SOT), "special": True}, str(vocab[EOT]): {**tok(EOT), "special": True}}
    if pad == "!":
        added[str(vocab["!"])] = {**tok("!", False), "special": True}
    cfg = {"added_tokens_decoder": added, "bos_token": SOT, "clean_up_tokenization_spaces": False, "eos_token": EOT,
           "errors": "replace", "extra_special_tokens": {}, "model_max_length": 77, "pad_token": pad,
           "tokenizer_class": "CLIPTokenizer", "unk_token": EOT}
    (d / "tokenizer_config.json").write_text(jdump(cfg), encoding="utf-8")


class SlowClip:
    """Faithful copy of transformers 4.x (slow, pure-python) CLIPTokenizer + PreTrainedTokenizer special-token split,
    called as diffusers does: padding="max_length", max_length=77, truncation=True."""
    PAT = re.compile(r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""",
                     re.IGNORECASE)

    def __init__(self, merges, pad, use_ftfy):
        self.enc, self.ranks = clip_vocab(merges), {tuple(m.split()): i for i, m in enumerate(merges)}
        self.pad, self.use_ftfy, self.b2u = pad, use_ftfy, bytes_to_unicode()
        self.cache = {SOT: SOT, EOT: EOT}
        specials = sorted({SOT, EOT, pad}, key=len, reverse=True)  # added tokens split first (tokens_trie)
        self.split_re = re.compile("(" + "|".join(re.escape(s) for s in specials) + ")")

    def bpe(self, token):
        if token in self.cache:
            return self.cache[token]
        word = tuple(token[:-1]) + (token[-1] + "</w>",)
        while len(word) > 1:
            pairs = {(a, b) for a, b in zip(word, word[1:])}
            first, second = min(pairs, key=lambda p: self.ranks.get(p, float("inf")))
            if (first, second) not in self.ranks:
                break
            new, i = [], 0
            while i < len(word):
                try:
                    j = word.index(first, i)
                except ValueError:
                    new.extend(word[i:]); break
                new.extend(word[i:j]); i = j
                if word[i] == first and i < len(word) - 1 and word[i + 1] == second:
                    new.append(first + second); i += 2
                else:
                    new.append(word[i]); i += 1
            word = tuple(new)
        self.cache[token] = " ".join(word)
        return self.cache[token]

    @staticmethod
    def basic_tokenizer(text):  # BasicTokenizer(strip_accents=False, do_split_on_punc=False), the no-ftfy path
        out = []
        for ch in text:
            cp, cat = ord(ch), unicodedata.category(ch)
            if cp == 0 or cp == 0xFFFD or (cat.startswith("C") and ch not in "\t\n\r"):
                continue
            out.append(" " if ch in " \t\n\r" or cat == "Zs" else ch)
        text = "".join(f" {c} " if _is_cjk(ord(c)) else c for c in "".join(out))
        return " ".join(t.lower() for t in unicodedata.normalize("NFC", text).split())

    def tokenize_piece(self, text):
        if self.use_ftfy:
            import ftfy
            text = re.sub(r"\s+", " ", ftfy.fix_text(text)).strip().lower()
        else:
            text = self.basic_tokenizer(text)
        ids = []
        for t in re.findall(self.PAT, text):
            t = "".join(self.b2u[b] for b in t.encode("utf-8"))
            ids += [self.enc[p] for p in self.bpe(t).split(" ")]
        return ids

    def __call__(self, text, max_length=77):
        ids = []
        for piece in self.split_re.split(text):
            if piece in (SOT, EOT, self.pad):
                ids.append(self.enc[piece])
            elif piece:
                ids += self.tokenize_piece(piece)
        ids = [self.enc[SOT]] + ids[:max_length - 2] + [self.enc[EOT]]
        return ids + [self.enc[self.pad]] * (max_length - len(ids))


def _is_cjk(cp):
    return any(a <= cp <= b for a, b in [(0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F),
                                         (0x2B740, 0x2B81F), (0x2B820, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F)])


def pipeline_tokenize(tok, prompts):  # exactly StableDiffusionPipeline.encode_prompt
    return [tok(p, padding="max_length", max_length=tok.model_max_length, truncation=True).input_ids for p in prompts]


TF4_SCRIPT = r"""
import sys, json
if sys.argv[2] == "noftfy": sys.modules["ftfy"] = None
from transformers import CLIPTokenizer, CLIPTokenizerFast
import transformers
d = sys.argv[1]; prompts = json.loads(sys.stdin.read())
slow = CLIPTokenizer.from_pretrained(d)
fast = CLIPTokenizerFast.from_pretrained(d, from_slow=True)
call = lambda t: [t(p, padding="max_length", max_length=77, truncation=True).input_ids for p in prompts]
out = {"version": transformers.__version__, "ftfy": slow.fix_text is not None, "slow": call(slow), "fast": call(fast)}
if sys.argv[2] == "ftfy":
    slow.save_pretrained(d + "_tf4save")
print(json.dumps(out))
"""


def tokenizer_reference(tmp: Path, tf4: str | None):
    from transformers import CLIPTokenizer
    gz = bpe_file()
    res = {"bpe_file": {"name": gz.name, "sha256": hashlib.sha256(gz.read_bytes()).hexdigest(),
                        "open_clip_torch": md.version("open_clip_torch"), "n_merges_used_by_clip": 48894,
                        "header_line": gzip.open(gz).read().decode("utf-8").split("\n")[0]},
           "call": "tokenizer(prompt, padding='max_length', max_length=77, truncation=True).input_ids",
           "prompts": PROMPTS, "variants": {}, "tf4_crosscheck": None}
    for vname, n, pad in [("tiny_eot", N_TINY_MERGES, EOT), ("tiny_bang", N_TINY_MERGES, "!"),
                          ("full_eot", None, EOT), ("full_bang", None, "!")]:
        merges = clip_merges(n)
        d = tmp / f"tok_{vname}"
        write_tokenizer(d, merges, pad)
        tok = CLIPTokenizer.from_pretrained(str(d))
        ids = pipeline_tokenize(tok, PROMPTS)
        slow_f, slow_n = SlowClip(merges, pad, True), SlowClip(merges, pad, False)
        v = {"vocab_size": len(clip_vocab(merges)), "n_merges": len(merges), "pad_token": pad,
             "pad_id": tok.pad_token_id, "bos_id": tok.bos_token_id, "eos_id": tok.eos_token_id, "cases": []}
        for p, ii in zip(PROMPTS, ids):
            c = {"input_ids": ii}
            sf, sn = slow_f(p), slow_n(p)
            c["slow_ftfy"] = "same" if sf == ii else sf
            c["slow_noftfy"] = "same" if sn == ii else sn
            v["cases"].append(c)
        if tf4:
            chk = {}
            for mode in ["ftfy", "noftfy"]:
                r = subprocess.run([sys.executable, "-c", TF4_SCRIPT, str(d), mode], input=json.dumps(PROMPTS),
                                   capture_output=True, text=True, env={**os.environ, "PYTHONPATH": tf4})
                o = json.loads(r.stdout.strip().splitlines()[-1])
                mine = [slow_f(p) if mode == "ftfy" else slow_n(p) for p in PROMPTS]
                chk[mode] = {"transformers": o["version"], "ftfy_active": o["ftfy"],
                             "inline_slow_equals_tf4_slow": o["slow"] == mine,
                             "tf4_fast_equals_tf4_slow": o["fast"] == o["slow"],
                             "tf4_fast_mismatch_prompts": [i for i, (a, b) in enumerate(zip(o["fast"], o["slow"])) if a != b]}
            saved = Path(str(d) + "_tf4save")
            chk["files_differing_from_tf4_load_then_save_pretrained"] = [
                f for f in ["vocab.json", "merges.txt", "special_tokens_map.json", "tokenizer_config.json"]
                if (saved / f).read_bytes() != (d / f).read_bytes()]
            res["tf4_crosscheck"] = {**(res["tf4_crosscheck"] or {}), vname: chk}
        res["variants"][vname] = v
    from transformers import __version__ as tfv
    cases = res["variants"]["full_eot"]["cases"]
    res["notes"] = {
        "ftfy_installed": importlib.util.find_spec("ftfy") is not None,
        "input_ids_from": f"transformers {tfv} CLIPTokenizer loaded from the folder files (5.x has only the "
                          "tokenizers-backed class: NFC + \\s+->' ' + lowercase, no ftfy), as diffusers calls it",
        "prompts_where_slow_ftfy_differs": [i for i, c in enumerate(cases) if c["slow_ftfy"] != "same"],
        "prompts_where_slow_noftfy_differs": [i for i, c in enumerate(cases) if c["slow_noftfy"] != "same"],
        "why": "ftfy.fix_text uncurls quotes, unescapes HTML entities (&amp;), folds full-width chars and ligatures; "
               "the no-ftfy slow path (BERT BasicTokenizer) puts spaces around CJK ideographs",
        "special_tokens_map_pad": "tiny_bang/full_bang write pad_token as the plain string '!' (as hub SD2.x folders "
                                  "do); transformers 4.x re-saves it as an AddedToken dict (same meaning)"}
    return res


# ---------------------------------------------------------------------------------------------- models
SCHED_BASE = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                  trained_betas=None, clip_sample=False, set_alpha_to_one=False, skip_prk_steps=True, steps_offset=1)
CONFIGS = {
    "tiny_sd15": dict(
        seed=1500, pad=EOT,
        text=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                  max_position_embeddings=77, hidden_act="quick_gelu", layer_norm_eps=1e-5, projection_dim=32),
        unet=dict(sample_size=8, in_channels=4, out_channels=4, layers_per_block=2, block_out_channels=(16, 24),
                  down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                  up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=32, attention_head_dim=8,
                  norm_num_groups=8, use_linear_projection=False),
        vae=dict(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 2,
                 up_block_types=("UpDecoderBlock2D",) * 2, block_out_channels=(8, 16), layers_per_block=1,
                 latent_channels=4, norm_num_groups=4, sample_size=32, scaling_factor=0.18215),
        sched=dict(SCHED_BASE, prediction_type="epsilon", timestep_spacing="leading")),
    "tiny_sd21": dict(
        seed=2100, pad="!",
        text=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                  max_position_embeddings=77, hidden_act="gelu", layer_norm_eps=1e-5, projection_dim=32),
        unet=dict(sample_size=8, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(16, 16, 24),
                  down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
                  up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=32,
                  attention_head_dim=(2, 4, 4), transformer_layers_per_block=1, norm_num_groups=8,
                  use_linear_projection=True, upcast_attention=True),
        vae=dict(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 3,
                 up_block_types=("UpDecoderBlock2D",) * 3, block_out_channels=(8, 16, 16), layers_per_block=1,
                 latent_channels=4, norm_num_groups=4, sample_size=32, scaling_factor=0.18215),
        sched=dict(SCHED_BASE, prediction_type="v_prediction", timestep_spacing="trailing")),
}


def randomize(model: nn.Module, seed: int):
    """Re-initialise every parameter from one seeded generator (module order): Linear/Conv weights N(0, 1/fan_in),
    biases N(0, 0.1^2), Group/LayerNorm weight 1+N(0,0.1^2), bias N(0,0.1^2), embeddings N(0, 0.5^2)."""
    g = torch.Generator().manual_seed(seed)
    done = set()
    with torch.no_grad():
        for _, m in model.named_modules():
            ps = {k: p for k, p in m.named_parameters(recurse=False)}
            if not ps:
                continue
            if isinstance(m, (nn.GroupNorm, nn.LayerNorm)):
                std = {"weight": 0.1, "bias": 0.1}; mean = {"weight": 1.0, "bias": 0.0}
            elif isinstance(m, (nn.Linear, nn.Conv2d)):
                std = {"weight": m.weight[0].numel() ** -0.5, "bias": 0.1}; mean = {"weight": 0.0, "bias": 0.0}
            elif isinstance(m, nn.Embedding):
                std, mean = {"weight": 0.5}, {"weight": 0.0}
            else:
                raise TypeError(f"unhandled module with parameters: {type(m)}")
            for k, p in ps.items():
                p.copy_(mean[k] + std[k] * torch.randn(p.shape, generator=g))
                done.add(id(p))
    assert all(id(p) in done for p in model.parameters())
    assert not any(torch.all(p == 0) for p in model.parameters())


def build_folder(name: str, d: Path):
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer
    from diffusers import UNet2DConditionModel, AutoencoderKL, EulerDiscreteScheduler, StableDiffusionPipeline
    c = CONFIGS[name]
    merges = clip_merges(N_TINY_MERGES)
    vocab = clip_vocab(merges)
    write_tokenizer(d / "tokenizer", merges, c["pad"])
    torch.manual_seed(c["seed"])
    te = CLIPTextModel(CLIPTextConfig(vocab_size=len(vocab), bos_token_id=vocab[SOT], eos_token_id=vocab[EOT],
                                      pad_token_id=vocab[c["pad"]], **c["text"]))
    unet, vae = UNet2DConditionModel(**c["unet"]), AutoencoderKL(**c["vae"])
    for i, m in enumerate([te, unet, vae]):
        randomize(m, c["seed"] + i + 1)
        m.eval()
    sched = EulerDiscreteScheduler.from_config(c["sched"])
    tok = CLIPTokenizer.from_pretrained(str(d / "tokenizer"))
    te.save_pretrained(d / "text_encoder", safe_serialization=True)
    # transformers 5.x saves CLIPTextModel keys without the `text_model.` prefix; every hub SD folder (and transformers
    # 4.x) has `text_model.embeddings...`. Store the hub layout (5.x loads both; references() asserts equality).
    f = d / "text_encoder" / "model.safetensors"
    sd = load_file(str(f))
    save_file({k if k.startswith("text_model.") else "text_model." + k: v for k, v in sd.items()}, str(f),
              metadata={"format": "pt"})
    unet.save_pretrained(d / "unet", safe_serialization=True)
    vae.save_pretrained(d / "vae", safe_serialization=True)
    sched.save_pretrained(d / "scheduler")
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=te, tokenizer=tok, unet=unet, scheduler=sched,
                                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.save_config(d)  # model_index.json only


class Capture:
    """Records every randn_tensor drawn by the pipeline / schedulers (they import it by name)."""
    def __init__(self):
        import diffusers.utils.torch_utils as tu
        self.orig, self.draws, self.mods = tu.randn_tensor, [], []
        for mn, m in list(sys.modules.items()):
            if mn.startswith("diffusers.") and getattr(m, "randn_tensor", None) is self.orig:
                self.mods.append(m)

    def __enter__(self):
        def wrapped(*a, **k):
            t = self.orig(*a, **k); self.draws.append(t.clone()); return t
        for m in self.mods:
            m.randn_tensor = wrapped
        return self

    def __exit__(self, *a):
        for m in self.mods:
            m.randn_tensor = self.orig


def hooks(model, paths, prefix, store):
    hs = []
    for p in paths:
        def f(_m, _i, o, p=p):
            store[f"{prefix}{p}"] = (o[0] if isinstance(o, (tuple, list)) else getattr(o, "last_hidden_state", o)).detach().clone()
        hs.append(model.get_submodule(p).register_forward_hook(f))
    return hs


def references(name: str, d: Path):
    from diffusers import (StableDiffusionPipeline, EulerDiscreteScheduler, EulerAncestralDiscreteScheduler,
                           DDIMScheduler, DPMSolverMultistepScheduler, LCMScheduler)
    from diffusers.utils.torch_utils import randn_tensor
    pipe = StableDiffusionPipeline.from_pretrained(str(d), safety_checker=None, requires_safety_checker=False,
                                                   local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    te, unet, vae, tok = pipe.text_encoder, pipe.unet, pipe.vae, pipe.tokenizer
    T, J = {}, {"folder": name, "config": {k: v for k, v in CONFIGS[name].items()}}
    rng = np.random.default_rng(CONFIGS[name]["seed"])
    randn = lambda *s: torch.from_numpy(rng.standard_normal(s, dtype=np.float32))
    # --- text encoder, CFG order [uncond, cond]
    prompts = ["", "a red cube on a table"]
    ids = pipeline_tokenize(tok, prompts)
    J["text"] = {"prompts": prompts, "prompt_ids": ids, "order": "CFG batch order: [negative/uncond '', cond]",
                 "note": "text.hidden = CLIPTextModel(input_ids)[0] (last_hidden_state after final_layer_norm, no "
                         "attention mask: padding positions use the causal mask only) == encode_prompt(clip_skip=None)"}
    st = te.state_dict()
    assert all(torch.equal(st[k.removeprefix("text_model.")] if k not in st else st[k], v)
               for k, v in load_file(str(d / "text_encoder" / "model.safetensors")).items())
    root = te.text_model if hasattr(te, "text_model") else te  # transformers 5.x flattened the module tree
    layers = [f"encoder.layers.{i}" for i in range(te.config.num_hidden_layers)]
    hs = hooks(root, ["embeddings"] + layers, "text.probe.", T)
    with torch.no_grad():
        T["text.hidden"] = te(torch.tensor(ids))[0]
    for h in hs:
        h.remove()
    with torch.no_grad():
        enc = pipe.encode_prompt(prompts[1], "cpu", 1, True, prompts[0])
    J["text"]["encode_prompt_max_abs_diff"] = float((torch.cat([enc[1], enc[0]]) - T["text.hidden"]).abs().max())
    assert J["text"]["encode_prompt_max_abs_diff"] < 1e-5
    # --- unet
    T["unet.sample"] = randn(2, 4, 8, 8)
    T["unet.timestep"] = torch.tensor([999.0, 250.0])
    nb = len(unet.config.block_out_channels)
    paths = (["time_proj", "time_embedding", "conv_in"] + [f"down_blocks.{i}" for i in range(nb)] + ["mid_block"]
             + [f"up_blocks.{i}" for i in range(nb)] + ["conv_norm_out"]
             + ["down_blocks.0.attentions.0", "down_blocks.0.resnets.0", "mid_block.attentions.0"])
    hs = hooks(unet, paths, "unet.probe.", T)
    with torch.no_grad():
        T["unet.out"] = unet(T["unet.sample"], T["unet.timestep"], encoder_hidden_states=T["text.hidden"]).sample
    for h in hs:
        h.remove()
    T["unet.temb"] = T.pop("unet.probe.time_embedding")
    J["unet"] = {"call": "unet(unet.sample, unet.timestep, encoder_hidden_states=text.hidden).sample",
                 "timestep": T["unet.timestep"].tolist(), "probes": "forward-hook outputs (first element of tuples),"
                 " NCHW; unet.temb = time_embedding(time_proj(t)); unet.probe.time_proj = sinusoidal embedding"}
    # --- vae decode
    f = 2 ** (len(vae.config.block_out_channels) - 1)
    lat = randn(1, 4, 32 // f, 32 // f)
    T["vae.latents"], T["vae.decode_input"] = lat, lat / vae.config.scaling_factor
    vp = ["post_quant_conv", "decoder.conv_in", "decoder.mid_block"] + \
         [f"decoder.up_blocks.{i}" for i in range(len(vae.config.block_out_channels) - 1)]  # last ones: size
    hs = hooks(vae, vp, "vae.probe.", T)
    with torch.no_grad():
        T["vae.image"] = vae.decode(T["vae.decode_input"]).sample
    for h in hs:
        h.remove()
    J["vae"] = {"call": "vae.decode(vae.decode_input).sample, decode_input = vae.latents / scaling_factor",
                "scaling_factor": vae.config.scaling_factor, "spatial_factor": f,
                "latents_shape": list(lat.shape), "image_shape": list(T["vae.image"].shape)}
    # --- scheduler trajectories through the real pipeline
    H = unet.config.sample_size * pipe.vae_scale_factor
    T["sched.init_latents"] = randn(1, 4, 8, 8)
    base = dict(pipe.scheduler.config)
    runs = {"euler": (EulerDiscreteScheduler, {}), "euler_ancestral": (EulerAncestralDiscreteScheduler, {}),
            "ddim": (DDIMScheduler, {}),
            "dpmpp_2m": (DPMSolverMultistepScheduler, dict(algorithm_type="dpmsolver++", solver_order=2, use_karras_sigmas=False)),
            "dpmpp_2m_karras": (DPMSolverMultistepScheduler, dict(algorithm_type="dpmsolver++", solver_order=2, use_karras_sigmas=True)),
            "lcm": (LCMScheduler, {})}
    J["sched"] = {"prompt": prompts[1], "negative_prompt": "", "guidance_scale": 7.5, "num_inference_steps": 4,
                  "height": H, "width": H, "generator": "torch.Generator('cpu').manual_seed(1234)",
                  "init": "pipeline(latents=sched.init_latents): it multiplies the raw N(0,1) sched.init_latents "
                          "by scheduler.init_noise_sigma before step 0", "runs": {}}
    for key, (cls, extra) in runs.items():
        pipe.scheduler = cls.from_config(base, **extra)
        steps = []
        cb = lambda p, i, t, kw: (steps.append(kw["latents"].clone()), kw)[1]
        with Capture() as cap, torch.no_grad():
            pipe(prompts[1], negative_prompt="", num_inference_steps=4, guidance_scale=7.5, height=H, width=H,
                 latents=T["sched.init_latents"].clone(), generator=torch.Generator().manual_seed(1234),
                 output_type="latent", callback_on_step_end=cb)
        s = pipe.scheduler
        for i, x in enumerate(steps):
            T[f"sched.{key}.step{i}"] = x
        for i, x in enumerate(cap.draws):
            T[f"sched.{key}.noise{i}"] = x
        J["sched"]["runs"][key] = {
            "class": cls.__name__, "config": {k: v for k, v in dict(s.config).items() if not k.startswith("_")},
            "timesteps": s.timesteps.tolist(), "sigmas": s.sigmas.tolist() if hasattr(s, "sigmas") else None,
            "init_noise_sigma": float(s.init_noise_sigma), "n_noise_draws": len(cap.draws),
            "noise_shapes": [list(x.shape) for x in cap.draws]}
    # --- end to end with the folder's own scheduler
    pipe.scheduler = EulerDiscreteScheduler.from_config(base)
    steps = []
    cb = lambda p, i, t, kw: (steps.append(kw["latents"].clone()), kw)[1]
    with Capture() as cap, torch.no_grad():
        img = pipe("a red cube on a table", negative_prompt="", num_inference_steps=4, guidance_scale=7.5, height=H,
                   width=H, generator=torch.Generator().manual_seed(0), output_type="np", callback_on_step_end=cb).images
    rep = randn_tensor((1, 4, H // pipe.vae_scale_factor, H // pipe.vae_scale_factor), generator=torch.Generator().manual_seed(0))
    assert len(cap.draws) == 1 and torch.equal(cap.draws[0], rep)
    T["pipe.init_latents"], T["pipe.image"] = rep, torch.from_numpy(img[0].astype(np.float32))
    for i, x in enumerate(steps):
        T[f"pipe.step{i}"] = x
    with torch.no_grad():
        T["pipe.decoded"] = vae.decode(steps[-1] / vae.config.scaling_factor).sample
    post = (T["pipe.decoded"][0] / 2 + 0.5).clamp(0, 1).permute(1, 2, 0)
    J["pipe"] = {"call": "pipe('a red cube on a table', negative_prompt='', num_inference_steps=4, guidance_scale=7.5, "
                         f"height={H}, width={H}, generator=torch.Generator().manual_seed(0), output_type='np')",
                 "scheduler": "EulerDiscreteScheduler from scheduler/scheduler_config.json",
                 "init_latents": "randn_tensor((1,4,h,w), generator=torch.Generator().manual_seed(0)) == torch.randn "
                                 "with that generator; reproduction equals the pipeline's draw: True",
                 "timesteps": pipe.scheduler.timesteps.tolist(),
                 "image": "pipe.image [H,W,3] = clamp(pipe.decoded/2+0.5, 0, 1) NHWC; pipe.decoded = vae.decode(pipe.step3/scaling_factor)",
                 "postprocess_max_abs_diff": float((post - T["pipe.image"]).abs().max()),
                 "fraction_clipped": float(((T["pipe.image"] == 0) | (T["pipe.image"] == 1)).float().mean())}
    T = {k: v.float().contiguous() for k, v in sorted(T.items())}
    J["tensors"] = {k: {"shape": list(v.shape), "absmax": float(v.abs().max()), "std": float(v.std()) if v.numel() > 1 else 0.0}
                    for k, v in T.items()}
    J["weights"] = {sub: {k: list(v.shape) for k, v in load_file(next((d / sub).glob("*.safetensors"))).items()}
                    for sub in ["text_encoder", "unet", "vae"]}
    return T, J


# ---------------------------------------------------------------------------------------------- driver
VERSION_KEYS = {"_diffusers_version", "transformers_version", "versions"}


def versions():
    v = {p: md.version(p) for p in ["torch", "diffusers", "transformers", "safetensors", "numpy", "open_clip_torch",
                                      "ftfy", "regex", "tokenizers"]}
    return {**v, "python": sys.version.split()[0]}


def generate(out: Path, tf4):
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        tr = tokenizer_reference(Path(tmp), tf4)
    tr["versions"] = versions()
    (out / "tokenizer_reference.json").write_text(compact_json(tr), encoding="utf-8")
    for name in CONFIGS:
        d = out / name
        shutil.rmtree(d, ignore_errors=True)
        build_folder(name, d)
        T, J = references(name, d)
        J["versions"] = versions()
        save_file(T, str(d / "reference.safetensors"), metadata={"format": "pt"})
        (d / "reference.json").write_text(compact_json(J), encoding="utf-8")
    (out / "README.md").write_text(README, encoding="utf-8")
    files = sorted(p for p in out.rglob("*") if p.is_file() and p.name != "manifest.json")
    man = {"generator": "tools/sd_fixtures.py", "versions": versions(),
           "total_bytes": sum(p.stat().st_size for p in files),
           "files": {str(p.relative_to(out)): {"bytes": p.stat().st_size, "sha256": hashlib.sha256(p.read_bytes()).hexdigest()}
                     for p in files}}
    (out / "manifest.json").write_text(jdump(man), encoding="utf-8")
    return man


def finite(o):
    """Strict JSON (serde_json rejects NaN/Infinity): non-finite floats become the strings "inf", "-inf", "nan"
    (e.g. DPMSolverMultistepScheduler's lambda_min_clipped = -inf)."""
    if isinstance(o, float) and not np.isfinite(o):
        return "nan" if np.isnan(o) else ("inf" if o > 0 else "-inf")
    if isinstance(o, dict):
        return {k: finite(v) for k, v in o.items()}
    return [finite(v) for v in o] if isinstance(o, (list, tuple)) else o


def compact_json(obj):
    """Indented strict JSON whose innermost number lists stay on one line."""
    s = json.dumps(finite(obj), indent=1, ensure_ascii=False, sort_keys=True, allow_nan=False)
    return re.sub(r"\[\s+([-0-9.eE,\s]+?)\s+\]", lambda m: "[" + re.sub(r"\s+", " ", m.group(1)) + "]", s) + "\n"


def strip_versions(o):
    if isinstance(o, dict):
        return {k: strip_versions(v) for k, v in o.items() if k not in VERSION_KEYS and k != "tf4_crosscheck"}
    return [strip_versions(v) for v in o] if isinstance(o, list) else o


def check(tf4):
    worst = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        new = Path(tmp) / "sd"
        generate(new, tf4)
        a = {str(p.relative_to(OUT)) for p in OUT.rglob("*") if p.is_file()}
        b = {str(p.relative_to(new)) for p in new.rglob("*") if p.is_file()}
        ok = a == b
        if not ok:
            print("file sets differ:", sorted(a ^ b))
        for rel in sorted(a & b):
            pa, pb = OUT / rel, new / rel
            if rel.endswith(".safetensors"):
                ta, tb = load_file(str(pa)), load_file(str(pb))
                if ta.keys() != tb.keys():
                    ok = False; print(f"{rel}: tensor names differ"); continue
                m = max((float((ta[k].double() - tb[k].double()).abs().max()) for k in ta if ta[k].numel()), default=0.0)
                worst = max(worst, m)
                print(f"{rel}: {len(ta)} tensors, max abs diff {m:.3g}")
                ok &= m <= 1e-5 and all(ta[k].shape == tb[k].shape for k in ta)
            elif rel.endswith(".json") and rel != "manifest.json":
                same = strip_versions(json.loads(pa.read_text())) == strip_versions(json.loads(pb.read_text()))
                ok &= same
                if not same:
                    print(f"{rel}: JSON content differs")
            elif rel != "manifest.json":
                same = pa.read_bytes() == pb.read_bytes()
                ok &= same
                if not same:
                    print(f"{rel}: bytes differ")
    print(f"check-only: {'OK' if ok else 'MISMATCH'} (worst tensor max abs diff {worst:.3g})")
    return ok


README = r"""# Stable Diffusion fixtures (tiny, random weights)

Generated by `python3 tools/sd_fixtures.py` (CPU, fp32, seeded; `--check-only` regenerates in a temp dir and compares).
Versions used: manifest.json. All weights are random: outputs are only meaningful as parity references.

Files
- `tokenizer_reference.json`: ~16 prompts -> `input_ids` (padded to 77, truncated, as diffusers' encode_prompt calls
  the tokenizer) for 4 vocabularies: `tiny_*` (first 2000 CLIP merges, vocab 2514: ids 0-255 bytes, 256-511 bytes+`</w>`,
  512.. merges, 2512 `<|startoftext|>`, 2513 `<|endoftext|>`) and `full_*` (all 48894 merges, vocab 49408, rebuild from
  open_clip's bpe_simple_vocab_16e6.txt.gz, sha256 recorded), each with pad `<|endoftext|>` (`*_eot`, SD1.x) and `!`
  (`*_bang`, SD2.x). `input_ids` = installed transformers CLIPTokenizer (what diffusers uses now); `slow_ftfy` /
  `slow_noftfy` = transformers-4.x slow tokenizer with / without ftfy ("same" when identical).
- `tiny_sd15/`, `tiny_sd21/`: diffusers StableDiffusionPipeline folders (load with `from_pretrained(dir)`), plus
  `reference.safetensors` (f32) and `reference.json` (ids, settings, scheduler timesteps/sigmas/configs, shapes,
  parameter names+shapes of every weight file).

Tensor names (reference.safetensors, NCHW as torch): `text.hidden` [2,77,32] (batch = CFG order [uncond "", cond]);
`text.probe.*`; `unet.sample`, `unet.timestep` ([999,250], one per sample), `unet.out`, `unet.temb`, `unet.probe.<module
path>` (forward-hook output, first tuple element); `vae.latents`, `vae.decode_input` (= latents/0.18215, what decode got),
`vae.image`, `vae.probe.*`; `sched.init_latents` (raw N(0,1); the pipeline multiplies by init_noise_sigma),
`sched.<run>.step<i>` (latents after step i), `sched.<run>.noise<i>` (every randn the scheduler drew, in order);
JSON is strict (non-finite floats are written as the strings "inf"/"-inf"/"nan");
`pipe.init_latents`, `pipe.step<i>`, `pipe.decoded` [1,3,H,W], `pipe.image` [H,W,3] in [0,1].

Subtleties an implementation must replicate
- Timestep embedding: Timesteps(C0, flip_sin_to_cos=True, freq_shift=0): f_k = exp(-ln(10000) k/half), emb = [cos(t f), sin(t f)];
  then Linear -> SiLU -> Linear (dim 4*C0). Timesteps are floats (Euler) or ints (DDIM/DPM/LCM); one per batch row.
- `attention_head_dim` in UNet configs is really the NUMBER OF HEADS (num_attention_heads defaults to it): SD1.x 8 heads
  everywhere; SD2.x list per down block (mid uses the last, up blocks use it reversed). Head dim = channels/heads.
- use_linear_projection: proj_in/proj_out are Linear on (B,HW,C) after GroupNorm (SD2); else 1x1 Conv before reshape (SD1).
- GEGLU: proj -> chunk(2, -1) = (hidden, gate); out = hidden * gelu_erf(gate). Attn q/k/v have no bias, to_out.0 has.
- upcast_attention only changes dtype of QK^T/softmax (no-op in fp32). GroupNorm eps: resnets 1e-5 (UNet), 1e-6 (VAE,
  Transformer2D norm); LayerNorm 1e-5. CLIP: quick_gelu (x*sigmoid(1.702x)) for SD1, gelu for SD2; causal mask, no pad mask.
- VAE mid-block attention: one head (dim = channels), GroupNorm then separate to_q/to_k/to_v Linear, residual add.
  Upsample = nearest x2 then 3x3 conv. VAE spatial factor = 2^(len(block_out_channels)-1) (2 for sd15, 4 for sd21 here).
- CFG: latents duplicated to batch 2, encoder states [uncond, cond], noise = u + g (c - u), then scheduler.step.
  Euler/EulerA scale_model_input divides by sqrt(sigma^2+1); DDIM/DPM/LCM do not.
- Spacing: sd15 uses `leading` + steps_offset=1 (4 steps: 751,501,251,1; DPM's leading differs: 801,601,401,201),
  sd21 uses `trailing` (999,749,499,249) and v_prediction. Karras DPM timesteps come from sigmas (999,687,146,0);
  LCM ignores the spacing (999,759,499,259; noise drawn after every step but the last). Euler init_noise_sigma is
  sigma_max for linspace/trailing but sqrt(sigma_max^2+1) for leading. All resolved configs are in reference.json.
- SD2 tokenizer: pad token "!" is a special added token, so a literal "!" in a prompt is split out as id 0 even inside
  "!!" (BPE would have merged it); "<|endoftext|>"/"<|startoftext|>" typed literally (any case) map to the special ids.
- Tokenizer paths differ (tokenizer_reference.json "notes"): transformers 5.x (= 4.x fast) does NFC, whitespace
  collapse, lowercase; the 4.x slow path with ftfy also uncurls quotes, unescapes &amp;, folds full-width/ligatures.
- text_encoder/model.safetensors uses hub key names `text_model.encoder.layers.N...` (transformers 5.x would save
  them without the `text_model.` prefix; both load). Pooled output is not used by SD.
"""


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check-only", action="store_true")
    ap.add_argument("--tf4", help="PYTHONPATH dir with transformers 4.x (optional slow-tokenizer cross-check)")
    a = ap.parse_args()
    if a.check_only:
        sys.exit(0 if check(a.tf4) else 1)
    m = generate(OUT, a.tf4)
    print(f"wrote {len(m['files'])} files, {m['total_bytes']} bytes")
