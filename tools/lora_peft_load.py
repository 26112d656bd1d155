#!/usr/bin/env python3
"""Loads a Kiln-saved LoRA adapter with Hugging Face peft, unchanged, and
compares the logits it gives at the end of a reference probe with the
reference's own (PEFT-trained) adapter's logits (probe.json "final").

Kiln replays the reference run (kiln-parity train --reference REF
--save-adapter DIR), so its adapter should equal PEFT's up to f32 rounding,
and so should the logits. Prints JSON; exit 1 past --tol (max |Δ| relative to
max |logit|).

    python3 tools/lora_peft_load.py --model tests/fixtures/models/llama3 \\
        --adapter /tmp/kiln_adapter --reference tests/fixtures/lora/llama3/facts
"""
import argparse
import json
import sys

import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True, help="HF folder the adapter was trained on")
    ap.add_argument("--adapter", required=True, help="a Kiln-saved PEFT folder")
    ap.add_argument("--reference", required=True, help="tools/lora_reference.py output folder")
    ap.add_argument("--tol", type=float, default=1e-4)
    a = ap.parse_args()
    probe = json.load(open(f"{a.reference}/probe.json"))
    base = AutoModelForCausalLM.from_pretrained(a.model, dtype=torch.float32, attn_implementation="eager")
    model = PeftModel.from_pretrained(base, a.adapter)  # PEFT reads Kiln's files as they are
    model.eval()
    with torch.no_grad():
        logits = model(torch.tensor([probe["ids"]])).logits[0, -1].tolist()
    want = probe["final"]
    if len(want) and isinstance(want[0], list):  # top-k (index, value) pairs
        pairs = [(int(i), float(v)) for i, v in want]
    else:
        pairs = list(enumerate(want))
    diff = max(abs(logits[i] - v) for i, v in pairs)
    scale = max(abs(v) for _, v in pairs)
    out = {"max_abs_diff": diff, "max_abs_logit": scale, "rel": diff / scale, "pass": diff <= a.tol * scale}
    print(json.dumps(out))
    sys.exit(0 if out["pass"] else 1)


if __name__ == "__main__":
    main()
