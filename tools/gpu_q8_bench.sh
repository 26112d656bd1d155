#!/usr/bin/env bash
# 8-bit activations in the matrix products (KILN_ACTIVATIONS=q8, ops/matmul_q8.rs)
# against the f32 kernels, on the GPU machine (device tool), from the
# repository root. Carry .device/kiln-parity.xz and .whl (random files of the
# Llama-3.2-1B shape, Q4_0, and of SmolLM2-135M's shape, Q4_1, are made there
# with tools/gen_random_gguf.py).
#   PHASE=a  matmul op parity with q8 on CUDA and wgpu (the rounding bound of
#            kiln::parity::q8), 1B greedy tokens f32 vs q8 against the CPU
#            reference, decode and prefill-512 of both shapes f32 vs q8 on
#            both backends, and GPU time per kernel and grid of one q8 1B step
#   PHASE=f  PHASE=l after the matmul op parity of PHASE=a, plus the 1B
#            prefill-512 of .device/kiln-parity-q8a.xz (an earlier binary)
#            beside this one when it is carried (A/B in the same call)
#   PHASE=g  the short form of f: op parity, the prefill A/B and llama.cpp
#            Vulkan's pp512 on the 1B file (no CUDA build)
#   PHASE=h  the decode GEMV quantizing x in its own workgroups (default)
#            against a quantize dispatch before it (KILN_Q8_LOCAL=0) and
#            other rows per workgroup, the prefill GEMM of
#            .device/kiln-parity-q8a.xz beside this one, op parity, 1B
#            greedy tokens, a wgpu kernel profile, and llama.cpp Vulkan
#            before and after (no CUDA build)
#   PHASE=t  the tiled prefill attention against attn_one, then one run of
#            both shapes beside llama.cpp CUDA (built there) and Vulkan
#            (three invocations of Vulkan on the 1B file, two on the other)
#   PHASE=l  the same decode and prefill rows beside llama.cpp CUDA (built there; carry
#            .peers) and llama.cpp's static Vulkan llama-bench (carry .gl)
# Results under $OUT.
set -uo pipefail
[ "${PHASE:-a}" = g ] && export NO_SMOL=1
if [ "${PHASE:-a}" = t ]; then
  # The tiled prefill attention (attn_tile) against attn_one (KILN_ATTN=one),
  # op parity and greedy tokens, then one run of everything beside llama.cpp
  # CUDA (built here meanwhile, at low priority; the decode timings wait for
  # it) and Vulkan, run several times (its first invocation on a machine has
  # measured 3x slower prefill than later ones).
  . tools/gpu_bench_common.sh
  vulkan_peer
  build_pid=
  if [ "${CUDA_PEER:-1}" = 1 ]; then
    (renice -n 19 $BASHPID > /dev/null; build_llamacpp_cuda) &
    build_pid=$!
  fi
  export KILN_ACTIVATIONS=q8
  KILN_Q8_MIN_WEIGHTS=0 run parity.txt 200 $K ops --iters 0 --filter att
  grep -E "cases:" "$OUT/parity.txt"
  run model1b.txt 150 $K model --fused --tokens 8 --model $B1
  grep -E "/8" "$OUT/model1b.txt" | head
  run vulkan.txt 100 $V -m $B1 -ngl 99 -p 512 -n 128 -r 5
  for at in one tile; do
    KILN_ATTN=$at run kiln1b.txt 150 $K bench --model $B1 --prefill 512 --decode 2 --reps 3
  done
  run vulkan.txt 100 $V -m $B1 -ngl 99 -p 512 -n 128 -r 5
  run smol.txt 150 $K bench --model $SR --prefill 512 --decode 2 --reps 3
  run vulkan.txt 100 $V -m $SR -ngl 99 -p 512 -n 128 -r 5
  [ -n "$build_pid" ] && wait $build_pid
  run kiln1b.txt 150 $K bench --model $B1 --prefill 2 --decode 128 --reps 3
  run smol.txt 150 $K bench --model $SR --prefill 2 --decode 128 --reps 3
  [ -x $L/build-cuda/bin/llama-bench ] && for f in $B1 $SR; do
    run cuda.txt 150 $L/build-cuda/bin/llama-bench -m $f -ngl 99 -p 512 -n 128 -r 5
  done
  run vulkan.txt 100 $V -m $B1 -ngl 99 -p 512 -n 128 -r 5
  run vulkan.txt 100 $V -m $SR -ngl 99 -p 512 -n 128 -r 5
  run profile.txt 120 $K bench --model $B1 --prefill 512 --decode 2 --reps 1 --profile
  grep -E "^\\$|fused|tg128|pp512" "$OUT"/kiln1b.txt "$OUT"/smol.txt "$OUT"/vulkan.txt "$OUT"/cuda.txt
  grep -A6 "GPU time per kernel" "$OUT"/profile.txt
  # At most 8 files come back: all of them in one archive, the main ones beside.
  (cd "$OUT" && tar czf all.tgz ./*.txt && rm -f gen*.txt llamacpp_build.txt gpu.txt)
  exit 0
fi
if [ "${PHASE:-a}" = h ]; then
  . tools/gpu_bench_common.sh
  vulkan_peer
  A=/root/kiln/kiln-parity-q8a
  xz -dc .device/kiln-parity-q8a.xz > $A && chmod +x $A
  export KILN_ACTIVATIONS=q8
  run llamacpp_vulkan_1b.txt 150 $V -m $B1 -ngl 99 -p 512 -n 128 -r 5
  for l in 1 0; do
    KILN_Q8_LOCAL=$l run decode1b.txt 150 $K bench --model $B1 --prefill 2 --decode 128 --reps 3
  done
  for r in 16 32; do
    KILN_Q8_LOCAL_ROWS=$r run decode1b.txt 150 $K bench --model $B1 --prefill 2 --decode 128 --reps 3
  done
  for b in $A $K; do
    run prefill1b.txt 150 $b bench --model $B1 --prefill 512 --decode 2 --reps 3
  done
  run llamacpp_vulkan_1b.txt 150 $V -m $B1 -ngl 99 -p 512 -n 128 -r 5
  grep -E "^\\$|fused|tg128|pp512" "$OUT"/decode1b.txt "$OUT"/prefill1b.txt "$OUT"/llamacpp_vulkan_1b.txt
  KILN_Q8_MIN_WEIGHTS=0 run parity.txt 200 $K ops --iters 0 --filter mul_mat
  grep -E "cases:" "$OUT/parity.txt"
  run model1b.txt 150 $K model --fused --tokens 8 --model $B1
  grep -E "token|agree|equal" "$OUT/model1b.txt" | head
  for a in q8 f32; do
    KILN_ACTIVATIONS=$a run smol.txt 150 $K bench --model $SR --prefill 2 --decode 128 --reps 3
    KILN_ACTIVATIONS=$a run smol.txt 150 $K bench --model $SR --prefill 512 --decode 2 --reps 3
  done
  # Every matrix at 8 bits (with no quantize dispatch the small ones may pay).
  KILN_Q8_MIN_WEIGHTS=0 run smol.txt 150 $K bench --model $SR --prefill 2 --decode 128 --reps 3
  run llamacpp_vulkan_smol.txt 150 $V -m $SR -ngl 99 -p 512 -n 128 -r 5
  grep -E "^\\$|fused|tg128|pp512" "$OUT"/smol.txt "$OUT"/llamacpp_vulkan_smol.txt
  run profile1b.txt 120 $K bench --no-cuda --model $B1 --prefill 2 --decode 16 --reps 1 --profile
  run profile1b_prefill.txt 120 $K bench --model $B1 --prefill 512 --decode 2 --reps 1 --profile
  grep -A12 "GPU time per kernel" "$OUT"/profile1b*.txt
  exit 0
fi
. tools/gpu_bench_common.sh
if [ -d .gl ]; then
  for f in .gl/*.deb; do dpkg -x "$f" /; done
  ldconfig
fi
export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
if [ "${PHASE:-a}" = f ] || [ "${PHASE:-a}" = g ]; then
  KILN_ACTIVATIONS=q8 KILN_Q8_MIN_WEIGHTS=0 run parity.txt 200 $K ops --iters 0 --filter mul_mat
  grep -E "cases:" "$OUT/parity.txt"
  if [ -f .device/kiln-parity-q8a.xz ]; then
    xz -dc .device/kiln-parity-q8a.xz > /root/kiln/kiln-parity-q8a && chmod +x /root/kiln/kiln-parity-q8a
    for b in /root/kiln/kiln-parity-q8a $K; do
      KILN_ACTIVATIONS=q8 run ab_prefill.txt 150 $b bench --model $B1 --prefill 512 --decode 2 --reps 3
    done
    grep -E "^\\$|fused" "$OUT/ab_prefill.txt"
  fi
  if [ "$PHASE" = g ]; then
    V=/root/llama-bench-vulkan
    xz -dc .peers/llama-bench-vulkan.xz > $V && chmod +x $V
    run llamacpp_vulkan_pp.txt 100 $V -m $B1 -ngl 99 -p 512 -n 0 -r 5
    grep pp512 "$OUT/llamacpp_vulkan_pp.txt"
    exit 0
  fi
  PHASE=l
fi
case ${PHASE:-a} in
a)
  # Every size at 8 bits (the default skips matrices under 2^21 weights).
  KILN_ACTIVATIONS=q8 KILN_Q8_MIN_WEIGHTS=0 run parity.txt 200 $K ops --iters 0 --filter mul_mat
  grep -E "cases|FAIL" "$OUT/parity.txt" | tail -8
  for a in f32 q8; do
    KILN_ACTIVATIONS=$a run model1b.txt 150 $K model --fused --tokens 8 --model $B1
  done
  grep -E "^\\$|token|agree|equal" "$OUT/model1b.txt" | head -20
  for f in $B1 $SR; do
    for a in f32 q8; do
      KILN_ACTIVATIONS=$a run decode.txt 150 $K bench --model $f --prefill 2 --decode 128 --reps 3
      KILN_ACTIVATIONS=$a run prefill.txt 150 $K bench --model $f --prefill 512 --decode 2 --reps 3
    done
  done
  grep -E "^\\$|fused|plain" "$OUT/decode.txt" "$OUT/prefill.txt"
  KILN_ACTIVATIONS=q8 KILN_PROFILE_GRID=1 run profile1b.txt 120 $K bench --no-wgpu --model $B1 --prefill 2 --decode 16 --reps 1 --profile
  grep -A16 "per kernel" "$OUT/profile1b.txt"
  ;;
l)
  build_llamacpp_cuda
  V=/root/llama-bench-vulkan
  [ -x $V ] || { xz -dc .peers/llama-bench-vulkan.xz > $V && chmod +x $V; }
  for f in $B1 $SR; do
    n=$(basename $f .gguf)
    for a in f32 q8; do
      KILN_ACTIVATIONS=$a run kiln_$n.txt 150 $K bench --model $f --prefill 2 --decode 128 --reps 3
      KILN_ACTIVATIONS=$a run kiln_$n.txt 150 $K bench --model $f --prefill 512 --decode 2 --reps 3
    done
    run llamacpp_cuda_$n.txt 150 $L/build-cuda/bin/llama-bench -m $f -ngl 99 -p 512 -n 128 -r 5
    run llamacpp_vulkan_$n.txt 150 $V -m $f -ngl 99 -p 512 -n 128 -r 5
  done
  grep -E "^\\$|fused|tg128|pp512" "$OUT"/kiln_*.txt "$OUT"/llamacpp_*.txt
  ;;
esac
