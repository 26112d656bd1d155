#!/usr/bin/env bash
# The tensor-core prefill's defaults checked and its knobs swept on the GPU
# machine, beside llama.cpp's Vulkan llama-bench in the same call: op
# parity (the products at the f16 bound, attention), prefill-512 of both
# shapes by default and by variant — the fused norm/SwiGLU (KILN_COOP_FUSE),
# attn_gqa (KILN_ATTN_GQA), split-K (KILN_COOP_SPLITK, KILN_COOP_N2,
# KILN_COOP_GRID) — then a per-dispatch profile of each default. Carry
# .device/kiln-parity.xz, .whl, .gl, .peers.
set -uo pipefail
. tools/gpu_bench_common.sh
export KILN_ACTIVATIONS=q8
P="--prefill 512 --decode 2"
KILN_Q8_MIN_WEIGHTS=0 run parity.txt 90 $K ops --iters 0 --no-cuda --filter mul_mat
KILN_COOP_XF32=1 KILN_Q8_MIN_WEIGHTS=0 run parity.txt 90 $K ops --iters 0 --no-cuda --filter mul_mat
run parity.txt 60 $K ops --iters 0 --no-cuda --filter "attention "
KILN_ATTN_GQA=8 run parity.txt 60 $K ops --iters 0 --no-cuda --filter "attention "
vulkan_peer
for f in $B1 $B1 $SR; do
  run vulkan.txt 120 $V -m $f -p 512 -n 0 -r 5 -ngl 99
done
bench() { run prefill.txt 40 $K bench --no-cuda --model "$1" $P --reps 3; }
bench $B1
bench $SR
for v in KILN_COOP_FUSE=0 KILN_ATTN_GQA=0 KILN_ATTN_GQA=8 KILN_COOP_XF32=1 KILN_COOP_SPLITK=2 KILN_COOP_SPLITK=3 KILN_COOP_GRID=128; do
  export "$v"; bench $B1; unset "${v%%=*}"
done
for v in KILN_COOP_FUSE=0 KILN_ATTN_GQA=0 KILN_ATTN_GQA=8 KILN_COOP_XF32=1 KILN_COOP_N2=1 KILN_COOP_N2=0 KILN_COOP_GRID=512; do
  export "$v"; bench $SR; unset "${v%%=*}"
done
bench $B1
KILN_PROFILE_GRID=1 run profile.txt 40 $K bench --no-cuda --model $B1 $P --reps 1 --profile
KILN_PROFILE_GRID=1 run profile.txt 40 $K bench --no-cuda --model $B1 $P --reps 1 --profile
KILN_PROFILE_GRID=1 run profile.txt 40 $K bench --no-cuda --model $SR $P --reps 1 --profile
grep -E "^\\$|cases:|fused prefill" "$OUT/parity.txt" "$OUT/prefill.txt"
grep -E "^\\$|pp512" "$OUT/vulkan.txt"
