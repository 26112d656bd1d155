#!/usr/bin/env bash
# The tensor-core prefill kernels of KILN_COOP=1 (with KILN_ACTIVATIONS=q8)
# on the GPU machine (device tool), from the repository root: the GEMM on
# f16 operands (shaders/mul_mat_coop_half.wgsl; weights decoded from their
# blocks while staging, WQ, or from an f16 copy, KILN_COOP_WQ=0; its tiles
# half / half64 / halfk64 and the small-grid N2 rule) beside the 8-bit
# integer GEMM (KILN_COOP=0) and the older decode-while-staging kernel
# (KILN_COOP_KERNEL=decode); prefill attention on tensor cores
# (attention_coop.wgsl, KILN_COOP_ATTN=1). Op parity of each (the f16
# bounds of kiln::parity::q8), prefill-512 of the Llama-3.2-1B shape (Q4_0)
# and SmolLM2-135M's (Q4_1), per-kernel profiles, llama.cpp's static Vulkan
# llama-bench in the same call (NV_coopmat2, its default, and with it off:
# the KHR cooperative matrices wgpu exposes). Carry .device/kiln-parity.xz,
# .whl (the gguf wheel; the random files are made there), .gl and .peers.
set -uo pipefail
. tools/gpu_bench_common.sh
vulkan_peer
export KILN_ACTIVATIONS=q8
P="--prefill 512 --decode 2"
# Most telling first (a call cut short keeps what ran).
run vulkan.txt 60 $V -m $B1 -ngl 99 -p 512 -n 0 -r 3
KILN_COOP=1 KILN_Q8_MIN_WEIGHTS=0 run parity.txt 60 $K ops --iters 0 --no-cuda --filter mul_mat
grep -E "^\\$|cases:|FAIL" "$OUT/parity.txt" | tail -6
KILN_COOP=0 run prefill.txt 60 $K bench --no-cuda --model $B1 $P --reps 3
KILN_COOP=1 run prefill.txt 60 $K bench --no-cuda --model $B1 $P --reps 3
KILN_COOP=1 KILN_COOP_WQ=0 run prefill.txt 60 $K bench --no-cuda --model $B1 $P --reps 3
KILN_COOP=1 KILN_COOP_ATTN=1 run prefill.txt 60 $K bench --no-cuda --model $B1 $P --reps 3
run vulkan.txt 60 $V -m $B1 -ngl 99 -p 512 -n 0 -r 5
grep -E "^\\$|fused|pp512" "$OUT/prefill.txt" "$OUT/vulkan.txt"
KILN_COOP=1 KILN_COOP_ATTN=1 run profile.txt 60 $K bench --no-cuda --model $B1 $P --reps 1 --profile
grep -A14 "GPU time per kernel" "$OUT/profile.txt" | head -16
# Prefill attention on tensor cores: its f16 bound (kiln::parity::q8).
KILN_COOP=1 KILN_COOP_ATTN=1 run attn_parity.txt 90 $K ops --iters 0 --no-cuda --filter attention
grep -E "cases:|FAIL" "$OUT/attn_parity.txt" | tail -8
KILN_COOP=0 run prefill.txt 60 $K bench --no-cuda --model $SR $P --reps 3
KILN_COOP=1 run prefill.txt 60 $K bench --no-cuda --model $SR $P --reps 3
KILN_COOP=1 KILN_COOP_ATTN=1 run prefill.txt 60 $K bench --no-cuda --model $SR $P --reps 3
run vulkan.txt 60 $V -m $SR -ngl 99 -p 512 -n 0 -r 5
grep -E "^\\$|fused|pp512" "$OUT/prefill.txt" "$OUT/vulkan.txt" | tail -12
# The other tiles, the N2 rule, the decode-while-staging kernel.
for v in half64 halfk64; do
  KILN_COOP=1 KILN_COOP_KERNEL=$v run prefill.txt 60 $K bench --no-cuda --model $B1 $P --reps 3
done
KILN_COOP=1 KILN_COOP_N2=0 run prefill.txt 60 $K bench --no-cuda --model $B1 $P --reps 3
KILN_COOP=1 KILN_COOP_KERNEL=decode run prefill.txt 60 $K bench --no-cuda --model $B1 $P --reps 3
for v in half64 halfk64; do
  KILN_COOP=1 KILN_COOP_KERNEL=$v KILN_Q8_MIN_WEIGHTS=0 run parity.txt 60 $K ops --iters 0 --no-cuda --filter mul_mat
done
KILN_COOP=1 KILN_COOP_N2=0 KILN_Q8_MIN_WEIGHTS=0 run parity.txt 60 $K ops --iters 0 --no-cuda --filter mul_mat
KILN_COOP=1 KILN_COOP_WQ=0 KILN_Q8_MIN_WEIGHTS=0 run parity.txt 60 $K ops --iters 0 --no-cuda --filter mul_mat
grep -E "^\\$|fused" "$OUT/prefill.txt" | tail -8
grep -E "^\\$|cases:" "$OUT/parity.txt" | tail -8
GGML_VK_DISABLE_COOPMAT2=1 run vulkan.txt 60 $V -m $B1 -ngl 99 -p 512 -n 0 -r 5
run profile_cuda.txt 60 $K bench --no-wgpu --model $B1 $P --reps 1 --profile
grep -A12 "per kernel" "$OUT/profile_cuda.txt" | head -14
(cd "$OUT" && tar czf all.tgz ./*.txt && rm -f gen*.txt)
