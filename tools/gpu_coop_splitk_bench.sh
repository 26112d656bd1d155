#!/usr/bin/env bash
# Split-K for the tensor-core prefill GEMM's small grids (KILN_COOP_SPLITK=S:
# products whose grid is under 256 workgroups split K S ways, partials
# summed by `ksum`) beside the default tile (halfk64v4), on the GPU machine
# (device tool), from the repository root: per-dispatch profile of the 1B
# prefill (KILN_PROFILE_GRID=1: which products take the time), op parity
# of each split (f16 bound of kiln::parity::q8), prefill-512 of the
# Llama-3.2-1B shape (Q4_0) and SmolLM2's (Q4_1), llama.cpp's static Vulkan
# llama-bench in the same call (twice per file: its first invocation is a
# cold one); attn_tile's row maximum by subgroup shuffles (SG16) against
# the workgroup loop (KILN_ATTN_SG=0), with its parity. Carry .device/kiln-parity.xz, .whl, .gl, .peers.
set -uo pipefail
. tools/gpu_bench_common.sh
vulkan_peer
export KILN_ACTIVATIONS=q8
P="--prefill 512 --decode 2"
run vulkan.txt 40 $V -m $B1 -ngl 99 -p 512 -n 0 -r 3
KILN_PROFILE_GRID=1 run profile.txt 60 $K bench --no-cuda --model $B1 $P --reps 1 --profile
grep -A14 "GPU time per kernel" "$OUT/profile.txt" | head -16
run prefill.txt 60 $K bench --no-cuda --model $B1 $P --reps 3
KILN_ATTN_SG=0 run prefill.txt 60 $K bench --no-cuda --model $B1 $P --reps 3
KILN_ATTN_SG=0 run attn_parity.txt 60 $K ops --iters 0 --no-cuda --filter attention
run attn_parity.txt 60 $K ops --iters 0 --no-cuda --filter attention
grep -E "^\$|cases:" "$OUT/attn_parity.txt"
for s in 2 4; do
  KILN_COOP_SPLITK=$s KILN_Q8_MIN_WEIGHTS=0 run parity.txt 60 $K ops --iters 0 --no-cuda --filter mul_mat
  KILN_COOP_SPLITK=$s run prefill.txt 60 $K bench --no-cuda --model $B1 $P --reps 3
done
KILN_COOP_SPLITK=4 KILN_COOP_N2=0 run prefill.txt 60 $K bench --no-cuda --model $B1 $P --reps 3
KILN_COOP_SPLITK=8 run prefill.txt 60 $K bench --no-cuda --model $B1 $P --reps 3
run vulkan.txt 40 $V -m $B1 -ngl 99 -p 512 -n 0 -r 5
grep -E "^\\$|cases:" "$OUT/parity.txt" | tail -4
grep -E "^\\$|fused|pp512" "$OUT/prefill.txt" "$OUT/vulkan.txt"
KILN_COOP_SPLITK=4 KILN_PROFILE_GRID=1 run profile.txt 60 $K bench --no-cuda --model $B1 $P --reps 1 --profile
grep -A16 "GPU time per kernel" "$OUT/profile.txt" | tail -17
run prefill.txt 60 $K bench --no-cuda --model $SR $P --reps 3
KILN_COOP_SPLITK=4 run prefill.txt 60 $K bench --no-cuda --model $SR $P --reps 3
grep -E "^\\$|fused" "$OUT/prefill.txt" | tail -4
(cd "$OUT" && tar czf all.tgz ./*.txt && rm -f gen*.txt)
