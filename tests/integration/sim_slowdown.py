#!/usr/bin/env python3
"""Every rank does the same fixed compute (float32 matmuls), then a barrier.
Used by test_sim_slowdown.sh with rank 1 configured 3x slower."""
import torch
import torch.distributed as dist

dist.init_process_group("gloo")
torch.manual_seed(0)
a = torch.randn(256, 256)
x = a
for _ in range(400):
    x = torch.tanh(x @ a) 
dist.barrier()
print(f"rank {dist.get_rank()} ok {float(x.sum()):.3f}")
