# tools/gpu_bench_common.sh — the preamble the decode benchmark scripts share
# (sourced by tools/gpu_gemv_profile.sh and tools/gpu_q8_bench.sh, on the GPU
# machine, from the repository root): $OUT, the card's name and clocks, the
# carried kiln-parity in $K, run() and the random files $B1 (Llama-3.2-1B
# shape, Q4_0) and $SR (SmolLM2-135M shape, Q4_1; skipped when NO_SMOL=1),
# made with tools/gen_random_gguf.py and the carried gguf wheel (.whl;
# installed under /tmp/site; NO_GEN=1 makes neither file).
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT" /root/kiln
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem --format=csv > "$OUT/gpu.txt"
K=/root/kiln/kiln-parity
[ -f .device/kiln-parity.xz ] && xz -dc .device/kiln-parity.xz > $K && chmod +x $K
[ -x $K ] || { echo "no kiln-parity: carry .device/kiln-parity.xz"; exit 1; }
# run FILE TIMEOUT COMMAND...: the command line (with the KILN_* settings in
# force) and its output appended to $OUT/FILE, then its exit status.
run() {
  local f=$1 t=$2; shift 2
  echo "\$ $(env | grep '^KILN_' | sort | tr '\n' ' ')$*" >> "$OUT/$f"
  timeout "$t" "$@" >> "$OUT/$f" 2>&1; echo "exit $?" >> "$OUT/$f"
}
B1=/root/kiln/llama1b-q4_0.gguf
SR=/root/kiln/smol-shape-q4_1.gguf
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl
if [ "${NO_GEN:-0}" != 1 ] && { [ ! -f $B1 ] || { [ ! -f $SR ] && [ "${NO_SMOL:-0}" != 1 ]; }; }; then
  [ -f $B1 ] || PYTHONPATH=/tmp/site timeout 200 python3 tools/gen_random_gguf.py $B1 Q4_0 --raw > "$OUT/gen1b.txt" 2>&1
  [ -f $SR ] || [ "${NO_SMOL:-0}" = 1 ] || PYTHONPATH=/tmp/site timeout 100 python3 tools/gen_random_gguf.py $SR Q4_1 --smol --raw > "$OUT/gensmol.txt" 2>&1
fi
# llama.cpp's CUDA build (commit 0c1e570, ../shared/peers/llamacpp/; carry
# .peers) in $L/build-cuda/bin, built once per machine (≈ 150–300 s).
L=/root/lc/llama.cpp
build_llamacpp_cuda() {
  if [ ! -x $L/build-cuda/bin/llama-bench ]; then
    mkdir -p /root/lc && tar -xJf .peers/llamacpp-src-trim.tar.xz -C /root/lc
    cp .peers/build-cuda.sh $L/
    (cd $L && JOBS=16 timeout 400 bash build-cuda.sh > /root/lc/build.log 2>&1)
    tail -4 /root/lc/build.log > "$OUT/llamacpp_build.txt"
  fi
}
# vulkan_peer: the carried Vulkan loader (.gl) unpacked, NVIDIA's ICD, and
# llama.cpp's static Vulkan llama-bench (.peers) in $V.
V=/root/llama-bench-vulkan
vulkan_peer() {
  for f in .gl/*.deb; do dpkg -x "$f" /; done
  ldconfig
  export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
  [ -x $V ] || { xz -dc .peers/llama-bench-vulkan.xz > $V && chmod +x $V; }
}
