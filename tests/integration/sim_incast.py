#!/usr/bin/env python3
"""Incast: ranks 1..n-1 each send 16 MB (argv[1]: another number of float32
values) to rank 0 at the same virtual time
(right after a barrier; the tensors are filled before it, so that the
senders' compute, which a loaded host inflates, is not in the times);
rank 0 posts all receives and waits for each.
Prints one JSON line from rank 0: ms from the barrier to each completion,
measured with the program's own clock (virtual under simulate mode)."""
import json
import sys
import time

import torch
import torch.distributed as dist

dist.init_process_group("gloo")
rank, world = dist.get_rank(), dist.get_world_size()
n = int(sys.argv[1]) if len(sys.argv) > 1 else 4_000_000  # float32: 16 MB
if rank == 0:
    bufs = [torch.empty(n) for _ in range(1, world)]
else:
    data = torch.full((n,), float(rank))
dist.barrier()
t0 = time.perf_counter()
if rank == 0:
    works = [dist.irecv(bufs[i - 1], src=i) for i in range(1, world)]
    done = {}
    for i, w in enumerate(works, start=1):
        w.wait()
        done[i] = 1e3 * (time.perf_counter() - t0)
        assert float(bufs[i - 1][0]) == float(i)
    print(json.dumps({"done_ms": done}), flush=True)
else:
    dist.send(data, dst=0)
dist.barrier()
