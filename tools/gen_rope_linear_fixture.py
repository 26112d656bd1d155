#!/usr/bin/env python3
"""Linear RoPE scaling on Gemma 3's global layers (Gemma 3 4B and larger use factor 8 there),
checked against transformers on the `gemma3` fixture's own weights.

Writes tests/fixtures/models/gemma3_linear/config.json (the gemma3 fixture's config with
rope_parameters.full_attention = {rope_type: linear, factor: 8}; the sliding layers keep their
unscaled local RoPE) and reference.json (transformers' logits at every position of the gemma3
prompt and N_STEPS greedy steps through the KV cache, as tools/gen_model_fixtures.py writes them,
plus how far they move from the unscaled model's). tests/models.rs builds the model folder from
gemma3's files with this config, and a GGUF from gemma3.F32.gguf plus the keys llama.cpp's
converter writes for it (gemma3.rope.scaling.type = linear, gemma3.rope.scaling.factor = 8).

    python3 tools/gen_rope_linear_fixture.py     (torch, transformers 5.x, safetensors)
"""
import json
import sys
from pathlib import Path

import torch
import transformers
from safetensors.torch import load_file

sys.path.insert(0, str(Path(__file__).parent))
import gen_model_fixtures as gm  # noqa: E402

# Factor 8 as Gemma 3 4B+, unless a greedy step of this random model is a near tie there.
FACTORS = (8.0, 4.0, 16.0, 2.0, 32.0, 3.0)
# Greedy steps after the prompt (the logits of every one are compared).
N_STEPS = 8
root = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "models"
src, out = root / "gemma3", root / "gemma3_linear"
cfg = json.loads((src / "config.json").read_text())
base = json.loads((src / "reference.json").read_text())
state = load_file(src / "model.safetensors")
for FACTOR in FACTORS:
    cfg["rope_parameters"]["full_attention"] = {
        "rope_theta": cfg["rope_parameters"]["full_attention"]["rope_theta"],
        "rope_type": "linear",
        "factor": FACTOR,
    }
    model = transformers.Gemma3ForCausalLM(transformers.Gemma3TextConfig(**cfg)).float().eval()
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert not unexpected and set(missing) <= {"lm_head.weight"}, (missing, unexpected)
    model.tie_weights()
    ref = gm.run_reference(model, base["prompt_ids"], probes=False, n_steps=N_STEPS)
    # gen_model_fixtures' acceptance less its "3 distinct tokens" (8 steps here).
    margin = min(ref["margins"])
    ids = ref["greedy_ids"] + [ref["next_id"]]
    ok = margin >= gm.MIN_MARGIN and not any(i < len(gm.SPECIALS) for i in ids)
    print(f"factor {FACTOR}: min greedy margin {margin:.3g}", "ok" if ok else "(near tie)")
    if ok:
        break
else:
    sys.exit("every factor has a near-tie greedy step")
plain = torch.tensor(base["prompt_logits"])
moved = float((ref["_raw"][0] - plain).abs().max())
assert moved > 1e-2, f"linear scaling barely changes the logits ({moved})"
ref = gm.strip_raw(ref)
ref["rope_linear_factor"] = FACTOR
ref["max_abs_change_vs_gemma3_prompt_logits"] = gm.r7(moved)
ref["made_with"] = f"torch {torch.__version__}, transformers {transformers.__version__}"
out.mkdir(exist_ok=True)
(out / "config.json").write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
gm.dump_json(out / "reference.json", ref)
print(f"wrote {out}: min greedy margin {margin:.3g}, prompt logits moved up to {moved:.3g}")
