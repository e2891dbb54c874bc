#!/usr/bin/env python3
"""The Kilovolts pattern, timed by the program's own clock (virtual under
simulate mode): an all_gather overlapped with a block of compute (async_op,
waited for after the compute) against the same all_gather done blocking
before the compute. Prints one JSON line per rank with the phase times in
ms: compute alone (mean of two runs), all_gather alone, blocking then
compute, async around compute."""
import json
import time

import torch
import torch.distributed as dist

dist.init_process_group("gloo")
rank, world = dist.get_rank(), dist.get_world_size()
a = torch.randn(256, 256, generator=torch.Generator().manual_seed(0))


def compute():
    x = a
    for _ in range(150):
        x = torch.tanh(x @ a)
    return x


t = torch.ones(4_000_000)  # 16 MB per rank
outs = [torch.empty_like(t) for _ in range(world)]
res = {}
for phase in ["compute1", "comm", "sync", "async", "compute2"]:
    dist.barrier()
    t0 = time.perf_counter()
    if phase == "async":
        w = dist.all_gather(outs, t, async_op=True)
        compute()
        w.wait()
    elif phase == "sync":
        dist.all_gather(outs, t)
        compute()
    elif phase == "comm":
        dist.all_gather(outs, t)
    else:
        compute()
    res[phase] = 1e3 * (time.perf_counter() - t0)
res["compute"] = (res.pop("compute1") + res.pop("compute2")) / 2
res["rank"] = rank
print(json.dumps(res), flush=True)
