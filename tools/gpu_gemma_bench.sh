#!/usr/bin/env bash
# Gemma 3 270M Q4_K_M on the GPU machine (device tool), from the repository
# root, beside llama.cpp CUDA and Vulkan in the same final call. The 253 MB
# model cannot travel in one call (64 MiB with the tree), so it goes as 7 raw
# parts, one per call, calls back to back on one warm machine:
#   split -n 7 -d -a 2 models/gemma-3-270m-q4_k_m.gguf .device/gemma/part
# Every call copies the parts and tools it carries to /root/kiln (kept while
# the machine stays warm). MODE picks the work:
#   stage  carry the next part (the first call also .device/kiln-parity.xz,
#          .gl; the second also .peers/llamacpp-src-trim.tar.xz and
#          .peers/build-cuda.sh, and llama.cpp's CUDA build starts there in
#          its own session, running on through the next calls; the third also
#          .peers/llama-bench-vulkan.xz)
#   g      carry the last part: the parts joined and sha256-checked; greedy
#          tokens of wgpu and CUDA against Kiln's CPU reference; kiln-parity
#          bench (decode 128 with a kernel profile, prefill 512; f32 and q8
#          activations); llama-bench CUDA (waiting for its build) and Vulkan
#          (twice: its first invocation on a machine prefills slower)
# Writes under $OUT: staged.txt, and in g gpu.txt, sha.txt, gemma_parity.txt,
# gemma_bench.txt, llamacpp_cuda.txt, llamacpp_vulkan.txt, all.tgz.
set -uo pipefail
OUT=${OUT:-/tmp/out}
R=/root/kiln
mkdir -p "$OUT" $R
G=$R/gemma.gguf
K=$R/kiln-parity
V=$R/llama-bench-vulkan
L=/root/lc/llama.cpp
for f in .device/gemma/part*; do [ -f "$f" ] && cp "$f" $R/gemma.$(basename "$f"); done
[ -f .device/kiln-parity.xz ] && xz -dc .device/kiln-parity.xz > $K && chmod +x $K
[ -f .peers/llama-bench-vulkan.xz ] && xz -dc .peers/llama-bench-vulkan.xz > $V && chmod +x $V
if [ -d .gl ]; then
  for f in .gl/*.deb; do dpkg -x "$f" /; done
  ldconfig
fi
if [ -f .peers/llamacpp-src-trim.tar.xz ] && [ ! -d $L ]; then
  mkdir -p /root/lc && tar xJf .peers/llamacpp-src-trim.tar.xz -C /root/lc
  cp .peers/build-cuda.sh $L/
  (cd $L && JOBS=16 setsid nohup bash -c 'timeout 500 ./build-cuda.sh > /root/lc/build.log 2>&1; echo done >> /root/lc/build.log' \
    > /dev/null 2>&1 < /dev/null &)
fi
ls -l $R > "$OUT/staged.txt"
tail -2 /root/lc/build.log >> "$OUT/staged.txt" 2>/dev/null
[ "${MODE:-stage}" = stage ] && exit 0

export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem --format=csv > "$OUT/gpu.txt"
run() { # file, timeout, command... (the KILN_* settings in force are logged)
  local f=$1 t=$2; shift 2
  echo "\$ $(env | grep '^KILN_' | sort | tr '\n' ' ')$*" >> "$OUT/$f"
  timeout "$t" "$@" >> "$OUT/$f" 2>&1; echo "exit $?" >> "$OUT/$f"
}
cat $R/gemma.part0[0-6] > $G
echo "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818  $G" | sha256sum -c > "$OUT/sha.txt" 2>&1 \
  || { cat "$OUT/sha.txt"; ls -l $R; exit 1; }
[ -x $V ] && run llamacpp_vulkan.txt 120 $V -m $G -ngl 99 -p 512 -n 128 -r 5
run gemma_parity.txt 200 $K model --tokens 8 --model $G
run gemma_parity.txt 200 $K model --fused --tokens 8 --model $G
grep -iE "token|agree|equal" "$OUT/gemma_parity.txt" | head -12
for a in f32 q8; do
  KILN_ACTIVATIONS=$a run gemma_bench.txt 150 $K bench --model $G --prefill 2 --decode 128 --reps 5
  KILN_ACTIVATIONS=$a run gemma_bench.txt 150 $K bench --model $G --prefill 512 --decode 2 --reps 3
done
for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30; do
  grep -qx done /root/lc/build.log 2>/dev/null && break
  sleep 10
done
tail -3 /root/lc/build.log > "$OUT/llamacpp_build.txt" 2>&1
[ -x $L/build-cuda/bin/llama-bench ] && run llamacpp_cuda.txt 150 $L/build-cuda/bin/llama-bench -m $G -ngl 99 -p 512 -n 128 -r 5
[ -x $V ] && run llamacpp_vulkan.txt 120 $V -m $G -ngl 99 -p 512 -n 128 -r 5
run gemma_profile.txt 150 $K bench --model $G --prefill 2 --decode 32 --reps 1 --profile
run gemma_profile.txt 150 $K bench --model $G --prefill 512 --decode 2 --reps 1 --profile
grep -E "^\\$|fused|plain|tg128|pp512" "$OUT"/gemma_bench.txt "$OUT"/llamacpp_*.txt
(cd "$OUT" && tar czf all.tgz ./*.txt)
exit 0
