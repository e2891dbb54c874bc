#!/usr/bin/env python3
"""Deterministic mode's Gloo probe (test_sim_det_gloo.sh): an unmodified
torch.distributed program on the Gloo backend (init_process_group env://,
hence the rendezvous store; Gloo's pairs, loop threads and the process
group's workers): an all_reduce of 1 MB (warm-up, then three timed), an
all_gather, a broadcast and a send/recv between ranks 0 and 1. Each rank
prints its results and the virtual times the program measured ("times:
allreduce3 NS rest NS")."""
import os
import sys
import time

import torch
import torch.distributed as dist

n = int(sys.argv[1]) if len(sys.argv) > 1 else 250000
dist.init_process_group("gloo")
r, w = dist.get_rank(), dist.get_world_size()
t = torch.ones(n) * (r + 1)
dist.all_reduce(t)  # warm-up
t0 = time.monotonic_ns()
for _ in range(3):
    dist.all_reduce(t)
t1 = time.monotonic_ns()
g = [torch.zeros(1000) for _ in range(w)]
dist.all_gather(g, torch.ones(1000) * r)
b = torch.zeros(5000) + r
dist.broadcast(b, 0)
x = torch.zeros(100)
if r == 0:
    dist.send(torch.arange(100.0), 1)
elif r == 1:
    dist.recv(x, 0)
t2 = time.monotonic_ns()
sys.stdout.write(f"rank {r}: sum {float(t[0])} gather {[float(v[0]) for v in g]} bcast {float(b[0])} "
                 f"recv {float(x.sum())}\ntimes: rank {r} allreduce3 {t1 - t0} rest {t2 - t1}\n")
sys.stdout.flush()
dist.destroy_process_group()
