#!/usr/bin/env python3
"""What llama-quantize makes of a GGUF, per file type, as digests for tests/quantize.rs.

For each file type, runs llama.cpp's `llama-quantize` (`--allow-requantize`, 2 threads)
on the input, reads the output with gguf-py and records, in the output's tensor order:
the count of tensors per type, FNV-1a 64 of the lines "name type\\n" (which tensor got
which type) and FNV-1a 64 of every tensor's data bytes concatenated (the bytes
themselves). `kiln quantize` must give the same three for the same input and type.

Usage (llama-quantize from ../shared/peers/llamacpp/, commit 0c1e570, built for the CPU
with cmake targets llama-quantize):
    python3 tools/quantize_reference.py LLAMA_QUANTIZE IN.gguf OUT.json TYPE [TYPE ...]
Needs gguf (PyPI, 0.19.0).
"""
import json, subprocess, sys, tempfile, os
from collections import Counter
from gguf import GGUFReader

FNV_OFFSET, FNV_PRIME = 0xcbf29ce484222325, 0x100000001b3


def fnv(chunks):
    h = FNV_OFFSET
    for c in chunks:
        for b in c:
            h = ((h ^ b) * FNV_PRIME) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


def main() -> int:
    tool, src, out, types = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
    files = {}
    with tempfile.TemporaryDirectory() as tmp:
        for t in types:
            dst = os.path.join(tmp, f"{t}.gguf")
            subprocess.run([tool, "--allow-requantize", src, dst, t.upper(), "2"],
                           check=True, capture_output=True)
            r = GGUFReader(dst)
            names = [f"{x.name} {x.tensor_type.name.lower()}\n".encode() for x in r.tensors]
            data = [bytes(x.data.tobytes()) for x in r.tensors]
            files[t] = {
                "types": dict(sorted(Counter(x.tensor_type.name.lower() for x in r.tensors).items())),
                "names_types_fnv": fnv(names),
                "data_fnv": fnv(data),
                "file_type": int(r.fields["general.file_type"].contents()),
            }
            print(t, files[t]["types"], flush=True)
    json.dump({"source": os.path.basename(src), "llama_cpp": "0c1e570",
               "tool": "llama-quantize --allow-requantize IN OUT TYPE 2", "files": files},
              open(out, "w"), indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
