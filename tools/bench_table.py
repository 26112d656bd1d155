#!/usr/bin/env python3
"""README's GPU speed table from one run of tools/gpu_table_bench.sh.

Reads the raw outputs of that run (a folder holding kiln.txt, vulkan.txt
and, with CUDA_PEER=1, cuda.txt) and prints the markdown table: per model
file, llama.cpp's CUDA and Vulkan llama-bench (each invocation in order,
with llama-bench's own ± spread) and Kiln's fused graph on wgpu and on the
CUDA twin (`kiln-parity bench`: prefill from the 512-token runs, decode
from the 128-token ones), tok/s, then each Kiln figure's ratio to the
warmest llama.cpp figure of the same backend family (Vulkan for wgpu,
CUDA for the twin). Only what the files hold is printed.

    python3 tools/bench_table.py docs/bench/DATE-h100-one-run
"""
import pathlib
import re
import sys

SHAPES = {"llama1b": "Llama-3.2-1B shape, Q4_0", "smol": "SmolLM2-135M shape, Q4_1",
          "l8b-q4_0": "Llama-3.1-8B shape, Q4_0", "l8b-q8_0": "Llama-3.1-8B shape, Q8_0"}


def shape(path):
    name = pathlib.Path(path).name
    return next((v for k, v in SHAPES.items() if name.startswith(k)), name)


def commands(text):
    """(command line, output lines) per `$ ...` block."""
    blocks, cur = [], None
    for line in text.splitlines():
        if line.startswith("$ "):
            cur = (line[2:], [])
            blocks.append(cur)
        elif cur:
            cur[1].append(line)
    return blocks


def model_of(cmd):
    m = re.search(r"(?:--model|-m) (\S+)", cmd)
    return shape(m.group(1)) if m else "?"


def llama_bench(text):
    """{file: [(pp512, tg128) per invocation]} with the ± spreads as text."""
    out = {}
    for cmd, lines in commands(text):
        row = {}
        for line in lines:
            m = re.search(r"\|\s+(pp\d+|tg\d+)\s+\|\s+([\d.]+) ± ([\d.]+)", line)
            if m:
                row[m.group(1)] = (float(m.group(2)), f"{float(m.group(2)):,.1f} ± {float(m.group(3)):,.1f}")
        if row:
            out.setdefault(model_of(cmd), []).append(row)
    return out


def kiln(text):
    """{file: {(engine, 'prefill'|'decode'): tok/s}} from the fused lines."""
    out = {}
    for cmd, lines in commands(text):
        prefill_run = re.search(r"--prefill (\d+)", cmd)
        long_prefill = prefill_run and int(prefill_run.group(1)) >= 512
        for line in lines:
            m = re.match(r"(wgpu|cuda)\b.* fused prefill\s+([\d.]+) tok/s\s+decode\s+([\d.]+) tok/s", line)
            if not m:
                continue
            engine = "Kiln wgpu/Vulkan" if m.group(1) == "wgpu" else "Kiln CUDA twin"
            key = "prefill" if long_prefill else "decode"
            val = float(m.group(2) if long_prefill else m.group(3))
            out.setdefault(model_of(cmd), {})[(engine, key)] = val
    return out


def main():
    d = pathlib.Path(sys.argv[1])
    read = lambda n: (d / n).read_text() if (d / n).exists() else ""
    peers = {"llama.cpp CUDA": llama_bench(read("cuda.txt")),
             "llama.cpp Vulkan": llama_bench(read("vulkan.txt"))}
    ours = kiln(read("kiln.txt"))
    print("| file | engine | decode tg128 | prefill-512 |")
    print("|---|---|---:|---:|")
    notes = []
    for f in dict.fromkeys(list(ours) + [f for p in peers.values() for f in p]):
        first = True
        best = {}
        for name, runs in peers.items():
            for i, row in enumerate(runs.get(f, [])):
                label = name if len(runs[f]) == 1 else f"{name}, invocation {i + 1}"
                tg = next((v for k, v in row.items() if k.startswith("tg")), (None, ""))
                pp = row.get("pp512", (None, ""))
                print(f"| {f if first else ''} | {label} | {tg[1]} | {pp[1]} |")
                first = False
                fam = "cuda" if "CUDA" in name else "vulkan"
                for k, v in (("decode", tg[0]), ("prefill", pp[0])):
                    if v:
                        best[(fam, k)] = max(best.get((fam, k), 0), v)
        for engine in ("Kiln wgpu/Vulkan", "Kiln CUDA twin"):
            got = ours.get(f, {})
            dec, pre = got.get((engine, "decode")), got.get((engine, "prefill"))
            if dec is None and pre is None:
                continue
            fmt = lambda v: f"**{v:,.1f}**" if v else ""
            print(f"| {f if first else ''} | {engine} | {fmt(dec)} | {fmt(pre)} |")
            first = False
            fam = "vulkan" if "wgpu" in engine else "cuda"
            for k, v in (("decode", dec), ("prefill", pre)):
                ref = best.get((fam, k))
                if v and ref:
                    notes.append(f"{f}: {engine} {k} {v / ref:.2f}× llama.cpp {fam}'s best")
                ref = best.get(("cuda", k))
                if v and ref and fam == "vulkan":
                    notes.append(f"{f}: {engine} {k} {v / ref:.2f}× llama.cpp cuda's")
    print()
    for n in notes:
        print(f"- {n}")


if __name__ == "__main__":
    main()
