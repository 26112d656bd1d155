#!/usr/bin/env bash
# LLM decode/prefill timing on the GPU machine (device tool), from the
# repository root: the CUDA twin with and without CUDA-graph replay, and
# wgpu/Vulkan, on SmolLM2-135M Q4_1. Carry .device/kiln-parity.xz and .gl;
# the model comes in parts like tools/gpu_lora_bench.sh (STAGE=parts there
# copies them; this script joins them the same way). Writes under $OUT:
#   llm_graphs.txt     kiln-parity bench (wgpu and CUDA; CUDA replays graphs)
#   llm_nographs.txt   the same with KILN_CUDA_GRAPHS=0 (CUDA only)
# A Kiln-only comparison: llama.cpp is not built here (issue 14's same-run
# tables need ../shared/peers/llamacpp/).
set -uo pipefail
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT" /root/kiln
SMOL=/root/kiln/smollm2.gguf
if [ ! -f $SMOL ]; then
  cat /root/kiln/part00 /root/kiln/part01 /root/kiln/part02 > $SMOL 2>/dev/null
  echo "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53  $SMOL" | sha256sum -c || exit 1
fi
for f in .gl/*.deb; do dpkg -x "$f" /; done
ldconfig
export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
xz -dc .device/kiln-parity.xz > /root/kiln/kiln-parity && chmod +x /root/kiln/kiln-parity
K=/root/kiln/kiln-parity
timeout 240 $K bench --model $SMOL --prefill 512 --decode 128 --reps 5 --adapter nvidia \
  > "$OUT/llm_graphs.txt" 2>&1; echo "exit $?" >> "$OUT/llm_graphs.txt"
KILN_CUDA_GRAPHS=0 timeout 240 $K bench --model $SMOL --prefill 512 --decode 128 --reps 5 --adapter nvidia \
  > "$OUT/llm_nographs.txt" 2>&1; echo "exit $?" >> "$OUT/llm_nographs.txt"
tail -15 "$OUT/llm_graphs.txt" "$OUT/llm_nographs.txt"
