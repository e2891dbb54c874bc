#!/usr/bin/env python3
"""Rank 0 sends one tensor of each size in --sizes (bytes) to rank 1 with
dist.send / dist.recv, in order, checking the data. Used by test_sim_p2p.sh."""
import argparse
import torch
import torch.distributed as dist

ap = argparse.ArgumentParser()
ap.add_argument("--sizes", default="1024,65536,1048576,16777216,67108864")
args = ap.parse_args()
dist.init_process_group("gloo")
rank = dist.get_rank()
for i, size in enumerate(int(x) for x in args.sizes.split(",")):
    if rank == 0:
        t = torch.arange(size, dtype=torch.uint8) + i
        dist.send(t, 1)
    else:
        t = torch.empty(size, dtype=torch.uint8)
        dist.recv(t, 0)
        assert torch.equal(t, torch.arange(size, dtype=torch.uint8) + i), size
print(f"rank {rank} ok")
