#!/usr/bin/env bash
# The tensor-core prefill GEMM (shaders/mul_mat_coop.wgsl: f16 operands on
# wgpu's cooperative matrices, taken with KILN_ACTIVATIONS=q8 where the
# adapter offers them) against the 8-bit integer GEMM (KILN_COOP=0), on the
# GPU machine (device tool), from the repository root. Carry
# .device/kiln-parity.xz, .whl (the gguf wheel: random files of the
# Llama-3.2-1B shape, Q4_0, and SmolLM2-135M's, Q4_1, are made there with
# tools/gen_random_gguf.py), .gl and .peers (llama.cpp's static Vulkan
# llama-bench, run before and after: its first invocation on a machine
# prefills ≈ 3× slower than later ones).
# The CUDA twin's prefill GEMM on integer tensor cores (mma.sync s8) beside
# its __dp4a one (KILN_CUDA_MMA=0) too.
# Steps: matmul op parity on wgpu and CUDA with every product at 8 bits
# (the f16 bound of kiln::parity::q8 for wgpu's tensor-core cases),
# prefill-512 of both shapes with and without the tensor cores, a per-kernel
# profile of the 1B prefill, greedy tokens on the SmolLM2 shape against
# the CPU reference. Results under $OUT (one archive, the main files
# beside it).
set -uo pipefail
. tools/gpu_bench_common.sh
vulkan_peer
export KILN_ACTIVATIONS=q8
run vulkan.txt 60 $V -m $B1 -ngl 99 -p 512 -n 0 -r 3
KILN_Q8_MIN_WEIGHTS=0 run parity.txt 150 $K ops --iters 0 --no-cuda --filter mul_mat
KILN_Q8_MIN_WEIGHTS=0 run parity_cuda.txt 90 $K ops --iters 0 --no-wgpu --filter mul_mat
grep -E "cases:|FAIL" "$OUT/parity.txt" "$OUT/parity_cuda.txt" | tail -12
run vulkan.txt 60 $V -m $B1 -ngl 99 -p 512 -n 0 -r 5
# wgpu: the 8-bit integer GEMM, the 128 × 64 tensor-core tile, the 128 ×
# 128 one (the default); CUDA: __dp4a, then mma.sync.
for c in "0 0" "1 0" "1 1"; do
  set -- $c
  KILN_COOP=$1 KILN_COOP_WIDE=$2 run prefill.txt 100 $K bench --no-cuda --model $B1 --prefill 512 --decode 2 --reps 3
done
for c in 0 1; do
  KILN_CUDA_MMA=$c run prefill.txt 100 $K bench --no-wgpu --model $B1 --prefill 512 --decode 2 --reps 3
done
run vulkan.txt 60 $V -m $SR -ngl 99 -p 512 -n 0 -r 3
run vulkan.txt 60 $V -m $SR -ngl 99 -p 512 -n 0 -r 5
# (SmolLM2's matrices are under the 8-bit minimum: on CUDA the default
# keeps them f32; the second run takes them all to the integer mma GEMM.)
for c in 0 1; do
  KILN_COOP=$c run prefill.txt 100 $K bench --no-cuda --model $SR --prefill 512 --decode 2 --reps 3
done
run prefill.txt 100 $K bench --no-wgpu --model $SR --prefill 512 --decode 2 --reps 3
KILN_Q8_MIN_WEIGHTS=0 run prefill.txt 100 $K bench --no-wgpu --model $SR --prefill 512 --decode 2 --reps 3
grep -E "^\$|fused|plain|pp512" "$OUT/prefill.txt" "$OUT/vulkan.txt"
run profile.txt 60 $K bench --no-cuda --model $B1 --prefill 512 --decode 2 --reps 1 --profile
grep -A10 "GPU time per kernel" "$OUT/profile.txt"
run model.txt 60 $K model --fused --tokens 8 --model $SR
grep -E "token|agree|equal|/8" "$OUT/model.txt" | head
(cd "$OUT" && tar czf all.tgz ./*.txt && rm -f gen*.txt)
