#!/usr/bin/env bash
# Issue 14's bandwidth-bound case on the GPU machine: random Llama-3.1-8B
# shape files (tools/gen_random_gguf.py --8b, Q4_0 and Q8_0, ≈ 4.5 and
# 8.5 GB) decoded by Kiln — wgpu and the CUDA twin, `kiln-parity bench`
# with KILN_ACTIVATIONS=q8 as README's table, 2 prompt tokens then 64
# greedy ones, best of 2; it prints the GB/s of the file — beside the
# device's copy bandwidth (tools/copy_bw.py: PyTorch, 4 GiB read + write) and llama.cpp's
# static Vulkan llama-bench tg64 on the same files (and with CUDA_PEER=1
# its CUDA build, ≈ 150–300 s to build). Carry .device/kiln-parity.xz,
# .whl, .gl, .peers. Results under $OUT.
set -uo pipefail
NO_GEN=1 . tools/gpu_bench_common.sh
vulkan_peer
build_pid=
if [ "${CUDA_PEER:-0}" = 1 ]; then
  (renice -n 19 $BASHPID > /dev/null; build_llamacpp_cuda) &
  build_pid=$!
fi
E4=/root/kiln/l8b-q4_0.gguf E8=/root/kiln/l8b-q8_0.gguf
for q in Q4_0 Q8_0; do
  f=$E4; [ $q = Q8_0 ] && f=$E8
  [ -f $f ] || PYTHONPATH=/tmp/site timeout 400 python3 tools/gen_random_gguf.py $f $q --8b >> "$OUT/gen.txt" 2>&1
done
ls -la /root/kiln >> "$OUT/gen.txt"
python3 tools/copy_bw.py > "$OUT/copy_bw.txt" 2>&1
export KILN_ACTIVATIONS=q8
for f in $E4 $E8; do
  run kiln.txt 300 $K bench --model $f --prefill 2 --decode 64 --reps 2
  run vulkan.txt 200 $V -m $f -ngl 99 -p 0 -n 64 -r 3
done
KILN_PROFILE_GRID=1 run profile.txt 200 $K bench --no-cuda --model $E4 --prefill 2 --decode 16 --reps 1 --profile
[ -n "$build_pid" ] && wait $build_pid
[ -x $L/build-cuda/bin/llama-bench ] && for f in $E4 $E8; do
  run cuda.txt 200 $L/build-cuda/bin/llama-bench -m $f -ngl 99 -p 0 -n 64 -r 3
done
cat "$OUT/copy_bw.txt"
grep -E "^\\$|decode|tg64" "$OUT"/kiln.txt "$OUT"/vulkan.txt "$OUT"/cuda.txt 2>/dev/null
