#!/usr/bin/env python3
"""Writes a copy of a GGUF file with every tensor dequantized to F32 by
gguf-py (metadata, tokenizer and chat template copied unchanged).

Used to separate format decoding from arithmetic when Kiln and llama.cpp
disagree on a quantized file: llama.cpp's CPU backend quantizes activations
to 8 bits for quantized dot products, Kiln keeps them f32, so on near-ties
their greedy tokens can part. Running llama.cpp on the dequantized copy
(f32 weights, f32 activations) gives the reference for Kiln's arithmetic on
the quantized file (docs/reliability/2026-12-04-smollm2-quant-types.md).

    python3 tools/gguf_dequantize.py IN.gguf OUT.F32.gguf
"""
import sys

import numpy as np
import gguf
from gguf.quants import dequantize


def main(src: str, dst: str) -> None:
    r = gguf.GGUFReader(src)
    arch = r.fields[gguf.Keys.General.ARCHITECTURE].contents()
    w = gguf.GGUFWriter(dst, arch)
    for f in r.fields.values():
        if f.name == gguf.Keys.General.ARCHITECTURE or f.name.startswith("GGUF."):
            continue
        vt = f.types[0]
        st = f.types[-1] if vt == gguf.GGUFValueType.ARRAY else None
        w.add_key_value(f.name, f.contents(), vt, sub_type=st)
    for t in r.tensors:
        x = dequantize(t.data, t.tensor_type).astype(np.float32)
        # GGUF lists dimensions innermost first; numpy wants them outermost first.
        w.add_tensor(t.name, x.reshape(list(reversed([int(d) for d in t.shape]))))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
