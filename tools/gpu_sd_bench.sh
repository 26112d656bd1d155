#!/usr/bin/env bash
# Stable Diffusion at the real configurations on the GPU machine (device
# tool), from the repository root. Carry: .gl (Vulkan loader debs),
# .device/kiln-parity.xz (a release kiln-parity built here), .whl (the
# diffusers + importlib_metadata wheels) and .device/sd_tokenizer (the full
# CLIP tokenizer, rebuilt by tools/sd_fixtures.py's functions from
# open_clip's BPE file). Everything under /root/kiln stays while the machine
# is warm, so later calls need only .gl.
#
# Stages (STAGE="ops turbo torch sd15 sd21 terrain"; default all but terrain):
#   ops    kiln-parity ops: every op case on CUDA and wgpu/Vulkan vs the CPU
#          reference (OPS_FILTER narrows it)
#   turbo  random weights at SD 2.1-base's configuration (SD-Turbo's UNet, text
#          encoder and VAE) at 512² (latent 64), references from diffusers
#          on this GPU in f32 (TF32 off), then kiln-parity sd: the modules on
#          wgpu and CUDA vs diffusers, and a one-step 512² image timed per
#          phase for each weight type in SD_WEIGHTS (default f32,f16,q8_0,q4_k),
#          with the per-kernel profile of the UNet and the decoder
#   torch  tools/sd_torch_bench.py on the same folder: TORCH_MODES (default
#          diffusers fp16, fp32, fp16 + torch.compile)
#   sd15   SD 1.5's configuration at 512² (latent 64): module check
#   sd21   SD 2.1's configuration at 768² (latent 96): module check
#   terrain  the terrain UNet (carry .device/terrain.onnx.xz): kiln-parity
#          diffuse (check + batch 1 and 64), the per-kernel profiles at batch 1 and 64, and
#          PyTorch eager / CUDA graphs in the same run (NO_TORCH=1 skips them);
#          TERRAIN_ENVS="- KILN_X=1" repeats Kiln's part per environment
#          setting ("-": none). OPS_ENV likewise sets the ops stage's.
# Results: $OUT/summary.txt grows line by line (it comes back even when the
# call is cut off); every log goes into $OUT/sd.tgz at the end.
set -uo pipefail
OUT=${OUT:-/tmp/out}
STAGE=${STAGE:-ops turbo torch sd15 sd21}
R=/root/kiln/sd-results
mkdir -p "$OUT" "$R" /root/kiln /root/sd
S="$OUT/summary.txt"
want() { [[ " $STAGE " == *" $1 "* ]]; }
note() { grep -hE "$1" "$2" >> "$S" 2>/dev/null; }
for f in .gl/*.deb; do dpkg -x "$f" /; done
ldconfig
export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
export PYTHONUNBUFFERED=1
K=/root/kiln/kiln-parity
if [ -f .device/kiln-parity.xz ]; then xz -dc .device/kiln-parity.xz > $K && chmod +x $K; fi
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /root/kiln/site .whl/*.whl
fi
[ -d .device/sd_tokenizer ] && cp -r .device/sd_tokenizer /root/kiln/
export PYTHONPATH=/root/kiln/site
{ date -u; nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv; git log -1 --format=%H 2>/dev/null
  python3 -c "import torch, diffusers, transformers; print('torch', torch.__version__, 'diffusers', diffusers.__version__, 'transformers', transformers.__version__)"; } > "$R/env.txt" 2>&1
cat "$R/env.txt" >> "$S"

gen() { # MODEL LATENT: a random-weight folder at the model's real configuration
  local d=/root/sd/$1
  [ -f $d/reference.safetensors ] && return 0
  /usr/bin/time -f "$1 reference: %e s" python3 tools/sd_real_config_ref.py "$1" $d --latent "$2" --device cuda \
    --tokenizer /root/kiln/sd_tokenizer > "$R/gen-$1.txt" 2>&1
  tail -1 "$R/gen-$1.txt" >> "$S"
}

if want ops; then
  env ${OPS_ENV:-} timeout 240 $K ops --iters 0 --adapter nvidia --filter "${OPS_FILTER:-}" > "$R/ops.txt" 2>&1
  echo "ops exit $?" >> "$R/ops.txt"; tail -2 "$R/ops.txt" >> "$S"
fi
if want turbo; then
  gen sd21-base 64
  timeout 300 $K sd --model /root/sd/sd21-base --adapter nvidia --bench 512x512 --iters 5 --profile \
    --weights "${SD_WEIGHTS:-f32,f16,q8_0,q4_k}" --json > "$R/turbo.json" 2> "$R/turbo.err"
  echo "sd exit $?" >> "$R/turbo.err"; note "^(check|bench|profile)|exit|rror" "$R/turbo.err"
fi
if want torch; then
  timeout "${TORCH_TIMEOUT:-300}" python3 tools/sd_torch_bench.py /root/sd/sd21-base --size 512 --iters 5 \
    --modes "${TORCH_MODES:-fp16,fp32,fp16_compile}" > "$R/torch.jsonl" 2> "$R/torch.err"
  echo "torch exit $?" >> "$R/torch.err"; cat "$R/torch.jsonl" >> "$S"; tail -2 "$R/torch.err" >> "$S"
fi
for m in sd15:64 sd21:96; do
  name=${m%%:*}
  if want "$name"; then
    gen "$name" "${m##*:}"
    timeout 200 $K sd --model /root/sd/$name --adapter nvidia --json > "$R/$name.json" 2> "$R/$name.err"
    echo "sd exit $?" >> "$R/$name.err"; note "^check|exit|rror" "$R/$name.err"
  fi
done
if want terrain; then
  T=/root/kiln/terrain.onnx
  [ -f $T ] || xz -dc .device/terrain.onnx.xz > $T
  mkdir -p models && ln -sf $T models/terrain_consistency_unet_difficulty100.onnx
  # TERRAIN_ENVS: one Kiln run per entry, each an environment setting
  # ("-" for none), e.g. "- KILN_CONV_BIG=8" to race two kernel variants.
  for v in ${TERRAIN_ENVS:--}; do
    sfx=${v//[^A-Za-z0-9]/}; [ "$v" = - ] && { v=; sfx=; }
    echo "terrain run ${v:-default}" >> "$S"
    env $v timeout 200 $K diffuse --no-cpu --adapter nvidia --bench 1,64 --iters 10 > "$R/terrain$sfx.txt" 2> "$R/terrain$sfx.err"
    echo "diffuse exit $?" >> "$R/terrain$sfx.err"
    tail -4 "$R/terrain$sfx.txt" >> "$S"; note "^split|exit|rror" "$R/terrain$sfx.err"
    env $v timeout 150 $K diffuse --no-cpu --adapter nvidia --bench 1,64 --iters 3 --profile \
      > /dev/null 2> "$R/terrain-profile$sfx.txt"
    note "^(profile|  )" "$R/terrain-profile$sfx.txt"
  done
  if [ -z "${NO_TORCH:-}" ]; then
    timeout 150 python3 tools/terrain_torch_bench.py --model models/terrain_consistency_unet_difficulty100.onnx \
      --bench --device cuda --batches 1,64 --iters 20 --modes eager,cudagraph > "$R/terrain-torch.json" 2> "$R/terrain-torch.err"
    echo "torch exit $?" >> "$R/terrain-torch.err"; tail -c 1500 "$R/terrain-torch.json" >> "$S"
  fi
fi
tar czf "$OUT/sd.tgz" -C "$R" .
