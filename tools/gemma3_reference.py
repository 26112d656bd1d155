#!/usr/bin/env python3
"""PyTorch reference for the real Gemma 3 270M GGUF: tests/fixtures/gemma3_270m/reference.json.

Loads models/gemma-3-270m-q4_k_m.gguf (tools/fetch_gemma.sh; Q4_K_M: Q4_K/Q5_0/Q6_K/Q8_0
tensors) with transformers' GGUF loader, which dequantizes every tensor with gguf-py into
float32 and undoes llama.cpp's Gemma conventions (norm weights - 1). The model then runs on CPU
in float32 with eager attention, so the reference is "the GGUF's weights, dequantized, in exact
f32 math"; a runtime that keeps the quantized weights sees the same weights.

What it writes (no full logit rows: the vocabulary has 262,144 entries):
  * meta: file name, size, sha256, torch/transformers/gguf/tokenizers versions, wall time, the
    config transformers built from the GGUF, the ids and GGUF token_type of the control tokens
    (<start_of_turn>, <end_of_turn>, <bos>, <eos>, <pad>, ...) read with gguf-py.
  * prompts: for each of 4 prompts, prompt_text, add_special_tokens, prompt_ids, the top-5
    (id, logit) at every prompt position of one forward pass (prompt_top5), greedy_ids
    (N_STEPS steps of HF generate, do_sample=False, eos_token_id None so it never stops early),
    for each step the top-1 minus top-2 logit (margins) and the top-5 [id, logit] pairs (top5;
    step i is the distribution greedy_ids[i] is the argmax of, HF generate(output_logits=True)'s
    layout: step 0 = last prompt position), greedy_text (decode, skip_special_tokens=False),
    and a check: the max abs difference between generate()'s KV-cache logits and one
    teacher-forced forward over prompt + greedy ids (max over the vocabulary, all steps).
  * tokenizer_cases: [{"text", "ids", "tokens", "decoded", "roundtrip",
    "ids_transformers_gguf_tokenizer"}] with add_special_tokens=False.
Token ids (prompts and cases) come from sentencepiece with the model rebuilt from the GGUF
vocabulary (class GemmaSpm: why and how), not from transformers' tokenizer for the GGUF, which
5.17 builds as a Unigram model and so segments Gemma 3 text wrongly; its ids are kept beside
(*_transformers_gguf_tokenizer) for comparison. Decoding uses transformers' decoder (fine).
Floats are rounded to 7 significant digits.

Run (2 CPU cores: about a minute or two; ~1.5 GB RAM):
    python3 tools/gemma3_reference.py [--gguf models/gemma-3-270m-q4_k_m.gguf] [--out DIR]
Needs torch, transformers (made with 5.17), gguf (0.19.0), tokenizers, sentencepiece, numpy.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_GGUF = ROOT / "models" / "gemma-3-270m-q4_k_m.gguf"
DEFAULT_OUT = ROOT / "tests" / "fixtures" / "gemma3_270m"
N_STEPS = 24
TOPK = 5


def chat_turn(user: str) -> str:
    return f"<bos><start_of_turn>user\n{user}<end_of_turn>\n<start_of_turn>model\n"


PROMPTS = [
    ("chat_capital", chat_turn("What is the capital of France?"), False),
    ("chat_haiku", chat_turn("Write a haiku about a kiln."), False),
    ("plain_fox", "The quick brown fox", True),
    ("unicode_mix", "Héllo wörld! 12345   tabs\tand\nnewlines — ünïcödé 🙂", True),
]

TOKENIZER_CASES = [
    "",
    " ",
    "   ",
    " leading space",
    "trailing space ",
    "\n",
    "\n\n\n",
    "line one\n\nline two\r\n",
    "1234567890 3.14159 -42 1,000,000",
    "日本語のテキストと中文文本",
    "emoji 🙂🔥👍🏽 and ❤️",
    "text with <start_of_turn> inside and <end_of_turn> too",
    "Pneumonoultramicroscopicsilicovolcanoconiosis",
    "tabs\tand\t\tmore\ttabs",
    "Ünïcödé café naïve façade",
    "def f(x):\n    return x ** 2  # comment",
]


def r7(x) -> float:
    return float(f"{float(x):.7g}")


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def topk_pairs(row, k: int = TOPK) -> list:
    import torch

    v, i = torch.topk(row.double(), k)
    return [[int(a), r7(b)] for a, b in zip(i.tolist(), v.tolist())]


def control_tokens(path: Path) -> dict:
    import gguf

    r = gguf.GGUFReader(path)
    toks = r.fields["tokenizer.ggml.tokens"].contents()
    types = r.fields["tokenizer.ggml.token_type"].contents()
    out = {}
    for s in ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>", "<start_of_turn>", "<end_of_turn>",
              "<start_of_image>", "<end_of_image>"]:
        if s in toks:
            i = toks.index(s)
            out[s] = {"id": i, "token_type": int(types[i]),
                      "token_type_name": gguf.TokenType(int(types[i])).name}
    kv = {}
    for k in ["tokenizer.ggml.model", "tokenizer.ggml.pre", "tokenizer.ggml.bos_token_id",
              "tokenizer.ggml.eos_token_id", "tokenizer.ggml.unknown_token_id",
              "tokenizer.ggml.padding_token_id", "tokenizer.ggml.add_bos_token",
              "tokenizer.ggml.add_eos_token", "tokenizer.ggml.add_space_prefix",
              "gemma3.context_length", "gemma3.embedding_length", "gemma3.block_count",
              "gemma3.feed_forward_length", "gemma3.attention.head_count",
              "gemma3.attention.head_count_kv", "gemma3.attention.key_length",
              "gemma3.attention.value_length", "gemma3.attention.layer_norm_rms_epsilon",
              "gemma3.rope.freq_base", "gemma3.rope.freq_base_swa",
              "gemma3.attention.sliding_window", "general.file_type"]:
        if k in r.fields:
            kv[k] = r.fields[k].contents()
    import collections

    ttypes = collections.Counter(t.tensor_type.name for t in r.tensors)
    tcounts = collections.Counter(int(t) for t in types)
    return {
        "control_tokens": out,
        "gguf_kv": kv,
        "has_chat_template": "tokenizer.chat_template" in r.fields,
        "n_tokens": len(toks),
        "token_type_counts": {gguf.TokenType(k).name: v for k, v in sorted(tcounts.items())},
        "tensor_type_counts": dict(sorted(ttypes.items())),
        "n_tensors": len(r.tensors),
    }


class GemmaSpm:
    """Gemma 3's SentencePiece BPE tokenizer rebuilt from the GGUF vocabulary.

    Why: transformers 5.17 builds the tokenizer of a `tokenizer.ggml.model` "llama" GGUF of arch
    gemma3 with GGUFGemmaConverter, a *Unigram* model over the GGUF scores. Gemma 3's
    SentencePiece model is BPE (scores = merge priority), and Viterbi over those scores prefers
    many short high-score pieces: "The quick brown fox" -> The ▁qu ick ▁b ro wn ▁f ox (8 ids)
    instead of The ▁quick ▁brown ▁fox ([818, 3823, 8864, 37423]). So the ids here come from the
    reference implementation, sentencepiece (BPE: repeatedly merge the adjacent pair whose
    merged piece has the highest score; byte fallback), with the model proto rebuilt from
    tokenizer.ggml.tokens/scores/token_type (GGUF token types are sentencepiece's piece types):
      * normalizer identity, add_dummy_prefix false (GGUF add_space_prefix false), whitespace
        escaped to U+2581, extra whitespace kept;
      * USER_DEFINED pieces (runs of 2-31 spaces, newlines, tabs, html tags, [multimodal]) are
        stored by llama.cpp with literal spaces; sentencepiece matches user-defined pieces on the
        escaped text, so their spaces are escaped back to U+2581 here;
      * CONTROL pieces (<bos>, <start_of_turn>, <end_of_turn>, <unusedN>, ...) written in the text
        are split off first and become their ids, as HF's added special tokens and llama.cpp's
        parse_special do; sentencepiece itself never matches them.
    add_special_tokens=True prepends <bos> (tokenizer.ggml.add_bos_token true).
    """

    def __init__(self, path: Path):
        import re

        import gguf
        import sentencepiece as spm
        from sentencepiece import sentencepiece_model_pb2 as pb

        r = gguf.GGUFReader(path)
        f = r.fields
        toks = f["tokenizer.ggml.tokens"].contents()
        scores = f["tokenizer.ggml.scores"].contents()
        types = [int(t) for t in f["tokenizer.ggml.token_type"].contents()]
        assert f["tokenizer.ggml.model"].contents() == "llama"
        self.bos_id = int(f["tokenizer.ggml.bos_token_id"].contents())
        self.add_bos = bool(f["tokenizer.ggml.add_bos_token"].contents())
        add_space_prefix = bool(f["tokenizer.ggml.add_space_prefix"].contents()) \
            if "tokenizer.ggml.add_space_prefix" in f else True
        m = pb.ModelProto()
        ts = m.trainer_spec
        ts.model_type = pb.TrainerSpec.BPE
        ts.byte_fallback = True
        ts.vocab_size = len(toks)
        ts.unk_id = int(f["tokenizer.ggml.unknown_token_id"].contents())
        ts.bos_id = self.bos_id
        ts.eos_id = int(f["tokenizer.ggml.eos_token_id"].contents())
        ts.pad_id = int(f["tokenizer.ggml.padding_token_id"].contents())
        for spec in (m.normalizer_spec, m.denormalizer_spec):
            spec.name = "identity"
            spec.add_dummy_prefix = add_space_prefix
            spec.remove_extra_whitespaces = False
            spec.escape_whitespaces = True
        for t, sc, ty in zip(toks, scores, types):
            p = m.pieces.add()
            p.piece = t.replace(" ", "\u2581") if ty == gguf.TokenType.USER_DEFINED else t
            p.score = float(sc)
            p.type = ty
        self.sp = spm.SentencePieceProcessor(model_proto=m.SerializeToString())
        self.toks = toks
        self.control = {t: i for i, (t, ty) in enumerate(zip(toks, types)) if ty == gguf.TokenType.CONTROL}
        alts = sorted(self.control, key=len, reverse=True)
        self.split_re = re.compile("(" + "|".join(re.escape(t) for t in alts) + ")")

    def encode(self, text: str, add_special_tokens: bool) -> list[int]:
        ids = [self.bos_id] if add_special_tokens and self.add_bos else []
        for part in self.split_re.split(text):
            if not part:
                continue
            if part in self.control:
                ids.append(self.control[part])
            else:
                ids.extend(self.sp.encode(part))
        return ids

    def decode_plain(self, ids: list[int]) -> str:
        return self.sp.decode(ids)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--gguf", type=Path, default=DEFAULT_GGUF)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    t0 = time.time()

    import importlib.metadata as im

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    torch.set_num_threads(args.threads)
    path: Path = args.gguf.resolve()
    versions = {p: im.version(p) for p in ("torch", "transformers", "gguf", "tokenizers", "numpy")}
    print("versions", versions, flush=True)
    digest = sha256(path)
    facts = control_tokens(path)
    print("control tokens", facts["control_tokens"], flush=True)

    tok = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    spm_tok = GemmaSpm(path)
    t_load = time.time()
    model = AutoModelForCausalLM.from_pretrained(
        str(path.parent), gguf_file=path.name, dtype=torch.float32, attn_implementation="eager"
    ).eval()
    load_s = time.time() - t_load
    print(f"loaded in {load_s:.1f}s: {type(model).__name__}", flush=True)
    cfg = model.config.to_dict()
    keep = ["model_type", "vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
            "num_attention_heads", "num_key_value_heads", "head_dim", "hidden_activation",
            "max_position_embeddings", "rms_norm_eps", "rope_parameters", "query_pre_attn_scalar",
            "sliding_window", "layer_types", "final_logit_softcapping", "attn_logit_softcapping",
            "tie_word_embeddings", "bos_token_id", "eos_token_id", "pad_token_id"]
    cfg_kept = {k: cfg.get(k) for k in keep}
    print("config", cfg_kept, flush=True)

    gc = GenerationConfig(
        max_new_tokens=N_STEPS, min_new_tokens=N_STEPS, do_sample=False, eos_token_id=None,
        pad_token_id=0, bos_token_id=2,
    )
    prompts = []
    for key, text, add_special in PROMPTS:
        ids = spm_tok.encode(text, add_special)
        hf_ids = tok(text, add_special_tokens=add_special).input_ids
        t1 = time.time()
        with torch.no_grad():
            full = model(torch.tensor([ids])).logits[0]
            g = model.generate(torch.tensor([ids]), generation_config=gc, output_logits=True,
                               return_dict_in_generate=True)
        greedy = g.sequences[0, len(ids):].tolist()
        steps = torch.stack([x[0] for x in g.logits]).float()
        assert steps.shape[0] == N_STEPS and len(greedy) == N_STEPS
        assert all(int(steps[i].argmax()) == greedy[i] for i in range(N_STEPS))
        with torch.no_grad():
            tf = model(torch.tensor([ids + greedy])).logits[0, len(ids) - 1:len(ids) - 1 + N_STEPS]
        diff = float((tf - steps).abs().max())
        prefill_diff = float((full[-1] - steps[0]).abs().max())
        margins = []
        for row in steps:
            top = torch.topk(row.double(), 2).values
            margins.append(r7(top[0] - top[1]))
        rec = {
            "name": key,
            "prompt_text": text,
            "add_special_tokens": add_special,
            "prompt_ids": ids,
            "prompt_tokens": [spm_tok.toks[i] for i in ids],
            "prompt_ids_transformers_gguf_tokenizer": hf_ids,
            "prompt_top5": [topk_pairs(row) for row in full],
            "greedy_ids": greedy,
            "margins": margins,
            "top5": [topk_pairs(row) for row in steps],
            "greedy_text": tok.decode(greedy, skip_special_tokens=False),
            "checks": {
                "generate_vs_teacher_forced_max_abs_diff": diff,
                "prefill_forward_vs_generate_step0_max_abs_diff": prefill_diff,
                "teacher_forced_argmax_equal": [int(x) for x in tf.argmax(-1).tolist()] == greedy,
            },
            "seconds": round(time.time() - t1, 2),
        }
        print(f"{key}: {len(ids)} prompt ids {ids}\n  greedy {greedy}\n  {rec['greedy_text']!r}\n"
              f"  min margin {min(margins):.4f}, checks {rec['checks']}, {rec['seconds']}s", flush=True)
        prompts.append(rec)

    cases = []
    for text in TOKENIZER_CASES:
        ids = spm_tok.encode(text, False)
        hf_ids = tok(text, add_special_tokens=False).input_ids
        cases.append({"text": text, "ids": ids, "tokens": [spm_tok.toks[i] for i in ids],
                      "decoded": tok.decode(ids, skip_special_tokens=False),
                      "ids_transformers_gguf_tokenizer": hf_ids})
        cases[-1]["roundtrip"] = cases[-1]["decoded"] == text
    n_agree = sum(c["ids"] == c["ids_transformers_gguf_tokenizer"] for c in cases)
    print("tokenizer cases:", [(c["text"], c["ids"]) for c in cases], flush=True)
    print(f"transformers' GGUF tokenizer agrees on {n_agree}/{len(cases)} cases", flush=True)

    out = {
        "source": f"{path.name} loaded by transformers' GGUF loader (gguf-py dequantization), "
                  "PyTorch CPU float32, eager attention",
        "file": path.name,
        "file_bytes": path.stat().st_size,
        "sha256": digest,
        "versions": versions,
        "torch_threads": args.threads,
        "load_seconds": round(load_s, 2),
        "config": cfg_kept,
        **facts,
        "n_steps": N_STEPS,
        "prompts": prompts,
        "tokenizer": "sentencepiece BPE rebuilt from the GGUF vocabulary (class GemmaSpm in "
                     "tools/gemma3_reference.py); *_transformers_gguf_tokenizer fields: transformers' "
                     f"{type(tok).__name__} from the GGUF (a Unigram model: wrong for Gemma 3, kept "
                     "for comparison)",
        "tokenizer_cases": cases,
        "tokenizer_cases_transformers_agree": f"{n_agree}/{len(cases)}",
        "wall_seconds": None,
    }
    out["wall_seconds"] = round(time.time() - t0, 2)
    args.out.mkdir(parents=True, exist_ok=True)
    dst = args.out / "reference.json"
    dst.write_text(json.dumps(out, ensure_ascii=False, separators=(",", ":"), default=str) + "\n", encoding="utf-8")
    print(f"wrote {dst} ({dst.stat().st_size} bytes) in {out['wall_seconds']}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
