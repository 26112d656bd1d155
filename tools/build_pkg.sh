#!/usr/bin/env bash
# Builds the npm package `kiln-webgpu` into pkg/ (git-ignored output):
# the crate for wasm32 with the `web` feature, wasm-bindgen (the CLI pinned to
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

rm -rf pkg.tmp && mkdir pkg.tmp
wasm-bindgen --target web --out-dir pkg.tmp --out-name kiln_wasm \
    "target/wasm32-unknown-unknown/$dir/kiln.wasm"
opt=tests/browser/node_modules/.bin/wasm-opt
if [ "$profile" = release ] && [ -x "$opt" ]; then
    echo "== wasm-opt ($("$opt" --version))"
    "$opt" -O2 --enable-simd --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext \
        --enable-mutable-globals --enable-reference-types --enable-multivalue \
        pkg.tmp/kiln_wasm_bg.wasm -o pkg.tmp/kiln_wasm_bg.wasm
fi
cp crate/js/*.js crate/js/index.d.ts crate/js/README.md pkg.tmp/
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
sed "s/@VERSION@/$version/" crate/js/package.json > pkg.tmp/package.json
# pkg/ keeps its .gitignore; everything else is replaced.
find pkg -mindepth 1 ! -name .gitignore -exec rm -rf {} +
mv pkg.tmp/* pkg/ && rmdir pkg.tmp
echo "== pkg/: $(du -sh pkg | cut -f1) ($(du -h pkg/kiln_wasm_bg.wasm | cut -f1) wasm)"
