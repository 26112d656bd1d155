#!/usr/bin/env bash
# Kiln's quantizers that gguf-py cannot check — the K-quants (Q2_K … Q6_K)
# and IQ4_NL / IQ4_XS — against ggml's C code (quantize_row_q*_K_ref, and
# quantize_iq4_nl / quantize_iq4_xs as llama-quantize calls them without an
# importance matrix; ggml-quants.c built without FMA contraction, as Kiln's
# Rust never fuses), byte for byte on 700 varied
# super-blocks (normal, uniform, one-signed, outliers, rounding ties, zero
# sub-blocks and constant runs, magnitudes 1e-5 .. 1e3).
#
#   tools/quant_vs_ggml.sh [LLAMA_CPP_SOURCE_TARBALL]
# (default: ../shared/peers/llamacpp/llamacpp-src-trim.tar.xz; needs gcc, numpy)
set -euo pipefail
cd "$(dirname "$0")/.."
SRC=${1:-../shared/peers/llamacpp/llamacpp-src-trim.tar.xz}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
tar xJf "$SRC" -C "$T"
G=$(dirname "$(find "$T" -name ggml-quants.c | head -1)")
cat > "$T/ref.c" <<'C'
#include <stdio.h>
#include <stdlib.h>
#include "ggml.h"
#include "ggml-quants.h"
// Unused by the reference quantizers; ggml-quants.c links against them.
void ggml_abort(const char *f, int l, const char *fmt, ...) { (void)fmt; fprintf(stderr, "abort %s:%d\n", f, l); exit(1); }
size_t ggml_row_size(enum ggml_type t, int64_t n) { (void)t; (void)n; return 0; }
const char * ggml_type_name(enum ggml_type t) { (void)t; return "?"; }
size_t ggml_type_size(enum ggml_type t) { (void)t; return 0; }
int main(int argc, char **argv) {
    (void)argc;
    int n = atoi(argv[1]), nb = n / 256;
    float *x = malloc((size_t)n * 4);
    if (fread(x, 4, n, stdin) != (size_t)n) return 1;
    void *q = malloc((size_t)nb * 210);
    quantize_row_q2_K_ref(x, q, n); fwrite(q, 84, nb, stdout);
    quantize_row_q3_K_ref(x, q, n); fwrite(q, 110, nb, stdout);
    quantize_row_q4_K_ref(x, q, n); fwrite(q, 144, nb, stdout);
    quantize_row_q5_K_ref(x, q, n); fwrite(q, 176, nb, stdout);
    quantize_row_q6_K_ref(x, q, n); fwrite(q, 210, nb, stdout);
    quantize_iq4_nl(x, q, 1, n, NULL); fwrite(q, 18, nb * 8, stdout);
    quantize_iq4_xs(x, q, 1, n, NULL); fwrite(q, 136, nb, stdout);
    return 0;
}
C
gcc -O2 -ffp-contract=off -std=gnu11 -I "$G/../include" -I "$G" "$T/ref.c" "$G/ggml-quants.c" -o "$T/ref" -lm
cargo build -q --release -p kiln --example quantize_raw
python3 - "$T/ref" target/release/examples/quantize_raw <<'PY'
import subprocess, sys
import numpy as np
ref_bin, kiln_bin = sys.argv[1], sys.argv[2]
rng = np.random.default_rng(11)
blocks = []
for i in range(700):
    s = 10.0 ** rng.uniform(-5, 3)
    kind = i % 7
    if kind == 0: b = rng.standard_normal(256) * s
    elif kind == 1: b = rng.uniform(-1, 1, 256) * s
    elif kind == 2: b = np.abs(rng.standard_normal(256)) * s
    elif kind == 3: b = -np.abs(rng.standard_normal(256)) * s
    elif kind == 4:
        b = rng.standard_normal(256) * s; b[rng.integers(256, size=3)] *= 50
    elif kind == 5: b = np.round(rng.standard_normal(256) * 8) * s
    else:
        b = rng.standard_normal(256) * s; b[:32] = 0; b[100:140] = b[100]
    blocks.append(b)
x = np.concatenate(blocks).astype("<f4")
ref = subprocess.run([ref_bin, str(x.size)], input=x.tobytes(), capture_output=True, check=True).stdout
got = subprocess.run([kiln_bin, "q2_k", "q3_k", "q4_k", "q5_k", "q6_k", "iq4_nl", "iq4_xs"], input=x.tobytes(), capture_output=True, check=True).stdout
nb, o, bad_any = x.size // 256, 0, False
for name, bb in [("q2_k", 84), ("q3_k", 110), ("q4_k", 144), ("q5_k", 176), ("q6_k", 210),
                 ("iq4_nl", 8 * 18), ("iq4_xs", 136)]:
    r = np.frombuffer(ref[o:o + nb * bb], np.uint8).reshape(-1, bb)
    g = np.frombuffer(got[o:o + nb * bb], np.uint8).reshape(-1, bb)
    o += nb * bb
    bad = np.where((r != g).any(axis=1))[0]
    bad_any |= len(bad) > 0
    print(f"{name}: {nb} super-blocks (256 values), {len(bad)} differ from ggml {bad[:8].tolist() if len(bad) else ''}")
sys.exit(1 if bad_any else 0)
PY
