#!/usr/bin/env bash
# Follow-up to tools/gpu_newkv_bench.sh on the GPU machine (device tool, repo
# root; carry .device/kiln-parity.xz, .whl, .gl, .peers): the attention
# parity cases with the cache rows written by attention (KILN_NEW_KV=1) on
# each backend alone (timed: the first CUDA run compiles every family), then
# decode with the day's defaults beside llama.cpp CUDA (built here) and
# Vulkan tg128 in the same call, and SmolLM2 with every product at 8 bits.
set -uo pipefail
. tools/gpu_bench_common.sh
vulkan_peer
(renice -n 19 $BASHPID > /dev/null; build_llamacpp_cuda) &
bp=$!
export KILN_ACTIVATIONS=q8
t() { local s=$(date +%s); "$@"; echo "  took $(( $(date +%s) - s )) s" >> "$OUT/par2.txt"; }
KILN_NEW_KV=1 t run par2.txt 150 $K ops --iters 0 --filter attention --no-wgpu
grep -E "took|cases|FAIL|fail|exit" "$OUT/par2.txt"
KILN_NEW_KV=1 t run par2.txt 100 $K ops --iters 0 --filter attention --no-cuda
grep -E "took|cases|FAIL|fail|exit" "$OUT/par2.txt"
for f in $B1 $SR; do
  KILN_Q8_SPREAD=1 KILN_Q8_WBLOCK=1 KILN_NEW_KV=1 run dec.txt 100 $K bench --no-cuda --model $f --prefill 2 --decode 128 --reps 3
  KILN_Q8_WBLOCK=1 KILN_NEW_KV=0 run dec.txt 100 $K bench --no-wgpu --model $f --prefill 2 --decode 128 --reps 3
  run vulkan.txt 100 $V -m $f -ngl 99 -p 0 -n 128 -r 5
done
KILN_Q8_MIN_WEIGHTS=0 KILN_Q8_SPREAD=1 KILN_Q8_WBLOCK=1 KILN_NEW_KV=1 run dec.txt 100 $K bench --no-cuda --model $SR --prefill 2 --decode 128 --reps 3
KILN_Q8_MIN_WEIGHTS=0 KILN_Q8_WBLOCK=1 KILN_NEW_KV=0 run dec.txt 100 $K bench --no-wgpu --model $SR --prefill 2 --decode 128 --reps 3
grep -E "fused.*decode|tg128" "$OUT"/dec.txt "$OUT"/vulkan.txt
wait $bp
cat $OUT/llamacpp_build.txt
for f in $B1 $SR; do
  run cuda.txt 100 $L/build-cuda/bin/llama-bench -m $f -ngl 99 -p 0 -n 128 -r 5
done
grep -E "tg128" "$OUT"/cuda.txt
