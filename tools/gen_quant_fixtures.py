#!/usr/bin/env python3
"""Generate the GGUF quantization fixtures used by tests/quant_gguf.rs.

The reference is the PyPI `gguf` package (gguf-py, from llama.cpp), whose
`gguf.quants` module reimplements ggml's block layouts in numpy.

Rerun (from the repository root; output is deterministic for a given gguf/numpy):

    pip install gguf numpy
    python3 tools/gen_quant_fixtures.py            # writes tests/fixtures/quant/

Output, all little-endian, under tests/fixtures/quant/:

    index.txt        one case per line: `<name> <dtype> <n_elements> <has_input>`
                     (lines starting with '#' are comments)
    <name>.in.f32    f32 input to gguf.quants.quantize      (only when has_input = 1)
    <name>.bin       the encoded bytes (gguf's quantize output, or random blocks)
    <name>.out.f32   gguf.quants.dequantize(<name>.bin) as f32

Q8_0 / Q4_0 / Q4_1 / Q5_0 / Q5_1 / F16 / BF16 cases have an input: Kiln must reproduce the
bytes exactly. gguf-py cannot quantize Q2_K … Q6_K, IQ4_NL or IQ4_XS, so those cases are random
blocks with sane finite f16 scales, checked through dequantize only.
"""

from __future__ import annotations

import importlib.metadata
import os
import sys

import numpy as np
import gguf
from gguf import GGMLQuantizationType as T
from gguf.quants import dequantize, quantize

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fixtures", "quant")


def block_inputs(rng: np.random.Generator) -> np.ndarray:
    """12 blocks of 32 f32s: scaled normals plus edge cases."""
    blocks = []
    # Normal data at scales 1e-4 .. 1e3 (the smallest gives subnormal f16 scales).
    for e in range(-4, 4):
        blocks.append(rng.standard_normal(32) * 10.0**e)
    blocks.append(np.zeros(32))  # all zero
    blocks.append(np.full(32, -0.7))  # constant
    outlier = rng.standard_normal(32)
    outlier[rng.integers(32)] = 1000.0
    blocks.append(outlier)  # one huge outlier
    # amax 127 -> d = 1, id = 1: x*id hits exact .5 ties (round half away from zero).
    ties = np.arange(32) - 15.5
    ties[0] = 127.0
    blocks.append(ties)
    return np.concatenate(blocks).astype(np.float32)


def float_inputs(rng: np.random.Generator) -> np.ndarray:
    """Special values, rounding ties and random magnitudes 1e-9 .. 1e6."""
    specials = [0.0, -0.0, 1.0, -1.0, np.inf, -np.inf, np.nan, -np.nan,
                65504.0, 65520.0, 70000.0, 6.1e-5, 5.9604645e-8, 2.0e-8, 1e-40,
                3.0e38, -3.4e38,
                1.0 + 2.0**-11, 1.0 + 3 * 2.0**-11,   # f16 ties -> even
                1.0 + 2.0**-8, 1.0 + 3 * 2.0**-8]     # bf16 ties -> even
    rand = rng.standard_normal(256 - len(specials)) * 10.0 ** rng.uniform(-9, 6, 256 - len(specials))
    return np.concatenate([np.array(specials), rand]).astype(np.float32)


def random_k_blocks(rng: np.random.Generator, qtype: T, n_blocks: int) -> np.ndarray:
    """Random Q2_K … Q6_K / IQ4_NL / IQ4_XS blocks whose f16 scales are finite and sane."""
    size = gguf.GGML_QUANT_SIZES[qtype][1]
    raw = rng.integers(0, 256, size=(n_blocks, size), dtype=np.uint8)
    scale = rng.uniform(1e-4, 0.05, size=(n_blocks, 2)).astype(np.float16)
    scale[-1] = [np.float16(3e-6), np.float16(-0.01)]  # subnormal d, negative second scale
    scale_bytes = scale.view(np.uint8)
    if qtype in (T.IQ4_NL, T.IQ4_XS):
        raw[:, 0:2] = scale_bytes[:, 0:2]  # d @0
    elif qtype in (T.Q4_K, T.Q5_K):
        raw[:, 0:4] = scale_bytes  # d @0, dmin @2
    elif qtype == T.Q2_K:
        raw[:, 80:84] = scale_bytes  # d @80, dmin @82
    elif qtype == T.Q3_K:
        raw[:, 108:110] = scale_bytes[:, 0:2]  # d @108
    else:
        raw[:, 208:210] = scale_bytes[:, 0:2]  # d @208
    return raw.reshape(-1)


def write(name: str, data: np.ndarray | None, blob: np.ndarray, out: np.ndarray, index: list[str], dtype: str) -> None:
    n = out.size
    if data is not None:
        data.astype("<f4").tofile(os.path.join(OUT, f"{name}.in.f32"))
    np.ascontiguousarray(blob).view(np.uint8).tofile(os.path.join(OUT, f"{name}.bin"))
    out.astype("<f4").tofile(os.path.join(OUT, f"{name}.out.f32"))
    index.append(f"{name} {dtype} {n} {1 if data is not None else 0}")


def main() -> int:
    if sys.byteorder != "little":
        print("fixtures are written little-endian; run on a little-endian machine", file=sys.stderr)
        return 1
    os.makedirs(OUT, exist_ok=True)
    index = [
        "# GGUF quantization fixtures: see tools/gen_quant_fixtures.py",
        f"# generated with gguf {importlib.metadata.version('gguf')} (gguf-py), numpy {np.__version__}",
        "# name dtype n_elements has_input",
    ]
    for seed, (qtype, dtype) in enumerate([(T.Q8_0, "q8_0"), (T.Q4_0, "q4_0"), (T.Q4_1, "q4_1"),
                                           (T.Q5_0, "q5_0"), (T.Q5_1, "q5_1")]):
        x = block_inputs(np.random.default_rng(1000 + seed))
        q = quantize(x, qtype)
        write(dtype, x, q, dequantize(q, qtype), index, dtype)

    x = float_inputs(np.random.default_rng(2000))
    with np.errstate(over="ignore"):  # 70000 and 3e38 overflow to inf on purpose
        h = quantize(x, T.F16)  # numpy float16: round to nearest even
    write("f16", x, h, dequantize(h.view(np.uint8), T.F16), index, "f16")
    b = quantize(x, T.BF16)
    write("bf16", x, b, dequantize(b, T.BF16), index, "bf16")

    for seed, (qtype, dtype) in enumerate([(T.Q4_K, "q4_k"), (T.Q6_K, "q6_k"), (T.Q5_K, "q5_k"),
                                           (T.Q3_K, "q3_k"), (T.Q2_K, "q2_k"), (T.IQ4_NL, "iq4_nl"),
                                           (T.IQ4_XS, "iq4_xs")]):
        blob = random_k_blocks(np.random.default_rng(3000 + seed), qtype, 6)
        write(dtype, None, blob, dequantize(blob, qtype), index, dtype)

    with open(os.path.join(OUT, "index.txt"), "w") as f:
        f.write("\n".join(index) + "\n")
    total = sum(os.path.getsize(os.path.join(OUT, p)) for p in os.listdir(OUT))
    print(f"wrote {len(index) - 3} cases to {OUT} ({total} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
