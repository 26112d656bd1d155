#!/usr/bin/env bash
# LoRA training on the GPU machine (device tool), from the repository root.
# Carry: .device/kiln-parity.xz (release kiln-parity built here), .gl (Vulkan
# loader debs), .device/wheels (gguf wheel for transformers' GGUF loader) and
# the SmolLM2 GGUF in parts (.device/smol/part00..02, one or more per call:
# parts accumulate under /root/kiln while the machine stays warm; the script
# joins them once all three are there and checks the sha256).
# Writes under $OUT:
#   env.txt            GPU, driver, versions, commit
#   tiny_*.txt         kiln-parity train --reference: the tiny fixtures on CPU/wgpu/CUDA vs PEFT
#   smol_ref/          tools/lora_reference.py on SmolLM2 Q4_1 (CUDA, f32, 30 steps, lora-facts)
#   smol_parity.json   kiln-parity train --reference smol_ref on wgpu and CUDA
#   ops.txt            kiln-parity ops: every op case on CUDA and wgpu/Vulkan
#   kiln_bench.json    kiln-parity train --bench: SmolLM2 8 × 256, r=8, all projections
#   kiln_norecompute.json  the same without per-block recomputation (memory)
#   torch_bench.json   tools/lora_reference.py --bench: PyTorch + PEFT, same setting, same run
#   curve_ref/, curve.json, curve_qa.txt  (STAGE=curve) a 100-step PEFT run on
#                      lora-facts (8 × 256, lr 1e-3), replayed by Kiln on wgpu and
#                      CUDA (per-step loss beside PEFT's), and the held-out accuracy
#                      of Kiln's adapter from that run (needs .device/kiln.xz)
# STAGE=parts only copies parts; STAGE=ops, tiny, smol, bench, curve run one part
# (several: STAGE="ops tiny"); default: all but curve and finetune.
set -uo pipefail
OUT=${OUT:-/tmp/out}
STAGE=${STAGE:-all}
mkdir -p "$OUT" /root/kiln
cp -n .device/smol/part* /root/kiln/ 2>/dev/null
SMOL=/root/kiln/smollm2.gguf
if [ ! -f $SMOL ] && [ -f /root/kiln/part00 ] && [ -f /root/kiln/part01 ] && [ -f /root/kiln/part02 ]; then
  cat /root/kiln/part00 /root/kiln/part01 /root/kiln/part02 > $SMOL
  echo "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53  $SMOL" | sha256sum -c || rm -f $SMOL
fi
ls -la /root/kiln
[ "$STAGE" = parts ] && exit 0
want() { [ "$STAGE" = all ] || [[ " $STAGE " == *" $1 "* ]]; }
for f in .gl/*.deb; do dpkg -x "$f" /; done
ldconfig
export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
python3 -c "import gguf" 2>/dev/null || python3 -m pip install -q --no-deps --break-system-packages .device/wheels/gguf-*.whl
xz -dc .device/kiln-parity.xz > /root/kiln/kiln-parity && chmod +x /root/kiln/kiln-parity
K=/root/kiln/kiln-parity
{ date -u; nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv; git log -1 --format=%H 2>/dev/null;
  python3 -c "import torch, transformers, peft, gguf; print('torch', torch.__version__, 'transformers', transformers.__version__, 'peft', peft.__version__, 'gguf', gguf.__version__)"; } > "$OUT/env.txt" 2>&1
if want ops; then
  timeout 240 $K ops --iters 0 --adapter nvidia > "$OUT/ops.txt" 2>&1; echo "ops exit $?" >> "$OUT/ops.txt"
  grep -E "passed|FAIL|exit" "$OUT/ops.txt" | tail -6
fi
if want tiny; then
  for f in facts facts_brandom random_rslora; do
    timeout 120 $K train --reference tests/fixtures/lora/llama3/$f --model tests/fixtures/models/llama3 \
      --adapter nvidia > "$OUT/tiny_$f.txt" 2>&1; echo "exit $?" >> "$OUT/tiny_$f.txt"
    tail -4 "$OUT/tiny_$f.txt"
  done
fi
if [ -f $SMOL ] && want smol; then
  timeout 300 python3 tools/lora_reference.py --model $SMOL --data data/lora-facts/train.jsonl \
    --steps 30 --batch 4 --seq-len 128 --device cuda --out "$OUT/smol_ref" > "$OUT/smol_ref.log" 2>&1
  echo "reference exit $?" >> "$OUT/smol_ref.log"; tail -2 "$OUT/smol_ref.log"
  timeout 300 $K train --reference "$OUT/smol_ref" --model $SMOL --no-cpu --adapter nvidia --json \
    --grad-tol 2e-3 --final-tol 1e-2 \
    > "$OUT/smol_parity.json" 2> "$OUT/smol_parity.err"
  echo "parity exit $?" >> "$OUT/smol_parity.err"; tail -3 "$OUT/smol_parity.err"
  python3 -c "import json,sys; [print(r['backend'], r['max_loss_rel'], r['final_rel'], r['pass']) for r in json.load(open(sys.argv[1]))]" "$OUT/smol_parity.json"
fi
if [ -f $SMOL ] && want bench; then
  timeout 300 $K train --bench $SMOL --batch 8 --seq-len 256 --rank 8 --steps 10 --adapter nvidia --json --profile \
    > "$OUT/kiln_bench.json" 2> "$OUT/kiln_bench.err"; echo "kiln bench exit $?" >> "$OUT/kiln_bench.err"
  grep -h "median\|profile\|  " "$OUT/kiln_bench.err" | head -40
  timeout 200 $K train --bench $SMOL --batch 8 --seq-len 256 --rank 8 --steps 3 --adapter nvidia --json --no-recompute \
    > "$OUT/kiln_norecompute.json" 2> "$OUT/kiln_norecompute.err"; echo "exit $?" >> "$OUT/kiln_norecompute.err"
  grep -h "median" "$OUT/kiln_norecompute.err"
  timeout 300 python3 tools/lora_reference.py --bench --model $SMOL --rank 8 --device cuda \
    > "$OUT/torch_bench.json" 2> "$OUT/torch_bench.err"; echo "torch bench exit $?" >> "$OUT/torch_bench.err"
  head -c 1500 "$OUT/torch_bench.json"
fi
if [ -f $SMOL ] && [[ " $STAGE " == *" curve "* ]]; then
  xz -dc .device/kiln.xz > /root/kiln/kiln && chmod +x /root/kiln/kiln
  timeout 200 python3 tools/lora_reference.py --model $SMOL --data data/lora-facts/train.jsonl \
    --steps 100 --batch 8 --seq-len 256 --lr 1e-3 --warmup 10 --device cuda --out "$OUT/curve_ref" \
    > "$OUT/curve_ref.log" 2>&1; echo "reference exit $?" >> "$OUT/curve_ref.log"; tail -2 "$OUT/curve_ref.log"
  timeout 280 $K train --reference "$OUT/curve_ref" --model $SMOL --no-cpu ${CURVE_FLAGS:-} --adapter nvidia --json \
    --grad-tol 2e-3 --final-tol 1e-1 --save-adapter "$OUT/curve_adapter" \
    > "$OUT/curve.json" 2> "$OUT/curve.err"; echo "parity exit $?" >> "$OUT/curve.err"; tail -3 "$OUT/curve.err"
  python3 -c "import json,sys; [print(r['backend'], r['max_loss_rel'], r['final_rel'], r['pass']) for r in json.load(open(sys.argv[1]))]" "$OUT/curve.json"
  timeout 100 /root/kiln/kiln eval-qa --model $SMOL --adapter nvidia --data data/lora-facts/heldout.jsonl \
    --lora "$OUT/curve_adapter" > "$OUT/curve_qa.txt" 2>&1; tail -1 "$OUT/curve_qa.txt"
fi
# Fine-tune SmolLM2 on lora-facts with Kiln (wgpu/Vulkan) and measure
# held-out accuracy before and after (STAGE=finetune; needs .device/kiln.xz).
if [ -f $SMOL ] && [ "$STAGE" = finetune ]; then
  xz -dc .device/kiln.xz > /root/kiln/kiln && chmod +x /root/kiln/kiln
  KILN=/root/kiln/kiln
  STEPS=${STEPS:-120}
  timeout 100 $KILN eval-qa --model $SMOL --adapter nvidia --data data/lora-facts/heldout.jsonl \
    > "$OUT/qa_before.txt" 2>&1; tail -1 "$OUT/qa_before.txt"
  timeout 330 $KILN train-lora --model $SMOL --adapter nvidia --data data/lora-facts/train.jsonl \
    --val-fraction 0.1 --steps $STEPS --batch 8 --seq-len 256 --lr ${LR:-5e-4} --warmup 10 \
    --eval-every 10 --save-every 0 --out "$OUT/smol_adapter" > "$OUT/finetune.txt" 2>&1
  echo "finetune exit $?" >> "$OUT/finetune.txt"; grep -v "^step" "$OUT/finetune.txt" | tail -5
  timeout 100 $KILN eval-qa --model $SMOL --adapter nvidia --data data/lora-facts/heldout.jsonl \
    --lora "$OUT/smol_adapter" --verbose > "$OUT/qa_after.txt" 2>&1; tail -1 "$OUT/qa_after.txt"
fi
