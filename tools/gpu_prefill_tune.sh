#!/usr/bin/env bash
# The tensor-core prefill's opt-in pieces checked and its knobs swept on the
# GPU machine, beside llama.cpp's Vulkan llama-bench in the same call: op
# parity (the products at the f16 bound with KILN_COOP_FUSE=1 and
# KILN_COOP_XF32=1, attention with KILN_ATTN_GQA=4 and 8), prefill-512 of
# both shapes by default (split-K on small grids, attn_tile) and by variant
# — the fused norm/SwiGLU (KILN_COOP_FUSE), attn_gqa (KILN_ATTN_GQA), x
# converted while staging (KILN_COOP_XF32), all three, split-K
# (KILN_COOP_SPLITK, KILN_COOP_N2, KILN_COOP_GRID) — then per-dispatch
# profiles. Carry .device/kiln-parity.xz, .whl, .gl, .peers.
set -uo pipefail
. tools/gpu_bench_common.sh
export KILN_ACTIVATIONS=q8
P="--prefill 512 --decode 2"
ALL="KILN_COOP_FUSE=1 KILN_ATTN_GQA=4 KILN_COOP_XF32=1"
KILN_COOP_FUSE=1 KILN_Q8_MIN_WEIGHTS=0 run parity.txt 90 $K ops --iters 0 --no-cuda --filter mul_mat
KILN_COOP_XF32=1 KILN_Q8_MIN_WEIGHTS=0 run parity.txt 90 $K ops --iters 0 --no-cuda --filter mul_mat
KILN_ATTN_GQA=4 run parity.txt 60 $K ops --iters 0 --no-cuda --filter "attention "
KILN_ATTN_GQA=8 run parity.txt 60 $K ops --iters 0 --no-cuda --filter "attention "
vulkan_peer
for f in $B1 $B1 $SR; do
  run vulkan.txt 120 $V -m $f -p 512 -n 0 -r 5 -ngl 99
done
# bench FILE [SETTINGS]: prefill-512 with the KILN_* settings given.
bench() {
  local f=$1; shift
  [ $# -gt 0 ] && export "$@"
  run prefill.txt 40 $K bench --no-cuda --model "$f" $P --reps 3
  [ $# -gt 0 ] && unset "${@%%=*}"
  return 0
}
bench $B1
bench $SR
for v in KILN_COOP_FUSE=1 KILN_ATTN_GQA=4 KILN_ATTN_GQA=8 KILN_COOP_XF32=1 "$ALL" KILN_COOP_SPLITK=2 KILN_COOP_SPLITK=3 KILN_COOP_GRID=128; do
  bench $B1 $v
done
for v in KILN_COOP_FUSE=1 KILN_ATTN_GQA=4 KILN_ATTN_GQA=8 KILN_COOP_XF32=1 "$ALL" KILN_COOP_N2=1 KILN_COOP_N2=0; do
  bench $SR $v
done
bench $B1
bench $B1 $ALL
KILN_PROFILE_GRID=1 run profile.txt 40 $K bench --no-cuda --model $B1 $P --reps 1 --profile
KILN_PROFILE_GRID=1 run profile.txt 40 $K bench --no-cuda --model $B1 $P --reps 1 --profile
(export $ALL; KILN_PROFILE_GRID=1 run profile.txt 40 $K bench --no-cuda --model $B1 $P --reps 1 --profile)
(export $ALL; KILN_PROFILE_GRID=1 run profile.txt 40 $K bench --no-cuda --model $SR $P --reps 1 --profile)
grep -E "^\\$|cases:|fused prefill" "$OUT/parity.txt" "$OUT/prefill.txt"
grep -E "^\\$|pp512" "$OUT/vulkan.txt"
