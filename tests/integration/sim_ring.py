#!/usr/bin/env python3
"""4 ranks: a blocking all_gather of 8 MB per rank, then an all_reduce of
16 MB, each between two barriers, timed with the program's own clock
(virtual under simulate mode). Prints one JSON line per rank."""
import json
import time

import torch
import torch.distributed as dist

dist.init_process_group("gloo")
rank, world = dist.get_rank(), dist.get_world_size()
res = {"rank": rank}
x = torch.full((2_000_000,), float(rank))          # 8 MB
outs = [torch.empty_like(x) for _ in range(world)]
dist.barrier()
t0 = time.perf_counter()
dist.all_gather(outs, x)
res["all_gather_ms"] = 1e3 * (time.perf_counter() - t0)
assert all(float(o[0]) == float(i) for i, o in enumerate(outs))
y = torch.full((4_000_000,), float(rank + 1))      # 16 MB
dist.barrier()
t0 = time.perf_counter()
dist.all_reduce(y)
res["all_reduce_ms"] = 1e3 * (time.perf_counter() - t0)
assert float(y[0]) == sum(range(1, world + 1))
print(json.dumps(res), flush=True)
dist.barrier()
