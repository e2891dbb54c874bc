#!/usr/bin/env python3
"""A rank profiles a matmul and two collectives with PyTorch's profiler and
writes its Chrome trace (for unitrace export --merge). Each rank writes
DIR/profile-RANK.json.
    sim_profile.py DIR"""
import sys
import time

import torch
import torch.distributed as dist

out = sys.argv[1]
dist.init_process_group("gloo")
rank = dist.get_rank()
x = torch.ones(1_000_000)
dist.barrier()
with torch.autograd.profiler.profile() as prof:
    y = torch.mm(torch.ones(200, 200), torch.ones(200, 200))
    dist.all_reduce(x)
    time.sleep(0.05)
    dist.broadcast(x, 0)
prof.export_chrome_trace(f"{out}/profile-{rank}.json")
dist.barrier()
