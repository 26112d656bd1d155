#!/usr/bin/env bash
# CUDA-twin decode on the GPU machine (device tool), from the repository root:
# correctness first (op parity and the f32 fixture against PyTorch on CUDA),
# then decode speed with programmatic dependent launch on and off
# (KILN_CUDA_PDL) and GPU time per kernel of one decode step, on SmolLM2-135M
# Q4_1 (parts staged as in tools/gpu_llm_bench.sh) and on the random
# Llama-3.2-1B-shape Q4_0 file (tools/gen_random_gguf.py, made there; carry
# .whl with the gguf wheel). Carry .device/kiln-parity.xz. With LLAMACPP=1
# (carry .peers/llamacpp-src-trim.tar.xz and .peers/build-cuda.sh) llama.cpp
# CUDA is built there and run on both files last, same call.
# Writes under $OUT: parity.txt, model_parity.txt, smol.txt, llama1b.txt,
# llamacpp_*.txt. PHASE=1 does what needs no SmolLM2 (op parity, the fixture,
# the 1B shape) while its first xz part travels; PHASE=2 the SmolLM2 runs;
# unset, both. Two calls, back to back on one warm machine:
#   PHASE=1            carry .device/smolxz/part00 .device/kiln-parity.xz .whl
#   PHASE=2 LLAMACPP=1 carry .device/smolxz/part01 .peers
set -uo pipefail
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT" /root/kiln
SMOL=/root/kiln/smollm2.gguf
# The model travels either as three raw parts (.device/smol/part0[0-2]) or
# as two parts of its xz stream (.device/smolxz/part0[01]: two calls).
if [ "${STAGE:-}" = parts ]; then
  [ -d .device/smol ] && cp .device/smol/part* /root/kiln/
  [ -d .device/smolxz ] && for f in .device/smolxz/part*; do cp $f /root/kiln/xz.$(basename $f); done
  ls -la /root/kiln; exit 0
fi
[ -d .device/smol ] && cp .device/smol/part* /root/kiln/
[ -d .device/smolxz ] && for f in .device/smolxz/part*; do cp $f /root/kiln/xz.$(basename $f); done
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem --format=csv > "$OUT/gpu.txt"
# A later call on the same warm machine may leave the binary out (it stays
# in /root/kiln), which makes room for the model's second part and .peers.
K=/root/kiln/kiln-parity
[ -f .device/kiln-parity.xz ] && xz -dc .device/kiln-parity.xz > $K && chmod +x $K
[ -x $K ] || { echo "no kiln-parity: carry .device/kiln-parity.xz"; exit 1; }
run() { # file, timeout, command...
  local f=$1 t=$2; shift 2
  echo "\$ KILN_CUDA_PDL=${KILN_CUDA_PDL:-} KILN_CUDA_GEMV=${KILN_CUDA_GEMV:-} $*" >> "$OUT/$f"
  timeout "$t" "$@" >> "$OUT/$f" 2>&1; echo "exit $?" >> "$OUT/$f"
}
B1=/root/kiln/llama1b-q4_0.gguf
P=${PHASE:-12}
if [[ $P == *1* ]]; then
# Correctness with both opt-ins on.
export KILN_CUDA_PDL=1 KILN_CUDA_GEMV=wide
run parity.txt 200 $K ops --no-wgpu --iters 0
tail -3 "$OUT/parity.txt"
run model_parity.txt 120 $K model --no-wgpu --tokens 16 \
  --model tests/fixtures/models/llama3/llama3.F32.gguf --reference tests/fixtures/models/llama3/reference.json
run model_parity.txt 120 $K model --no-wgpu --fused --tokens 16 \
  --model tests/fixtures/models/llama3/llama3.F32.gguf --reference tests/fixtures/models/llama3/reference.json
if [ ! -f $B1 ] && ls .whl/gguf-*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl
  PYTHONPATH=/tmp/site timeout 200 python3 tools/gen_random_gguf.py $B1 Q4_0 > "$OUT/gen1b.txt" 2>&1
fi
if [ -f $B1 ]; then
  for v in "1 wide" "0 generic"; do
    set -- $v
    KILN_CUDA_PDL=$1 KILN_CUDA_GEMV=$2 run llama1b.txt 200 $K bench --no-wgpu --model $B1 --prefill 2 --decode 128 --reps 3 \
      $([ "$v" = "1 wide" ] && echo --profile)
  done
  grep -E "^\\$|decode" "$OUT/llama1b.txt"
fi
fi
if [[ $P == *2* ]]; then
export KILN_CUDA_PDL=1 KILN_CUDA_GEMV=wide
if [ ! -f $SMOL ] && [ -f /root/kiln/xz.part01 ]; then
  cat /root/kiln/xz.part00 /root/kiln/xz.part01 | xz -dc > $SMOL
  echo "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53  $SMOL" | sha256sum -c || { rm -f $SMOL; exit 1; }
fi
if [ ! -f $SMOL ]; then
  cat /root/kiln/part00 /root/kiln/part01 /root/kiln/part02 > $SMOL 2>/dev/null
  echo "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53  $SMOL" | sha256sum -c || { rm -f $SMOL; exit 1; }
fi
run model_parity.txt 200 $K model --no-wgpu --fused --tokens 8 --model $SMOL
tail -4 "$OUT/model_parity.txt"
# Variants: PDL on/off (KILN_CUDA_PDL) × the m = 1 wide-load GEMV on/off
# (KILN_CUDA_GEMV=wide|generic); the first is profiled.
for v in "1 wide" "0 wide" "1 generic" "0 generic"; do
  set -- $v
  KILN_CUDA_PDL=$1 KILN_CUDA_GEMV=$2 run smol.txt 200 $K bench --no-wgpu --model $SMOL --prefill 2 --decode 128 --reps 5 \
    $([ "$v" = "1 wide" ] && echo --profile)
done
KILN_CUDA_PDL=1 run smol.txt 200 $K bench --no-wgpu --model $SMOL --prefill 512 --decode 128 --reps 3
grep -E "^\\$|decode" "$OUT/smol.txt"
fi
if [ -n "${LLAMACPP:-}" ] && [ -f .peers/llamacpp-src-trim.tar.xz ]; then
  L=/root/lc/llama.cpp
  if [ ! -x $L/build-cuda/bin/llama-bench ]; then
    mkdir -p /root/lc && tar xJf .peers/llamacpp-src-trim.tar.xz -C /root/lc
    cp .peers/build-cuda.sh $L/ && (cd $L && JOBS=16 timeout 400 ./build-cuda.sh > /root/lc/build.log 2>&1)
    tail -3 /root/lc/build.log > "$OUT/llamacpp_build.txt"
  fi
  run llamacpp_smol.txt 150 $L/build-cuda/bin/llama-bench -m $SMOL -ngl 99 -p 512 -n 128 -r 5
  [ -f $B1 ] && run llamacpp_1b.txt 150 $L/build-cuda/bin/llama-bench -m $B1 -ngl 99 -p 512 -n 128 -r 5
  cat "$OUT"/llamacpp_*.txt | grep -E "pp512|tg128"
fi
