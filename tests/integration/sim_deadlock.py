#!/usr/bin/env python3
"""Two ranks that both receive first: a real Gloo job hangs here for the
30-minute default timeout. Used by test_sim_deadlock.sh."""
import torch
import torch.distributed as dist

dist.init_process_group("gloo")
rank = dist.get_rank()
t = torch.zeros(1024)
dist.recv(t, src=1 - rank)
dist.send(t, dst=1 - rank)
print("unreachable")
