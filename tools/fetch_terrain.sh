#!/usr/bin/env bash
# Fetches the real terrain diffusion model once: the one-step (consistency-distilled)
# guided-diffusion UNet for 128x128 heightmaps, ONNX, from the PyPI package
# adaptive-terrain-diffusion (no model hub needed), verifies its sha256 and keeps it in
# models/ (git-ignored). Also extracts the package's small Python modules (generator.py
# documents sampling, post-processing, tiling and variation) to models/terrain_diffusion_src/
# for reading (not committed). Prints the model path. Idempotent: skips the download when
# the model is present with the right sha256 and the sources are there.
set -euo pipefail
cd "$(dirname "$0")/.."
NAME=terrain_consistency_unet_difficulty100.onnx
SHA=95be54b4a39d58320e187a7ec533351c957f16a00be58773c86074828ee67887
PKG=adaptive-terrain-diffusion==0.4.2
DEST=models/$NAME
SRC=models/terrain_diffusion_src
. tools/fetch_lib.sh
if fetch_check "$DEST" && [ -f "$SRC/terrain_diffusion/generator.py" ]; then
    echo "$DEST"
    exit 0
fi
fetch_tmp
echo "fetching $NAME from PyPI ($PKG, 39 MB)..." >&2
python3 -m pip download --quiet --no-deps --only-binary=:all: -d "$tmp" "$PKG" >&2
python3 - "$tmp" "$DEST.part" "$SRC" <<'PY'
import glob, os, shutil, sys, zipfile
whl = glob.glob(sys.argv[1] + "/adaptive_terrain_diffusion-*.whl")[0]
with zipfile.ZipFile(whl) as z:
    with z.open("terrain_diffusion/weights/terrain_consistency_unet_difficulty100.onnx") as src, \
            open(sys.argv[2], "wb") as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
    # every small text member (python modules, licenses): read-only reference material
    for info in z.infolist():
        n = info.filename
        if n.startswith("terrain_diffusion/") and n.endswith((".py", ".txt")) and info.file_size < 1 << 20:
            out = os.path.join(sys.argv[3], n)
            os.makedirs(os.path.dirname(out), exist_ok=True)
            with z.open(info) as s, open(out, "wb") as d:
                shutil.copyfileobj(s, d)
PY
fetch_place
