#!/usr/bin/env bash
# The browser test suite: builds pkg/ (release), then in headless Chromium
# (Debian's chromium, WebGPU on its SwiftShader adapter):
#   1. wasm-bindgen-test of the crate's web binding (tests/web.rs);
#   2. tests/browser/run.mjs (playwright-core): the package in a page and a
#      worker vs native/PyTorch token ids, streaming/abort, responsiveness,
#      OPFS offline, typed errors, device loss, `npm pack` into a scratch
#      project, the www/ chat demo, and terrain diffusion (Kiln.loadDiffusion
#      in a worker: denoise vs ONNX Runtime, abort, typed errors; the
#      www/terrain/ demo's map vs the native CLI's fixture), Stable Diffusion
#      (a tiny diffusers folder's image vs diffusers' pipeline, typed errors
#      for missing files, the www/diffusion/ demo) — screenshots in
#      tests/browser/artifacts/.
# Needs the embedded model (tools/fetch_model.sh) and the terrain model
# (tools/fetch_terrain.sh; ./dev.sh test fetches both). Installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/../.."

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
    echo "== installing chromium + chromedriver (apt)"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
fi
if ! command -v npm >/dev/null; then
    echo "== installing nodejs + npm (apt)"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
fi
(cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)
tools/build_pkg.sh
(cd www && npm install --no-audit --no-fund --loglevel=error)

# Chromium's WebGPU here is SwiftShader; its Vulkan driver ships with
# chromium, so the op suite can run on the very same software GPU natively.
icd=/usr/lib/chromium/vk_swiftshader_icd.json
if [ -f "$icd" ]; then
    echo "== op parity on SwiftShader (Chromium's software WebGPU adapter, via its Vulkan ICD)"
    for flags in "" "--no-subgroups"; do
        VK_ICD_FILENAMES="$icd" cargo run -q -p kiln --bin kiln -- ops-test --adapter swiftshader $flags \
            > /tmp/kiln-ops-swiftshader.txt || { grep -a "FAIL\|backend" /tmp/kiln-ops-swiftshader.txt; exit 1; }
        grep -a "^backend" /tmp/kiln-ops-swiftshader.txt; tail -1 /tmp/kiln-ops-swiftshader.txt
    done
fi

echo "== wasm-bindgen-test (tests/web.rs) in headless Chromium"
WASM_BINDGEN_TEST_WEBDRIVER_JSON="$PWD/tests/browser/webdriver.json" \
CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner \
CHROMEDRIVER="$(command -v chromedriver)" WASM_BINDGEN_TEST_TIMEOUT=300 \
    cargo test --release -p kiln --target wasm32-unknown-unknown --features web --test web

echo "== browser tests (tests/browser/run.mjs)"
node tests/browser/run.mjs "$@"
