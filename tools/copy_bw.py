#!/usr/bin/env python3
"""The GPU's device-to-device copy bandwidth (PyTorch, 4 GiB, read + write),
the reference of issue 14's bandwidth-bound decode figures."""
import torch

n = 4 << 30
a = torch.empty(n, dtype=torch.uint8, device="cuda")
b = torch.empty_like(a)
for _ in range(3):
    b.copy_(a)
torch.cuda.synchronize()
s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
s.record()
for _ in range(10):
    b.copy_(a)
e.record()
torch.cuda.synchronize()
t = s.elapsed_time(e) / 1e3 / 10
print(f"device copy of {n >> 30} GiB: {t*1e3:.2f} ms, {2*n/t/1e9:.0f} GB/s (read + write)")
