#!/usr/bin/env bash
# The split-K rule made the default (small grids: K split 4 ways on the
# full tile where K has ≥ 32 slices, else the N2 tile) checked on the GPU
# machine: op parity (f16 bound), prefill-512 of both shapes. Carry
# .device/kiln-parity.xz, .whl.
set -uo pipefail
. tools/gpu_bench_common.sh
export KILN_ACTIVATIONS=q8
P="--prefill 512 --decode 2"
KILN_Q8_MIN_WEIGHTS=0 run parity.txt 40 $K ops --iters 0 --no-cuda --filter mul_mat
run prefill.txt 40 $K bench --no-cuda --model $B1 $P --reps 3
run prefill.txt 40 $K bench --no-cuda --model $SR $P --reps 3
grep -E "^\\$|cases:|fused" "$OUT/parity.txt" "$OUT/prefill.txt"
