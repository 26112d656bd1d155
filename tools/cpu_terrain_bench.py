#!/usr/bin/env python3
"""CPU benchmark (not a test): one 128x128 terrain map, Kiln's fast CPU backend vs ONNX Runtime.

Same machine, same run, same ONNX file, batch 1, for each thread count:
  * ONNX Runtime (PyPI `onnxruntime`, CPUExecutionProvider, graph optimizations on,
    intra_op_num_threads = t): best of --runs session.run calls after one warm-up;
  * Kiln (`kiln diffuse --backend cpu --threads t --variants N --batch 1`): the CLI's own
    "generated N map(s) in X s" over N maps (one network call each, plus seeding and
    post-processing), divided by N, best of --runs invocations; load time is printed apart and
    not counted.

Usage (repository root, after `cargo build --release -p kiln` and tools/fetch_terrain.sh):
  python3 tools/cpu_terrain_bench.py [--threads 1,2] [--runs 3] [--maps 6] > result.json
"""
import argparse
import json
import os
import platform
import re
import subprocess
import time

import numpy as np
import onnxruntime as ort

MODEL = "models/terrain_consistency_unet_difficulty100.onnx"


def ort_ms(threads, runs):
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    s = ort.InferenceSession(MODEL, so, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(1)
    feeds = {
        "noisy": (rng.standard_normal((1, 1, 128, 128)) * 80).astype(np.float32),
        "sigma": np.full((1,), 80, np.float32),
        "difficulty": np.full((1,), 39 / 99, np.float32),
    }
    s.run(None, feeds)
    best = float("inf")
    for _ in range(runs):
        t = time.perf_counter()
        s.run(None, feeds)
        best = min(best, time.perf_counter() - t)
    return best * 1e3


def kiln_ms(threads, runs, maps):
    best = float("inf")
    for _ in range(runs):
        out = subprocess.run(
            ["target/release/kiln", "diffuse", "--backend", "cpu", "--threads", str(threads),
             "--batch", "1", "--variants", str(maps), "--seed", "1", "--difficulty", "40",
             "--out", "/tmp/kiln-cpu-bench.png"],
            capture_output=True, text=True, check=True)
        m = re.search(r"generated (\d+) map\(s\) of 128×128 in ([0-9.]+) s", out.stderr)
        if not m:
            raise SystemExit(f"no timing in kiln's output:\n{out.stderr}")
        best = min(best, float(m.group(2)) / int(m.group(1)))
        backend = re.search(r"backend: (.*?) \(", out.stderr).group(1)
    return best * 1e3, backend


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--maps", type=int, default=6)
    a = ap.parse_args()
    rows = []
    for t in [int(x) for x in a.threads.split(",")]:
        o = ort_ms(t, a.runs * 2)
        k, backend = kiln_ms(t, a.runs, a.maps)
        rows.append({"threads": t, "ort_ms": round(o, 1), "kiln_ms": round(k, 1),
                     "kiln_vs_ort": round(o / k, 3), "kiln_backend": backend})
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    print(json.dumps({
        "what": "ms per 128x128 terrain map (batch 1), Kiln fast CPU backend vs ONNX Runtime CPU",
        "date": time.strftime("%Y-%m-%d"), "commit": commit, "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(), "onnxruntime": ort.__version__, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
