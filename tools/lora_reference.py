#!/usr/bin/env python3
"""PyTorch + PEFT reference for Kiln's LoRA training: exact batches, init, per-step numbers.

Runs a short LoRA fine-tune of a causal LM with Hugging Face transformers + peft and writes
everything another implementation (Kiln) needs to reproduce it step by step: the token batches,
the initial adapter, per-step loss / lr / grad norm, step-0 gradients, the final adapter, and
probe logits. Runs on CUDA (if present) or CPU. Needs torch, transformers, peft, safetensors,
numpy (and `gguf` for GGUF models). Made with torch 2.11, transformers 5.17, peft 0.21.

Usage (from the repository root):
    python3 tools/lora_reference.py --model tests/fixtures/models/llama3 \\
        --data data/lora-facts/train.jsonl --out OUT [--steps 30 --batch 2 --seq-len 32 ...]
    python3 tools/lora_reference.py --model M --random-tokens --init-b-random 0.02 --out OUT
    python3 tools/lora_reference.py --bench [--model M | --arch smollm2-135m]   (JSON to stdout)
    python3 tools/lora_reference.py --verify OUT     (replays OUT with an independent,
        PEFT-free implementation of the conventions below; prints JSON, exit 1 on mismatch)
The fixtures in tests/fixtures/lora/ were made with it (their README has the commands).

--model is an HF folder (config.json + safetensors) or a .gguf file, loaded with
`AutoModelForCausalLM.from_pretrained(dir, gguf_file=NAME, dtype=torch.float32)` (transformers
dequantizes to f32; it ignores llama.cpp's rope_freqs / Llama-3 rope scaling, so for the llama3
fixture use its HF folder). --arch smollm2-135m instead builds SmolLM2-135M's architecture with
random weights (torch.manual_seed(seed); for benchmarks where the GGUF is not at hand).

CONVENTIONS (all of them; a parity implementation must follow each)
  Model      float32 weights and math, attention implementation "eager" by default (--attn),
             train() mode, every dropout 0 (LoRA dropout 0; the Llama configs have attention
             dropout 0), use_cache=False, no attention_mask (plain causal), position ids 0..T-1
             in every row. Base weights frozen (tied embeddings untouched); only LoRA trains.
  LoRA       peft.LoraConfig(r, lora_alpha, target_modules, lora_dropout=0, bias="none",
             use_rslora, init_lora_weights=True), task CAUSAL_LM. For every targeted nn.Linear
             W [out, in]: y = x W^T + scaling * (x A^T) B^T with A = lora_A [r, in],
             B = lora_B [out, r]; scaling = alpha / r, or alpha / sqrt(r) with --rslora.
             PEFT tensor names (adapter_model.safetensors, grads_step0.safetensors):
             base_model.model.model.layers.{i}.self_attn.{q,k,v,o}_proj.lora_{A,B}.weight and
             base_model.model.model.layers.{i}.mlp.{gate,up,down}_proj.lora_{A,B}.weight.
             config.json lists every name and shape.
  Init       PEFT default, seed-controlled: torch.manual_seed(seed) right before
             get_peft_model (model on CPU); A = kaiming_uniform_(a=sqrt(5)) (U(-1/sqrt(in),
             1/sqrt(in))), B = 0. The RNG stream PEFT consumes is not meant to be replayed:
             start from init_adapter/ instead. --init-b-random STD then overwrites every B with
             STD * N(0,1) from torch.Generator().manual_seed(seed + 1) (CPU), filled in
             named_parameters() order, so that grad(A) is non-zero at step 0 (with B = 0 it is
             exactly 0). init_adapter/ is saved after that fill.
  Data       --data FILE: JSONL, one {"messages": [...]} a line (OpenAI chat shape). Each
             conversation is rendered with the tokenizer's chat_template (for SmolLM2 that adds
             its default system message when the first message is not a system one) and
             tokenized with add_special_tokens=False. Loss mask, assistant-only: for each
             assistant message the text rendered after the generation prompt
             ("<|im_start|>assistant\\n" in ChatML) up to and including the first end-of-turn
             string (--eot, default "<|im_end|>") is trained; the header, the "\\n" after
             <|im_end|>, system and user turns are not. Pieces are tokenized separately and the
             concatenation is checked equal to tokenizing the whole rendering.
  Packing    conversations in file order are concatenated into one stream (no separator beyond
             the template's own text) and cut into consecutive non-overlapping chunks of
             exactly --seq-len tokens (HF run_clm's group_texts); the tail shorter than seq-len
             is dropped, and so is any chunk with no trained target. Chunks are not isolated:
             a row may span conversations and attends across them. Chunk order: one
             torch.randperm(n_chunks, generator=Generator().manual_seed(seed + 3)) per epoch,
             epochs repeated (new permutation each, same generator) until steps * batch rows
             are drawn; rows fill batches in order.
             --random-tokens: ids = torch.randint(vocab, (steps, batch, seq_len),
             generator=Generator().manual_seed(seed + 2)), every position trained.
  Labels     HF convention: labels[b][t] = input_ids[b][t] if token t is trained else -100.
             The loss at position t uses logits[b][t] to predict labels[b][t+1] (labels[b][0] is
             never a target; logits at t = T-1 are unused). batches.json also has
             loss_mask[b][t] = 1 iff labels[b][t+1] != -100 (0 at t = T-1).
  Loss       HF's ForCausalLMLoss with no num_items_in_batch: cross entropy (f32 logits,
             natural log) averaged over ALL unmasked targets of the whole batch (sum over
             every row and position / total count), not a mean of per-row means.
  Step k     (0-based) forward, backward, grads (saved for k = 0), global grad norm
             total = ||(||g_1||_2, ..., ||g_n||_2)||_2 over all LoRA tensors (recorded, before
             clipping), then every g *= min(1, grad_clip / (total + 1e-6)) (torch
             clip_grad_norm_, applied always; --grad-clip <= 0 disables), then AdamW with
             lr_k, then the scheduler steps, then grads are zeroed.
  Schedule   transformers get_{cosine,linear,constant}_schedule_with_warmup(warmup, steps) on
             a LambdaLR: lr_k = lr * f(k), f(k) = k / max(1, warmup) for k < warmup, then
             cosine: 0.5 * (1 + cos(pi * p)), linear: max(0, (steps - k) / max(1, steps -
             warmup)), constant: 1, with p = (k - warmup) / max(1, steps - warmup). So with
             warmup > 0 step 0 runs with lr 0 (HF Trainer's behaviour). steps.json has lr_k.
  AdamW      torch.optim.AdamW(foreach=False), all LoRA tensors in one group, weight decay on
             A and B alike. With t = k + 1, per element (f32 tensors; scalars in Python
             float64): p *= 1 - lr_k * wd; m = lerp(m, g, 1 - b1) = m + (1 - b1)(g - m);
             v = b2 v + (1 - b2) g^2; denom = sqrt(v) / sqrt(1 - b2^t) + eps;
             p += -(lr_k / (1 - b1^t)) * m / denom. m, v start at 0.
  Determinism  torch.use_deterministic_algorithms(True, warn_only=True),
             CUBLAS_WORKSPACE_CONFIG=:4096:8, TF32 off (matmul and cuDNN), float32 matmul
             precision "highest". Two runs on the same machine, thread count and device give
             identical files; CPU and GPU differ in the last bits.

OUTPUT (in --out)
  config.json                 arguments, versions, device, scaling, tensor names/shapes,
                              chunk/token counts, the conventions above in short
  batches.json                per step: input_ids [batch][seq_len], labels (HF, -100 masked),
                              loss_mask (shifted, see Labels), n_loss_tokens, chunk ids
  init_adapter/               PEFT save_pretrained of the initial adapter
                              (adapter_model.safetensors + adapter_config.json, its
                              target_modules sorted for reproducible bytes; PEFT's generated
                              README.md model card is deleted)
  steps.json                  per step: loss, lr, grad_norm (before clipping), clip_coef,
                              n_loss_tokens
  grads_step0.safetensors     step-0 gradients (before clipping) of every lora_A / lora_B,
                              PEFT names, f32
  adapter_after_step{k}/      with --save-after k,...: the adapter after step k's update
  final_adapter/              PEFT save after the last step
  probe.json                  logits at the last position of a fixed probe sequence, for the
                              base model (adapter disabled), the initial and the final
                              adapter: all vocab entries when vocab <= 4096, else the top 20
                              (index, value) pairs; plus the probe ids/text. The probe is the
                              first conversation's messages up to its first assistant turn,
                              rendered with add_generation_prompt=True (--data), or 16 ids
                              from Generator().manual_seed(seed + 4) (--random-tokens).
All floats are written as the exact f32 values (Python repr of the f64 they convert to).

BENCH (--bench): step time (forward + backward + clip + AdamW + scheduler + zero_grad), median
of 10 timed steps after 3 warm-up steps, tokens/s = batch * seq_len / median, and
torch.cuda.max_memory_allocated (peak since the config's start, includes the weights), for
batch 8 x seq 256 (--bench-batch / --bench-seq), LoRA r=--rank on --targets, random tokens, in
three configs: f32 (TF32 off), bf16 autocast (torch.autocast bfloat16; f32 master weights,
TF32 off) and tf32 (f32 with TF32 matmuls/convs). Eager PyTorch (no torch.compile);
attention "sdpa" unless --attn is given; deterministic algorithms off. JSON to stdout.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")

ALL_TARGETS = "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj"
FULL_LOGITS_MAX_VOCAB = 4096
TOPK = 20

# SmolLM2-135M(-Instruct) as its GGUF metadata gives it (llama arch)
ARCHS = {
    "smollm2-135m": dict(
        vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
        num_attention_heads=9, num_key_value_heads=3, head_dim=64, max_position_embeddings=8192,
        rms_norm_eps=1e-5, rope_theta=100000.0, tie_word_embeddings=True,
        bos_token_id=1, eos_token_id=2,
    ),
}


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description="PyTorch + PEFT LoRA training reference (see the module docstring)")
    ap.add_argument("--model", help="HF folder or .gguf file")
    ap.add_argument("--arch", choices=sorted(ARCHS), help="random-weight model of this architecture instead of --model")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--rank", type=int, default=8)
    ap.add_argument("--alpha", type=float, default=16.0)
    ap.add_argument("--targets", default=ALL_TARGETS)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--lr", type=float, default=2e-4)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--seq-len", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--weight-decay", type=float, default=0.01)
    ap.add_argument("--betas", default="0.9,0.999")
    ap.add_argument("--eps", type=float, default=1e-8)
    ap.add_argument("--grad-clip", type=float, default=1.0, help="max global L2 norm; <= 0 disables")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--schedule", choices=["cosine", "linear", "constant"], default="cosine")
    ap.add_argument("--rslora", action="store_true", help="scaling alpha/sqrt(r) instead of alpha/r")
    src = ap.add_mutually_exclusive_group()
    src.add_argument("--data", type=Path, help="JSONL of {messages: [...]} chats")
    src.add_argument("--random-tokens", action="store_true")
    ap.add_argument("--eot", default="<|im_end|>", help="end-of-turn string closing the trained span")
    ap.add_argument("--init-b-random", type=float, default=0.0, metavar="STD",
                    help="fill every lora_B with STD * N(0,1) (seed + 1) after PEFT's init")
    ap.add_argument("--save-after", default="", help="comma list of steps k: save adapter_after_step{k}/")
    ap.add_argument("--attn", choices=["eager", "sdpa"], default=None,
                    help="attention implementation (default eager; sdpa for --bench)")
    ap.add_argument("--device", default="auto", help="auto|cpu|cuda")
    ap.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0: leave)")
    ap.add_argument("--bench", action="store_true")
    ap.add_argument("--bench-batch", type=int, default=8)
    ap.add_argument("--bench-seq", type=int, default=256)
    ap.add_argument("--bench-configs", default="f32,bf16_autocast,tf32")
    ap.add_argument("--verify", type=Path, metavar="OUT",
                    help="replay OUT with an independent implementation of the conventions and compare")
    args = ap.parse_args(argv)
    if args.verify:
        return args
    if not args.model and not args.arch:
        ap.error("--model or --arch is required")
    if not args.bench:
        if args.out is None:
            ap.error("--out is required")
        if not args.data and not args.random_tokens:
            ap.error("--data or --random-tokens is required")
    args.betas = tuple(float(x) for x in args.betas.split(","))
    args.targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    args.save_after = sorted({int(x) for x in args.save_after.split(",") if x.strip()})
    if args.attn is None:
        args.attn = "sdpa" if args.bench else "eager"
    return args


# ------------------------------------------------------------------------------------------
# setup


def set_precision(torch, tf32: bool) -> None:
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    torch.set_float32_matmul_precision("high" if tf32 else "highest")


def pick_device(torch, name: str):
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def versions() -> dict:
    from importlib import metadata

    import torch

    out = {"python": sys.version.split()[0], "torch": torch.__version__}
    for m in ("transformers", "peft", "safetensors", "tokenizers", "numpy", "gguf"):
        try:
            out[m] = metadata.version(m)
        except Exception:  # noqa: BLE001
            out[m] = None
    return out


def load_model(args):
    import torch
    import transformers
    from transformers import AutoModelForCausalLM

    if args.arch:
        kw = dict(ARCHS[args.arch])
        theta = kw.pop("rope_theta")
        import inspect

        if "rope_parameters" in inspect.signature(transformers.LlamaConfig.__init__).parameters:
            kw["rope_parameters"] = {"rope_type": "default", "rope_theta": theta}
        else:
            kw["rope_theta"] = theta
        cfg = transformers.LlamaConfig(**kw, attn_implementation=args.attn)
        torch.manual_seed(args.seed)
        model = transformers.LlamaForCausalLM(cfg).float()
        return model, None, f"random {args.arch} (torch.manual_seed({args.seed}))"
    p = Path(args.model)
    if p.is_file() and p.suffix == ".gguf":
        model = AutoModelForCausalLM.from_pretrained(
            str(p.parent), gguf_file=p.name, dtype=torch.float32, attn_implementation=args.attn)
    else:
        model = AutoModelForCausalLM.from_pretrained(
            str(p), dtype=torch.float32, attn_implementation=args.attn)
    # (no .float(): transformers marks GGUF-loaded models as quantized and refuses it; they
    # are already dequantized to dtype)
    bad = {str(t.dtype) for t in model.parameters() if t.dtype != torch.float32}
    if bad:
        raise SystemExit(f"{p}: parameters are not float32: {bad}")
    return model, p, str(args.model)


def load_tokenizer(p: Path):
    from transformers import AutoTokenizer

    if p.is_file() and p.suffix == ".gguf":
        tok = AutoTokenizer.from_pretrained(str(p.parent), gguf_file=p.name)
        if not tok.chat_template:  # fall back to the GGUF's own template text
            from gguf import GGUFReader

            f = GGUFReader(str(p)).fields.get("tokenizer.chat_template")
            if f is not None:
                tok.chat_template = bytes(f.parts[f.data[0]]).decode("utf-8")
    else:
        tok = AutoTokenizer.from_pretrained(str(p))
    tok.model_max_length = 1 << 30  # whole conversations are tokenized before packing
    if not tok.chat_template:
        raise SystemExit(f"{p}: the tokenizer has no chat_template")
    return tok


def attach_lora(model, args):
    import torch
    from peft import LoraConfig, get_peft_model

    cfg = LoraConfig(
        r=args.rank, lora_alpha=args.alpha, target_modules=args.targets, lora_dropout=0.0,
        bias="none", use_rslora=args.rslora, init_lora_weights=True, task_type="CAUSAL_LM",
    )
    torch.manual_seed(args.seed)
    pm = get_peft_model(model, cfg)
    if args.init_b_random:
        g = torch.Generator().manual_seed(args.seed + 1)
        with torch.no_grad():
            for name, prm in pm.named_parameters():
                if ".lora_B." in name:
                    prm.copy_(torch.randn(prm.shape, generator=g, dtype=torch.float32) * args.init_b_random)
    return pm


def lora_params(pm) -> list[tuple[str, object]]:
    """(PEFT state-dict name, parameter) for every trainable LoRA tensor, in model order."""
    out = []
    for name, prm in pm.named_parameters():
        if prm.requires_grad:
            assert ".lora_A." in name or ".lora_B." in name, name
            out.append((name.replace(".lora_A.default.", ".lora_A.").replace(".lora_B.default.", ".lora_B."), prm))
    return out


def save_adapter(pm, d: Path, names: list[str]) -> None:
    from safetensors import safe_open

    if d.exists():
        shutil.rmtree(d)
    pm.save_pretrained(str(d))
    (d / "README.md").unlink(missing_ok=True)
    # PEFT keeps target_modules as a set, so its saved order follows Python's string hashing
    # (PYTHONHASHSEED); sort it so that repeated runs write identical bytes.
    cp = d / "adapter_config.json"
    ac = json.loads(cp.read_text(encoding="utf-8"))
    if isinstance(ac.get("target_modules"), list):
        ac["target_modules"] = sorted(ac["target_modules"])
    cp.write_text(json.dumps(ac, indent=2, sort_keys=True), encoding="utf-8")
    with safe_open(str(d / "adapter_model.safetensors"), "pt") as f:
        keys = sorted(f.keys())
    assert keys == sorted(names), (keys[:4], sorted(names)[:4])


# ------------------------------------------------------------------------------------------
# data


def render_chat(tok, messages: list[dict], eot: str) -> tuple[list[int], list[bool], str]:
    """Token ids of one rendered conversation and, per token, whether it is trained."""
    pieces: list[tuple[str, bool]] = []
    prev = ""
    apply = lambda msgs, gen: tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=gen)  # noqa: E731
    for i, m in enumerate(messages):
        if m["role"] != "assistant":
            continue
        if i == 0:
            raise ValueError("a conversation may not start with an assistant turn")
        head = apply(messages[:i], True)
        full = apply(messages[: i + 1], False)
        if not head.startswith(prev) or not full.startswith(head):
            raise ValueError("chat template renders prefixes inconsistently")
        pieces.append((head[len(prev):], False))
        seg = full[len(head):]
        k = seg.find(eot)
        cut = len(seg) if k < 0 else k + len(eot)
        pieces.append((seg[:cut], True))
        pieces.append((seg[cut:], False))
        prev = full
    whole = apply(messages, False)
    if not whole.startswith(prev):
        raise ValueError("chat template renders prefixes inconsistently")
    pieces.append((whole[len(prev):], False))
    ids: list[int] = []
    train: list[bool] = []
    for text, trained in pieces:
        if not text:
            continue
        t = tok(text, add_special_tokens=False).input_ids
        ids += t
        train += [trained] * len(t)
    ref = tok(whole, add_special_tokens=False).input_ids
    if ref != ids:
        raise ValueError(f"piecewise tokenization differs from whole-text tokenization for {messages!r}")
    return ids, train, whole


def probe_from_chat(tok, messages: list[dict]) -> tuple[list[int], str]:
    first_asst = next((i for i, m in enumerate(messages) if m["role"] == "assistant"), len(messages))
    text = tok.apply_chat_template(messages[:first_asst], tokenize=False, add_generation_prompt=True)
    return tok(text, add_special_tokens=False).input_ids, text


def build_batches(args, tok, vocab: int):
    """List of steps, each {input_ids, labels, loss_mask, n_loss_tokens, chunks}; and stats."""
    import torch

    B, T, S = args.batch, args.seq_len, args.steps
    stats: dict = {}
    if args.random_tokens:
        g = torch.Generator().manual_seed(args.seed + 2)
        ids = torch.randint(vocab, (S, B, T), generator=g).tolist()
        rows = [[(ids[s][b], list(ids[s][b]), None) for b in range(B)] for s in range(S)]
        stats["source"] = f"random tokens, torch.randint({vocab}, ({S}, {B}, {T}), generator=Generator().manual_seed({args.seed + 2}))"
        gp = torch.Generator().manual_seed(args.seed + 4)
        probe_ids = torch.randint(vocab, (16,), generator=gp).tolist()
        probe = dict(ids=probe_ids, text=None)
    else:
        convs = [json.loads(line) for line in args.data.read_text(encoding="utf-8").splitlines() if line.strip()]
        stream: list[int] = []
        labels: list[int] = []
        for c in convs:
            ids, train, _ = render_chat(tok, c["messages"], args.eot)
            stream += ids
            labels += [i if t else -100 for i, t in zip(ids, train)]
        n_full = len(stream) // T
        chunks = []
        for k in range(n_full):
            lab = labels[k * T:(k + 1) * T]
            if any(x != -100 for x in lab[1:]):
                chunks.append((k, stream[k * T:(k + 1) * T], lab))
        if not chunks:
            raise SystemExit("no chunk has a trained target")
        g = torch.Generator().manual_seed(args.seed + 3)
        order: list[int] = []
        epochs = 0
        while len(order) < S * B:
            order += torch.randperm(len(chunks), generator=g).tolist()
            epochs += 1
        rows = []
        for s in range(S):
            rows.append([(chunks[j][1], chunks[j][2], chunks[j][0]) for j in order[s * B:(s + 1) * B]])
        stats.update(
            source=f"{args.data.as_posix()} rendered with the tokenizer's chat_template",
            conversations=len(convs), stream_tokens=len(stream),
            trained_tokens=sum(x != -100 for x in labels), chunks_total=n_full,
            chunks_with_targets=len(chunks), epochs_drawn=epochs,
        )
        pids, ptext = probe_from_chat(tok, convs[0]["messages"])
        probe = dict(ids=pids, text=ptext)
    steps = []
    for s, row in enumerate(rows):
        inp = [r[0] for r in row]
        lab = [r[1] for r in row]
        mask = [[1 if (t + 1 < T and l[t + 1] != -100) else 0 for t in range(T)] for l in lab]
        steps.append(dict(step=s, input_ids=inp, labels=lab, loss_mask=mask,
                          n_loss_tokens=sum(map(sum, mask)),
                          chunks=[r[2] for r in row] if row[0][2] is not None else None))
    return steps, stats, probe


# ------------------------------------------------------------------------------------------
# training


def make_schedule(opt, args):
    from transformers import (get_constant_schedule_with_warmup, get_cosine_schedule_with_warmup,
                              get_linear_schedule_with_warmup)

    if args.schedule == "cosine":
        return get_cosine_schedule_with_warmup(opt, args.warmup, args.steps)
    if args.schedule == "linear":
        return get_linear_schedule_with_warmup(opt, args.warmup, args.steps)
    return get_constant_schedule_with_warmup(opt, args.warmup)


def last_logits(pm, ids: list[int], device) -> list:
    import torch

    with torch.no_grad():
        x = torch.tensor([ids], dtype=torch.long, device=device)
        lg = pm(input_ids=x, use_cache=False).logits[0, -1].float().cpu()
    if lg.numel() <= FULL_LOGITS_MAX_VOCAB:
        return [float(v) for v in lg.tolist()]
    vals, idx = torch.topk(lg, TOPK)
    return [[int(i), float(v)] for i, v in zip(idx.tolist(), vals.tolist())]


def write_json(path: Path, obj, per_line_key: str | None = None, compact_values: bool = False) -> None:
    """JSON with one list element per line under `per_line_key` (readable, still plain JSON);
    compact_values: one line per top-level key."""
    if compact_values:
        body = ",\n".join(f" {json.dumps(k)}: {json.dumps(v, separators=(',', ':'))}" for k, v in obj.items())
        text = "{\n" + body + "\n}\n"
        json.loads(text)
        path.write_text(text, encoding="utf-8")
        return
    if per_line_key is None:
        path.write_text(json.dumps(obj, indent=1) + "\n", encoding="utf-8")
        return
    head = {k: v for k, v in obj.items() if k != per_line_key}
    text = json.dumps(head, indent=1)[:-2]
    items = ",\n  ".join(json.dumps(x, separators=(",", ":")) for x in obj[per_line_key])
    text += f',\n "{per_line_key}": [\n  {items}\n ]\n}}\n'
    json.loads(text)
    path.write_text(text, encoding="utf-8")


def train(args) -> int:
    import torch
    from safetensors.torch import save_file

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True, warn_only=True)
    set_precision(torch, tf32=False)
    device = pick_device(torch, args.device)

    model, mpath, mdesc = load_model(args)
    if args.data and mpath is None:
        raise SystemExit("--data needs --model (its tokenizer and chat template)")
    tok = load_tokenizer(mpath) if args.data else None
    vocab = model.config.vocab_size
    steps_data, stats, probe = build_batches(args, tok, vocab)

    pm = attach_lora(model, args)
    names_params = lora_params(pm)
    names = [n for n, _ in names_params]
    params = [p for _, p in names_params]
    pm.to(device)
    pm.train()
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    save_adapter(pm, out / "init_adapter", names)

    probe_rec = dict(ids=probe["ids"], text=probe["text"],
                     format="full last-position logits" if vocab <= FULL_LOGITS_MAX_VOCAB
                     else f"top-{TOPK} [index, value] pairs of the last position, descending")
    with pm.disable_adapter():
        probe_rec["base"] = last_logits(pm, probe["ids"], device)
    probe_rec["init"] = last_logits(pm, probe["ids"], device)

    opt = torch.optim.AdamW(params, lr=args.lr, betas=args.betas, eps=args.eps,
                            weight_decay=args.weight_decay, foreach=False)
    sched = make_schedule(opt, args)
    max_norm = args.grad_clip if args.grad_clip > 0 else float("inf")
    records = []
    for sd in steps_data:
        k = sd["step"]
        x = torch.tensor(sd["input_ids"], dtype=torch.long, device=device)
        y = torch.tensor(sd["labels"], dtype=torch.long, device=device)
        loss = pm(input_ids=x, labels=y, use_cache=False).loss
        loss.backward()
        if k == 0:
            save_file({n: p.grad.detach().float().cpu().contiguous() for n, p in names_params},
                      str(out / "grads_step0.safetensors"))
        gn = torch.nn.utils.clip_grad_norm_(params, max_norm, foreach=False)
        lr = opt.param_groups[0]["lr"]
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        gnf = float(gn)
        records.append(dict(step=k, loss=float(loss.detach()), lr=lr, grad_norm=gnf,
                            clip_coef=float(torch.clamp(max_norm / (gn + 1e-6), max=1.0)),
                            n_loss_tokens=sd["n_loss_tokens"]))
        print(f"step {k:3d} lr {lr:.3e} loss {records[-1]['loss']:.6f} grad_norm {gnf:.6f}", flush=True)
        if k in args.save_after:
            save_adapter(pm, out / f"adapter_after_step{k}", names)
    save_adapter(pm, out / "final_adapter", names)
    probe_rec["final"] = last_logits(pm, probe["ids"], device)

    scaling = args.alpha / (math.sqrt(args.rank) if args.rslora else args.rank)
    shapes = {n: list(p.shape) for n, p in names_params}
    conv = dict(
        label_shift="loss at position t predicts labels[t+1]; labels -100 = masked (HF)",
        loss="mean over all unmasked targets of the whole batch (HF ForCausalLMLoss, no num_items_in_batch)",
        packing="rendered conversations concatenated in file order, cut into non-overlapping seq_len chunks; "
                "tail dropped; chunks without targets dropped; per-epoch torch.randperm(generator seed+3)",
        masking=f"assistant-only: text after the generation prompt up to and including {args.eot!r}",
        schedule=f"{args.schedule} with {args.warmup} warmup steps, LambdaLR; lr_k used at step k, scheduler.step() after optimizer.step()",
        grad_clip="clip_grad_norm_(max_norm, foreach=False): g *= min(1, max_norm/(total+1e-6)); grad_norm recorded before",
        adamw="torch.optim.AdamW(foreach=False), decoupled weight decay p *= 1 - lr*wd, bias-corrected",
        scaling="alpha/sqrt(r) (rslora)" if args.rslora else "alpha/r",
    )
    cfg = dict(
        argv=sys.argv[1:], model=mdesc, model_class=type(model).__name__, device=str(device),
        device_name=torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        torch_threads=torch.get_num_threads(), dtype="float32", attn_implementation=args.attn,
        rank=args.rank, alpha=args.alpha, scaling=scaling, rslora=args.rslora, targets=args.targets,
        steps=args.steps, lr=args.lr, batch=args.batch, seq_len=args.seq_len, seed=args.seed,
        weight_decay=args.weight_decay, betas=list(args.betas), eps=args.eps,
        grad_clip=args.grad_clip, warmup=args.warmup, schedule=args.schedule,
        init_b_random_std=args.init_b_random,
        init=("PEFT default (kaiming_uniform a=sqrt(5) A, zero B) after torch.manual_seed(seed)"
              + (f"; then B = {args.init_b_random} * randn(Generator().manual_seed({args.seed + 1})) in parameter order"
                 if args.init_b_random else "")),
        eot=args.eot if args.data else None, data=stats, vocab_size=vocab,
        n_lora_tensors=len(names), n_trainable=int(sum(p.numel() for p in params)),
        lora_tensors=shapes, conventions=conv, versions=versions(),
    )
    write_json(out / "config.json", cfg)
    batches = dict(
        convention=conv["label_shift"] + "; loss_mask[b][t] = 1 iff labels[b][t+1] != -100",
        seq_len=args.seq_len, batch=args.batch, steps=args.steps, source=stats["source"],
        batches=steps_data,
    )
    write_json(out / "batches.json", batches, per_line_key="batches")
    write_json(out / "steps.json", dict(
        loss="mean over unmasked targets of the batch", grad_norm="global L2 before clipping",
        lr="lr used by this step's optimizer update", steps=records), per_line_key="steps")
    write_json(out / "probe.json", probe_rec, compact_values=True)
    print(f"wrote {out}: final loss {records[-1]['loss']:.6f}")
    return 0


# ------------------------------------------------------------------------------------------
# bench


def bench(args) -> int:
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device(torch, args.device)
    torch.use_deterministic_algorithms(False)
    model, _, mdesc = load_model(args)
    pm = attach_lora(model, args)
    params = [p for _, p in lora_params(pm)]
    init = [p.detach().clone() for p in params]
    pm.to(device)
    pm.train()
    B, T = args.bench_batch, args.bench_seq
    vocab = model.config.vocab_size
    g = torch.Generator().manual_seed(args.seed + 2)
    data = torch.randint(vocab, (13, B, T), generator=g).to(device)
    cuda = device.type == "cuda"
    res = dict(model=mdesc, device=torch.cuda.get_device_name(device) if cuda else "cpu",
               batch=B, seq_len=T, tokens_per_step=B * T, rank=args.rank, alpha=args.alpha,
               targets=args.targets, attn_implementation=args.attn,
               n_trainable=int(sum(p.numel() for p in params)),
               timing="median of 10 steps after 3 warm-up; step = fwd+bwd+clip+AdamW+sched+zero_grad",
               versions=versions(), configs={})
    for name in args.bench_configs.split(","):
        set_precision(torch, tf32=(name == "tf32"))
        with torch.no_grad():
            for p, p0 in zip(params, init):
                p.copy_(p0)
        opt = torch.optim.AdamW(params, lr=args.lr, betas=args.betas, eps=args.eps,
                                weight_decay=args.weight_decay)
        sched = make_schedule(opt, args)
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(device)
        times = []
        loss = None
        for i in range(13):
            x = data[i]
            t0 = time.perf_counter()
            if name == "bf16_autocast":
                with torch.autocast(device_type=device.type, dtype=torch.bfloat16):
                    loss = pm(input_ids=x, labels=x, use_cache=False).loss
            else:
                loss = pm(input_ids=x, labels=x, use_cache=False).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, args.grad_clip if args.grad_clip > 0 else float("inf"))
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            if cuda:
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
        med = statistics.median(times[3:])
        res["configs"][name] = dict(
            median_step_ms=med * 1e3, tokens_per_s=B * T / med,
            max_memory_allocated_bytes=torch.cuda.max_memory_allocated(device) if cuda else None,
            step_ms=[t * 1e3 for t in times], last_loss=float(loss.detach()),
        )
    set_precision(torch, tf32=False)
    print(json.dumps(res, indent=1))
    return 0


# ------------------------------------------------------------------------------------------
# verify: the conventions above, re-implemented without PEFT, HF's loss, torch's AdamW,
# clip_grad_norm_ or transformers' schedules, replayed from OUT's own files


def verify(args) -> int:
    import torch
    from safetensors.torch import load_file

    out = args.verify
    cfg = json.loads((out / "config.json").read_text(encoding="utf-8"))
    bt = json.loads((out / "batches.json").read_text(encoding="utf-8"))["batches"]
    ref = json.loads((out / "steps.json").read_text(encoding="utf-8"))["steps"]
    torch.use_deterministic_algorithms(True, warn_only=True)
    set_precision(torch, tf32=False)
    margs = argparse.Namespace(model=None, arch=None, attn=cfg["attn_implementation"], seed=cfg["seed"])
    if cfg["model"].startswith("random "):
        margs.arch = cfg["model"].split()[1]
    else:
        margs.model = args.model or cfg["model"]
    model, _, _ = load_model(margs)
    model.train()
    for p in model.parameters():
        p.requires_grad_(False)
    init = load_file(str(out / "init_adapter" / "adapter_model.safetensors"))
    P = {k: v.clone().requires_grad_(True) for k, v in init.items()}
    names = list(P)
    sc = cfg["alpha"] / (math.sqrt(cfg["rank"]) if cfg["rslora"] else cfg["rank"])
    mods = dict(model.named_modules())
    for k in names:
        if ".lora_A." in k:
            A, B = P[k], P[k.replace(".lora_A.", ".lora_B.")]
            mods[k[len("base_model.model."):].split(".lora_A.")[0]].register_forward_hook(
                lambda m, inp, o, A=A, B=B: o + sc * ((inp[0] @ A.T) @ B.T))
    m1 = {k: torch.zeros_like(v) for k, v in P.items()}
    m2 = {k: torch.zeros_like(v) for k, v in P.items()}
    b1, b2 = cfg["betas"]
    W, S = cfg["warmup"], cfg["steps"]

    def lr_factor(k: int) -> float:
        if k < W:
            return k / max(1, W)
        p = (k - W) / max(1, S - W)
        return {"cosine": max(0.0, 0.5 * (1 + math.cos(math.pi * p))),
                "linear": max(0.0, (S - k) / max(1, S - W)), "constant": 1.0}[cfg["schedule"]]

    g0 = load_file(str(out / "grads_step0.safetensors"))
    res = dict(loss_rel=0.0, grad_norm_rel=0.0, lr_abs=0.0)
    for sd in bt:
        k = sd["step"]
        x = torch.tensor(sd["input_ids"])
        y = torch.tensor(sd["labels"])
        mask = torch.tensor(sd["loss_mask"])
        tgt = torch.cat([y[:, 1:], torch.full((y.shape[0], 1), -100)], 1)
        assert torch.equal((tgt != -100).long(), mask) and int(mask.sum()) == sd["n_loss_tokens"]
        lp = torch.log_softmax(model(input_ids=x, use_cache=False).logits.float(), -1)
        nll = -lp.gather(-1, tgt.clamp(min=0)[..., None])[..., 0]
        loss = (nll * mask).sum() / mask.sum()
        for t in P.values():
            t.grad = None
        loss.backward()
        if k == 0:
            res["grads_step0_rel"] = max(float((P[n].grad - g0[n]).abs().max() / (g0[n].abs().max() + 1e-30))
                                         for n in names if g0[n].abs().max() > 0)
            res["grads_step0_zero_equal"] = all(bool((P[n].grad == 0).all()) for n in names if not g0[n].any())
        gn = math.sqrt(sum(float((P[n].grad.double() ** 2).sum()) for n in names))
        cc = min(1.0, cfg["grad_clip"] / (gn + 1e-6)) if cfg["grad_clip"] > 0 else 1.0
        lr, t = cfg["lr"] * lr_factor(k), k + 1
        with torch.no_grad():
            for n in names:
                p, g = P[n], P[n].grad * cc
                p.mul_(1 - lr * cfg["weight_decay"])
                m1[n].mul_(b1).add_(g, alpha=1 - b1)
                m2[n].mul_(b2).add_(g * g, alpha=1 - b2)
                denom = m2[n].sqrt() / math.sqrt(1 - b2 ** t) + cfg["eps"]
                p.add_(-(lr / (1 - b1 ** t)) * m1[n] / denom)
        r = ref[k]
        res["loss_rel"] = max(res["loss_rel"], abs(float(loss.detach()) - r["loss"]) / abs(r["loss"]))
        res["grad_norm_rel"] = max(res["grad_norm_rel"], abs(gn - r["grad_norm"]) / r["grad_norm"])
        res["lr_abs"] = max(res["lr_abs"], abs(lr - r["lr"]))
    fin = load_file(str(out / "final_adapter" / "adapter_model.safetensors"))
    res["final_max_abs_diff"] = max(float((P[n].detach() - fin[n]).abs().max()) for n in names)
    res["final_minus_init_max_abs"] = max(float((fin[n] - init[n]).abs().max()) for n in names)
    ok = (res["loss_rel"] < 1e-5 and res["grad_norm_rel"] < 1e-5 and res["lr_abs"] < 1e-12
          and res.get("grads_step0_rel", 0.0) < 1e-5 and res["grads_step0_zero_equal"]
          and res["final_max_abs_diff"] < 1e-3 * res["final_minus_init_max_abs"])
    res["ok"] = ok
    print(json.dumps(res))
    return 0 if ok else 1


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.verify:
        return verify(args)
    return bench(args) if args.bench else train(args)


if __name__ == "__main__":
    sys.exit(main())
