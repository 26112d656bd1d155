#!/usr/bin/env python3
"""Writes a random-weight GGUF of the real Llama-3.2-1B shape, for benchmarks
and cross-backend parity at a realistic size (no model hub is reachable).

Shape (Llama-3.2-1B): 16 layers, d_model 2048, 32 heads, 8 KV heads, head_dim
64, FFN 8192, vocab 128256, rope_theta 500000 with Llama-3 scaling (factor 32,
low 1, high 4, original context 8192, written as llama.cpp's rope_freqs
tensor), tied embeddings. Matrices are quantized with gguf-py (Q8_0 or Q4_0;
gguf-py cannot write K-quants), norms stay F32. The tokenizer is a valid gpt2
byte-level vocabulary (256 byte tokens, no merges) padded with reserved
control tokens to 128256 entries, so text encodes to byte tokens.

With `--8b` the shape is Llama-3.1-8B's (32 layers, d_model 4096, 32 heads,
8 KV heads, head_dim 128, FFN 14336, vocab 128256, untied output), the
bandwidth-bound benchmark case; its blocks are written as random quant bytes
with a fitting scale (`--raw`, also available for the others) rather than
quantized from floats, which would take minutes for 8 B weights.

With `--smol` the shape is SmolLM2-135M's (30 layers, d_model 576, 9 heads,
3 KV heads, head_dim 64, FFN 1536, vocab 49152, tied embeddings), for timing
the small model's shape beside llama.cpp without shipping the real file;
Q4_1 (SmolLM2's file type) is available with `--raw`.

    python3 tools/gen_random_gguf.py OUT.gguf Q8_0|Q4_0|Q4_1 [--tiny|--8b|--smol] [--raw]
    (needs numpy + gguf)
"""
import math
import sys

import numpy as np
import gguf

out, qtype = sys.argv[1], sys.argv[2]
Q = {
    "Q8_0": gguf.GGMLQuantizationType.Q8_0,
    "Q4_0": gguf.GGMLQuantizationType.Q4_0,
    "Q4_1": gguf.GGMLQuantizationType.Q4_1,
}[qtype]
flags = set(sys.argv[3:])
L, D, H, KV, HD, FF, V = 16, 2048, 32, 8, 64, 8192, 128256
SHAPE, TIED, RAW = "Llama-3.2-1B", True, "--raw" in flags
if "--tiny" in flags:  # a smoke-test size
    L, D, H, KV, HD, FF, V = 2, 128, 2, 1, 64, 256, 512
if "--8b" in flags:
    L, D, H, KV, HD, FF, V = 32, 4096, 32, 8, 128, 14336, 128256
    SHAPE, TIED, RAW = "Llama-3.1-8B", False, True
if "--smol" in flags:
    L, D, H, KV, HD, FF, V = 30, 576, 9, 3, 64, 1536, 49152
    SHAPE = "SmolLM2-135M"
if qtype == "Q4_1" and not RAW:
    sys.exit("Q4_1 needs --raw")
rng = np.random.default_rng(1234)


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


w = gguf.GGUFWriter(out, "llama")
w.add_name(f"random {SHAPE} shape {qtype}")
w.add_context_length(131072)
w.add_embedding_length(D)
w.add_block_count(L)
w.add_feed_forward_length(FF)
w.add_head_count(H)
w.add_head_count_kv(KV)
w.add_rope_freq_base(500000.0)
w.add_layer_norm_rms_eps(1e-5)
w.add_rope_dimension_count(HD)
b2u = bytes_to_unicode()
pairs = [("t", "h"), ("h", "e"), ("i", "n"), ("e", "r"), ("a", "n"), ("\u0120", "t")]
tokens = [b2u[b] for b in range(256)] + [a + b for a, b in pairs] + ["<|begin_of_text|>", "<|end_of_text|>"]
types = [1] * (256 + len(pairs)) + [3, 3]
tokens += [f"<|reserved_special_token_{i}|>" for i in range(V - len(tokens))]
types += [3] * (V - len(types))
w.add_tokenizer_model("gpt2")
w.add_tokenizer_pre("default")
w.add_token_list(tokens)
w.add_token_types(types)
w.add_token_merges([f"{a} {b}" for a, b in pairs])
w.add_bos_token_id(256 + len(pairs))
w.add_eos_token_id(257 + len(pairs))
w.add_add_bos_token(False)


def mat(name, rows, cols, std):
    if RAW:
        w.add_tensor(name, raw_blocks(rows, cols, std), raw_dtype=Q)
        return
    x = (rng.standard_normal((rows, cols), dtype=np.float32) * std).astype(np.float32)
    w.add_tensor(name, gguf.quants.quantize(x, Q), raw_dtype=Q)


def raw_blocks(rows, cols, std):
    """Random blocks whose values have about the given std: Q4_0 / Q4_1
    nibbles uniform in 0..15 (std 4.6 around 8 / the offset m), Q8_0 bytes uniform in -127..127
    (std 73), each block's f16 scale std / that, jittered by ±10%."""
    nb = cols // 32
    q4 = qtype in ("Q4_0", "Q4_1")
    dv = (std / (4.6 if q4 else 73.3)) * rng.uniform(0.9, 1.1, (rows, nb, 1))
    d = dv.astype(np.float16).view(np.uint8)
    if qtype == "Q4_1":  # d, then m = -7.5·d (nibbles centred on 0)
        m = (-7.5 * dv).astype(np.float16).view(np.uint8)
        qs = rng.integers(0, 256, (rows, nb, 16), dtype=np.uint8)
        return np.concatenate([d, m, qs], axis=2).reshape(rows, -1)
    if q4:
        qs = rng.integers(0, 256, (rows, nb, 16), dtype=np.uint8)
    else:
        qs = rng.integers(-127, 128, (rows, nb, 32), dtype=np.int8).view(np.uint8)
    return np.concatenate([d, qs], axis=2).reshape(rows, -1)


def vec(name, n, mean=1.0, std=0.1):
    w.add_tensor(name, (mean + std * rng.standard_normal(n)).astype(np.float32))


# llama.cpp's Llama-3 rope factors.
factor, low, high, old = (8.0 if "--8b" in flags else 32.0), 1.0, 4.0, 8192
freqs = 1.0 / (500000.0 ** (np.arange(0, HD, 2, dtype=np.float64) / HD))
lw, hw = old / low, old / high
f = []
for fr in freqs:
    wl = 2 * math.pi / fr
    if wl < hw:
        f.append(1.0)
    elif wl > lw:
        f.append(factor)
    else:
        s = (old / wl - low) / (high - low)
        f.append(1 / ((1 - s) / factor + s))
w.add_tensor("rope_freqs.weight", np.array(f, dtype=np.float32))
mat("token_embd.weight", V, D, 0.05)
for i in range(L):
    vec(f"blk.{i}.attn_norm.weight", D)
    mat(f"blk.{i}.attn_q.weight", H * HD, D, 1 / math.sqrt(D))
    mat(f"blk.{i}.attn_k.weight", KV * HD, D, 1 / math.sqrt(D))
    mat(f"blk.{i}.attn_v.weight", KV * HD, D, 1 / math.sqrt(D))
    mat(f"blk.{i}.attn_output.weight", D, H * HD, 0.5 / math.sqrt(D))
    vec(f"blk.{i}.ffn_norm.weight", D)
    mat(f"blk.{i}.ffn_gate.weight", FF, D, 1 / math.sqrt(D))
    mat(f"blk.{i}.ffn_up.weight", FF, D, 1 / math.sqrt(D))
    mat(f"blk.{i}.ffn_down.weight", D, FF, 0.5 / math.sqrt(FF))
    print("layer", i, flush=True)
vec("output_norm.weight", D)
if not TIED:
    mat("output.weight", V, D, 1 / math.sqrt(D))
w.write_header_to_file()
w.write_kv_data_to_file()
w.write_tensors_to_file()
w.close()
print("wrote", out)
