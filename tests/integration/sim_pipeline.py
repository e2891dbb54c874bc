#!/usr/bin/env python3
"""A 3-stage pipeline: rank r receives 1 MB from r-1, works (sleeps
(r+1) x 100 ms, exact in virtual time), sends 1 MB to r+1. The last rank
first sleeps 300 ms, so its receive notice reaches rank 1 while rank 1
works: a read that did not gate anything. Used by test_critical.sh: the
critical path is rank 0's work, the transfer to rank 1, rank 1's work,
the transfer to rank 2, rank 2's work."""
import time

import torch
import torch.distributed as dist

dist.init_process_group("gloo")
rank, world = dist.get_rank(), dist.get_world_size()
x = torch.zeros(262144)  # 1 MB
dist.barrier()  # start together, whatever each rank's start-up took
if rank == world - 1:
    time.sleep(0.3)
if rank > 0:
    dist.recv(x, rank - 1)
time.sleep((rank + 1) * 0.1)
x += 1
if rank < world - 1:
    dist.send(x, rank + 1)
else:
    assert float(x[0]) == world, float(x[0])
print(f"rank {rank} done", flush=True)
