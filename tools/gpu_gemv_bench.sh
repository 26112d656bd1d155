#!/usr/bin/env bash
# The wgpu decode GEMV on the GPU machine (device tool), from the repository
# root, in one call: the op-parity suite (wgpu and CUDA), random Llama-3.2-1B
# (Q4_0, Q8_0) and Llama-3.1-8B (Q4_0) shape files made there
# (tools/gen_random_gguf.py --raw), `kiln-parity bench` of the binary before
# the change (.device/kiln-parity-base.xz) and after it (.device/kiln-parity.xz,
# also with KILN_GEMV_XS=1, and a kernel profile), llama.cpp's static Vulkan
# llama-bench (.peers/llama-bench-vulkan.xz) on the same files, the device's
# copy bandwidth (PyTorch), and greedy parity of the 1B file.
# MODE=b instead: KILN_GEMV_XREG=0|1 one run each on the 1B and 8B Q4_0
# files (wgpu; CUDA with it on), the op-parity suite with it on, and a
# kernel profile
# (needs only .device/kiln-parity.xz .gl .whl). MODE=c: the op-parity suite
# and the 1B / 8B Q4_0 benches with the defaults, beside llama.cpp Vulkan
# (.peers/llama-bench-vulkan.xz too). MODE=p: prefill-512 of the 1B Q4_0
# file with the big GEMM off and on, beside llama.cpp Vulkan's pp512, and
# greedy parity after a long prompt (.device/kiln-parity.xz .gl .whl
# .peers/llama-bench-vulkan.xz). At most 8 files come back.
# Carry: .device/kiln-parity.xz .device/kiln-parity-base.xz .gl .whl
# .peers/llama-bench-vulkan.xz. Writes under $OUT.
set -uo pipefail
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT" /root/kiln
K=/root/kiln/kiln-parity
KB=/root/kiln/kiln-parity-base
LV=/root/kiln/llama-bench-vulkan
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
if [ -d .gl ]; then
  for f in .gl/*.deb; do dpkg -x "$f" /; done
  ldconfig
fi
export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv > "$OUT/gpu.txt"
git log -1 --format=%H > "$OUT/commit.txt" 2>/dev/null
xz -dc .device/kiln-parity.xz > $K && chmod +x $K
[ -f .device/kiln-parity-base.xz ] && xz -dc .device/kiln-parity-base.xz > $KB && chmod +x $KB
[ -f .peers/llama-bench-vulkan.xz ] && xz -dc .peers/llama-bench-vulkan.xz > $LV && chmod +x $LV
run() { # file, timeout, command...
  local f=$1 t=$2; shift 2
  echo "\$ $*" >> "$OUT/$f"
  timeout "$t" "$@" >> "$OUT/$f" 2>&1; echo "exit $?" >> "$OUT/$f"
}
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl
gen() { PYTHONPATH=/tmp/site timeout 200 python3 tools/gen_random_gguf.py "$@" >> "$OUT/gen.txt" 2>&1; }
B4=/root/kiln/l1b-q4_0.gguf B8=/root/kiln/l1b-q8_0.gguf E4=/root/kiln/l8b-q4_0.gguf
if [ "${MODE:-a}" = c ]; then
  # The defaults after the switches were chosen, beside llama.cpp Vulkan.
  gen $B4 Q4_0 --raw & gen $E4 Q4_0 --8b &
  run parity.txt 200 $K ops --iters 0
  grep -E "^[0-9]+ cases" "$OUT/parity.txt"
  wait
  run bench.txt 200 $K bench --model $B4 --prefill 2 --decode 128 --reps 3
  run bench.txt 200 $K bench --model $E4 --prefill 2 --decode 64 --reps 2
  grep -E "decode" "$OUT/bench.txt"
  for f in $B4 $E4; do run llamacpp_vulkan.txt 120 $LV -m $f -ngl 99 -p 512 -n 128 -r 3; done
  grep -E "pp512|tg128" "$OUT/llamacpp_vulkan.txt"
  exit 0
fi
if [ "${MODE:-a}" = p ]; then
  # Prefill-512 on the 1B Q4_0 file: the big GEMM off and on (wgpu), the
  # CUDA twin, llama.cpp Vulkan pp512, and greedy parity after a long prompt.
  gen $B4 Q4_0 --raw
  run parity.txt 200 $K ops --iters 0 --filter mul_mat
  grep -E "^[0-9]+ cases" "$OUT/parity.txt"
  P="--prefill 512 --decode 16 --reps 3"
  KILN_GEMM_BIG=0 run prefill.txt 150 $K bench --no-cuda --model $B4 $P
  run prefill.txt 150 $K bench --model $B4 $P
  KILN_GEMM_BIG=0 run prefill.txt 150 $K bench --no-cuda --model $B4 $P
  run prefill.txt 150 $K bench --no-cuda --model $B4 $P
  grep -E "^\\$|prefill" "$OUT/prefill.txt"
  run llamacpp_vulkan.txt 120 $LV -m $B4 -ngl 99 -p 512 -n 32 -r 3
  grep -E "pp512|tg32" "$OUT/llamacpp_vulkan.txt"
  LONG=$(python3 -c "print(' '.join(['The history of the clock is a story of'] * 4))")
  run model.txt 200 $K model --tokens 8 --model $B4 --prompt "$LONG"
  tail -4 "$OUT/model.txt"
  exit 0
fi
if [ "${MODE:-a}" = b ]; then
  gen $B4 Q4_0 --raw & gen $E4 Q4_0 --8b &
  run parity.txt 200 $K ops --iters 0
  KILN_GEMV_XREG=1 run parity.txt 200 $K ops --iters 0 --filter mul_mat
  grep -E "^[0-9]+ cases" "$OUT/parity.txt"
  wait
  v() { # label, file, decode, reps, env...
    local l=$1 f=$2 d=$3 r=$4; shift 4
    echo "## $l $*" >> "$OUT/variants.txt"
    env "$@" timeout 200 $K bench --no-cuda --model $f --prefill 2 --decode $d --reps $r >> "$OUT/variants.txt" 2>&1
  }
  for f in $B4 $E4; do
    d=128; r=3; [ $f = $E4 ] && d=64 && r=2
    v xreg-off $f $d $r KILN_GEMV_XREG=0
    v xreg-on $f $d $r KILN_GEMV_XREG=1
  done
  echo "## cuda xreg" >> "$OUT/variants.txt"
  for f in $B4 $E4; do
    KILN_GEMV_XREG=1 timeout 200 $K bench --no-wgpu --model $f --prefill 2 --decode 64 --reps 2 >> "$OUT/variants.txt" 2>&1
  done
  echo "## cuda default" >> "$OUT/variants.txt"
  timeout 200 $K bench --no-wgpu --model $E4 --prefill 2 --decode 64 --reps 2 >> "$OUT/variants.txt" 2>&1
  grep -E "^##|decode" "$OUT/variants.txt"
  KILN_GEMV_XREG=1 run profile.txt 200 $K bench --model $E4 --prefill 2 --decode 16 --reps 1 --profile
  KILN_GEMV_XREG=1 run model.txt 150 $K model --fused --tokens 8 --model $B4
  KILN_GEMV_XREG=1 run model.txt 150 $K model --tokens 8 --model $B4
  tail -3 "$OUT/model.txt"
  exit 0
fi
gen $B4 Q4_0 --raw & gen $B8 Q8_0 --raw & gen $E4 Q4_0 --8b &
run parity.txt 200 $K ops --iters 0
tail -1 "$OUT/parity.txt"
wait
ls -la /root/kiln >> "$OUT/gen.txt"
python3 tools/copy_bw.py > "$OUT/copy_bw.txt" 2>&1
cat "$OUT/copy_bw.txt"
B="--prefill 2 --decode 128 --reps 3"
run b_1b_q4.txt 150 $KB bench --model $B4 $B
run b_1b_q4.txt 100 $K bench --no-cuda --model $B4 $B
KILN_GEMV_XS=1 run b_1b_q4.txt 100 $K bench --no-cuda --model $B4 $B
run b_1b_q4.txt 100 $K bench --no-wgpu --model $B4 $B
run b_1b_q8.txt 100 $KB bench --no-cuda --model $B8 $B
run b_1b_q8.txt 100 $K bench --model $B8 $B
grep -hE "^\\$|decode" "$OUT"/b_1b_*.txt
run b_8b_q4.txt 200 $K bench --model $E4 --prefill 2 --decode 64 --reps 2
grep -hE "decode" "$OUT"/b_8b_q4.txt
for f in $B4 $B8 $E4; do run llamacpp_vulkan.txt 120 $LV -m $f -ngl 99 -p 512 -n 128 -r 3; done
grep -E "pp512|tg128" "$OUT/llamacpp_vulkan.txt"
run profile_1b_q4.txt 100 $K bench --model $B4 --prefill 2 --decode 32 --reps 1 --profile
run model_1b_q4.txt 150 $K model --fused --tokens 8 --model $B4
tail -4 "$OUT/model_1b_q4.txt"
