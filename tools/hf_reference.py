#!/usr/bin/env python3
"""PyTorch reference for the real default model (SmolLM2-135M-Instruct Q4_1).

Loads the GGUF with HF transformers (which dequantizes every tensor to f32 and
un-permutes Q/K to HF's rotate-half layout), then records for a few prompts:
the prompt ids, HF's greedy continuation (32 tokens), the logits of the last
prompt position (top 20 and a checksum of all) and the final-position hidden
state's first values per layer. Kiln with f32 activations must reproduce the
greedy tokens exactly.

Run where torch + transformers exist (the GPU machine has them; bring the
`gguf` wheel):  python3 tools/hf_reference.py MODEL.gguf OUT.json
"""
import json
import os
import sys

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

path = sys.argv[1]
out = sys.argv[2]
d, name = os.path.dirname(os.path.abspath(path)), os.path.basename(path)
tok = AutoTokenizer.from_pretrained(d, gguf_file=name)
model = AutoModelForCausalLM.from_pretrained(d, gguf_file=name, dtype=torch.float32)
model.eval()

chat = [{"role": "user", "content": "What is the capital of France?"}]
prompts = [
    ("chat", tok.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)),
    ("raw", "The quick brown fox"),
    (
        "long",
        "Once upon a time, in a small village nestled between rolling hills and a "
        "quiet river, there lived an old clockmaker named Elias. Every morning he "
        "opened his shop at seven, wound each of the hundred clocks on his walls, "
        "and listened to them tick in unison. One day a young girl walked in with "
        "a broken pocket watch that had belonged to her grandmother, and asked",
    ),
]
records = []
with torch.no_grad():
    for label, text in prompts:
        ids = tok(text, add_special_tokens=False, return_tensors="pt").input_ids
        o = model(ids, output_hidden_states=True)
        logits = o.logits[0, -1].double()
        top = torch.topk(logits, 20)
        gen = model.generate(
            ids, max_new_tokens=32, do_sample=False, temperature=None, top_p=None, top_k=None
        )
        new = gen[0, ids.shape[1]:].tolist()
        records.append(
            {
                "label": label,
                "text": text,
                "prompt_ids": ids[0].tolist(),
                "greedy_ids": new,
                "greedy_text": tok.decode(new),
                "last_logits_top20": [[int(i), float(v)] for v, i in zip(top.values, top.indices)],
                "last_logits_sum": float(logits.sum()),
                "last_logits_sumsq": float((logits * logits).sum()),
                "hidden_last_first8": [h[0, -1, :8].tolist() for h in o.hidden_states],
            }
        )
        print(label, len(ids[0]), "prompt tokens ->", repr(tok.decode(new)))
json.dump(
    {"model": name, "torch": torch.__version__, "dtype": "float32", "records": records},
    open(out, "w"),
    indent=1,
)
