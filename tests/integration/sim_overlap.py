#!/usr/bin/env python3
"""The Kilovolts pattern, timed by the program's own clock (virtual under
simulate mode): an all_gather overlapped with a block of local work (async_op,
waited for after the work) against the same all_gather done blocking before
the work. The local work is a time.sleep of 1.2 s, which simulate mode
turns into exactly 1.2 s of virtual time (the original Uniference used sleep
as simulated compute): measured compute would carry the host's CPU-time
noise, and what is tested here is the overlap, not the compute. Prints one
JSON line per rank with the phase times in ms: work alone, all_gather alone,
blocking then work, async around work."""
import json
import time

import torch
import torch.distributed as dist

dist.init_process_group("gloo")
rank, world = dist.get_rank(), dist.get_world_size()
a = torch.randn(256, 256, generator=torch.Generator().manual_seed(0))


def compute():
    time.sleep(1.2)


t = torch.ones(4_000_000)  # 16 MB per rank
outs = [torch.empty_like(t) for _ in range(world)]
# A first all_gather touches the fresh output tensors' pages (on some hosts
# 100 ms of CPU time more than later ones): every phase below then times the
# same work.
dist.all_gather(outs, t)
res = {}
for phase in ["compute", "comm", "sync", "async"]:
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
res["rank"] = rank
print(json.dumps(res), flush=True)
