#!/usr/bin/env bash
# The tensor-core prefill GEMM's vec4-staged tiles (mul_mat_coop_half.wgsl
# V4: 8-byte workgroup stores, fragment loads from vec4<f16> arrays) and
# llama.cpp's KHR-coopmat shape (w64: 4 subgroups of 64 × 64) beside the
# default (halfk64), on the GPU machine (device tool), from the repository
# root: op parity of each new tile (the f16 bound of kiln::parity::q8),
# prefill-512 of the Llama-3.2-1B shape (Q4_0) and SmolLM2's (Q4_1),
# per-kernel profiles, the tensor-core attention's parity (V staged
# transposed, KILN_COOP_ATTN=1), llama.cpp's static Vulkan llama-bench in
# the same call (run twice per file: its first invocation is a cold one).
# Carry .device/kiln-parity.xz, .whl, .gl, .peers.
set -uo pipefail
. tools/gpu_bench_common.sh
vulkan_peer
export KILN_ACTIVATIONS=q8
P="--prefill 512 --decode 2"
run vulkan.txt 40 $V -m $B1 -ngl 99 -p 512 -n 0 -r 3
run prefill.txt 60 $K bench --no-cuda --model $B1 $P --reps 3
run vulkan.txt 40 $V -m $B1 -ngl 99 -p 512 -n 0 -r 5
grep -E "^\\$|fused|pp512" "$OUT/prefill.txt" "$OUT/vulkan.txt"
for v in halfk64v4 w64 halfv4 half64v4; do
  KILN_COOP_KERNEL=$v run prefill.txt 60 $K bench --no-cuda --model $B1 $P --reps 3
done
grep -E "^\\$|fused" "$OUT/prefill.txt" | tail -8
KILN_COOP_KERNEL=halfk64 run profile.txt 60 $K bench --no-cuda --model $B1 $P --reps 1 --profile
grep -A10 "GPU time per kernel" "$OUT/profile.txt" | head -12
for v in halfk64v4 w64 halfv4 half64v4; do
  KILN_COOP_KERNEL=$v KILN_Q8_MIN_WEIGHTS=0 run parity.txt 60 $K ops --iters 0 --no-cuda --filter mul_mat
done
grep -E "^\\$|cases:" "$OUT/parity.txt" | tail -8
KILN_COOP_ATTN=1 run attn_parity.txt 90 $K ops --iters 0 --no-cuda --filter attention
grep -E "cases:|FAIL" "$OUT/attn_parity.txt" | tail -6
KILN_COOP_ATTN=1 run prefill.txt 60 $K bench --no-cuda --model $B1 $P --reps 3
KILN_COOP_KERNEL=halfk64v4 run profile.txt 60 $K bench --no-cuda --model $B1 $P --reps 1 --profile
KILN_COOP_KERNEL=w64 run profile.txt 60 $K bench --no-cuda --model $B1 $P --reps 1 --profile
grep -A6 "GPU time per kernel" "$OUT/profile.txt" | tail -14
run vulkan.txt 40 $V -m $SR -ngl 99 -p 512 -n 0 -r 3
run prefill.txt 60 $K bench --no-cuda --model $SR $P --reps 3
run vulkan.txt 40 $V -m $SR -ngl 99 -p 512 -n 0 -r 5
for v in halfk64v4 w64; do
  KILN_COOP_KERNEL=$v run prefill.txt 60 $K bench --no-cuda --model $SR $P --reps 3
done
grep -E "^\\$|fused|pp512" "$OUT/prefill.txt" "$OUT/vulkan.txt" | tail -12
(cd "$OUT" && tar czf all.tgz ./*.txt && rm -f gen*.txt)
