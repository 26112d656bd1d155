#!/usr/bin/env bash
# One run for README's GPU speed table, on the GPU machine (device tool), from
# the repository root: Kiln (`kiln-parity bench`, KILN_ACTIVATIONS=q8, fused
# graph, best of 3; prefill one 512-token chunk, decode 128 tokens) on wgpu
# and on the CUDA twin, beside llama.cpp's static Vulkan llama-bench
# (`-p 512 -n 128 -r 5`, run twice per file: its first invocation on a
# machine prefills ≈ 3× slower), on random files of the Llama-3.2-1B shape
# (Q4_0) and SmolLM2-135M's (Q4_1). With CUDA_PEER=1, llama.cpp's CUDA build
# too (built there, ≈ 150–300 s); with DIRECT=1, first the opt-in
# direct-load coop GEMM (KILN_COOP_DIRECT=1), parity and speed (TABLE=0:
# only that). Carry .device/kiln-parity.xz, .whl, .gl
# and .peers. Results under $OUT; `python3 tools/bench_table.py DIR` prints
# README's table (and the ratios) from them.
set -uo pipefail
. tools/gpu_bench_common.sh
vulkan_peer
build_pid=
if [ "${CUDA_PEER:-0}" = 1 ]; then
  (renice -n 19 $BASHPID > /dev/null; build_llamacpp_cuda) &
  build_pid=$!
fi
export KILN_ACTIVATIONS=q8
if [ "${DIRECT:-0}" = 1 ]; then
  # The experiment of docs/bench/2026-12-07-h100-tensor-cores: wgpu's coop
  # GEMM on f16 copies of x and W (KILN_COOP_DIRECT=1), parity and speed.
  KILN_COOP=1 KILN_COOP_DIRECT=1 KILN_Q8_MIN_WEIGHTS=0 run direct_parity.txt 90 $K ops --iters 0 --no-cuda --filter mul_mat
  grep -E "cases:" "$OUT/direct_parity.txt"
  for f in $B1 $SR; do
    run direct.txt 100 $K bench --no-cuda --model $f --prefill 512 --decode 2 --reps 3
    KILN_COOP=1 KILN_COOP_DIRECT=1 run direct.txt 100 $K bench --no-cuda --model $f --prefill 512 --decode 2 --reps 3
  done
  KILN_COOP=1 KILN_COOP_DIRECT=1 run direct_profile.txt 60 $K bench --no-cuda --model $B1 --prefill 512 --decode 2 --reps 1 --profile
  grep -E "^\$|fused" "$OUT/direct.txt"; grep -A8 "GPU time per kernel" "$OUT/direct_profile.txt"
fi
[ "${TABLE:-1}" = 1 ] || exit 0
for f in $B1 $SR; do
  run vulkan.txt 100 $V -m $f -ngl 99 -p 512 -n 128 -r 5
  run kiln.txt 150 $K bench --model $f --prefill 512 --decode 2 --reps 3
  run kiln.txt 150 $K bench --model $f --prefill 2 --decode 128 --reps 3
  run vulkan.txt 100 $V -m $f -ngl 99 -p 512 -n 128 -r 5
done
[ -n "$build_pid" ] && wait $build_pid
[ -x $L/build-cuda/bin/llama-bench ] && for f in $B1 $SR; do
  run cuda.txt 150 $L/build-cuda/bin/llama-bench -m $f -ngl 99 -p 512 -n 128 -r 5
done
grep -E "^\\$|fused|pp512|tg128" "$OUT"/kiln.txt "$OUT"/vulkan.txt "$OUT"/cuda.txt 2>/dev/null
(cd "$OUT" && rm -f gen*.txt)
