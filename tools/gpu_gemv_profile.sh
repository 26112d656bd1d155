#!/usr/bin/env bash
# Where the CUDA twin's decode GEMVs spend their time, on the GPU machine
# (device tool), from the repository root. Carry .device/kiln-parity.xz and
# .whl (the gguf wheel: random files of the Llama-3.2-1B shape, Q4_0, and
# of SmolLM2-135M's shape, Q4_1, are made there with tools/gen_random_gguf.py).
#   PHASE=p  matmul op parity, 1B greedy parity, decode of both shapes and
#            GPU time per kernel *and grid* of one 1B decode step
#            (KILN_PROFILE_GRID=1: the GEMV shapes apart)
#   PHASE=n  Nsight Compute (speed of light, occupancy, warp states, memory)
#            on the prompt's first two fused GEMVs and its 33rd plain one
#   PHASE=l  llama.cpp CUDA built there (carry .peers too) and llama-bench
#            beside Kiln's CUDA and wgpu rows (carry .gl) on both files
# Results under $OUT (docs/bench/2026-12-06-h100-gemv-stage/ has a run).
set -uo pipefail
. tools/gpu_bench_common.sh
case ${PHASE:-p} in
p)
  run parity.txt 150 $K ops --no-wgpu --iters 0 --filter mul_mat
  grep -E "cases|FAIL" "$OUT/parity.txt" | tail -6
  run model1b.txt 150 $K model --no-wgpu --fused --tokens 8 --model $B1
  tail -3 "$OUT/model1b.txt"
  for f in $B1 $SR; do
    for g in wide generic; do
      KILN_CUDA_GEMV=$g run decode.txt 120 $K bench --no-wgpu --model $f --prefill 2 --decode 128 --reps 3
    done
  done
  grep -E "^\\$|fused" "$OUT/decode.txt"
  KILN_PROFILE_GRID=1 run profile1b.txt 120 $K bench --no-wgpu --model $B1 --prefill 2 --decode 16 --reps 1 --profile
  grep -A12 "per kernel" "$OUT/profile1b.txt"
  ;;
n)
  NCU="ncu --clock-control none --section SpeedOfLight --section LaunchStats --section Occupancy --section WarpStateStats --section MemoryWorkloadAnalysis"
  # --prefill 1: the prompt's one-row GEMVs are launched one by one (no graph).
  run ncu.txt 150 $NCU --kernel-name regex:mul_mat_fused --launch-count 2 \
    $K bench --no-wgpu --model $B1 --prefill 1 --decode 2 --reps 1
  run ncu.txt 150 $NCU --kernel-name regex:mul_mat_vec --launch-skip 32 --launch-count 1 \
    $K bench --no-wgpu --model $B1 --prefill 1 --decode 2 --reps 1
  grep -E "^\\$|Duration|DRAM Throughput|L1/TEX Cache Throughput|L1/TEX Hit|Registers Per|Achieved Occupancy|mul_mat" "$OUT/ncu.txt"
  ;;
l)
  build_llamacpp_cuda
  if [ -d .gl ]; then
    for f in .gl/*.deb; do dpkg -x "$f" /; done
    ldconfig
  fi
  for f in $B1 $SR; do
    n=$(basename $f .gguf)
    run kiln_$n.txt 150 $K bench --model $f --prefill 2 --decode 128 --reps 3
    run llamacpp_$n.txt 150 $L/build-cuda/bin/llama-bench -m $f -ngl 99 -p 512 -n 128 -r 5
  done
  grep -E "fused|tg128|pp512" "$OUT"/kiln_*.txt "$OUT"/llamacpp_*.txt
  ;;
esac
