#!/usr/bin/env python3
"""Traffic across two switches (test sim-topology): right after a barrier,
rank 0 sends 8 MB to rank 2, rank 1 sends 16 MB to rank 3 and rank 2 sends
16 MB to rank 3, all at once; 4 ranks. Each receiver checks the data and
prints, as one JSON line, ms from the barrier to each receive's end (the
program's own clock: virtual under simulate mode)."""
import json
import time

import torch
import torch.distributed as dist

dist.init_process_group("gloo")
rank, world = dist.get_rank(), dist.get_world_size()
assert world == 4
MB = 250_000  # float32 elements per MB
sends = {0: [(2, 8)], 1: [(3, 16)], 2: [(3, 16)], 3: []}
recvs = {0: [], 1: [], 2: [(0, 8)], 3: [(2, 16), (1, 16)]}  # waited for in this order
out = [torch.full((n * MB,), float(rank + 1)) for _, n in sends[rank]]
inb = [torch.empty(n * MB) for _, n in recvs[rank]]
dist.barrier()
t0 = time.perf_counter()
works = [dist.isend(t, dst) for t, (dst, _) in zip(out, sends[rank])]
rworks = [dist.irecv(t, src) for t, (src, _) in zip(inb, recvs[rank])]
done = {}
for w, t, (src, _) in zip(rworks, inb, recvs[rank]):
    w.wait()
    done[src] = 1e3 * (time.perf_counter() - t0)
    assert float(t[0]) == float(src + 1) and float(t[-1]) == float(src + 1)
for w in works:
    w.wait()
if done:
    print(json.dumps({"rank": rank, "done_ms": done}), flush=True)
dist.barrier()
