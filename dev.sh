#!/usr/bin/env bash
# Kiln's developer entry point. Two commands do all the set-up on a fresh
# Debian/Ubuntu machine (they install what is missing, then run):
#
#   ./dev.sh chat   the main job: chat with the embedded default model
#                   (SmolLM2-135M-Instruct, fetched once and verified) on a
#                   GPU, or on the fast CPU backend (f32 activations) where
#                   there is none (or only a software adapter such as lavapipe);
#                   extra arguments go to `kiln chat` (e.g. --temperature 0.7)
#   ./dev.sh test   the whole test suite: fmt, clippy, cargo test (op parity
#                   and SmolLM2-vs-PyTorch parity on lavapipe, tokenizer vs HF,
#                   quant formats vs gguf-py, typed errors), kiln-parity,
#                   the npm package build and the browser tests in headless
#                   Chromium (tests/browser/run.sh)
set -euo pipefail
cd "$(dirname "$0")"

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

need_vulkan() {
    # lavapipe (Mesa's software Vulkan) gives wgpu a real adapter without a GPU.
    if ! ls /usr/share/vulkan/icd.d/lvp_icd*.json >/dev/null 2>&1 || ! ldconfig -p | grep -q libvulkan.so.1; then
        echo "== installing Vulkan loader + lavapipe (apt)"
        as_root apt-get update -qq
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mesa-vulkan-drivers libvulkan1 >/dev/null
    fi
    # Vulkan loaders complain without a private runtime dir on headless machines.
    if [ -z "${XDG_RUNTIME_DIR:-}" ] || [ ! -d "${XDG_RUNTIME_DIR}" ]; then
        export XDG_RUNTIME_DIR="${TMPDIR:-/tmp}/kiln-xdg-$(id -u)"
        mkdir -p -m 0700 "$XDG_RUNTIME_DIR"
    fi
}

need_nvrtc() {
    # NVRTC alone (no GPU, no driver) compiles the CUDA twin's kernels, so the
    # test suite checks every family compiles (native-cuda/src/tests.rs).
    # PyPI's wheel, pinned by hash; only its two libraries are kept.
    local dir=target/nvrtc whl=nvidia_cuda_nvrtc-13.5.37-py3-none-manylinux2010_x86_64.manylinux_2_12_x86_64.whl
    if [ ! -f "$dir/libnvrtc.so" ]; then
        echo "== fetching NVRTC (PyPI nvidia-cuda-nvrtc 13.5.37)"
        mkdir -p "$dir"
        python3 -m pip download -q --no-deps --only-binary=:all: nvidia-cuda-nvrtc==13.5.37 -d "$dir"
        echo "86b4d68058807988b7d9af5b44917a0601e9c337f35ccd657bfb3c759ff8d8bc  $dir/$whl" | sha256sum -c --quiet
        python3 - "$dir/$whl" "$dir" <<'PY'
import sys, zipfile, os
z = zipfile.ZipFile(sys.argv[1])
for n in z.namelist():
    if "/lib/libnvrtc" in n:
        open(os.path.join(sys.argv[2], os.path.basename(n)), "wb").write(z.read(n))
PY
        ln -sf libnvrtc.so.13 "$dir/libnvrtc.so"
        rm -f "$dir/$whl"
    fi
    export LD_LIBRARY_PATH="$PWD/$dir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    export KILN_REQUIRE_NVRTC=1
}

need_deny() {
    # cargo-deny from crates.io (pinned; ≈ 2.5 min to build on 2 cores).
    if [ "$(cargo deny --version 2>/dev/null)" != "cargo-deny 0.20.2" ]; then
        echo "== installing cargo-deny 0.20.2"
        cargo install -q cargo-deny --version 0.20.2 --locked
    fi
}

need_aarch64() {
    # The fast CPU backend's NEON kernels, cross-built and run under qemu-user.
    rustup target list --installed 2>/dev/null | grep -q aarch64-unknown-linux-gnu \
        || rustup target add aarch64-unknown-linux-gnu
    if ! command -v qemu-aarch64 >/dev/null || ! command -v aarch64-linux-gnu-gcc >/dev/null; then
        echo "== installing the aarch64 cross linker + qemu-user (apt)"
        as_root apt-get update -qq
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
            gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user >/dev/null
    fi
    export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
}

need_wasm() {
    rustup target list --installed 2>/dev/null | grep -q wasm32-unknown-unknown \
        || rustup target add wasm32-unknown-unknown
    # The package's threaded build rebuilds std with atomics: nightly + rust-src.
    rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
    rustup component list --toolchain nightly --installed 2>/dev/null | grep -q '^rust-src' \
        || rustup component add rust-src --toolchain nightly
    rustup target list --toolchain nightly --installed 2>/dev/null | grep -q wasm32-unknown-unknown \
        || rustup target add wasm32-unknown-unknown --toolchain nightly
}

case "${1:-}" in
chat)
    shift
    need_vulkan
    tools/fetch_model.sh >/dev/null
    cargo build --release -p kiln --bin kiln
    # On the CPU backend, f32 activations: PyTorch's tokens. The 135M default
    # model is sensitive to 8-bit activations (kiln's and llama.cpp's default,
    # 3.5× faster): both answer "What is the capital of France?" with
    # "L'Étoile, la Marseillaise, …" there. `--activations q8` to choose it.
    case " $* " in *" --activations"*) ;; *) set -- --activations f32 "$@" ;; esac
    exec ./target/release/kiln chat "$@"
    ;;
test)
    need_vulkan
    need_wasm
    need_nvrtc
    tools/fetch_model.sh
    tools/fetch_terrain.sh
    tools/fetch_gemma.sh
    need_deny
    echo "== cargo deny (licences, bans, sources: deny.toml)"
    cargo deny check licenses bans sources > /tmp/kiln-deny.txt 2>&1 \
        || { grep -v '^warning\[duplicate\]' /tmp/kiln-deny.txt | tail -40; exit 1; }
    tail -1 /tmp/kiln-deny.txt
    echo "== cargo fmt --check"; cargo fmt --all -- --check
    echo "== cargo clippy"; cargo clippy --workspace --all-targets -- -D warnings
    echo "== cargo test"; cargo test --workspace
    echo "== kiln-parity (CPU reference vs wgpu on this adapter; CUDA skipped without a GPU)"
    cargo run -q -p kiln-cuda --bin kiln-parity -- ops --iters 0 > /tmp/kiln-parity-ops.txt \
        || { tail -40 /tmp/kiln-parity-ops.txt; exit 1; }
    tail -1 /tmp/kiln-parity-ops.txt
    cargo run -q -p kiln-cuda --bin kiln-parity -- model --tokens 16 \
        --model tests/fixtures/models/llama3/llama3.F32.gguf --reference tests/fixtures/models/llama3/reference.json
    # The loaders under coverage-guided fuzzing for a short budget each, from
    # seeds made of the committed fixtures, after replaying every committed
    # finding (the long runs and their figures: docs/reliability/).
    if rustup toolchain list | grep -q '^nightly'; then
        echo "== fuzz (cargo-fuzz, 15 s per loader)"; tools/fuzz.sh 15
    else
        echo "== fuzz SKIPPED: no nightly toolchain (cargo-fuzz needs it)"
    fi
    echo "== aarch64: the fast CPU backend's NEON kernels under qemu-user (with and without sdot)"
    need_aarch64
    for cpu in max cortex-a53; do
        CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64 -cpu $cpu -L /usr/aarch64-linux-gnu" \
            cargo test -q -p kiln --lib --target aarch64-unknown-linux-gnu cpu_fast > /tmp/kiln-aarch64.txt 2>&1 \
            || { tail -40 /tmp/kiln-aarch64.txt; exit 1; }
        echo "$cpu: $(grep 'test result' /tmp/kiln-aarch64.txt | head -1)"
    done
    echo "== clippy (wasm32, web binding)"
    cargo clippy -p kiln --lib --test web --target wasm32-unknown-unknown --features web -- -D warnings
    echo "== clippy (wasm32 + atomics: the package's threaded build)"
    RUSTFLAGS="-C target-feature=+atomics,+bulk-memory,+mutable-globals,+simd128" CARGO_TARGET_DIR=target/wasm-mt-clippy \
        cargo +nightly clippy -q -p kiln --lib --target wasm32-unknown-unknown --features web \
        -Z build-std=panic_abort,std -- -D warnings > /tmp/kiln-clippy-mt.txt 2>&1 \
        || { cat /tmp/kiln-clippy-mt.txt; exit 1; }
    echo "== browser"; tests/browser/run.sh
    echo "== all tests passed"
    ;;
*)
    echo "usage: ./dev.sh chat [kiln chat options] | test" >&2
    exit 2
    ;;
esac
