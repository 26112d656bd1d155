#!/usr/bin/env bash
# The decode step's attention writing its own K/V cache rows (ops/attention.rs
# `new_kv`), on the GPU machine (device tool) from the repository root:
# parity of the attention cases on wgpu and the CUDA twin, then decode
# (prefill 2, 128 greedy tokens, best of 3, KILN_ACTIVATIONS=q8, fused graph)
# with the separate cache writes (KILN_NEW_KV=0) and without, one profile of
# each for the launches per step, beside llama.cpp CUDA (built here,
# CUDA_PEER=1) and Vulkan tg128 in the same call; then the 8-bit GEMV's
# kernel variants on wgpu. Carry .device/kiln-parity.xz,
# .whl, .gl and .peers. Results under $OUT.
set -uo pipefail
. tools/gpu_bench_common.sh
vulkan_peer
build_pid=
if [ "${CUDA_PEER:-0}" = 1 ]; then
  (renice -n 19 $BASHPID > /dev/null; build_llamacpp_cuda) &
  build_pid=$!
fi
export KILN_ACTIVATIONS=q8
# Most important first: the device may be taken back, and what is under $OUT
# comes back when the call times out.
KILN_NEW_KV=1 run parity.txt 120 $K ops --iters 0 --filter attention
grep -E "cases|FAIL|fail" "$OUT/parity.txt" | head -20
for f in $B1 $SR; do
  for nk in 0 1; do
    KILN_NEW_KV=$nk run decode.txt 150 $K bench --model $f --prefill 2 --decode 128 --reps 3
  done
  run vulkan.txt 100 $V -m $f -ngl 99 -p 0 -n 128 -r 5
done
grep -E "^\\$|fused.*decode|tg128" "$OUT"/decode.txt "$OUT"/vulkan.txt
# The 8-bit GEMV's variants (KILN_Q8_SPREAD, KILN_Q8_WBLOCK; wgpu only, the
# CUDA twin has WBLOCK too), on the 1B file.
for v in "0 0" "1 0" "0 1" "1 1"; do
  set -- $v
  KILN_Q8_SPREAD=$1 KILN_Q8_WBLOCK=$2 run gemv.txt 100 $K bench --no-cuda --model $B1 --prefill 2 --decode 128 --reps 3
  [ "$1" = 0 ] && KILN_Q8_WBLOCK=$2 run gemv.txt 100 $K bench --no-wgpu --model $B1 --prefill 2 --decode 128 --reps 3
done
grep -E "^\\$|fused.*decode" "$OUT"/gemv.txt
KILN_Q8_MIN_WEIGHTS=0 KILN_Q8_SPREAD=1 KILN_Q8_WBLOCK=1 run parity.txt 150 $K ops --iters 0 --filter mul_mat
grep -E "cases|FAIL|fail" "$OUT/parity.txt" | tail -5
for nk in 0 1; do
  KILN_NEW_KV=$nk run profile.txt 90 $K bench --model $SR --prefill 2 --decode 64 --reps 1 --profile
done
grep -E "^\\$|launches" "$OUT"/profile.txt
# llama.cpp CUDA only if its build finished meanwhile (no waiting).
if [ -x $L/build-cuda/bin/llama-bench ]; then
  for f in $B1 $SR; do
    run cuda.txt 150 $L/build-cuda/bin/llama-bench -m $f -ngl 99 -p 0 -n 128 -r 5
  done
  grep -E "tg128" "$OUT"/cuda.txt
fi
(cd "$OUT" && rm -f gen*.txt)
