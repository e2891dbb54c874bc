#!/usr/bin/env python3
"""PyTorch with backend="nccl" under the shim, every rank on GPU 0 (the
simulated NCCL lets ranks share a GPU; real NCCL refuses): all_reduce,
broadcast and all_gather of CUDA tensors, each after a matrix product on
the same stream. One JSON line per rank: the results checked, and the
virtual (simulate mode) or real time. Run by tools/gpu_check.sh on a
machine with a GPU (docs/nccl.md, "On a GPU")."""
import json
import os
import time

import torch
import torch.distributed as dist

rank, n = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
torch.cuda.set_device(0)
dist.init_process_group("nccl")
torch.manual_seed(rank)
a = torch.randn(1024, 1024, device="cuda")
x = torch.full((1 << 20,), float(rank + 1), device="cuda")
t0 = time.perf_counter()
for _ in range(5):
    y = a @ a
    x += 0 * y[0, 0]  # ordered after the product
    dist.all_reduce(x)
b = torch.full((4096,), float(rank), device="cuda")
dist.broadcast(b, src=n - 1)
g = torch.empty(n * 4096, device="cuda")
dist.all_gather_into_tensor(g, torch.full((4096,), float(rank), device="cuda"))
torch.cuda.synchronize()
t = time.perf_counter() - t0
want = n ** 4 * n * (n + 1) / 2  # five all_reduces of rank + 1
ok = (x[0].item() == want and x[-1].item() == want and b[0].item() == n - 1 and
      all(g[p * 4096].item() == p for p in range(n)))
print(json.dumps({"rank": rank, "x0": x[0].item(), "want": want, "broadcast": b[0].item(),
                  "ms": round(1e3 * t, 3), "ok": ok}), flush=True)
dist.destroy_process_group()
