#!/usr/bin/env bash
# Kiln's fast CPU backend against llama.cpp's CPU build on this machine, in
# one run: `kiln bench --backend cpu` and `llama-bench` alternate ROUNDS
# times (so drift in a shared machine's clocks and memory bandwidth hits
# both alike), same GGUF, same thread count. A benchmark, not a test.
#
#   LLAMA_BENCH=/path/to/llama-bench tools/cpu_llm_bench.sh OUT_DIR
#
# llama.cpp: ../shared/peers/llamacpp/ has the source; a CPU build is
#   cmake -B build-cpu -DGGML_NATIVE=ON -DLLAMA_CURL=OFF -DBUILD_SHARED_LIBS=OFF \
#     -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF \
#     -DLLAMA_BUILD_APP=OFF && cmake --build build-cpu -j --target llama-bench
# (GGML_NATIVE=ON: llama.cpp at its best on this CPU.)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:?usage: LLAMA_BENCH=... tools/cpu_llm_bench.sh OUT_DIR}
MODEL=${MODEL:-models/SmolLM2-135M-Instruct.Q4_1.gguf}
THREADS=${THREADS:-2}
ROUNDS=${ROUNDS:-5}
PP=${PP:-128}
TG=${TG:-64}
: "${LLAMA_BENCH:?set LLAMA_BENCH to a llama-bench binary}"
mkdir -p "$OUT"
cargo build --release -q -p kiln --bin kiln
{
    echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "commit: $(git rev-parse --short HEAD)$(git diff --quiet || echo ' (dirty)')"
    echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores"
    echo "model: $MODEL"
    echo "threads: $THREADS, prefill $PP tokens, decode $TG tokens, $ROUNDS rounds"
} > "$OUT/machine.txt"
: > "$OUT/kiln.txt"
: > "$OUT/llamacpp.txt"
for r in $(seq 1 "$ROUNDS"); do
    echo "== round $r" | tee -a "$OUT/kiln.txt" >> "$OUT/llamacpp.txt"
    ./target/release/kiln bench --backend cpu --threads "$THREADS" --model "$MODEL" \
        --prefill "$PP" --decode "$TG" --reps 3 >> "$OUT/kiln.txt" 2>&1
    "$LLAMA_BENCH" -m "$MODEL" -t "$THREADS" -p "$PP" -n "$TG" -r 3 -o md >> "$OUT/llamacpp.txt" 2>&1
done
./target/release/kiln bench --backend cpu --threads "$THREADS" --model "$MODEL" \
    --prefill "$PP" --decode "$TG" --profile > "$OUT/kiln_profile.txt" 2>&1
# Medians of the rounds.
python3 - "$OUT" "$PP" "$TG" <<'PY'
import re, statistics, sys
out, pp, tg = sys.argv[1], sys.argv[2], sys.argv[3]
k = open(f"{out}/kiln.txt").read()
l = open(f"{out}/llamacpp.txt").read()
kp = [float(x) for x in re.findall(r"^prefill: \d+ tokens, ([\d.]+) tok/s", k, re.M)]
kd = [float(x) for x in re.findall(r"^decode: \d+ tokens, ([\d.]+) tok/s", k, re.M)]
lp = [float(x) for x in re.findall(rf"pp{pp}\s*\|\s*([\d.]+)", l)]
ld = [float(x) for x in re.findall(rf"tg{tg}\s*\|\s*([\d.]+)", l)]
med = statistics.median
rows = [
    ("prefill-%s tok/s" % pp, med(kp), med(lp), kp, lp),
    ("decode tok/s (tg%s)" % tg, med(kd), med(ld), kd, ld),
]
with open(f"{out}/summary.md", "w") as f:
    f.write("| | Kiln cpu (median) | llama.cpp CPU (median) | ratio | Kiln rounds | llama.cpp rounds |\n|---|---:|---:|---:|---|---|\n")
    for name, a, b, ar, br in rows:
        f.write(f"| {name} | {a:.1f} | {b:.1f} | {a / b:.2f}× | {', '.join(f'{x:.0f}' for x in ar)} | {', '.join(f'{x:.0f}' for x in br)} |\n")
print(open(f"{out}/summary.md").read())
PY
