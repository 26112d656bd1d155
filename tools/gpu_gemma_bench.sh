#!/usr/bin/env bash
# Gemma 3 270M Q4_K_M on the GPU machine (device tool), from the repository
# root, beside llama.cpp, plus the op-parity suite and the Llama-3.2-1B-shape
# decode. The 242 MB model travels as 7 raw parts (`split -n 7 -d -a 2
# models/gemma-3-270m-q4_k_m.gguf .device/gemma/part`), one per call, calls
# back to back on one warm machine; every call copies the parts it carries
# to /root/kiln. MODE picks the work:
#   a      carry part00, .device/kiln-parity.xz, .whl, .gl: op parity (wgpu
#          and CUDA), the random 1B-shape Q4_0 file made there and benched
#          on CUDA with a kernel profile
#   b      carry part01, .peers/llamacpp-src-trim.tar.xz, .peers/build-cuda.sh:
#          llama.cpp CUDA built there, llama-bench on the 1B file
#   stage  carry the next part only
#   g      carry the last part, .peers/llama-bench-vulkan.xz, .gl: the parts
#          joined and sha256-checked; greedy parity of wgpu and CUDA against
#          Kiln's CPU reference; kiln-parity bench (wgpu and CUDA, tg128-like
#          with a profile, and prefill-512); llama-bench CUDA and Vulkan
# Writes under $OUT: gpu.txt, parity.txt, llama1b.txt, llamacpp_*.txt,
# gemma_parity.txt, gemma_bench.txt.
set -uo pipefail
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT" /root/kiln
G=/root/kiln/gemma.gguf
B1=/root/kiln/llama1b-q4_0.gguf
K=/root/kiln/kiln-parity
L=/root/lc/llama.cpp/build-cuda/bin/llama-bench
for f in .device/gemma/part*; do [ -f "$f" ] && cp "$f" /root/kiln/gemma.$(basename "$f"); done
ls /root/kiln > "$OUT/staged.txt"
[ "${MODE:-}" = stage ] && exit 0
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
if [ -d .gl ]; then
  for f in .gl/*.deb; do dpkg -x "$f" /; done
  ldconfig
fi
export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
nvidia-smi --query-gpu=name,driver_version --format=csv > "$OUT/gpu.txt"
[ -f .device/kiln-parity.xz ] && xz -dc .device/kiln-parity.xz > $K && chmod +x $K
run() { # file, timeout, command...
  local f=$1 t=$2; shift 2
  echo "\$ $*" >> "$OUT/$f"
  timeout "$t" "$@" >> "$OUT/$f" 2>&1; echo "exit $?" >> "$OUT/$f"
}
case "${MODE:-}" in
a)
  run parity.txt 200 $K ops --iters 0
  tail -3 "$OUT/parity.txt"
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl
  PYTHONPATH=/tmp/site timeout 200 python3 tools/gen_random_gguf.py $B1 Q4_0 > "$OUT/gen1b.txt" 2>&1
  run llama1b.txt 200 $K bench --no-wgpu --model $B1 --prefill 2 --decode 128 --reps 3 --profile
  grep -E "decode|argmax" "$OUT/llama1b.txt"
  ;;
b)
  mkdir -p /root/lc && tar xJf .peers/llamacpp-src-trim.tar.xz -C /root/lc
  cp .peers/build-cuda.sh /root/lc/llama.cpp/
  (cd /root/lc/llama.cpp && JOBS=16 timeout 400 ./build-cuda.sh > /root/lc/build.log 2>&1)
  tail -3 /root/lc/build.log > "$OUT/llamacpp_build.txt"
  [ -f $B1 ] && run llamacpp_1b.txt 150 $L -m $B1 -ngl 99 -p 512 -n 128 -r 5
  cat "$OUT"/llamacpp_*.txt | grep -E "pp512|tg128"
  ;;
g)
  cat /root/kiln/gemma.part0[0-6] > $G
  echo "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818  $G" | sha256sum -c > "$OUT/sha.txt" 2>&1 \
    || { cat "$OUT/sha.txt"; exit 1; }
  run gemma_parity.txt 200 $K model --tokens 8 --model $G
  run gemma_parity.txt 200 $K model --fused --tokens 8 --model $G
  tail -4 "$OUT/gemma_parity.txt"
  run gemma_bench.txt 150 $K bench --model $G --prefill 2 --decode 128 --reps 5 --profile
  run gemma_bench.txt 150 $K bench --model $G --prefill 512 --decode 128 --reps 3
  grep -E "^\\$|decode" "$OUT/gemma_bench.txt"
  [ -x $L ] && run llamacpp_gemma.txt 150 $L -m $G -ngl 99 -p 512 -n 128 -r 5
  if [ -f .peers/llama-bench-vulkan.xz ]; then
    xz -dc .peers/llama-bench-vulkan.xz > /root/kiln/llama-bench-vulkan && chmod +x /root/kiln/llama-bench-vulkan
    run llamacpp_vulkan_gemma.txt 150 /root/kiln/llama-bench-vulkan -m $G -ngl 99 -p 512 -n 128 -r 5
  fi
  cat "$OUT"/llamacpp_*gemma.txt | grep -E "pp512|tg128"
  ;;
esac
