#!/usr/bin/env python3
"""Writes a PEFT LoRA adapter as a llama.cpp LoRA GGUF, the way llama.cpp's
convert_lora_to_gguf.py lays it out (for the Llama architecture), with
gguf-py: general.type = "adapter", adapter.type = "lora",
adapter.lora.alpha, and per targeted weight `blk.{i}.{attn_q,…}.weight.lora_a`
(numpy [r, in]) and `.lora_b` ([out, r]); the Q/K B rows permuted like the
base model's Q/K (llama.cpp's `permute(w, n_head, n_head_kv)`), since those
files use interleaved RoPE.

    python3 tools/lora_to_gguf.py --adapter tests/fixtures/lora/llama3/facts/final_adapter \\
        --config tests/fixtures/models/llama3/config.json --out OUT.gguf [--outtype f32|f16]
"""
import argparse
import json

import numpy as np
from gguf import GGUFWriter
from safetensors.numpy import load_file

NAMES = {"q_proj": "attn_q", "k_proj": "attn_k", "v_proj": "attn_v", "o_proj": "attn_output",
         "gate_proj": "ffn_gate", "up_proj": "ffn_up", "down_proj": "ffn_down"}


def permute(w, n_head):
    # llama.cpp convert_hf_to_gguf.py LlamaModel.permute
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--adapter", required=True)
    ap.add_argument("--config", required=True, help="the base model's HF config.json")
    ap.add_argument("--out", required=True)
    ap.add_argument("--outtype", choices=["f32", "f16"], default="f32")
    a = ap.parse_args()
    cfg = json.load(open(a.config))
    acfg = json.load(open(f"{a.adapter}/adapter_config.json"))
    t = load_file(f"{a.adapter}/adapter_model.safetensors")
    w = GGUFWriter(a.out, "llama")
    w.add_type("adapter")
    w.add_string("adapter.type", "lora")
    w.add_float32("adapter.lora.alpha", float(acfg["lora_alpha"]))
    dt = np.float32 if a.outtype == "f32" else np.float16
    for name in sorted(t):
        if ".lora_A." not in name:
            continue
        parts = name.split(".")
        layer = int(parts[parts.index("layers") + 1])
        proj = parts[parts.index("lora_A") - 1]
        A = t[name]
        B = t[name.replace("lora_A", "lora_B")]
        if proj == "q_proj":
            B = permute(B, cfg["num_attention_heads"])
        elif proj == "k_proj":
            B = permute(B, cfg["num_key_value_heads"])
        base = f"blk.{layer}.{NAMES[proj]}.weight"
        w.add_tensor(f"{base}.lora_a", np.ascontiguousarray(A.astype(dt)))
        w.add_tensor(f"{base}.lora_b", np.ascontiguousarray(B.astype(dt)))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


if __name__ == "__main__":
    main()
