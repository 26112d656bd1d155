#!/usr/bin/env bash
# Builds the npm package `kiln-webgpu` into pkg/ (git-ignored output):
# the crate for wasm32 with the `web` feature — twice: the plain build and the
# threaded one (`kiln_wasm_mt`: atomics + shared memory, std rebuilt with
# them on the nightly toolchain; its CPU-backend threads are Web Workers,
# crate/js/pool.js; the package loads it only in cross-origin-isolated
# workers) —, wasm-bindgen (the CLI pinned to
# the crate's wasm-bindgen version, installed with cargo if missing),
# wasm-opt from npm's binaryen when present (Debian's is too old and breaks
# the module), the JS API and worker (crate/js/), types and package.json.
#   tools/build_pkg.sh [--dev]    (--dev: debug build, no wasm-opt)
set -euo pipefail
cd "$(dirname "$0")/.."

profile=release
[ "${1:-}" = "--dev" ] && profile=dev
want=$(grep -A1 '^name = "wasm-bindgen"$' Cargo.lock | sed -n 's/^version = "\(.*\)"/\1/p')
if [ "$(wasm-bindgen --version 2>/dev/null | cut -d' ' -f2)" != "$want" ]; then
    echo "== installing wasm-bindgen-cli $want (once, a few minutes)"
    cargo install -q wasm-bindgen-cli --version "$want"
fi
rustup target list --installed 2>/dev/null | grep -q wasm32-unknown-unknown \
    || rustup target add wasm32-unknown-unknown

echo "== cargo build (wasm32, feature web, $profile)"
cargo build -q -p kiln --lib --target wasm32-unknown-unknown --features web --profile "$profile"
dir=$([ "$profile" = dev ] && echo debug || echo release)

echo "== cargo +nightly build (wasm32 + atomics: the threaded build, $profile)"
rustup toolchain list | grep -q '^nightly' \
    || rustup toolchain install nightly --profile minimal
rustup component list --toolchain nightly --installed 2>/dev/null | grep -q '^rust-src' \
    || rustup component add rust-src --toolchain nightly
rustup target list --toolchain nightly --installed 2>/dev/null | grep -q wasm32-unknown-unknown \
    || rustup target add wasm32-unknown-unknown --toolchain nightly
# RUSTFLAGS replaces .cargo/config.toml's, hence simd128 again. The linker
# is told to import a shared memory (max 4 GiB, wasm32's whole address space)
# and to export the thread-local-storage symbols wasm-bindgen's thread
# support needs; without them the module gets a private memory.
mt_flags="-C target-feature=+atomics,+bulk-memory,+mutable-globals,+simd128"
for a in --shared-memory --import-memory --max-memory=4294967296 \
    --export=__wasm_init_tls --export=__tls_size --export=__tls_align --export=__tls_base; do
    mt_flags="$mt_flags -C link-arg=$a"
done
RUSTFLAGS="$mt_flags" \
    CARGO_TARGET_DIR=target/wasm-mt cargo +nightly build -q -p kiln --lib --target wasm32-unknown-unknown \
    --features web --profile "$profile" -Z build-std=panic_abort,std

rm -rf pkg.tmp && mkdir pkg.tmp
wasm-bindgen --target web --out-dir pkg.tmp --out-name kiln_wasm \
    "target/wasm32-unknown-unknown/$dir/kiln.wasm"
wasm-bindgen --target web --out-dir pkg.tmp --out-name kiln_wasm_mt \
    "target/wasm-mt/wasm32-unknown-unknown/$dir/kiln.wasm"
opt=tests/browser/node_modules/.bin/wasm-opt
if [ "$profile" = release ] && [ -x "$opt" ]; then
    echo "== wasm-opt ($("$opt" --version))"
    for m in kiln_wasm_bg kiln_wasm_mt_bg; do
        "$opt" -O2 --enable-simd --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext \
            --enable-mutable-globals --enable-reference-types --enable-multivalue --enable-threads \
            "pkg.tmp/$m.wasm" -o "pkg.tmp/$m.wasm"
    done
fi
cp crate/js/*.js crate/js/index.d.ts crate/js/README.md pkg.tmp/
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
sed "s/@VERSION@/$version/" crate/js/package.json > pkg.tmp/package.json
# pkg/ keeps its .gitignore; everything else is replaced.
find pkg -mindepth 1 ! -name .gitignore -exec rm -rf {} +
mv pkg.tmp/* pkg/ && rmdir pkg.tmp
echo "== pkg/: $(du -sh pkg | cut -f1) ($(du -h pkg/kiln_wasm_bg.wasm | cut -f1) wasm, $(du -h pkg/kiln_wasm_mt_bg.wasm | cut -f1) threaded)"
