#!/usr/bin/env bash
# Follow-up of tools/gpu_coop_half_bench.sh on the GPU machine (device
# tool), from the repository root, after its findings: the tensor-core
# prefill GEMM with its best tile (halfk64) is the default where the
# adapter offers cooperative matrices, and the tensor-core attention
# (attention_coop.wgsl, KILN_COOP_ATTN=1) stages V transposed so every
# fragment load has the GEMM's proven layouts. Attention op parity (its f16
# bound), prefill-512 of both shapes (and of the 1B one with it),
# llama.cpp's static Vulkan llama-bench on the SmolLM2 shape run twice (its
# first invocation on a machine is a cold one). Carry
# .device/kiln-parity.xz, .whl, .gl, .peers.
set -uo pipefail
. tools/gpu_bench_common.sh
vulkan_peer
export KILN_ACTIVATIONS=q8
P="--prefill 512 --decode 2"
run prefill.txt 60 $K bench --no-cuda --model $B1 $P --reps 3
run vulkan.txt 40 $V -m $SR -ngl 99 -p 512 -n 0 -r 3
run vulkan.txt 40 $V -m $SR -ngl 99 -p 512 -n 0 -r 5
run prefill.txt 60 $K bench --no-cuda --model $SR $P --reps 3
grep -E "^\\$|fused|pp512" "$OUT/prefill.txt" "$OUT/vulkan.txt"
KILN_COOP_ATTN=1 run attn_parity.txt 90 $K ops --iters 0 --no-cuda --filter attention
grep -E "cases:|FAIL" "$OUT/attn_parity.txt" | tail -6
KILN_COOP_ATTN=1 run prefill.txt 60 $K bench --no-cuda --model $B1 $P --reps 3
grep -E "^\\$|fused" "$OUT/prefill.txt" | tail -2
(cd "$OUT" && tar czf all.tgz ./*.txt && rm -f gen*.txt)
