#!/usr/bin/env bash
# LLM decode/prefill timing on the GPU machine (device tool), from the
# repository root: the CUDA twin with and without CUDA-graph replay, and
# wgpu/Vulkan, on SmolLM2-135M Q4_1. Carry .device/kiln-parity.xz and .gl;
# the model comes in parts like tools/gpu_lora_bench.sh (STAGE=parts there
# copies them; this script joins them the same way). Writes under $OUT:
#   llm_graphs.txt     kiln-parity bench (wgpu and CUDA; CUDA replays graphs)
#   llm_nographs.txt   the same with KILN_CUDA_GRAPHS=0 (with NOGRAPHS=1)
#   llm_graphs_tg128.txt  decode from an almost empty context (llama-bench's tg128)
#   kiln_plain.txt / kiln_fused.txt   `kiln bench --profile` (wgpu; carry
#                      .device/kiln.xz): dispatches and host encode time per
#                      decode step, GPU time per kernel from timestamps
#   llamacpp_vulkan.txt  llama-bench (Vulkan) on the same file when
#                      .peers/llama-bench-vulkan.xz is carried
#                      (../shared/peers/llamacpp/)
# Parts: a call with STAGE=parts only copies the carried .device/smol/part*
# to /root/kiln (they stay while the machine is warm).
set -uo pipefail
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT" /root/kiln
SMOL=/root/kiln/smollm2.gguf
if [ "${STAGE:-}" = parts ]; then cp .device/smol/part* /root/kiln/; ls -la /root/kiln; exit 0; fi
[ -d .device/smol ] && cp .device/smol/part* /root/kiln/
if [ ! -f $SMOL ]; then
  cat /root/kiln/part00 /root/kiln/part01 /root/kiln/part02 > $SMOL 2>/dev/null
  echo "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53  $SMOL" | sha256sum -c || { rm -f $SMOL; exit 1; }
fi
for f in .gl/*.deb; do dpkg -x "$f" /; done
ldconfig
export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
if [ -f .device/kiln.xz ]; then
  xz -dc .device/kiln.xz > /root/kiln/kiln && chmod +x /root/kiln/kiln
  for f in plain fused; do
    flag=--$f
    timeout 200 /root/kiln/kiln bench --model $SMOL --prefill 512 --decode 128 --reps 5 --adapter nvidia \
      --profile $flag > "$OUT/kiln_$f.txt" 2>&1; echo "exit $?" >> "$OUT/kiln_$f.txt"
    # As llama-bench's tg128: 128 tokens decoded from an (almost) empty context.
    timeout 200 /root/kiln/kiln bench --model $SMOL --prefill 2 --decode 128 --reps 5 --adapter nvidia \
      $flag > "$OUT/kiln_${f}_tg128.txt" 2>&1; echo "exit $?" >> "$OUT/kiln_${f}_tg128.txt"
  done
fi
# KILN_ENVS: more `kiln bench` runs (decode after a 512-token prompt), one
# per environment setting, e.g. "KILN_SUBMIT_EVERY=64 KILN_POLL_EACH_RUN=0";
# an entry's commas separate several settings; a leading "plain," adds
# --plain (the fused graph is the default on GPUs).
if [ -f /root/kiln/kiln ]; then
  for v in ${KILN_ENVS:-}; do
    sfx=${v//[^A-Za-z0-9]/}; flag=
    case $v in plain,*) flag=--plain; v=${v#plain,};; esac
    env ${v//,/ } timeout 120 /root/kiln/kiln bench --model $SMOL --prefill 512 --decode 128 --reps 3 \
      --adapter nvidia $flag > "$OUT/kiln_env_$sfx.txt" 2>&1; echo "exit $?" >> "$OUT/kiln_env_$sfx.txt"
  done
fi
if [ -f .peers/llama-bench-vulkan.xz ]; then
  xz -dc .peers/llama-bench-vulkan.xz > /root/kiln/llama-bench-vulkan && chmod +x /root/kiln/llama-bench-vulkan
  timeout 200 /root/kiln/llama-bench-vulkan -m $SMOL -ngl 99 -p 512 -n 128 -r 5 \
    > "$OUT/llamacpp_vulkan.txt" 2>&1; echo "exit $?" >> "$OUT/llamacpp_vulkan.txt"
fi
# llama.cpp CUDA (≈ 300 s to build; carry .peers/llamacpp-src-trim.tar.xz and
# .peers/build-cuda.sh): runs last, after the Kiln CUDA twin.
lc_cuda() {
  [ -f .peers/llamacpp-src-trim.tar.xz ] || return 0
  local L=/root/lc/llama.cpp
  if [ ! -x $L/build-cuda/bin/llama-bench ]; then
    mkdir -p /root/lc && tar xJf .peers/llamacpp-src-trim.tar.xz -C /root/lc
    cp .peers/build-cuda.sh $L/ && (cd $L && JOBS=16 timeout 400 ./build-cuda.sh > /root/lc/build.log 2>&1)
    tail -3 /root/lc/build.log > "$OUT/llamacpp_cuda_build.txt"
  fi
  timeout 120 $L/build-cuda/bin/llama-bench -m $SMOL -ngl 99 -p 512 -n 128 -r 5 \
    > "$OUT/llamacpp_cuda.txt" 2>&1; echo "exit $?" >> "$OUT/llamacpp_cuda.txt"
}
[ -n "${NO_PARITY:-}" ] && { lc_cuda; exit 0; }
xz -dc .device/kiln-parity.xz > /root/kiln/kiln-parity && chmod +x /root/kiln/kiln-parity
K=/root/kiln/kiln-parity
timeout 240 $K bench --model $SMOL --prefill 512 --decode 128 --reps 5 --adapter nvidia \
  > "$OUT/llm_graphs.txt" 2>&1; echo "exit $?" >> "$OUT/llm_graphs.txt"
timeout 240 $K bench --model $SMOL --prefill 2 --decode 128 --reps 5 --adapter nvidia \
  > "$OUT/llm_graphs_tg128.txt" 2>&1; echo "exit $?" >> "$OUT/llm_graphs_tg128.txt"
[ -n "${NOGRAPHS:-}" ] && KILN_CUDA_GRAPHS=0 timeout 240 $K bench --model $SMOL --prefill 512 --decode 128 --reps 5 --adapter nvidia \
  > "$OUT/llm_nographs.txt" 2>&1 && echo "exit $?" >> "$OUT/llm_nographs.txt"
tail -15 "$OUT/llm_graphs.txt" "$OUT/llm_nographs.txt"
lc_cuda
