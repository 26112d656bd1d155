#!/usr/bin/env bash
# The tensor-core prefill GEMM on f16 copies of its operands
# (shaders/mul_mat_coop_half.wgsl, KILN_COOP=1 with KILN_ACTIVATIONS=q8)
# beside the 8-bit integer GEMM (KILN_COOP=0) and the kernel that decodes
# weights while staging (KILN_COOP_KERNEL=decode), on the GPU machine
# (device tool), from the repository root. Carry .device/kiln-parity.xz,
# .whl (the gguf wheel: random files of the Llama-3.2-1B shape, Q4_0, and
# SmolLM2-135M's, Q4_1, are made there), .gl and .peers (llama.cpp's static
# Vulkan llama-bench: its default (NV_coopmat2) and with coopmat2 off, i.e.
# the KHR cooperative matrices wgpu exposes).
# Steps: mul_mat op parity on wgpu with every product at 8 bits for each
# variant (with and without the small-grid N2 tile, weights decoded while
# staging (WQ, the default) and from an f16 copy), prefill-512 of both
# shapes for every kernel, a per-kernel profile of the 1B prefill for each
# variant (and of the CUDA twin's), greedy tokens on the SmolLM2 shape
# against the CPU reference.
set -uo pipefail
. tools/gpu_bench_common.sh
vulkan_peer
export KILN_ACTIVATIONS=q8
run vulkan.txt 60 $V -m $B1 -ngl 99 -p 512 -n 0 -r 3
for v in half half64 halfk64; do
  KILN_COOP=1 KILN_COOP_KERNEL=$v KILN_Q8_MIN_WEIGHTS=0 run parity.txt 60 $K ops --iters 0 --no-cuda --filter mul_mat
done
KILN_COOP=1 KILN_COOP_N2=1 KILN_Q8_MIN_WEIGHTS=0 run parity.txt 60 $K ops --iters 0 --no-cuda --filter mul_mat
KILN_COOP=1 KILN_COOP_WQ=0 KILN_Q8_MIN_WEIGHTS=0 run parity.txt 60 $K ops --iters 0 --no-cuda --filter mul_mat
grep -E "^\\$|cases:|FAIL" "$OUT/parity.txt" | tail -16
run vulkan.txt 60 $V -m $B1 -ngl 99 -p 512 -n 0 -r 5
GGML_VK_DISABLE_COOPMAT2=1 run vulkan.txt 60 $V -m $B1 -ngl 99 -p 512 -n 0 -r 5
for f in $B1 $SR; do
  KILN_COOP=0 run prefill.txt 60 $K bench --no-cuda --model $f --prefill 512 --decode 2 --reps 3
  KILN_COOP=1 KILN_COOP_KERNEL=decode run prefill.txt 60 $K bench --no-cuda --model $f --prefill 512 --decode 2 --reps 3
  for v in half half64 halfk64; do
    KILN_COOP=1 KILN_COOP_KERNEL=$v run prefill.txt 60 $K bench --no-cuda --model $f --prefill 512 --decode 2 --reps 3
  done
  KILN_COOP=1 KILN_COOP_N2=0 run prefill.txt 60 $K bench --no-cuda --model $f --prefill 512 --decode 2 --reps 3
  KILN_COOP=1 KILN_COOP_WQ=0 run prefill.txt 60 $K bench --no-cuda --model $f --prefill 512 --decode 2 --reps 3
done
# Prefill attention on tensor cores (attention_coop.wgsl, KILN_COOP_ATTN=1):
# its errors against the CPU reference (the f32 cases' tolerance is
# tighter than f16 rounding: read the max errors) and its speed.
KILN_COOP=1 KILN_COOP_ATTN=1 run attn_parity.txt 60 $K ops --iters 0 --no-cuda --filter attention
tail -4 "$OUT/attn_parity.txt"
for f in $B1 $SR; do
  KILN_COOP=1 KILN_COOP_ATTN=1 run prefill.txt 60 $K bench --no-cuda --model $f --prefill 512 --decode 2 --reps 3
done
grep -E "^\\$|fused|pp512" "$OUT/prefill.txt" "$OUT/vulkan.txt"
run vulkan.txt 60 $V -m $SR -ngl 99 -p 512 -n 0 -r 5
for v in half half64 halfk64; do
  KILN_COOP=1 KILN_COOP_KERNEL=$v run profile.txt 60 $K bench --no-cuda --model $B1 --prefill 512 --decode 2 --reps 1 --profile
done
KILN_COOP=1 KILN_COOP_ATTN=1 run profile.txt 60 $K bench --no-cuda --model $B1 --prefill 512 --decode 2 --reps 1 --profile
run profile_cuda.txt 60 $K bench --no-wgpu --model $B1 --prefill 512 --decode 2 --reps 1 --profile
grep -E "^\\$|GPU time per kernel|mul_mat_coop|attention|attn" "$OUT/profile.txt" | head -50
grep -A12 "per kernel" "$OUT/profile_cuda.txt" | head -30
KILN_COOP=1 run model.txt 90 $K model --fused --tokens 8 --model $SR
grep -E "token|agree|equal|/8" "$OUT/model.txt" | head
(cd "$OUT" && tar czf all.tgz ./*.txt && rm -f gen*.txt)
