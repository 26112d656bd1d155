#!/usr/bin/env python3
"""Tiny random-weight Llama-family models with PyTorch references: tests/fixtures/models/.

What it writes (all deterministic: fixed seeds, fixed text), under OUT (default
tests/fixtures/models/):

  <name>/config.json, generation_config.json, model.safetensors
                         a randomly initialised HF model (f32), `save_pretrained` output
  <name>/tokenizer.json, tokenizer_config.json
                         one tiny byte-level BPE tokenizer shared by all the models
                         (trained here with `tokenizers` on CORPUS below: vocab 256 =
                         3 specials + 97 byte symbols (tab, newline, printable
                         ASCII) + 156 merges; ChatML template)
  <name>/reference.json  PyTorch (CPU, f32, eager attention) reference: prompt ids, logits at
                         every prompt position, 16 greedy decode steps with their logits
                         (greedy_logits[i] -> greedy_ids[i], HF generate's layout),
                         per-layer hidden-state probes (format in the generated README.md)
  <name>/<name>.<TYPE>.gguf
                         the same weights as llama.cpp's convert_hf_to_gguf.py writes them
                         (see "GGUF conventions" below): llama in F32/F16/Q8_0/Q4_0,
                         qwen2, llama3, qwen3, gemma3 and phi3 in F32/Q8_0; mistral has none
  phi3/reference.long.json
                         the same format for a 70-token prompt (> original context 64: LongRoPE's
                         long factors), prompt logits at every position and 8 greedy steps
  <name>/reference.<TYPE>.json
                         the reference recomputed from each non-F32 GGUF's weights as
                         transformers dequantizes them (same format as reference.json)
  README.md              file list, sizes, reference format, verification results; ends with
                         the run's summary as JSON in an HTML comment (see --models)

The models (hidden 64, 2 layers, 4 heads of 16, intermediate 96, vocab 256 unless said):
  llama   LlamaForCausalLM, 2 KV heads, rope_theta 1e4, eps 1e-5, untied lm_head
  qwen2   Qwen2ForCausalLM, 2 KV heads, random non-zero q/k/v biases, theta 1e6, eps 1e-6, tied
  llama3  LlamaForCausalLM, 1 KV head, Llama-3 rope scaling (factor 8, low 1, high 4,
          original_max_position_embeddings 64), theta 5e5, tied
  qwen3   Qwen3ForCausalLM, 2 KV heads, head_dim 16 in config.json, QK-norm (q_norm/k_norm
          RMSNorm over head_dim), no biases, theta 1e6, eps 1e-6, tied
  gemma3  Gemma3ForCausalLM (Gemma3TextConfig), 6 layers: 5 sliding (window 8, rope theta 1e4)
          then 1 global (theta 1e6) -- llama.cpp hard-codes that pattern of 6 --, 1 KV head,
          head_dim 16, query_pre_attn_scalar 16, gelu_pytorch_tanh, QK-norm, pre/post norms
          around attention and MLP, norms x_norm * (1 + w), embeddings scaled by sqrt(64), no
          soft-capping, eps 1e-6, tied, eager attention
  mistral MistralForCausalLM, 2 KV heads, sliding_window 8, theta 1e4, eps 1e-5, untied;
          safetensors only (llama.cpp's converter writes Mistral as arch llama, no window)
  phi3    Phi3ForCausalLM, 2 KV heads, fused qkv_proj [q|k|v] and gate_up_proj [gate|up],
          sliding_window 16, theta 1e4, eps 1e-5, untied, LongRoPE: short_factor / long_factor
          (8 each), original_max_position_embeddings 64 (top-level and in rope_parameters),
          max_position_embeddings 256 (attention factor sqrt(1 + ln 4 / ln 64)); pad_token_id 0;
          tokenizer_config.json tokenizer_class GPT2Tokenizer (llama.cpp's Phi3MiniModel needs it
          for a BPE vocab). reference.json stays <= 64 positions (short factors),
          reference.long.json is a 70-token pass (long factors); both checked by forcing the
          factor lists equal and by an independent float64 implementation
Weights: N(0, 1/fan_in) for projections, N(0, 0.3^2) for embeddings / lm_head (logits of std
~2.4), norms 1 + N(0, 0.1^2), Qwen2 biases N(0, 0.5^2). gemma3: norm weights w ~ N(0, 0.1^2)
(so 1 + w like the others) and embeddings N(0, 0.125^2) (scaled by 8 inside the model; with 0.3
the embedding dominates the residual and no seed avoids repeating its input token). For each
model the first seed (from a fixed list) whose greedy run has top-1/top-2 margins >= 0.05
everywhere, emits no special token and at least 3 distinct ids is used, so argmax is robust to
f32 summation order (phi3: also the long run's 8 greedy steps). mistral, gemma3 and phi3 also
record that the window is used: the same weights with the window off give equal logits at
positions < W and different ones from W on (W = 8; phi3 16, also on the 70-token pass).

GGUF conventions (reproduced from llama.cpp's converter, commit 0c1e570 as vendored by the
llama-cpp-python 0.3.36 sdist: convert_hf_to_gguf.py + conversion/{base,llama,qwen}.py):
  * KV order and keys as ModelBase.prepare_metadata: general.architecture, general.type,
    gguf.Metadata.load(...).set_gguf_meta_model (name, size_label, ... from the folder name),
    TextModel.set_gguf_parameters (block_count, context_length, embedding_length,
    feed_forward_length, head_count, head_count_kv, rope.freq_base,
    attention.layer_norm_rms_epsilon, attention.key_length/value_length when config.json has
    head_dim, general.file_type), LlamaModel adds vocab_size and rope.dimension_count (Qwen2Model
    adds neither), general.quantization_version, then the vocab (_set_vocab_gpt2 + SpecialVocab:
    model "gpt2", pre, tokens, token_type, merges, bos/eos/unk/pad ids, add_bos_token /
    add_eos_token = false from the ByteLevel post-processor, chat_template).
    phi3 (conversion/phi.py Phi3MiniModel) replaces TextModel.set_gguf_parameters: context_length,
    rope.scaling.original_context_length, embedding_length, feed_forward_length, block_count,
    head_count, head_count_kv, layer_norm_rms_epsilon, rope.dimension_count, rope.freq_base,
    general.file_type, attention.sliding_window; its generate_extra_tensors writes
    rope.scaling.attn_factor (so that key comes right after general.architecture) and the
    tensors rope_factors_long / rope_factors_short (F32, first); no vocab_size key.
  * tokenizer.ggml.pre = "gpt-2": the converter names pre-tokenizers by hashing the encoding
    of a fixed text and raises NotImplementedError for an unknown hash (which this tokenizer
    is). This tokenizer's pre-tokenizer is exactly GPT-2's (ByteLevel, GPT-2 regex), which
    llama.cpp calls "gpt-2" (LLAMA_VOCAB_PRE_TYPE_GPT2). Not "default": llama.cpp's default
    BPE pre-tokenizer first splits punctuation runs and digit groups, so it would tokenize
    "it's" or "$%" differently from HF; transformers and Kiln treat both names as GPT-2's regex.
  * tensors sorted by HF name (as gguf.utility.SafetensorsLocal), rope_freqs first
    (generate_extra_tensors runs before get_tensors); names through gguf.get_tensor_name_map (HF -> token_embd, blk.N.attn_q, ...).
  * LlamaModel.permute on q_proj (n_head, n_head) and k_proj (n_head, n_head_kv) for the llama
    arch; none for qwen2 (NeoX rope).
  * Llama-3 rope: rope_freqs.weight (F32, [head_dim/2]) computed exactly as
    LlamaModel.generate_extra_tensors (torch f32); no rope scaling KV keys.
  * qwen3 (conversion/qwen.py Qwen3Model = Qwen2Model's keys; attention.key_length /
    value_length since config.json has head_dim): no permute; q_norm/k_norm -> attn_q_norm /
    attn_k_norm.
  * gemma3 (conversion/gemma.py Gemma3Model): no permute; every *norm.weight stored + 1 (f32
    add), token_embd cut to the tokenizer's size (no-op here); names post_attention_norm,
    ffn_norm (pre_feedforward_layernorm), post_ffw_norm, attn_q_norm, attn_k_norm; keys as
    TextModel (incl. rope.freq_base 1e6 from rope_parameters.full_attention and
    rope.freq_base_swa 1e4 from .sliding_attention, key/value_length) then Gemma3Model's
    (same values again, plus attention.sliding_window after file_type); no output.weight.
  * types as ModelBase.prepare_tensors: 1-D tensors, *_norm.weight and anything not ending in
    .weight stay F32; other 2-D weights take the file type through gguf.quants.quantize, falling
    back to F16 on QuantError (row not a multiple of the block; does not happen at these sizes).
    The converter has no Q4_0 outtype: the Q4_0 file is what `llama-quantize --pure F32.gguf
    Q4_0` gives (every 2-D weight Q4_0, general.file_type 2).
  * phi3: no permute; qkv_proj -> attn_qkv, gate_up_proj -> ffn_up (fused, as stored).
  With --llamacpp-src, the real converter is also run (f32/f16/q8_0; get_vocab_base_pre patched
  to return "gpt-2") and its output compared KV-by-KV and tensor-by-tensor with these files;
  its output and _summary.json go to --scratch (default: a new temporary folder, not OUT).

Verification (printed, and written to README.md): each F32 GGUF is loaded back by transformers
(`from_pretrained(dir, gguf_file=...)`, which un-permutes Q/K) and its logits compared with the
safetensors model's. transformers ignores rope_freqs, so for llama3 the GGUF weights are also run
in the safetensors config, and rope_freqs is checked against HF's own Llama-3 inv_freq.
transformers 5.17 builds incomplete configs from qwen3/gemma3 GGUFs (qwen3: head_dim 128, its
forward fails; gemma3: query_pre_attn_scalar 256), so for those the GGUF's own config is not
expected to match; their GGUFs are also read back with gguf-py (names and the gemma3 +1
reversed) and compared tensor by tensor (F32: bit-exact) and by logits in the reference config.
phi3 GGUFs load in transformers, but its phi3 GGUF config has plain rope (no LongRoPE factors or
attention factor, original context 4096) and no window, so only the reference config matches.

--models NAME,... regenerates only those folders (default: all); the other folders are not
touched, and their README entries come from the summary embedded at the end of README.md (or
OUT/_summary.json when the README has none).

Rerun (torch is needed; in this project it lives on the GPU machine, CPU math is used):
    python3 tools/gen_model_fixtures.py --stage tokenizer      # needs only `tokenizers`
    python3 tools/gen_model_fixtures.py [--reuse-tokenizer] [--llamacpp-src DIR] [--out DIR]
                                        [--models qwen3,gemma3,mistral] [--threads N]
                                        [--scratch DIR]
Needs torch, transformers (made with 5.17; the v4 rope_theta/rope_scaling config path is
untested), safetensors, numpy, tokenizers, gguf (PyPI, 0.19.0). The fixtures were made on the
GPU machine (torch 2.11 there; gguf carried as a wheel) with
    pip install --target /tmp/site .whl/gguf-0.19.0-py3-none-any.whl; PYTHONPATH=/tmp/site \
    python3 tools/gen_model_fixtures.py --reuse-tokenizer --llamacpp-src .whl/llamacpp-convert
where .whl/llamacpp-convert holds convert_hf_to_gguf.py, conversion/ and gguf-py/ from the
llama-cpp-python 0.3.36 sdist's vendor/llama.cpp (PyPI). The run takes ~40 s on CPU; it then
wrote scratch files OUT/_converter/ and OUT/_summary.json (now under --scratch, outside OUT).
qwen3, gemma3 and mistral were added later on a 2-core CPU machine (same torch/transformers;
tokenizers 0.23.3, numpy 2.4.6) with
    pip download --no-deps --no-binary :all: llama-cpp-python==0.3.36   # cmake on PATH
    python3 tools/gen_model_fixtures.py --models qwen3,gemma3,mistral --reuse-tokenizer \
        --threads 2 --llamacpp-src <sdist>/vendor/llama.cpp
(~3 min). A full run there reproduced llama/qwen2/llama3's weights, configs and GGUFs
byte for byte; their reference*.json only in f32 summation noise (<= 1e-5) and versions.
phi3 was added the same way (--models phi3, ~20 s); a rerun of llama,qwen2,llama3,qwen3,gemma3
into another OUT then reproduced every GGUF, config, safetensors and tokenizer file byte for
byte (qwen3/gemma3: every file).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "tests" / "fixtures" / "models"

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
BOS, EOS, UNK, PAD = "<|im_start|>", "<|im_end|>", "<|endoftext|>", "<|endoftext|>"
CHAT_TEMPLATE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content']"
    " + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
USER_TEXT = "Is the kiln hot?"
PROMPT = "<|im_start|>user\n" + USER_TEXT + "<|im_end|>\n"
N_PROMPT = 12
# phi3's reference.long.json: a 70-token prompt (> original_max_position_embeddings 64, so
# transformers' longrope uses the long factors for the whole pass); the ChatML turn with the
# generation prompt, as apply_chat_template(add_generation_prompt=True) writes it
LONG_USER_TEXT = ("The potter loads the kiln with care. Each pot must stand apart from the others, "
                  "or the glaze will fuse them together. How hot is the kiln?")
LONG_PROMPT = "<|im_start|>user\n" + LONG_USER_TEXT + "<|im_end|>\n<|im_start|>assistant\n"
N_LONG_PROMPT = 70
N_LONG_STEPS = 8
GGUF_PRE = "gpt-2"
N_STEPS = 16
SEEDS = [1234 + 7 * i for i in range(64)]
MIN_MARGIN = 0.05

CORPUS = """\
A kiln is a thermally insulated chamber, a type of oven, that produces temperatures sufficient
to complete some process, such as hardening, drying, or chemical changes. Kilns have been used
for millennia to turn objects made from clay into pottery, tiles and bricks. Various industries
use rotary kilns for pyroprocessing and to calcinate ores, such as limestone to lime for cement.
The potter loads the kiln with care. Each pot must stand apart from the others, or the glaze will
fuse them together. Then the fire is lit, and the heat rises slowly through the night. In the
morning the potter opens the door and looks at the work: some pieces shine, some have cracked,
and one or two are better than anything she had hoped for.
<|im_start|>user
What is a kiln used for?<|im_end|>
<|im_start|>assistant
A kiln is used to fire clay, so that it becomes hard and strong. It can also dry wood or make
lime from stone.<|im_end|>
<|im_start|>user
How hot does it get?<|im_end|>
<|im_start|>assistant
A small kiln for pottery can reach more than one thousand two hundred degrees. The heat is raised
and lowered slowly, because a fast change in temperature can crack the pots.<|im_end|>
The quick brown fox jumps over the lazy dog. She sells sea shells by the sea shore. Peter Piper
picked a peck of pickled peppers. How much wood would a woodchuck chuck if a woodchuck could
chuck wood? It was the best of times, it was the worst of times, it was the age of wisdom, it was
the age of foolishness. Numbers: 0 1 2 3 4 5 6 7 8 9 10 42 100 2024. Symbols: ( ) [ ] { } < > +
- * / = _ ! ? @ # $ % ^ & ~ ` ' " ; : , . | \\ and a tab:\tdone.
"""

MODELS = {
    "llama": dict(
        cls="LlamaForCausalLM", cfg="LlamaConfig", arch="llama", n_kv=2, theta=10000.0, eps=1e-5,
        tied=False, rope_scaling=None, types=["F32", "F16", "Q8_0", "Q4_0"],
    ),
    "qwen2": dict(
        cls="Qwen2ForCausalLM", cfg="Qwen2Config", arch="qwen2", n_kv=2, theta=1000000.0, eps=1e-6,
        tied=True, rope_scaling=None, types=["F32", "Q8_0"],
    ),
    "llama3": dict(
        cls="LlamaForCausalLM", cfg="LlamaConfig", arch="llama", n_kv=1, theta=500000.0, eps=1e-5,
        tied=True,
        rope_scaling={
            "rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
            "high_freq_factor": 4.0, "original_max_position_embeddings": 64,
        },
        types=["F32", "Q8_0"],
    ),
    # QK-norm (RMSNorm over head_dim on q and k, before rope), no biases, head_dim in config.json
    "qwen3": dict(
        cls="Qwen3ForCausalLM", cfg="Qwen3Config", arch="qwen3", n_kv=2, theta=1000000.0, eps=1e-6,
        tied=True, rope_scaling=None, types=["F32", "Q8_0"],
        # transformers' qwen3 GGUF mapping does not read attention.key_length: head_dim 128
        gguf_config_differs="head_dim",
    ),
    # 6 layers: llama.cpp hard-codes gemma3's sliding-window pattern (5 sliding + 1 global);
    # norms x_norm * (1 + w); embeddings scaled by sqrt(hidden); q/k norms; GeLU-tanh MLP;
    # post-attention and post-feed-forward norms; local rope theta 1e4 on sliding layers
    "gemma3": dict(
        cls="Gemma3ForCausalLM", cfg="Gemma3TextConfig", arch="gemma3", n_kv=1, theta=1000000.0,
        theta_local=10000.0, eps=1e-6, tied=True, rope_scaling=None, layers=6, sliding_window=8,
        norm_offset=True, embed_std=0.125, types=["F32", "Q8_0"],
        # transformers' GGUF loader does not read query_pre_attn_scalar (default 256; 16 here)
        gguf_config_differs="query_pre_attn_scalar",
    ),
    # sliding-window attention (window 8) in every layer; safetensors only (llama.cpp's
    # converter writes Mistral as arch llama and drops the window)
    "mistral": dict(
        cls="MistralForCausalLM", cfg="MistralConfig", arch=None, n_kv=2, theta=10000.0, eps=1e-5,
        tied=False, rope_scaling=None, sliding_window=8, types=[],
    ),
    # Phi-3: fused qkv_proj [q | k | v] and gate_up_proj [gate | up], sliding window 16 in every
    # layer, LongRoPE (short/long per-frequency divisors, attention factor on cos/sin);
    # original_max_position_embeddings 64 (top-level in config.json too: Phi3Config's own
    # field, default 4096, overrides rope_parameters' copy), max_position_embeddings 256.
    # tokenizer_config.json says GPT2Tokenizer (as Phi-4): llama.cpp's Phi3MiniModel.set_vocab
    # takes its GPT-2 (BPE) path only for that class, else it wants a SentencePiece tokenizer.model
    "phi3": dict(
        cls="Phi3ForCausalLM", cfg="Phi3Config", arch="phi3", n_kv=2, theta=10000.0, eps=1e-5,
        tied=False, sliding_window=16, original_max_pos=64,
        rope_scaling={
            "rope_type": "longrope",
            "short_factor": [1.0, 1.05, 1.1, 1.2, 1.4, 1.7, 2.1, 2.6],
            "long_factor": [1.0, 1.3, 1.8, 2.5, 3.5, 5.0, 7.0, 10.0],
            "original_max_position_embeddings": 64,
        },
        tokenizer_class="GPT2Tokenizer", types=["F32", "Q8_0"],
        # transformers' phi3 GGUF mapping reads neither the longrope factors/attn_factor nor the window
        gguf_config_differs="rope_parameters, sliding_window",
    ),
}
NEW_MODELS = ("qwen3", "gemma3", "mistral", "phi3")
GGUF_ARCHS = ("llama", "qwen2", "qwen3", "gemma3", "phi3")
COMMON = dict(vocab=256, hidden=64, layers=2, heads=4, head_dim=16, inter=96, max_pos=256)


def r7(x) -> float:
    return float(f"{float(x):.7g}")


def r7list(t) -> list:
    return [r7(v) for v in t.tolist()]


# --------------------------------------------------------------------------------------------
# tokenizer


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte -> printable-character map (what the ByteLevel pre-tokenizer applies)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(
        range(ord("®"), ord("ÿ") + 1)
    )
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def train_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    b2u = bytes_to_unicode()
    # \t \n and printable ASCII: any ASCII text encodes; other bytes are not in the vocabulary
    # (a BPE without unk/byte-fallback drops them).
    alphabet = [b2u[b] for b in [0x09, 0x0A] + list(range(0x20, 0x7F))]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(add_prefix_space=False, trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=COMMON["vocab"], special_tokens=SPECIALS, initial_alphabet=alphabet,
        show_progress=False,
    )
    tok.train_from_iterator([CORPUS], trainer)
    assert tok.get_vocab_size() == COMMON["vocab"], tok.get_vocab_size()
    for i, s in enumerate(SPECIALS):
        assert tok.token_to_id(s) == i
    return tok


def tokenizer_config(name: str | None = None) -> dict:
    added = {
        str(i): {"content": s, "lstrip": False, "normalized": False, "rstrip": False,
                 "single_word": False, "special": True}
        for i, s in enumerate(SPECIALS)
    }
    return {
        "add_bos_token": False,
        "add_eos_token": False,
        "added_tokens_decoder": added,
        "bos_token": BOS,
        "chat_template": CHAT_TEMPLATE,
        "clean_up_tokenization_spaces": False,
        "eos_token": EOS,
        "model_max_length": COMMON["max_pos"],
        "pad_token": PAD,
        "tokenizer_class": (MODELS[name].get("tokenizer_class") if name else None)
        or "PreTrainedTokenizerFast",
        "unk_token": UNK,
    }


def write_tokenizer(out: Path, reuse: bool, names: list[str] | None = None) -> str:
    """Writes tokenizer.json/tokenizer_config.json into every model folder; returns the json."""
    src = out / "llama" / "tokenizer.json"
    fresh = train_tokenizer().to_str(pretty=True)
    if reuse and src.is_file():
        text = src.read_text(encoding="utf-8")
        print(f"tokenizer: reusing {src} (fresh training identical: {text == fresh})")
    else:
        text = fresh
    from tokenizers import Tokenizer

    tok = Tokenizer.from_str(text)
    ids = tok.encode(PROMPT).ids
    assert len(ids) == N_PROMPT, (len(ids), tok.encode(PROMPT).tokens)
    for name in (MODELS if names is None else names):
        d = out / name
        d.mkdir(parents=True, exist_ok=True)
        (d / "tokenizer.json").write_text(text, encoding="utf-8")
        (d / "tokenizer_config.json").write_text(
            json.dumps(tokenizer_config(name), indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
        )
    print("tokenizer: prompt", repr(PROMPT), "->", ids, tok.encode(PROMPT).tokens)
    return text


# --------------------------------------------------------------------------------------------
# models and references


def make_config(name: str, **override):
    """The HF config of model `name`; `override` replaces config kwargs (cross-checks only)."""
    import inspect

    import transformers

    spec = MODELS[name]
    Cfg = getattr(transformers, spec["cfg"])
    kw = dict(
        vocab_size=COMMON["vocab"], hidden_size=COMMON["hidden"], intermediate_size=COMMON["inter"],
        num_hidden_layers=spec.get("layers", COMMON["layers"]), num_attention_heads=COMMON["heads"],
        num_key_value_heads=spec["n_kv"], max_position_embeddings=COMMON["max_pos"],
        rms_norm_eps=spec["eps"], tie_word_embeddings=spec["tied"],
        bos_token_id=SPECIALS.index(BOS), eos_token_id=SPECIALS.index(EOS),
    )
    if spec["arch"] == "llama" or (name in NEW_MODELS and name != "phi3"):
        kw["head_dim"] = COMMON["head_dim"]  # (Phi3Config has no head_dim: hidden / heads = 16)
    if name == "qwen3":
        kw.update(attention_bias=False, use_sliding_window=False)
    if name == "mistral":
        kw.update(sliding_window=spec["sliding_window"])
    if name == "phi3":  # Phi3Config defaults pad_token_id 32000: outside this vocab
        kw.update(sliding_window=spec["sliding_window"], pad_token_id=SPECIALS.index(PAD),
                  original_max_position_embeddings=spec["original_max_pos"])
    if name == "gemma3":
        n = kw["num_hidden_layers"]
        kw.update(
            pad_token_id=SPECIALS.index(PAD), hidden_activation="gelu_pytorch_tanh",
            sliding_window=spec["sliding_window"], query_pre_attn_scalar=COMMON["head_dim"],
            layer_types=["full_attention" if (i + 1) % 6 == 0 else "sliding_attention" for i in range(n)],
            final_logit_softcapping=None, attn_logit_softcapping=None, attention_bias=False,
            rope_parameters={
                "full_attention": {"rope_type": "default", "rope_theta": spec["theta"]},
                "sliding_attention": {"rope_type": "default", "rope_theta": spec["theta_local"]},
            },
        )
    elif "rope_parameters" in inspect.signature(Cfg.__init__).parameters:  # transformers 5
        rp = {"rope_type": "default", "rope_theta": spec["theta"]}
        if spec["rope_scaling"]:
            rp = json.loads(json.dumps({**spec["rope_scaling"], "rope_theta": spec["theta"]}))
        kw["rope_parameters"] = rp
    else:
        kw["rope_theta"] = spec["theta"]
        if spec["rope_scaling"]:
            kw["rope_scaling"] = dict(spec["rope_scaling"])
    kw.update(override)
    cfg = Cfg(**kw, attn_implementation="eager")
    return cfg


def build_model(name: str, seed: int, **override):
    import torch
    import transformers

    cfg = make_config(name, **override)
    model = getattr(transformers, MODELS[name]["cls"])(cfg).float().eval()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for pname, p in model.named_parameters():
            z = torch.randn(p.shape, generator=g, dtype=torch.float64)
            if pname.endswith("norm.weight") and MODELS[name].get("norm_offset"):
                v = 0.1 * z  # Gemma: x_norm * (1 + w), so 1 + w ~ 1 + N(0, 0.1^2) like the others
            elif pname.endswith("norm.weight"):
                v = 1.0 + 0.1 * z
            elif pname.endswith(".bias"):
                v = 0.5 * z
            elif pname in ("model.embed_tokens.weight", "lm_head.weight"):
                v = MODELS[name].get("embed_std", 0.3) * z
            else:
                v = z / math.sqrt(p.shape[1])
            p.copy_(v.to(torch.float32))
    if MODELS[name]["tied"]:
        if model.lm_head.weight.data_ptr() != model.model.embed_tokens.weight.data_ptr():
            model.tie_weights()
        assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    return model


def run_reference(model, prompt_ids: list[int], probes: bool = True, n_steps: int = N_STEPS) -> dict:
    """One forward over the prompt, then n_steps greedy steps through the KV cache."""
    import torch

    ids = torch.tensor([prompt_ids])
    rec: dict = {}
    hooks = []
    if probes:
        inner = model.model

        def keep(key, idx=None):
            def hook(_m, _inp, out):
                t = out[0] if isinstance(out, (tuple, list)) else out
                if idx is None:
                    rec[key] = r7list(t[0, -1, :8])
                else:
                    rec.setdefault(key, {})[idx] = r7list(t[0, -1, :8])
            return hook

        hooks.append(inner.embed_tokens.register_forward_hook(keep("embed")))
        for i, layer in enumerate(inner.layers):
            hooks.append(layer.register_forward_hook(keep("layers", i)))
        hooks.append(inner.norm.register_forward_hook(keep("final_norm")))
    with torch.no_grad():
        out = model(ids, use_cache=True, output_hidden_states=probes)
        for h in hooks:
            h.remove()
        prompt_logits = out.logits[0].float()
        past = out.past_key_values
        nxt = int(prompt_logits[-1].argmax())
        greedy, steps = [], []
        for _ in range(n_steps):
            greedy.append(nxt)
            o = model(torch.tensor([[nxt]]), past_key_values=past, use_cache=True)
            past = o.past_key_values
            lg = o.logits[0, -1].float()
            steps.append(lg)
            nxt = int(lg.argmax())

    def margin(lg):
        top = torch.topk(lg.double(), 2).values
        return float(top[0] - top[1])

    # HF generate(output_logits=True) layout: greedy_logits[i] is what greedy_ids[i] is the argmax
    # of ([0] = last prompt position; [i >= 1] = after feeding greedy_ids[i-1] at N_PROMPT+i-1);
    # final_logits = after feeding greedy_ids[-1], next_id its argmax.
    chosen = [prompt_logits[-1]] + steps[:-1]
    res = {
        "prompt_ids": list(prompt_ids),
        "prompt_logits": [r7list(row) for row in prompt_logits],
        "greedy_ids": greedy,
        "greedy_logits": [r7list(s) for s in chosen],
        "final_logits": r7list(steps[-1]),
        "next_id": nxt,
        "margins": [r7(margin(s)) for s in chosen + [steps[-1]]],
        "_raw": (prompt_logits, torch.stack(steps)),
    }
    if probes:
        res["hidden_last_first8"] = {
            "embed": rec["embed"],
            "layers": [rec["layers"][i] for i in sorted(rec["layers"])],
            "final_norm": rec["final_norm"],
        }
        res["hf_hidden_states_last_first8"] = [r7list(h[0, -1, :8]) for h in (out.hidden_states or ())]
    return res


def acceptable(ref: dict) -> tuple[bool, float]:
    ids = ref["greedy_ids"] + [ref["next_id"]]
    mm = min(ref["margins"])
    ok = mm >= MIN_MARGIN and not any(i < len(SPECIALS) for i in ids) and len(set(ids)) >= 3
    return ok, mm


def cross_checks(model, ref: dict) -> dict:
    """f64 teacher-forced forward over prompt+greedy, and HF generate() vs the manual loop."""
    import copy

    import torch

    prompt_logits, steps = ref["_raw"]
    seq = ref["prompt_ids"] + ref["greedy_ids"]
    m64 = copy.deepcopy(model).double()
    with torch.no_grad():
        full = m64(torch.tensor([seq])).logits[0]
    got = torch.cat([prompt_logits, steps]).double()  # positions 0..len(seq)-1
    d64 = float((full - got).abs().max())
    gen_info: dict = {}
    try:
        from transformers import GenerationConfig

        gc = GenerationConfig(
            max_new_tokens=len(ref["greedy_ids"]) + 1, min_new_tokens=len(ref["greedy_ids"]) + 1,
            do_sample=False,
            eos_token_id=None, pad_token_id=SPECIALS.index(PAD),
        )
        with torch.no_grad():
            g = model.generate(
                torch.tensor([ref["prompt_ids"]]), generation_config=gc, output_logits=True,
                return_dict_in_generate=True,
            )
        new = g.sequences[0, len(ref["prompt_ids"]):].tolist()
        gl = torch.stack([x[0] for x in g.logits]).float()
        want = torch.cat([prompt_logits[-1:], steps])
        gen_info = {
            "ids_equal": new == ref["greedy_ids"] + [ref["next_id"]],
            "logits_max_abs_diff": float((gl - want).abs().max()),
        }
    except Exception as e:  # noqa: BLE001 - a cross-check only
        gen_info = {"error": repr(e)}
    return {"f64_max_abs_diff": d64, "generate": gen_info}


def sliding_window_check(name: str, seed: int, ref: dict) -> dict | None:
    """Does the reference really use the window? Same weights, window off, teacher-forced.

    mistral, phi3: sliding_window None; gemma3: sliding_window 10**6 (the sliding layers keep
    their local rope theta, only the mask changes). Per position p of prompt + greedy ids: the max
    abs logit difference. HF's window W lets query p see keys p-W+1..p, so the logits must agree
    at p < W and differ from p = W on. (phi3: with sliding_window None, Phi3Model builds a plain
    causal mask; everything else, longrope included, is the same.)
    """
    import torch

    spec = MODELS[name]
    W = spec.get("sliding_window")
    if not W:
        return None
    off = None if name in ("mistral", "phi3") else 10**6
    a = build_model(name, seed)
    b = build_model(name, seed, sliding_window=off)
    sa, sb = a.state_dict(), b.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa), "window-off model has other weights"
    seq = torch.tensor([ref["prompt_ids"] + ref["greedy_ids"]])
    with torch.no_grad():
        la = a(seq).logits[0].double()
        lb = b(seq).logits[0].double()
    want = torch.cat(list(ref["_raw"])).double()
    per_pos = (la - lb).abs().max(-1).values.tolist()
    return {
        "window": W,
        "window_off": "sliding_window None" if off is None else f"sliding_window {off}",
        "positions": len(per_pos),
        "max_abs_diff_positions_lt_window": max(per_pos[:W]),
        "min_over_positions_ge_window_of_max_abs_diff": min(per_pos[W:]),
        "per_position_max_abs_diff": [r7(x) for x in per_pos],
        "argmax_differs_at": [p for p in range(len(per_pos)) if int(la[p].argmax()) != int(lb[p].argmax())],
        "windowed_teacher_forced_vs_reference_max_abs_diff": float((la - want).abs().max()),
    }


def phi3_rope_override(short: list | None = None, long: list | None = None) -> dict:
    """make_config override: phi3's rope_parameters with other short / long factor lists."""
    spec = MODELS["phi3"]
    rp = json.loads(json.dumps({**spec["rope_scaling"], "rope_theta": spec["theta"]}))
    if short is not None:
        rp["short_factor"] = list(short)
    if long is not None:
        rp["long_factor"] = list(long)
    return {"rope_parameters": rp}


def phi3_manual_logits(model, ids: list[int], window: int | None) -> tuple:
    """An independent float64 Phi-3 forward (no transformers code): the logits at every position.

    LongRoPE as transformers' _compute_longrope_parameters + dynamic_rope_update describe it: the
    whole pass uses long_factor when len(ids) > original_max_position_embeddings, else
    short_factor; inv_freq_i = 1 / (factor_i * theta^(2i/d)); cos and sin (NeoX halves) are both
    multiplied by attention_factor = sqrt(1 + ln(max_pos / orig) / ln(orig)). Window W: query p
    sees keys p-W+1..p. Returns (logits [T, vocab] float64, which factors, attention_factor).
    """
    import torch

    cfg = model.config
    sd = {k: v.detach().double() for k, v in model.state_dict().items()}
    rp = cfg.rope_parameters
    orig, max_pos = rp["original_max_position_embeddings"], cfg.max_position_embeddings
    T = len(ids)
    which = "long" if T > orig else "short"
    fac = torch.tensor(rp[f"{which}_factor"], dtype=torch.float64)
    nh, nkv = cfg.num_attention_heads, cfg.num_key_value_heads
    hd = cfg.hidden_size // nh
    attn_factor = math.sqrt(1 + math.log(max_pos / orig) / math.log(orig)) if max_pos > orig else 1.0
    inv = 1.0 / (fac * rp["rope_theta"] ** (torch.arange(0, hd, 2, dtype=torch.float64) / hd))
    ang = torch.arange(T, dtype=torch.float64)[:, None] * inv[None, :]
    cos, sin = ang.cos() * attn_factor, ang.sin() * attn_factor  # [T, hd/2]

    def rope(x):  # [T, heads, hd], NeoX halves
        a, b = x[..., : hd // 2], x[..., hd // 2:]
        c, s = cos[:, None, :], sin[:, None, :]
        return torch.cat([a * c - b * s, b * c + a * s], -1)

    def rms(x, w):
        return x / torch.sqrt((x * x).mean(-1, keepdim=True) + cfg.rms_norm_eps) * w

    i = torch.arange(T)[:, None]
    j = torch.arange(T)[None, :]
    allowed = (j <= i) & ((j > i - window) if window else torch.ones_like(j <= i))
    x = sd["model.embed_tokens.weight"][torch.tensor(ids)]
    for L in range(cfg.num_hidden_layers):
        pre = f"model.layers.{L}."
        h = rms(x, sd[pre + "input_layernorm.weight"])
        qkv = h @ sd[pre + "self_attn.qkv_proj.weight"].T
        q = rope(qkv[:, : nh * hd].reshape(T, nh, hd))
        k = rope(qkv[:, nh * hd: (nh + nkv) * hd].reshape(T, nkv, hd))
        v = qkv[:, (nh + nkv) * hd:].reshape(T, nkv, hd)
        out = torch.empty(T, nh, hd, dtype=torch.float64)
        for hh in range(nh):
            g = hh // (nh // nkv)
            sc = (q[:, hh] @ k[:, g].T) / math.sqrt(hd)
            sc = sc.masked_fill(~allowed, float("-inf"))
            out[:, hh] = torch.softmax(sc, -1) @ v[:, g]
        x = x + out.reshape(T, nh * hd) @ sd[pre + "self_attn.o_proj.weight"].T
        h = rms(x, sd[pre + "post_attention_layernorm.weight"])
        gu = h @ sd[pre + "mlp.gate_up_proj.weight"].T
        gate, up = gu[:, : cfg.intermediate_size], gu[:, cfg.intermediate_size:]
        x = x + (up * torch.nn.functional.silu(gate)) @ sd[pre + "mlp.down_proj.weight"].T
    x = rms(x, sd["model.norm.weight"])
    return x @ sd["lm_head.weight"].T, which, attn_factor


def phi3_long_prompt_ids(hf_tok) -> list[int]:
    chat = hf_tok.apply_chat_template([{"role": "user", "content": LONG_USER_TEXT}],
                                      tokenize=False, add_generation_prompt=True)
    assert chat == LONG_PROMPT, repr(chat)
    ids = hf_tok(LONG_PROMPT, add_special_tokens=False).input_ids
    assert len(ids) == N_LONG_PROMPT, len(ids)
    return ids


def phi3_rope_checks(seed: int, ref: dict, label: str) -> dict:
    """Which LongRoPE factors a reference used: the same weights with both lists forced equal.

    forced_short: long_factor := short_factor (every pass short); forced_long: short_factor :=
    long_factor. Teacher-forced over prompt + greedy ids (one pass, so one choice for all
    positions: long iff the pass length > original_max_position_embeddings), max abs logit diff
    vs the reference's own logits; plus the independent float64 implementation
    (phi3_manual_logits, window on and, for the window check, off).
    """
    import torch

    spec = MODELS["phi3"]
    rs = spec["rope_scaling"]
    seq = ref["prompt_ids"] + ref["greedy_ids"]
    want = torch.cat(list(ref["_raw"])).double()
    res: dict = {"label": label, "positions": len(seq),
                 "original_max_position_embeddings": rs["original_max_position_embeddings"]}
    for tag, ov in (("forced_short", phi3_rope_override(long=rs["short_factor"])),
                    ("forced_long", phi3_rope_override(short=rs["long_factor"]))):
        m = build_model("phi3", seed, **ov)
        with torch.no_grad():
            res[f"{tag}_max_abs_diff"] = float((m(torch.tensor([seq])).logits[0].double() - want).abs().max())
    base = build_model("phi3", seed)
    res["hf_attention_scaling"] = float(base.model.rotary_emb.attention_scaling)
    man, which, af = phi3_manual_logits(base, seq, spec["sliding_window"])
    res["manual_f64_factors"] = which
    res["manual_f64_attention_factor"] = af
    res["manual_f64_max_abs_diff"] = float((man - want).abs().max())
    res["used"] = ("short" if res["forced_short_max_abs_diff"] < res["forced_long_max_abs_diff"]
                   else "long")
    return res


# --------------------------------------------------------------------------------------------
# GGUF


def read_safetensors_ordered(path: Path):
    """Tensors sorted by name (gguf.utility.SafetensorsLocal sorts; the converter iterates that)."""
    import struct

    import numpy as np

    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        base = 8 + n
        out = []
        for k, v in sorted(header.items()):
            if k == "__metadata__":
                continue
            assert v["dtype"] == "F32", v
            a, b = v["data_offsets"]
            f.seek(base + a)
            arr = np.frombuffer(f.read(b - a), dtype="<f4").reshape(v["shape"]).copy()
            out.append((k, arr))
    return out


def llama_permute(w, n_head: int, n_head_kv: int | None):
    """conversion/llama.py LlamaModel.permute (numpy)."""
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return (w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:])
            .swapaxes(1, 2)
            .reshape(w.shape))


def llama3_rope_factors(cfg: dict):
    """conversion/llama.py LlamaModel.generate_extra_tensors (torch f32, verbatim arithmetic)."""
    import torch

    rp = cfg.get("rope_parameters") or cfg.get("rope_scaling") or {}
    base = rp.get("rope_theta", cfg.get("rope_theta", 10000.0))
    dim = cfg.get("head_dim") or cfg["hidden_size"] // cfg["num_attention_heads"]
    freqs = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.float32) / dim))
    factor = rp.get("factor", 8.0)
    low_freq_factor = rp.get("low_freq_factor", 1.0)
    high_freq_factor = rp.get("high_freq_factor", 4.0)
    old_context_len = rp.get("original_max_position_embeddings", 8192)
    low_freq_wavelen = old_context_len / low_freq_factor
    high_freq_wavelen = old_context_len / high_freq_factor
    rope_factors = []
    for freq in freqs:
        wavelen = 2 * math.pi / freq
        if wavelen < high_freq_wavelen:
            rope_factors.append(1)
        elif wavelen > low_freq_wavelen:
            rope_factors.append(factor)
        else:
            smooth = (old_context_len / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor)
            rope_factors.append(1 / ((1 - smooth) / factor + smooth))
    return torch.tensor(rope_factors, dtype=torch.float32).numpy()


def write_gguf(model_dir: Path, name: str, qtype_name: str) -> Path:
    import gguf
    import numpy as np

    spec = MODELS[name]
    arch = spec["arch"]
    cfg = json.loads((model_dir / "config.json").read_text())
    tokj = json.loads((model_dir / "tokenizer.json").read_text())
    tokc = json.loads((model_dir / "tokenizer_config.json").read_text())
    T = gguf.GGMLQuantizationType
    ftype = {
        "F32": gguf.LlamaFileType.ALL_F32, "F16": gguf.LlamaFileType.MOSTLY_F16,
        "Q8_0": gguf.LlamaFileType.MOSTLY_Q8_0, "Q4_0": gguf.LlamaFileType.MOSTLY_Q4_0,
    }[qtype_name]
    file_qtype = T[qtype_name]
    n_layers = cfg["num_hidden_layers"]
    n_head = cfg["num_attention_heads"]
    n_kv = cfg["num_key_value_heads"]
    head_dim = cfg.get("head_dim") or cfg["hidden_size"] // n_head
    rp = cfg.get("rope_parameters") or cfg.get("rope_scaling") or {}
    rp = rp.get("full_attention", rp)

    out_path = model_dir / f"{name}.{qtype_name}.gguf"
    w = gguf.GGUFWriter(path=None, arch=arch)
    model_arch = gguf_model_arch(arch)
    tmap = gguf.get_tensor_name_map(model_arch, n_layers)

    # --- tensors (ModelBase.prepare_tensors) -------------------------------------------------
    tensors = []
    if (rp.get("rope_type") or "").lower() == "llama3":
        tensors.append(("rope_freqs.weight", llama3_rope_factors(cfg)))
    phi3_attn_factor = None
    if arch == "phi3":  # Phi3MiniModel.generate_extra_tensors (also writes the attn_factor KV now)
        long_f, short_f, phi3_attn_factor = phi3_rope_factors(cfg)
        tensors.append(("rope_factors_long.weight", long_f))
        tensors.append(("rope_factors_short.weight", short_f))
    for hf_name, arr in read_safetensors_ordered(model_dir / "model.safetensors"):
        if hf_name.endswith((".attention.masked_bias", ".attention.bias", ".rotary_emb.inv_freq")):
            continue
        new = tmap.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        assert new is not None, hf_name
        if arch == "llama":  # LlamaModel.undo_permute
            if hf_name.endswith(("q_proj.weight", "q_proj.bias")):
                arr = llama_permute(arr, n_head, n_head)
            if hf_name.endswith(("k_proj.weight", "k_proj.bias")):
                arr = llama_permute(arr, n_head, n_kv)
        if arch == "gemma3":  # Gemma3Model.modify_tensors
            if "embed_tokens.weight" in hf_name:  # drops rows past the tokenizer's vocab (none here)
                n_real = len(tokj["model"]["vocab"]) + len(tokj["added_tokens"])
                arr = arr[:n_real]
            if hf_name.endswith("norm.weight"):  # norm_shift: Gemma3RMSNorm's (1 + w)
                arr = arr + np.float32(1.0)
        tensors.append((new, arr))
    for new, arr in tensors:
        data = np.ascontiguousarray(arr, dtype=np.float32)
        if data.ndim <= 1 or new.endswith("_norm.weight") or new[-7:] not in (".weight", ".lora_a", ".lora_b"):
            qt = T.F32
        else:
            qt = file_qtype
        try:
            q = gguf.quants.quantize(data, qt)
        except gguf.QuantError:
            qt = T.F16
            q = gguf.quants.quantize(data, qt)
        w.add_tensor(new, q, raw_dtype=qt)

    # --- metadata (ModelBase/TextModel.prepare_metadata) ------------------------------------
    if phi3_attn_factor is not None:  # added during prepare_tensors, so right after the arch
        w.add_rope_scaling_attn_factors(phi3_attn_factor)
    total_params, shared_params, expert_params, expert_count = w.get_total_parameter_count()
    md = gguf.Metadata.load(None, model_dir, None, total_params)
    if md.name is None:
        md.name = model_dir.name
    if md.size_label is None and total_params > 0:
        md.size_label = gguf.size_label(total_params, shared_params, expert_params, expert_count)
    w.add_type(gguf.GGUFType.MODEL)
    md.set_gguf_meta_model(w)
    if arch == "phi3":
        write_phi3_parameters(w, cfg, ftype)
    else:
        write_text_parameters(w, cfg, arch, ftype)
    w.add_quantization_version(gguf.GGML_QUANT_VERSION)
    write_vocab_gpt2(w, cfg, tokj, tokc)

    w.write_header_to_file(path=out_path)
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return out_path


def gguf_model_arch(arch: str):
    import gguf

    return {"llama": gguf.MODEL_ARCH.LLAMA, "qwen2": gguf.MODEL_ARCH.QWEN2,
            "qwen3": gguf.MODEL_ARCH.QWEN3, "gemma3": gguf.MODEL_ARCH.GEMMA3,
            "phi3": gguf.MODEL_ARCH.PHI3}[arch]


def phi3_rope_factors(cfg: dict):
    """conversion/phi.py Phi3MiniModel.generate_extra_tensors: (long, short, attn_factor).

    rope_factors_long / _short = the config's long_factor / short_factor as torch f32 ([rope_dims
    / 2]); attn_factor (longrope) = sqrt(1 + ln(scale) / ln(orig)) with scale = context_length /
    original context, 1.0 when scale <= 1 -- transformers' default attention_factor.
    """
    import torch

    rp = cfg.get("rope_parameters") or cfg.get("rope_scaling") or {}
    orig = rp.get("original_max_position_embeddings", cfg.get("original_max_position_embeddings"))
    scale = cfg["max_position_embeddings"] / orig
    assert (rp.get("rope_type") or rp.get("type")).lower() in ("su", "longrope"), rp
    attn_factor = math.sqrt(1 + math.log(scale) / math.log(orig)) if scale > 1.0 else 1.0
    rope_dims = int(rp.get("partial_rotary_factor", 1.0) * cfg["hidden_size"]) // cfg["num_attention_heads"]
    assert len(rp["long_factor"]) == len(rp["short_factor"]) == rope_dims // 2
    return (torch.tensor(rp["long_factor"], dtype=torch.float32).numpy(),
            torch.tensor(rp["short_factor"], dtype=torch.float32).numpy(), attn_factor)


def write_phi3_parameters(w, cfg: dict, ftype) -> None:
    """conversion/phi.py Phi3MiniModel.set_gguf_parameters (replaces TextModel's entirely)."""
    rp = cfg.get("rope_parameters") or cfg.get("rope_scaling") or {}
    n_embd, n_head = cfg["hidden_size"], cfg["num_attention_heads"]
    rope_dims = int(rp.get("partial_rotary_factor", 1.0) * n_embd) // n_head
    w.add_context_length(cfg["max_position_embeddings"])
    w.add_rope_scaling_orig_ctx_len(rp["original_max_position_embeddings"])
    w.add_embedding_length(n_embd)
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_block_count(cfg["num_hidden_layers"])
    w.add_head_count(n_head)
    w.add_head_count_kv(cfg["num_key_value_heads"])
    w.add_layer_norm_rms_eps(cfg["rms_norm_eps"])
    w.add_rope_dimension_count(rope_dims)
    w.add_rope_freq_base(rp.get("full_attention", rp)["rope_theta"])
    w.add_file_type(ftype)
    w.add_sliding_window(cfg.get("sliding_window") or 0)  # 0: "Phi-4" (no window) in llama.cpp


def write_text_parameters(w, cfg: dict, arch: str, ftype) -> None:
    """TextModel.set_gguf_parameters, then the Gemma3Model / LlamaModel additions."""
    import gguf

    n_layers = cfg["num_hidden_layers"]
    n_head = cfg["num_attention_heads"]
    n_kv = cfg["num_key_value_heads"]
    head_dim = cfg.get("head_dim") or cfg["hidden_size"] // n_head
    rp = cfg.get("rope_parameters") or cfg.get("rope_scaling") or {}
    rp = rp.get("full_attention", rp)
    # TextModel.set_gguf_parameters
    w.add_block_count(n_layers)
    w.add_context_length(cfg["max_position_embeddings"])
    w.add_embedding_length(cfg["hidden_size"])
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_head_count(n_head)
    w.add_head_count_kv(n_kv)
    theta = rp.get("rope_theta", cfg.get("rope_theta"))
    w.add_rope_freq_base(theta)
    swa_theta = (cfg.get("rope_parameters") or {}).get("sliding_attention", {}).get("rope_theta")
    if swa_theta is not None:  # TextModel: rope_parameters["sliding_attention"] (gemma3)
        w.add_rope_freq_base_swa(swa_theta)
    w.add_layer_norm_rms_eps(cfg["rms_norm_eps"])
    if cfg.get("head_dim") is not None:
        w.add_key_length(cfg["head_dim"])
        w.add_value_length(cfg["head_dim"])
    w.add_file_type(ftype)
    if arch == "gemma3":  # Gemma3Model.set_gguf_parameters (its other keys rewrite equal values)
        assert cfg.get("attn_logit_softcapping") is None
        if cfg.get("final_logit_softcapping"):
            w.add_final_logit_softcapping(cfg["final_logit_softcapping"])
        if cfg.get("sliding_window_pattern") != 1:
            w.add_sliding_window(cfg["sliding_window"])
    if arch == "llama":  # LlamaModel.set_gguf_parameters
        w.add_vocab_size(cfg["vocab_size"])
        w.add_rope_dimension_count(head_dim)


def write_vocab_gpt2(w, cfg: dict, tokj: dict, tokc: dict) -> None:
    """TextModel._set_vocab_gpt2 + gguf.SpecialVocab (phi3: Phi3MiniModel.set_vocab's GPT2Tokenizer path)."""
    import gguf

    vocab = tokj["model"]["vocab"]
    rev = {i: t for t, i in vocab.items()}
    added = {a["id"]: a for a in tokj["added_tokens"]}
    for i, a in added.items():
        rev[i] = a["content"]
    tokens, types = [], []
    for i in range(cfg["vocab_size"]):
        if i not in rev:
            tokens.append(f"[PAD{i}]")
            types.append(gguf.TokenType.UNUSED)
            continue
        t = rev[i]
        if i in added:
            look_special = t.startswith("<|") and t.endswith("|>")
            types.append(gguf.TokenType.CONTROL if added[i]["special"] or look_special
                         else gguf.TokenType.USER_DEFINED)
        else:
            types.append(gguf.TokenType.NORMAL)
        tokens.append(t)
    merges = tokj["model"]["merges"]
    if merges and isinstance(merges[0], list):
        merges = [" ".join("".join(chr(ord(c) + 256) if c == " " else c for c in part) for part in pair)
                  for pair in merges]
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre(GGUF_PRE)
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    by_content = {a["content"]: a["id"] for a in tokj["added_tokens"]}
    w.add_bos_token_id(by_content[tokc["bos_token"]])
    w.add_eos_token_id(by_content[tokc["eos_token"]])
    w.add_unk_token_id(by_content[tokc["unk_token"]])
    w.add_pad_token_id(by_content[tokc["pad_token"]])
    w.add_add_bos_token(False)  # ByteLevel post-processor -> SpecialVocab setdefault(False)
    w.add_add_eos_token(False)
    w.add_chat_template(tokc["chat_template"])


def gguf_readback(model_dir: Path, path: Path, name: str) -> tuple[dict, dict]:
    """Reads a GGUF back with gguf-py and reverses the conventions (names, gemma3 norm +1).

    Returns (state dict in HF names, dequantized float32 torch tensors; info). For an F32 file the
    info says whether every tensor is bit-exactly the safetensors tensor (gemma3 norms: whether the
    stored value is exactly float32(w + 1), and how far (stored - 1) is from w). phi3: the
    rope_factors_long/_short tensors are compared with config.json's long/short_factor (as f32)
    and the arch's rope / window keys are returned in info["phi3_kv"].
    """
    import gguf
    import numpy as np
    import torch

    spec = MODELS[name]
    cfg = json.loads((model_dir / "config.json").read_text())
    arch = spec["arch"]
    model_arch = gguf_model_arch(arch)
    tmap = gguf.get_tensor_name_map(model_arch, cfg["num_hidden_layers"])
    src = dict(read_safetensors_ordered(model_dir / "model.safetensors"))
    rev = {tmap.get_name(k, try_suffixes=(".weight", ".bias")): k for k in src}
    r = gguf.GGUFReader(path)
    sd, info = {}, {"tensors": len(r.tensors), "types": {}}
    exact, shifted = [], {}
    if arch == "phi3":
        rp = cfg["rope_parameters"]
        info["rope_factors_equal_config"] = {}
        kv = {}
        for k, f in r.fields.items():
            if k.startswith("phi3."):
                kv[k] = f.contents()
        info["phi3_kv"] = kv
    for t in r.tensors:
        if arch == "phi3" and t.name.startswith("rope_factors_"):
            key = t.name[len("rope_factors_"):-len(".weight")] + "_factor"
            got = np.asarray(t.data, dtype=np.float32)
            info["rope_factors_equal_config"][t.name] = (
                t.tensor_type == gguf.GGMLQuantizationType.F32
                and bool(np.array_equal(got, np.asarray(rp[key], dtype=np.float32))))
            continue
        hf = rev[t.name]
        shape = [int(x) for x in reversed(t.shape)]
        arr = np.asarray(gguf.quants.dequantize(t.data, t.tensor_type), dtype=np.float32).reshape(shape)
        info["types"][t.tensor_type.name] = info["types"].get(t.tensor_type.name, 0) + 1
        want = src[hf]
        if arch == "llama" and hf.endswith(("q_proj.weight", "k_proj.weight")):
            raise NotImplementedError("readback of permuted Q/K")  # not needed: new archs only
        if spec.get("norm_offset") and hf.endswith("norm.weight"):
            if t.tensor_type == gguf.GGMLQuantizationType.F32:
                shifted[hf] = (bool(np.array_equal(arr, want + np.float32(1.0))),
                               float(np.abs((arr - np.float32(1.0)) - want).max()))
            arr = arr - np.float32(1.0)  # transformers' Gemma2TensorProcessor does the same
        elif t.tensor_type == gguf.GGMLQuantizationType.F32:
            exact.append(bool(np.array_equal(arr, want)))
        sd[hf] = torch.from_numpy(arr.copy())
    info["missing"] = sorted(set(src) - set(sd))
    if all(t.tensor_type == gguf.GGMLQuantizationType.F32 for t in r.tensors):
        info["f32_tensors_bit_exact"] = all(exact) and len(exact) + len(shifted) == len(src)
        if shifted:
            info["norm_plus_1_bit_exact"] = all(v[0] for v in shifted.values())
            info["norm_minus_1_max_abs_diff_vs_safetensors"] = max(v[1] for v in shifted.values())
    return sd, info


def gguf_contents(path: Path) -> tuple[dict, dict]:
    import gguf

    r = gguf.GGUFReader(path)
    kv = {}
    for k, f in r.fields.items():
        if k.startswith("GGUF."):
            continue
        try:
            v = f.contents()
        except Exception:  # noqa: BLE001
            v = [bytes(p).hex() for p in f.parts]
        kv[k] = (v, [int(t) for t in f.types])
    tensors = {t.name: (t.tensor_type.name, [int(x) for x in t.shape], t.data.tobytes()) for t in r.tensors}
    return kv, tensors


def compare_gguf(mine: Path, theirs: Path) -> dict:
    kv_a, t_a = gguf_contents(mine)
    kv_b, t_b = gguf_contents(theirs)
    res = {
        "kv_only_here": sorted(set(kv_a) - set(kv_b)),
        "kv_only_converter": sorted(set(kv_b) - set(kv_a)),
        "kv_differ": sorted(k for k in set(kv_a) & set(kv_b) if kv_a[k] != kv_b[k]),
        "kv_order_equal": [k for k in kv_a if k in kv_b] == [k for k in kv_b if k in kv_a],
        "tensors_only_here": sorted(set(t_a) - set(t_b)),
        "tensors_only_converter": sorted(set(t_b) - set(t_a)),
        "tensors_differ": sorted(n for n in set(t_a) & set(t_b) if t_a[n] != t_b[n]),
        "tensor_order_equal": list(t_a) == list(t_b),
    }
    res["identical_except_general"] = not (
        [k for k in res["kv_only_here"] + res["kv_only_converter"] + res["kv_differ"]
         if not k.startswith("general.")]
        or res["tensors_only_here"] or res["tensors_only_converter"] or res["tensors_differ"]
    )
    for k in res["kv_differ"]:
        if k.startswith("general."):
            res.setdefault("general_values", {})[k] = [str(kv_a[k][0]), str(kv_b[k][0])]
    return res


CONVERTER_DRIVER = r"""
import sys
src = sys.argv[1]
sys.path.insert(0, src)
sys.path.insert(1, src + "/gguf-py")
import convert_hf_to_gguf as C
import conversion.base as B
B.TextModel.get_vocab_base_pre = lambda self, tokenizer: "gpt-2"  # unknown hash: name it
for job in sys.argv[2:]:
    model_dir, outtype, outfile = job.split("|")
    sys.argv = ["convert_hf_to_gguf.py", model_dir, "--outtype", outtype, "--outfile", outfile]
    try:
        C.main()
        print("CONVERTED", outfile, flush=True)
    except BaseException as e:  # one failure must not hide the other jobs
        import traceback
        traceback.print_exc()
        print("FAILED", outfile, repr(e), flush=True)
"""


def run_converter(src: Path, jobs: list[tuple[Path, str, Path]], log: Path) -> int:
    env = dict(os.environ)
    cmd = [sys.executable, "-c", CONVERTER_DRIVER, str(src)] + [f"{d}|{t}|{o}" for d, t, o in jobs]
    with open(log, "w") as f:
        return subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, env=env).returncode


# --------------------------------------------------------------------------------------------


def load_gguf_model(model_dir: Path, gguf_name: str):
    import torch
    from transformers import AutoModelForCausalLM

    m = AutoModelForCausalLM.from_pretrained(
        str(model_dir), gguf_file=gguf_name, dtype=torch.float32, attn_implementation="eager")
    return m.eval()  # already f32 (dtype=); transformers refuses .float() on GGUF-loaded models


def in_reference_config(name: str, gguf_model):
    """The GGUF's weights (a model or a state dict) in the safetensors model's exact config."""
    import transformers

    m = getattr(transformers, MODELS[name]["cls"])(make_config(name)).float().eval()
    sd = dict(gguf_model if isinstance(gguf_model, dict) else gguf_model.state_dict())
    if MODELS[name]["tied"]:
        sd.pop("lm_head.weight", None)  # tied to embed_tokens; never let a stray copy win
    missing, unexpected = m.load_state_dict(sd, strict=False)
    missing = [k for k in missing if not k.endswith("inv_freq")
               and not (MODELS[name]["tied"] and k == "lm_head.weight")]
    assert not missing and not unexpected, (missing, unexpected)
    return m


def strip_raw(ref: dict) -> dict:
    return {k: v for k, v in ref.items() if not k.startswith("_")}


def dump_json(path: Path, obj) -> None:
    path.write_text(json.dumps(obj, separators=(",", ":"), default=str) + "\n", encoding="utf-8")


SUMMARY_TAG = "gen_model_fixtures summary"


def read_prior_summary(out: Path) -> dict:
    """The summary of an earlier run: embedded at the end of OUT/README.md, else OUT/_summary.json.

    With --models, models that are not regenerated keep their README entries through it.
    """
    readme = out / "README.md"
    if readme.is_file():
        text = readme.read_text(encoding="utf-8")
        start = text.find(f"<!-- {SUMMARY_TAG}\n")
        if start >= 0:
            body = text[start + len(SUMMARY_TAG) + 6:]
            return json.loads(body[:body.index("\n-->")])
    side = out / "_summary.json"
    if side.is_file():
        return json.loads(side.read_text(encoding="utf-8"))
    return {}


def merge_summary(prior: dict, new: dict) -> dict:
    models = {}
    for name in MODELS:  # README order = MODELS order
        if name in new["models"]:
            models[name] = {**new["models"][name], "versions": new["versions"]}
        elif name in prior.get("models", {}):
            models[name] = {"versions": prior.get("versions"), **prior["models"][name]}
    conv = dict(prior.get("converter", {}))
    conv.update(new.get("converter", {}))
    res = {"versions": new["versions"], "models": models}
    if conv:
        res["converter"] = conv
    return res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--stage", choices=["tokenizer", "all"], default="all")
    ap.add_argument("--models", default=",".join(MODELS),
                    help="comma list of models to (re)generate, default all: " + ",".join(MODELS)
                         + "; the others' folders are not touched and keep their README entries")
    ap.add_argument("--reuse-tokenizer", action="store_true",
                    help="use OUT/llama/tokenizer.json if present instead of retraining")
    ap.add_argument("--llamacpp-src", type=Path, default=None,
                    help="llama.cpp folder with convert_hf_to_gguf.py, conversion/, gguf-py/: "
                         "also run the real converter and compare")
    ap.add_argument("--threads", type=int, default=min(8, os.cpu_count() or 1))
    ap.add_argument("--scratch", type=Path, default=None,
                    help="where the converter's output and _summary.json go (not fixtures); "
                         "default: a new temporary folder outside OUT")
    args = ap.parse_args()
    selected = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in selected if m not in MODELS]
    if unknown:
        ap.error(f"unknown models {unknown}; known: {list(MODELS)}")
    selected = [m for m in MODELS if m in selected]
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    if args.scratch is None:
        import tempfile

        args.scratch = Path(tempfile.mkdtemp(prefix="gen_model_fixtures."))
    scratch: Path = args.scratch
    scratch.mkdir(parents=True, exist_ok=True)
    print("scratch (converter output, _summary.json):", scratch)
    prior = read_prior_summary(out)
    write_tokenizer(out, args.reuse_tokenizer, selected)
    if args.stage == "tokenizer":
        return 0

    import importlib.metadata as im

    import torch
    import transformers
    from transformers import AutoTokenizer

    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    versions = {p: im.version(p) for p in ("torch", "transformers", "tokenizers", "safetensors", "gguf", "numpy")}
    print("versions:", versions, "models:", selected)
    failures: list[str] = []
    summary: dict = {"versions": versions, "models": {}}

    for name in selected:
        spec = MODELS[name]
        d = out / name
        hf_tok = AutoTokenizer.from_pretrained(str(d))
        prompt_ids = hf_tok(PROMPT, add_special_tokens=False).input_ids
        assert len(prompt_ids) == N_PROMPT, prompt_ids
        chat = hf_tok.apply_chat_template([{"role": "user", "content": USER_TEXT}],
                                          tokenize=False, add_generation_prompt=False)
        assert chat == PROMPT, repr(chat)

        best = None
        long_ids = phi3_long_prompt_ids(hf_tok) if name == "phi3" else None
        for seed in SEEDS:
            model = build_model(name, seed)
            ref = run_reference(model, prompt_ids)
            ok, mm = acceptable(ref)
            if long_ids is not None:  # phi3: the long (70-token) run's greedy steps must be robust too
                ok_l, mm_l = acceptable(run_reference(model, long_ids, probes=False, n_steps=N_LONG_STEPS))
                ok, mm = ok and ok_l, min(mm, mm_l)
            if best is None or mm > best[2]:
                best = (seed, ref, mm, model)
            if ok:
                best = (seed, ref, mm, model)
                break
        else:
            print(f"WARNING {name}: no seed met the margin/ids criteria; using the best")
        seed, ref, mm, model = best
        mm = acceptable(ref)[1]  # (phi3: the seed rule also took the long run's margins; see info["long"])
        checks = cross_checks(model, ref)
        swc = sliding_window_check(name, seed, ref)
        if swc is not None:
            checks["sliding_window"] = swc
            if not (swc["max_abs_diff_positions_lt_window"] <= 1e-5
                    and swc["min_over_positions_ge_window_of_max_abs_diff"] > 1e-3):
                failures.append(f"{name}: sliding window not visible in the logits: {swc}")
        print(f"{name}: seed {seed}, min margin {mm:.4f}, greedy {ref['greedy_ids']} "
              f"{hf_tok.decode(ref['greedy_ids'])!r}, checks {checks}")
        model.save_pretrained(str(d))
        cfg_json = json.loads((d / "config.json").read_text())

        record = {
            "model": name,
            "hf_class": spec["cls"],
            "gguf_arch": spec["arch"],
            "seed": seed,
            "source": "model.safetensors (PyTorch CPU, float32, eager attention)",
            "versions": versions,
            "prompt_text": PROMPT,
            **strip_raw(ref),
            "greedy_text": hf_tok.decode(ref["greedy_ids"]),
            "checks": checks,
        }
        if name == "phi3":  # the short run must be on short factors (checked below)
            rc_short = checks["longrope"] = phi3_rope_checks(seed, ref, "reference.json")
        dump_json(d / "reference.json", record)

        long_info = None
        if name == "phi3":  # a 70-token pass on long ones
            lref = run_reference(model, long_ids, n_steps=N_LONG_STEPS)
            lchecks = cross_checks(model, lref)
            lchecks["longrope"] = phi3_rope_checks(seed, lref, "reference.long.json")
            lchecks["sliding_window"] = sliding_window_check(name, seed, lref)
            for lab, rc, want_used in (("reference.json", rc_short, "short"),
                                       ("reference.long.json", lchecks["longrope"], "long")):
                other = "long" if want_used == "short" else "short"
                if not (rc["used"] == want_used == rc["manual_f64_factors"]
                        and rc[f"forced_{want_used}_max_abs_diff"] <= 1e-5
                        and rc[f"forced_{other}_max_abs_diff"] > 1e-2
                        and rc["manual_f64_max_abs_diff"] <= 1e-4):
                    failures.append(f"phi3 {lab}: not (only) on {want_used} factors: {rc}")
            lsw = lchecks["sliding_window"]
            if not (lsw["max_abs_diff_positions_lt_window"] <= 1e-5
                    and lsw["min_over_positions_ge_window_of_max_abs_diff"] > 1e-3):
                failures.append(f"phi3 long: sliding window not visible in the logits: {lsw}")
            ok_l, mm_l = acceptable(lref)
            print(f"{name} long: {len(long_ids)} ids, greedy {lref['greedy_ids']} "
                  f"{hf_tok.decode(lref['greedy_ids'])!r}, min margin {mm_l:.4f}, checks {lchecks}")
            lrec = {
                "model": name, "hf_class": spec["cls"], "gguf_arch": spec["arch"], "seed": seed,
                "source": "model.safetensors (PyTorch CPU, float32, eager attention); "
                          "longrope long factors (pass length > original_max_position_embeddings 64)",
                "versions": versions, "prompt_text": LONG_PROMPT, **strip_raw(lref),
                "greedy_text": hf_tok.decode(lref["greedy_ids"]), "checks": lchecks,
            }
            dump_json(d / "reference.long.json", lrec)
            long_info = {k: v for k, v in lchecks.items() if k != "sliding_window"}
            long_info["sliding_window"] = {k: v for k, v in lsw.items() if k != "per_position_max_abs_diff"}
            long_info.update(prompt_ids=long_ids, greedy_ids=lref["greedy_ids"], min_margin=mm_l)

        info: dict = {"seed": seed, "min_margin": mm, "greedy_ids": ref["greedy_ids"], "checks": checks,
                      "gguf": {}}
        if long_info is not None:
            info["long"] = long_info
        want_p, want_s = ref["_raw"]
        want_all = torch.cat([want_p, want_s])
        seq = torch.tensor([prompt_ids + ref["greedy_ids"]])
        for qt in spec["types"]:
            path = write_gguf(d, name, qt)
            gi: dict = {"bytes": path.stat().st_size}
            try:
                gm = None
                try:
                    gm = load_gguf_model(d, path.name)
                except Exception as e:  # noqa: BLE001
                    if name not in NEW_MODELS:
                        raise
                    gi["transformers_load_error"] = repr(e)
                    failures.append(f"{name} {qt}: transformers cannot load the GGUF: {e!r}")
                rb_model = None
                if name in NEW_MODELS:
                    # independent of transformers: gguf-py read-back, conventions reversed
                    rb_sd, rb_info = gguf_readback(d, path, name)
                    rb_model = in_reference_config(name, rb_sd)
                    with torch.no_grad():
                        rb_info["max_abs_diff_reference_config"] = float(
                            (rb_model(seq).logits[0] - want_all).abs().max())
                    gi["readback"] = rb_info
                    if qt == "F32" and not (rb_info.get("f32_tensors_bit_exact")
                                            and rb_info.get("norm_plus_1_bit_exact", True)
                                            and not rb_info["missing"]):
                        failures.append(f"{name} F32 GGUF read-back differs: {rb_info}")
                if gm is not None:
                    # teacher-forced on the safetensors greedy ids, so the diff is defined for every file
                    with torch.no_grad():
                        try:
                            diff_gguf_cfg = float((gm(seq).logits[0] - want_all).abs().max())
                        except Exception as e:  # noqa: BLE001
                            if name not in NEW_MODELS:
                                raise
                            diff_gguf_cfg = None  # qwen3: head_dim 128 in the GGUF's config
                            gi["gguf_config_forward_error"] = repr(e)
                        rm = in_reference_config(name, gm)
                        full = rm(seq).logits[0]
                    diff_ref_cfg = float((full - want_all).abs().max())
                    if name in NEW_MODELS:
                        gi["gguf_config_differences"] = config_differences(name, gm.config)
                else:
                    rm, diff_gguf_cfg = rb_model, None
                    diff_ref_cfg = gi["readback"]["max_abs_diff_reference_config"]
                gi["max_abs_diff_gguf_config"] = diff_gguf_cfg
                gi["max_abs_diff_reference_config"] = diff_ref_cfg
                if qt == "F32":
                    if gm is not None:
                        gi["gguf_config_rope"] = getattr(gm.config, "rope_parameters", None) or getattr(
                            gm.config, "rope_scaling", None)
                    own_ok = (spec["rope_scaling"] or spec.get("gguf_config_differs")
                              or (diff_gguf_cfg is not None and diff_gguf_cfg <= 1e-4))
                    tol_ok = diff_ref_cfg <= 1e-4 and own_ok
                    gi["pass"] = bool(tol_ok)
                    if not tol_ok:
                        failures.append(f"{name} F32 GGUF logits differ: {gi}")
                    # tokenizer as transformers converts it from the GGUF metadata
                    try:
                        gt = AutoTokenizer.from_pretrained(str(d), gguf_file=path.name)
                        gi["gguf_tokenizer_prompt_ids_equal"] = (
                            gt(PROMPT, add_special_tokens=False).input_ids == prompt_ids)
                        sample = CORPUS + " it's $5, isn't it?! 1234567 ...\n\n"
                        gi["gguf_tokenizer_corpus_ids_equal"] = (
                            gt(sample, add_special_tokens=False).input_ids
                            == hf_tok(sample, add_special_tokens=False).input_ids)
                    except Exception as e:  # noqa: BLE001
                        gi["gguf_tokenizer_error"] = repr(e)
                else:
                    # the GGUF's own reference, in the reference config (llama3: rope scaling)
                    qref = run_reference(in_reference_config(name, gm if gm is not None else rm),
                                         prompt_ids, probes=False)
                    qrec = {
                        "model": name, "hf_class": spec["cls"], "gguf_arch": spec["arch"],
                        "seed": seed,
                        "source": f"{path.name} as transformers dequantizes it (float32 math, eager)"
                        if gm is not None else
                        f"{path.name} as gguf-py dequantizes it (float32 math, eager)",
                        "versions": versions, "prompt_text": PROMPT, **strip_raw(qref),
                        "greedy_text": hf_tok.decode(qref["greedy_ids"]),
                        "max_abs_diff_vs_reference_json_teacher_forced": diff_ref_cfg,
                    }
                    dump_json(d / f"reference.{qt}.json", qrec)
                    gi["greedy_ids"] = qref["greedy_ids"]
                    gi["greedy_equal_f32"] = qref["greedy_ids"] == ref["greedy_ids"]
                    gi["min_margin"] = min(qref["margins"])
            except Exception as e:  # noqa: BLE001
                gi["error"] = repr(e)
                failures.append(f"{name} {qt}: {e!r}")
            print(f"  {path.name}: {gi}")
            info["gguf"][qt] = gi

        if (spec["rope_scaling"] or {}).get("rope_type") == "llama3":
            # rope_freqs vs HF's Llama-3 inv_freq: llama.cpp rotates by pos * base^(-2i/d) / factor_i
            import numpy as np

            f = llama3_rope_factors(cfg_json)
            hd = COMMON["head_dim"]
            base_freq = 1.0 / (spec["theta"] ** (np.arange(0, hd, 2, dtype=np.float64) / hd))
            hf_inv = model.model.rotary_emb.inv_freq.double().numpy()
            rel = float(np.max(np.abs(base_freq / f - hf_inv) / hf_inv))
            info["rope_freqs"] = {"factors": [float(x) for x in f], "max_rel_diff_vs_hf_inv_freq": rel}
            print(f"  rope_freqs {f.tolist()} max rel diff vs HF inv_freq {rel:.3g}")
            if rel > 1e-6:
                failures.append(f"{name} rope_freqs disagree with HF inv_freq ({rel})")
        summary["models"][name] = info

    if args.llamacpp_src:
        conv = scratch / "_converter"
        conv.mkdir(exist_ok=True)
        jobs = []
        for name in selected:
            for qt in MODELS[name]["types"]:
                if qt == "Q4_0":
                    continue
                jobs.append((out / name, qt.lower(), conv / f"{name}.{qt}.gguf"))
        rc = run_converter(args.llamacpp_src, jobs, conv / "convert.log")
        summary["converter"] = {}
        for d, t, o in jobs:
            key = o.name
            if o.is_file():
                cmp = compare_gguf(d / o.name, o)
            else:
                cmp = {"error": "not produced"}
            summary["converter"][key] = cmp
            print(f"converter vs here {key}: {cmp}")
            if not cmp.get("identical_except_general"):
                failures.append(f"converter output differs for {key}")
        print(f"converter rc {rc}; log tail:\n"
              + "".join((conv / "convert.log").read_text().splitlines(True)[-15:]))

    dump_json(scratch / "_summary.json", summary)
    full_summary = merge_summary(prior, summary)
    missing = [m for m in MODELS if m not in full_summary["models"]]
    if missing:
        print(f"WARNING: no summary for {missing} (not run now, none in README.md): "
              "their README entries will be incomplete")
    try:
        write_readme(out, full_summary)
    except Exception:  # noqa: BLE001 - keep the fixtures; the summary has everything
        import traceback

        traceback.print_exc()
        failures.append("README.md not written")
    if failures:
        print("FAILURES:\n  " + "\n  ".join(failures))
        return 1
    print("all checks passed")
    return 0


def config_differences(name: str, gguf_cfg) -> dict:
    """Config fields where transformers' config built from the GGUF differs from the reference."""
    ref = make_config(name).to_dict()
    got = gguf_cfg.to_dict()
    skip = {"architectures", "dtype", "torch_dtype", "_name_or_path", "transformers_version",
            "_attn_implementation_autoset", "output_attentions", "use_cache", "initializer_range",
            "model_type", "_commit_hash", "attn_implementation", "quantization_config"}
    res = {}
    for k in sorted(set(ref) | set(got)):
        if k in skip or k.startswith("_"):
            continue
        if ref.get(k) != got.get(k):
            res[k] = [got.get(k), ref.get(k)]
    return res


def _g(x, fmt=".3g") -> str:
    return "-" if x is None else format(x, fmt)


def phi3_readme(info: dict | None) -> list[str]:
    """README lines on phi3 (model, LongRoPE in transformers 5.17, GGUF keys, checks)."""
    spec = MODELS["phi3"]
    rs = spec["rope_scaling"]
    orig, max_pos = rs["original_max_position_embeddings"], COMMON["max_pos"]
    af = math.sqrt(1 + math.log(max_pos / orig) / math.log(orig))
    lines = [
        "* `phi3`: `Phi3ForCausalLM` (Phi3Config, model_type phi3): hidden 64, 2 layers, 4 heads x 16",
        "  (no head_dim in config.json: hidden / heads), 2 KV heads, intermediate 96, SiLU, rms eps",
        "  1e-5, rope theta 1e4 (NeoX halves), untied lm_head, sliding_window 16 in every layer,",
        "  eager attention, pad_token_id 0 (Phi3Config's default 32000 is outside this vocab). Fused",
        "  weights: `self_attn.qkv_proj` [128, 64] = rows q (64) | k (32) | v (32);",
        "  `mlp.gate_up_proj` [192, 64] = gate (first 96 rows) | up (last 96), MLP =",
        "  down_proj(up * silu(gate)) (Phi3MLP's chunk(2)). Weights drawn like the others (the fused",
        "  matrices as one N(0, 1/64) matrix each).",
        f"  LongRoPE: `rope_parameters` = rope_type `longrope`, short_factor {rs['short_factor']},",
        f"  long_factor {rs['long_factor']}, original_max_position_embeddings {orig}, rope_theta",
        f"  1e4, partial_rotary_factor 1.0 (no `factor`, no `attention_factor`, as in Phi-3's own",
        f"  configs); max_position_embeddings {max_pos}. original_max_position_embeddings is also a",
        "  top-level config.json field: Phi3Config has its own (default 4096) and transformers 5.17's",
        "  standardize_rope_params copies it over the rope_parameters value, so both must say 64.",
        "* LongRoPE in transformers 5.17 (`_compute_longrope_parameters`, `dynamic_rope_update`):",
        f"  factor = max_position_embeddings / original = {max_pos}/{orig} = {max_pos // orig} (no `factor` key);",
        f"  attention_factor = sqrt(1 + ln(factor) / ln(original)) = sqrt(1 + ln 4 / ln 64) = sqrt(4/3)",
        f"  = {af:.7f}; inv_freq_i = 1 / (ext_i * theta^(2i/16)) (f32), ext = long_factor or",
        "  short_factor; Phi3RotaryEmbedding multiplies both cos and sin by attention_factor (so q.k",
        "  scores carry attention_factor^2 = 4/3 on top of 1/sqrt(16)). The choice is made on every",
        "  forward call: seq_len = max(position_ids) + 1; long factors iff seq_len > original (64),",
        "  else the original (short) inv_freq. One call = one choice for all its positions; in KV-cache",
        "  decoding it is made per step, so a generation crossing position 64 would rotate its new",
        "  keys with long factors while the cached ones keep short ones. The fixtures never cross:",
        f"  reference.json (and reference.Q8_0.json) reach position {N_PROMPT + N_STEPS - 1} (generate(): {N_PROMPT + N_STEPS})",
        f"  -> short factors throughout; reference.long.json's {N_LONG_PROMPT}-token pass and its decode steps",
        f"  (positions {N_LONG_PROMPT}..{N_LONG_PROMPT + N_LONG_STEPS - 1}) -> long factors throughout. attention_factor is the same",
        "  in both. (llama.cpp instead picks rope_factors_long for the whole context when the context",
        "  size per sequence n_ctx_seq > `rope.scaling.original_context_length`, else",
        "  rope_factors_short: reference.json corresponds to a context of <= 64, reference.long.json",
        "  to one of > 64.)",
    ]
    if info:
        for lab, rc in (("reference.json", info["checks"].get("longrope")),
                        ("reference.long.json", info.get("long", {}).get("longrope"))):
            if not rc:
                continue
            lines.append(
                f"  Checked, {lab} ({rc['positions']} positions, teacher-forced): the same weights with "
                f"long_factor := short_factor give max abs logit diff {_g(rc['forced_short_max_abs_diff'])}, "
                f"with short_factor := long_factor {_g(rc['forced_long_max_abs_diff'])} -> {rc['used']} factors; "
                f"an independent float64 implementation ({rc['manual_f64_factors']} factors, attention factor "
                f"{rc['manual_f64_attention_factor']:.7f}, window 16): {_g(rc['manual_f64_max_abs_diff'])}.")
    lines += [
        "  GGUF (F32, Q8_0) as llama.cpp's Phi3MiniModel converter writes it (conversion/phi.py): arch",
        "  `phi3`; KV in order `general.architecture`, `phi3.rope.scaling.attn_factor` (f32 "
        f"{af:.7f}; written",
        "  by generate_extra_tensors, i.e. while the tensors are prepared, before `general.type`),",
        "  `general.type`, `general.name` (`Phi3`), `general.size_label` (`95K`),",
        f"  `phi3.context_length` {max_pos}, `phi3.rope.scaling.original_context_length` {orig},",
        "  `phi3.embedding_length` 64, `phi3.feed_forward_length` 96, `phi3.block_count` 2,",
        "  `phi3.attention.head_count` 4, `phi3.attention.head_count_kv` 2,",
        "  `phi3.attention.layer_norm_rms_epsilon` 1e-5, `phi3.rope.dimension_count` 16,",
        "  `phi3.rope.freq_base` 1e4, `general.file_type`, `phi3.attention.sliding_window` 16 (0 would",
        "  mean no window: llama.cpp's Phi-4 marker), `general.quantization_version`, then the vocab",
        "  keys as for the others (gpt2 / gpt-2). No `phi3.vocab_size`, no key_length/value_length,",
        "  no rope.scaling.type / factor keys. Tensors: `rope_factors_long.weight` and",
        "  `rope_factors_short.weight` (F32, [8], config.json's lists as f32; first), then in HF name",
        "  order `output.weight`, `token_embd.weight`, per layer `blk.N.attn_norm.weight`,",
        "  `blk.N.ffn_down.weight`, `blk.N.ffn_up.weight` (the fused gate_up, ggml shape [64, 192]:",
        "  gate rows first), `blk.N.ffn_norm.weight` (post_attention_layernorm),",
        "  `blk.N.attn_output.weight`, `blk.N.attn_qkv.weight` (ggml [64, 128]: q | k | v rows), then",
        "  `output_norm.weight`. No Q/K permute. Q8_0: every 2-D weight Q8_0, 1-D tensors F32.",
    ]
    return lines


def write_readme(out: Path, summary: dict) -> None:
    M = summary["models"]
    lines = [
        "# Tiny random-weight model fixtures",
        "",
        "Generated by `tools/gen_model_fixtures.py` (its docstring says how to rerun and which",
        "llama.cpp converter conventions the GGUF files reproduce). Random weights, so the text is",
        "gibberish; what matters is that Kiln reproduces the logits and greedy ids.",
        "",
        "| model | HF class | GGUF arch | KV heads | rope | tied | notes |",
        "|---|---|---|---|---|---|---|",
        "| `llama` | LlamaForCausalLM | llama | 2 (GQA 2:1) | theta 1e4 | no | untied `output.weight` |",
        "| `qwen2` | Qwen2ForCausalLM | qwen2 | 2 (GQA 2:1) | theta 1e6, NeoX | yes | q/k/v biases, eps 1e-6 |",
        "| `llama3` | LlamaForCausalLM | llama | 1 (GQA 4:1) | theta 5e5, Llama-3 scaling | yes | `rope_freqs.weight` |",
        "| `qwen3` | Qwen3ForCausalLM | qwen3 | 2 (GQA 2:1) | theta 1e6, NeoX | yes | QK-norm, no biases, eps 1e-6 |",
        "| `gemma3` | Gemma3ForCausalLM | gemma3 | 1 (GQA 4:1) | 1e6 global, 1e4 sliding, NeoX | yes | 6 layers, sliding window 8, see below |",
        "| `mistral` | MistralForCausalLM | - (safetensors only) | 2 (GQA 2:1) | theta 1e4 | no | sliding window 8 in every layer |",
        "| `phi3` | Phi3ForCausalLM | phi3 | 2 (GQA 2:1) | theta 1e4, NeoX, LongRoPE (short/long factors) | no | fused qkv / gate_up, sliding window 16, `reference.long.json`, see below |",
        "",
        "All: vocab 256, hidden 64, 2 layers (gemma3: 6), 4 heads x head_dim 16, intermediate 96 (SwiGLU; gemma3 GeLU-tanh),",
        "max_position_embeddings 256. Llama-3 scaling: factor 8, low_freq_factor 1,",
        "high_freq_factor 4, original_max_position_embeddings 64 (64, not 32, so that one",
        "frequency falls in the smooth-interpolation band: factors "
        + str([round(x, 6) for x in M.get("llama3", {}).get("rope_freqs", {}).get("factors", [])])
        + ").",
        "",
        "Tokenizer (same in every folder): byte-level BPE, vocab 256 = `<|endoftext|>` 0,",
        "`<|im_start|>` 1, `<|im_end|>` 2 (special; GGUF token_type 3), the byte symbols of tab,",
        "newline and printable ASCII, then merges. Other bytes are not in the vocabulary (a BPE",
        "without unk/byte fallback drops them), so feed it ASCII. bos `<|im_start|>`, eos",
        "`<|im_end|>`, unk/pad `<|endoftext|>`, add_bos_token false, ChatML `chat_template`. GGUF",
        "`tokenizer.ggml.model` is `gpt2`, `.pre` is `gpt-2` (GPT-2's regex; see the script on why",
        "not `default`). phi3's tokenizer_config.json alone says `tokenizer_class`",
        "`GPT2Tokenizer` (as Phi-4's does; the others `PreTrainedTokenizerFast`): llama.cpp's",
        "Phi3MiniModel converter takes the GPT-2 BPE vocab path only for that class (else it wants",
        "a SentencePiece tokenizer.model); transformers loads it from the same tokenizer.json",
        "with identical ids (prompt and corpus checked).",
        "",
        "### qwen3, gemma3, mistral, phi3",
        "",
        "* `qwen3`: head_dim 16 written in config.json (so the GGUF has `attention.key_length` /",
        "  `value_length` 16). `self_attn.q_norm` / `k_norm` (RMSNorm over each head's 16 values,",
        "  eps 1e-6, weights 1 + N(0, 0.1^2)) are applied to q and k after the projections and before",
        "  rope; GGUF `blk.N.attn_q_norm.weight` / `attn_k_norm.weight` (F32). No Q/K permute",
        "  (NeoX rope), no biases, tied (no `output.weight`). GGUF F32 and Q8_0.",
        "* `gemma3`: `Gemma3TextConfig`: 6 layers with layer_types 5 x `sliding_attention` then",
        "  `full_attention` (llama.cpp hard-codes this pattern of 6 for gemma3), hidden 64, 4 heads,",
        "  1 KV head, head_dim 16, intermediate 96, GeLU-tanh gated MLP (`gelu_pytorch_tanh`),",
        "  sliding_window 8, query_pre_attn_scalar 16 (scores scaled by 16^-0.5, = llama.cpp's",
        "  1/sqrt(head_dim)), rope theta 1e6 on the global layer and 1e4 on the sliding ones",
        "  (transformers 5 `rope_parameters` per layer type), rms eps 1e-6, no soft-capping, tied.",
        "  Per layer: x += post_attention_norm(attn(attn_norm(x))); x += post_ffw_norm(mlp(ffn_norm(x))),",
        "  with q_norm/k_norm on q and k before rope. Every Gemma RMSNorm computes",
        "  x_norm * (1 + w); w ~ N(0, 0.1^2). The embedding output is multiplied by sqrt(64) = 8",
        "  (in f32, HF `Gemma3TextScaledWordEmbedding`; the `embed` probe is after the scaling).",
        "  Embeddings N(0, 0.125^2) instead of 0.3^2: with 0.3 the scaled embedding dominates the",
        "  residual and every seed just repeats its input token (no seed met the rule); 0.125 makes",
        "  the scaled embedding ~unit and the tied logits std ~1.",
        "  GGUF as llama.cpp's Gemma3Model converter: every `*norm.weight` is stored + 1 (F32: the",
        "  file holds float32(w + 1), so reading back w = stored - 1 is off by <= 6e-8),",
        "  post_attention_layernorm -> `post_attention_norm`, pre_feedforward_layernorm ->",
        "  `ffn_norm`, post_feedforward_layernorm -> `post_ffw_norm`; no Q/K permute; keys",
        "  `gemma3.rope.freq_base` 1e6, `gemma3.rope.freq_base_swa` 1e4 (written by the converter's",
        "  TextModel from rope_parameters.sliding_attention; the real Gemma 3 270M GGUF predates it),",
        "  `gemma3.attention.sliding_window` 8, key/value_length 16; no query_pre_attn_scalar key.",
        "* `mistral`: sliding_window 8 in every layer, theta 1e4, eps 1e-5, untied.",
        "  Safetensors only: llama.cpp's converter writes Mistral as arch `llama` without the window.",
    ]
    lines += phi3_readme(M.get("phi3"))
    lines += [
        "",
        "Sliding window semantics (HF and llama.cpp agree): with window W, the query at position p",
        "attends keys p-W+1..p (W keys, itself included), so outputs differ from full causal",
        "attention from p = W on; the KV cache must keep (at least) the last W-1 keys of each",
        "sliding layer. The 12 prompt + 16 greedy positions run far past W = 8 (phi3: W = 16). Checked:",
        "the same weights with the window off (mistral, phi3: sliding_window None; gemma3:",
        "sliding_window 10^6, which keeps the local rope theta), teacher-forced over the 28 positions",
        "(phi3's reference.long.json: its 78):",
        "",
    ]
    for name in ("mistral", "gemma3", "phi3"):
        sw = M.get(name, {}).get("checks", {}).get("sliding_window")
        if sw:
            lines.append(
                f"* `{name}` ({sw['window_off']}): max abs logit diff at positions < {sw['window']}: "
                f"{_g(sw['max_abs_diff_positions_lt_window'])}; smallest per-position max diff at "
                f"positions >= {sw['window']}: {_g(sw['min_over_positions_ge_window_of_max_abs_diff'])}; "
                f"argmax differs at positions {sw['argmax_differs_at'] or 'none'}.")
    lsw = M.get("phi3", {}).get("long", {}).get("sliding_window")
    if lsw:
        lines.append(
            f"* `phi3` reference.long.json ({lsw['positions']} positions, long factors): max abs logit "
            f"diff at positions < {lsw['window']}: {_g(lsw['max_abs_diff_positions_lt_window'])}; "
            f"smallest per-position max diff at positions >= {lsw['window']}: "
            f"{_g(lsw['min_over_positions_ge_window_of_max_abs_diff'])}; argmax differs at "
            f"{len(lsw['argmax_differs_at'])} of {lsw['positions']} positions.")
    lines += [
        "",
        "## reference.json",
        "",
        "PyTorch on CPU, float32, eager attention; floats rounded to 7 significant digits.",
        "",
        f"* `prompt_text`, `prompt_ids` ({N_PROMPT} ids; the ChatML turn `<|im_start|>user\\n{USER_TEXT}<|im_end|>\\n`).",
        "* `prompt_logits[p][v]`: logits at every prompt position p from one forward pass.",
        f"* `greedy_ids` ({N_STEPS}) and `greedy_logits` ({N_STEPS} rows), as HF `generate(output_logits=True)`:",
        "  `greedy_ids[i]` = argmax `greedy_logits[i]`; `greedy_logits[0]` = `prompt_logits[-1]`;",
        f"  `greedy_logits[i]` (i >= 1) = logits after feeding `greedy_ids[i-1]` at position {N_PROMPT}+i-1",
        "  through the KV cache. `final_logits` = logits after feeding `greedy_ids[-1]`;",
        "  `next_id` = its argmax.",
        "* `margins`: top-1 minus top-2 logit of each `greedy_logits` row, then of `final_logits`.",
        "* `hidden_last_first8`: first 8 values at the last prompt position of the embedding output,",
        "  each decoder layer's output and the final norm's output (forward hooks);",
        "  `hf_hidden_states_last_first8` is HF's `output_hidden_states` as returned.",
        "* `checks`: `f64_max_abs_diff` (the float64 model, teacher-forced over prompt+greedy ids,",
        "  vs these f32 logits) and HF `generate()` (greedy, raw `output_logits`) vs the manual loop;",
        "  for mistral, gemma3 and phi3 also `sliding_window` (the check above, with per-position",
        "  diffs); phi3 also `longrope` (which factors were used, see the phi3 section).",
        "",
        f"phi3's `reference.long.json`: the same fields for the {N_LONG_PROMPT}-token prompt",
        f"`{LONG_PROMPT!r}` (`prompt_logits` at all {N_LONG_PROMPT} positions from one forward pass;",
        f"{N_LONG_STEPS} greedy steps through the KV cache, positions {N_LONG_PROMPT}..{N_LONG_PROMPT + N_LONG_STEPS - 1}),",
        "all on the long factors; its `checks` as reference.json's (f64, generate(), window, longrope).",
        "",
        "`reference.<TYPE>.json` has the same fields, computed from `<name>.<TYPE>.gguf` as",
        "transformers dequantizes it (run in the safetensors config, so llama3 keeps its rope",
        "scaling); its greedy ids may differ from the f32 ones.",
        "",
        "## Verification (from the generating run)",
        "",
    ]
    groups: dict = {}
    for name, info in M.items():
        groups.setdefault(json.dumps(info.get("versions") or summary["versions"]), []).append(name)
    for v, names in groups.items():
        if len(groups) == 1:
            lines.append(f"Versions: {json.loads(v)}.")
        else:
            lines.append(f"Versions ({', '.join(names)}): {json.loads(v)}.")
    lines += [
        "",
        "| file | max abs logit diff, GGUF weights, reference config | GGUF's own config (transformers) | greedy = f32 |",
        "|---|---|---|---|",
    ]
    for name, info in M.items():
        for qt, gi in info["gguf"].items():
            a = gi.get("max_abs_diff_reference_config")
            b = gi.get("max_abs_diff_gguf_config")
            ge = "-" if qt == "F32" else str(gi.get("greedy_equal_f32"))
            err = f" ERROR {gi['error']}" if "error" in gi else ""
            lines.append(f"| `{name}.{qt}.gguf` | {_g(a)} | {_g(b)} | {ge} |{err}")
    lines += [
        "",
        "Logits are compared teacher-forced (one full forward over prompt + f32 greedy ids, 28",
        "positions) with reference.json's KV-cache logits, so the F32 rows include a few 1e-6 of",
        "summation-order noise (compare `f64_max_abs_diff` below).",
        "transformers' GGUF loader ignores `rope_freqs.weight` and Llama-3 scaling, so llama3's",
        "\"own config\" column is expected to be large; its rope_freqs are checked against HF's",
        "`inv_freq` instead: max relative difference "
        f"{M.get('llama3', {}).get('rope_freqs', {}).get('max_rel_diff_vs_hf_inv_freq', float('nan')):.3g}.",
        "The \"own config\" column is also expected to differ for the newer archs, where",
        "transformers 5.17 builds an incomplete config from the GGUF: for gemma3 it does not read",
        "query_pre_attn_scalar (default 256 instead of 16; llama.cpp uses 1/sqrt(head_dim) for",
        "non-27B gemma3, so the GGUF needs no key), for qwen3 it does not read",
        "`attention.key_length` (head_dim 128 instead of 16: its forward fails, \"-\"), for phi3 it",
        "reads neither the LongRoPE factors / attn_factor / original context (plain rope, default",
        "original_max_position_embeddings 4096) nor `attention.sliding_window` (no window).",
        "Config fields where transformers' GGUF config differs from config.json:",
        "",
    ]
    for name in NEW_MODELS:
        gi = M.get(name, {}).get("gguf", {}).get("F32")
        if gi and "gguf_config_differences" in gi:
            lines.append(f"* `{name}`: " + ", ".join(
                f"{k} {v[0]!r} (config.json {v[1]!r})" for k, v in gi["gguf_config_differences"].items()))
    lines += [
        "",
        "Independent of transformers, each qwen3/gemma3/phi3 GGUF was read back with gguf-py",
        "(dequantized; names mapped back; gemma3 norms - 1; phi3 rope_factors_* compared with",
        "config.json's lists) and run in the reference config:",
        "",
    ]
    for name in NEW_MODELS:
        for qt, gi in M.get(name, {}).get("gguf", {}).items():
            rb = gi.get("readback")
            if not rb:
                continue
            extra = ""
            if "f32_tensors_bit_exact" in rb:
                extra = f", every tensor bit-exact {rb['f32_tensors_bit_exact']}"
                if "norm_plus_1_bit_exact" in rb:
                    extra += (f" (norms: stored = float32(w + 1) exactly {rb['norm_plus_1_bit_exact']},"
                              f" stored - 1 vs w max {_g(rb['norm_minus_1_max_abs_diff_vs_safetensors'])})")
            if "rope_factors_equal_config" in rb:
                extra += f", rope_factors equal to config.json (f32) {all(rb['rope_factors_equal_config'].values())}"
            lines.append(f"* `{name}.{qt}.gguf`: {rb['tensors']} tensors {rb['types']}{extra}; "
                         f"max abs logit diff {_g(rb['max_abs_diff_reference_config'])}.")
    lines.append("")
    for name, info in M.items():
        c = info["checks"]
        lines.append(f"* `{name}`: seed {info['seed']}, min greedy margin {info['min_margin']:.3f}, "
                     f"f64 vs f32 {c['f64_max_abs_diff']:.3g}, generate() {c['generate']}.")
        if "long" in info:
            lg = info["long"]
            lines.append(f"  reference.long.json: min greedy margin {lg['min_margin']:.3f}, f64 vs f32 "
                         f"{lg['f64_max_abs_diff']:.3g}, generate() {lg['generate']}.")
        gt = info["gguf"].get("F32", {})
        if "gguf_tokenizer_prompt_ids_equal" in gt:
            lines.append(f"  transformers' tokenizer from the F32 GGUF: prompt ids equal "
                         f"{gt['gguf_tokenizer_prompt_ids_equal']}, corpus ids equal "
                         f"{gt.get('gguf_tokenizer_corpus_ids_equal')}.")
        elif "gguf_tokenizer_error" in gt:
            lines.append(f"  transformers' tokenizer from the F32 GGUF: {gt['gguf_tokenizer_error']}.")
    lines += [
        "",
        "transformers builds a GGUF's tokenizer by architecture: for `qwen2` it uses Qwen2's own",
        "pre-tokenizer regex whatever `tokenizer.ggml.pre` says, so its tokenizer from",
        "`qwen2.*.gguf` differs from tokenizer.json on some text (not on the prompt). tokenizer.json,",
        "llama.cpp and Kiln (both choose by `pre` = `gpt-2`) agree.",
    ]
    if summary.get("converter"):
        lines += ["", "Against llama.cpp's own convert_hf_to_gguf.py (0c1e570) on the same folders:", ""]
        for k, v in summary["converter"].items():
            if k == "rc":
                continue
            if "error" in v:
                lines.append(f"* `{k}`: {v['error']}")
            else:
                lines.append(
                    f"* `{k}`: tensors identical {not (v['tensors_differ'] or v['tensors_only_here'] or v['tensors_only_converter'])}, "
                    f"tensor order equal {v['tensor_order_equal']}, KV differences "
                    f"{v['kv_only_here'] + v['kv_only_converter'] + v['kv_differ'] or 'none'}")
    lines += ["", "## Files", "", "| file | bytes |", "|---|---|"]
    total = 0
    for p in sorted(out.rglob("*")):
        if p.is_file() and not p.name.startswith("_") and "_converter" not in p.parts and p.name != "README.md":
            total += p.stat().st_size
            lines.append(f"| `{p.relative_to(out)}` | {p.stat().st_size} |")
    lines += [f"| total (without this README) | {total} |", ""]
    # machine-readable, read back by --models runs so that other models keep their entries
    lines += [f"<!-- {SUMMARY_TAG}", json.dumps(summary, sort_keys=False, default=str), "-->", ""]
    (out / "README.md").write_text("\n".join(lines), encoding="utf-8")


if __name__ == "__main__":
    sys.exit(main())
