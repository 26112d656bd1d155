#!/usr/bin/env bash
# Fuzzes Kiln's loaders (fuzz/, cargo-fuzz on the nightly toolchain):
#   tools/fuzz.sh [SECONDS_PER_TARGET] [TARGETS...]
# Seeds come from the repository's fixtures (written to fuzz/corpus/, not
# committed); findings land in fuzz/artifacts/<target>/. Prints libFuzzer's
# final stats per target (execs, coverage, peak RSS) into fuzz/stats/.
# FUZZ_SANITIZER=none builds without AddressSanitizer (≈ 6× the executions
# per second on the GGUF target; the allocation-bound check is Kiln's own
# counting allocator and works either way), for the long runs.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-60}
shift || true
TARGETS=${*:-gguf safetensors chat_template onnx peft}
[ "$(cargo fuzz --version 2>/dev/null)" = "cargo-fuzz 0.13.2" ] || cargo +nightly install cargo-fuzz --version 0.13.2 --locked
F=tests/fixtures
mkdir -p fuzz/corpus/{gguf,safetensors,chat_template,onnx,peft} fuzz/stats
cp $F/models/llama3/llama3.Q8_0.gguf $F/models/llama3/llama3.F32.gguf fuzz/corpus/gguf/
python3 - <<'PY'
import json, pathlib
F = pathlib.Path("tests/fixtures")
C = pathlib.Path("fuzz/corpus")
cfg = (F / "models/llama3/config.json").read_bytes()
cfg += b" " * (-len(cfg) % 8)
st = (F / "models/llama3/model.safetensors").read_bytes()
tok = (F / "models/llama3/tokenizer.json").read_bytes()
tok += b" " * (-len(tok) % 64)
assert len(tok) // 64 < 256
(C / "safetensors/llama3").write_bytes(bytes([len(cfg) // 8, 0, 0, len(tok) // 64]) + cfg + tok + st)
(C / "safetensors/llama3_split").write_bytes(bytes([len(cfg) // 8, 64, 1, 0]) + cfg + st)
tc = json.loads((F / "models/llama3/tokenizer_config.json").read_text())
if tc.get("chat_template"):
    (C / "chat_template/llama3").write_text(tc["chat_template"])
(C / "chat_template/chatml").write_text("{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
a = F / "lora/llama3/facts/init_adapter"
conf = (a / "adapter_config.json").read_bytes()
(C / "peft/facts").write_bytes(len(conf).to_bytes(2, "little") + conf + (a / "adapter_model.safetensors").read_bytes())
PY
cp $F/terrain/tiny_a.onnx fuzz/corpus/onnx/
cd fuzz
for t in $TARGETS; do
  echo "== $t ($SECS s)"
  cargo +nightly fuzz run -O -s "${FUZZ_SANITIZER:-address}" "$t" "corpus/$t" -- -max_total_time="$SECS" -max_len=1048576 \
    -rss_limit_mb=4096 -timeout=20 -print_final_stats=1 > "stats/$t.log" 2>&1 || { tail -30 "stats/$t.log"; exit 1; }
  grep -E "stat::number_of_executed_units|stat::peak_rss_mb|cov:" "stats/$t.log" | tail -3
done
