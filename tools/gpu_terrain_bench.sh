#!/usr/bin/env bash
# Runs on the GPU machine (device tool), from the repository root, with
# `carry: [".device", ".gl"]`: .device/kiln-parity.xz (a release build of
# kiln-parity from here) and .device/terrain.onnx.xz (the terrain model,
# xz-compressed). Writes everything under $OUT:
#   ops.txt        kiln-parity ops: every op case on CUDA and wgpu/Vulkan vs the CPU reference
#   diffuse.json   kiln-parity diffuse: the UNet on CUDA and Vulkan vs ONNX Runtime + --bench
#   torch.json     tools/terrain_torch_bench.py: PyTorch eager / CUDA graphs / compile / TF32
#   env.txt        GPU, driver, versions
set -uo pipefail
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT" /root/kiln
for f in .gl/*.deb; do dpkg -x "$f" /; done
ldconfig
export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
xz -dc .device/kiln-parity.xz > /root/kiln/kiln-parity && chmod +x /root/kiln/kiln-parity
mkdir -p models
[ -f /root/kiln/terrain.onnx ] || xz -dc .device/terrain.onnx.xz > /root/kiln/terrain.onnx
ln -sf /root/kiln/terrain.onnx models/terrain_consistency_unet_difficulty100.onnx
{ date -u; nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv; git log -1 --format=%H 2>/dev/null;
  python3 -c "import torch, onnxruntime; print('torch', torch.__version__, 'ort', onnxruntime.__version__)"; } > "$OUT/env.txt" 2>&1
K=/root/kiln/kiln-parity
if [ -z "${SKIP_OPS:-}" ]; then
  timeout 240 $K ops --iters 0 --adapter nvidia > "$OUT/ops.txt" 2>&1; echo "ops exit $?" >> "$OUT/ops.txt"
  tail -3 "$OUT/ops.txt"
fi
timeout 300 $K diffuse --no-cpu --adapter nvidia --bench 1,64 --iters 10 --json > "$OUT/diffuse.json" 2> "$OUT/diffuse.err"
echo "diffuse exit $?" >> "$OUT/diffuse.err"; tail -8 "$OUT/diffuse.err"
# One call per kernel at batch 1 and 64 (where the time goes), then f16 weights.
timeout 200 $K diffuse --no-cpu --adapter nvidia --bench 1,64 --iters 3 --profile > /dev/null 2> "$OUT/kernel-profile.txt"
echo "profile exit $?" >> "$OUT/kernel-profile.txt"
timeout 200 $K diffuse --no-cpu --adapter nvidia --bench 1,64 --iters 10 --weights f16 > "$OUT/diffuse-f16.txt" 2>&1
echo "f16 exit $?" >> "$OUT/diffuse-f16.txt"
# The CUDA twin launching kernel by kernel (no CUDA-graph replay), with the
# GPU's clocks, power and throttle reasons logged every 100 ms meanwhile.
nvidia-smi --query-gpu=timestamp,clocks.sm,clocks.mem,power.draw,temperature.gpu,clocks_event_reasons.active \
  --format=csv -lms 100 > "$OUT/smi.csv" 2>&1 &
SMI=$!
sleep 1
KILN_CUDA_GRAPHS=0 timeout 200 $K diffuse --no-cpu --no-wgpu --adapter nvidia --bench 1,64 --iters 10 \
  > "$OUT/diffuse-nographs.txt" 2>&1; echo "nographs exit $?" >> "$OUT/diffuse-nographs.txt"
timeout 200 $K diffuse --no-cpu --no-wgpu --adapter nvidia --bench 64 --iters 10 --profile \
  > "$OUT/diffuse-cuda64.txt" 2>&1; echo "cuda64 exit $?" >> "$OUT/diffuse-cuda64.txt"
kill $SMI
# wgpu without its injected shader bounds checks (what they cost).
KILN_WGPU_UNCHECKED=1 timeout 200 $K diffuse --no-cpu --no-cuda --adapter nvidia --bench 1,64 --iters 10 \
  > "$OUT/diffuse-unchecked.txt" 2>&1; echo "unchecked exit $?" >> "$OUT/diffuse-unchecked.txt"
if [ -f tools/terrain_torch_bench.py ]; then
  timeout 400 python3 tools/terrain_torch_bench.py --model models/terrain_consistency_unet_difficulty100.onnx \
    --bench --device cuda --batches 1,64 --iters 20 --modes eager,cudagraph,eager_tf32 > "$OUT/torch.json" 2> "$OUT/torch.err"
  echo "torch exit $?" >> "$OUT/torch.err"
fi
tail -c 1500 "$OUT/torch.json"
