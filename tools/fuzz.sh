#!/usr/bin/env bash
# Fuzzes Kiln's loaders (fuzz/, cargo-fuzz on the nightly toolchain):
#   tools/fuzz.sh [SECONDS_PER_TARGET] [TARGETS...]
# Seeds come from the repository's fixtures (and the SmolLM2 file's header
# when models/ has it), written to fuzz/corpus/ (not committed); each target
# has a dictionary of its format's keywords (fuzz/dict/). Every committed
# finding (fuzz/regressions/<target>/) is replayed first and must pass.
# Findings land in fuzz/artifacts/<target>/. Prints libFuzzer's final stats
# per target (execs, coverage, peak RSS) into fuzz/stats/.
# FUZZ_SANITIZER=none builds without AddressSanitizer (≈ 6× the executions
# per second on the GGUF target; the allocation-bound check is Kiln's own
# counting allocator and works either way), for the long runs.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-60}
shift || true
TARGETS=${*:-gguf gguf_stream safetensors chat_template onnx peft diffusers}
[ "$(cargo fuzz --version 2>/dev/null)" = "cargo-fuzz 0.13.2" ] || cargo +nightly install cargo-fuzz --version 0.13.2 --locked
F=tests/fixtures
mkdir -p fuzz/corpus/{gguf,gguf_stream,safetensors,chat_template,onnx,peft,diffusers} fuzz/stats
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
for g in $F/models/llama3/llama3.Q8_0.gguf $F/models/llama3/llama3.F32.gguf; do
  # gguf_stream: 8 bytes that seed the piece sizes, then the file.
  { printf '\x01\x02\x03\x04\x05\x06\x07\x08'; cat "$g"; } > "fuzz/corpus/gguf_stream/$(basename "$g")"
done
# The real default model's metadata (its tokenizer's 49,152 tokens and
# merges, its chat template) as a GGUF with no tensors, when models/ has it.
python3 - <<'PY'
import pathlib, struct
src = pathlib.Path("models/SmolLM2-135M-Instruct.Q4_1.gguf")
if src.exists():
    b = src.open("rb").read(4 << 20)
    size = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
    def value(t, at):
        if t == 8:
            return at + 8 + struct.unpack_from("<Q", b, at)[0]
        if t == 9:
            et, n = struct.unpack_from("<IQ", b, at)
            at += 12
            if et in size:
                return at + n * size[et]
            for _ in range(n):
                at = value(et, at)
            return at
        return at + size[t]
    n_kv = struct.unpack_from("<Q", b, 16)[0]
    at = 24
    for _ in range(n_kv):
        at += 8 + struct.unpack_from("<Q", b, at)[0]
        t = struct.unpack_from("<I", b, at)[0]
        at = value(t, at + 4)
    out = b[:8] + struct.pack("<Q", 0) + b[16:at]
    pathlib.Path("fuzz/corpus/gguf/smollm2_metadata").write_bytes(out)
PY
python3 - <<'PY'
import pathlib
S = pathlib.Path("tests/fixtures/sd/tiny_sd15")
C = pathlib.Path("fuzz/corpus/diffusers")
for i, m in enumerate(["text_encoder", "unet", "vae"]):
    (C / m).write_bytes(bytes([i]) + (S / m / "config.json").read_bytes())
(C / "taesd").write_bytes(b"\x03" + (S / "taesd/config.json").read_bytes())
(C / "scheduler").write_bytes(b"\x04" + (S / "scheduler/scheduler_config.json").read_bytes())
t = S / "tokenizer"
(C / "tokenizer").write_bytes(b"\x05" + (t / "vocab.json").read_bytes() + b"\0" + (t / "merges.txt").read_bytes())
PY
cp $F/terrain/tiny_a.onnx fuzz/corpus/onnx/
cd fuzz
dict() {
  case $1 in
    gguf | gguf_stream) echo -dict=dict/gguf.dict ;;
    chat_template) echo -dict=dict/template.dict ;;
    *) echo -dict=dict/json.dict ;;
  esac
}
for t in $TARGETS; do
  S=${FUZZ_SANITIZER:-address}
  if compgen -G "regressions/$t/*" > /dev/null; then
    echo "== $t: replaying $(ls regressions/$t | wc -l) committed findings"
    cargo +nightly fuzz run -O -s "$S" "$t" regressions/$t/* -- -rss_limit_mb=4096 -timeout=20 \
      > "stats/$t.replay.log" 2>&1 || { tail -30 "stats/$t.replay.log"; exit 1; }
  fi
  echo "== $t ($SECS s)"
  max_len=1048576
  [ "$t" = gguf ] && max_len=4194304
  cargo +nightly fuzz run -O -s "$S" "$t" "corpus/$t" -- -max_total_time="$SECS" -max_len=$max_len "$(dict "$t")" \
    -rss_limit_mb=4096 -timeout=20 -print_final_stats=1 > "stats/$t.log" 2>&1 || { tail -30 "stats/$t.log"; exit 1; }
  grep -E "stat::number_of_executed_units|stat::peak_rss_mb|cov:" "stats/$t.log" | tail -3
done
