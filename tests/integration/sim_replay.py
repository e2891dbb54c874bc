#!/usr/bin/env python3
"""A program whose control flow does not depend on timing, for unitrace
replay's test: 4 ranks exchange point-to-point messages around a ring,
run an all_reduce and an all_gather, and an all_reduce overlapped with a
sleep (async, waited for after it), between barriers.

init_process_group ends with a store-based barrier in which every rank
polls the store with 10 ms sleeps until all have arrived: how many sleeps
(virtual idle time) depends on when the others start, in real time. So this
program builds the store and the Gloo process group itself: rank 0 starts
the store without waiting for workers, the others first wait a real 1.5 s
in a child process (no virtual time) so that the store is up when they
connect (a client that finds no server retries after a sleep). Prints one
JSON line per rank: the program's own time for the work (virtual)."""
import datetime
import json
import os
import subprocess
import time

import torch
import torch.distributed as dist

rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
if rank != 0:
    subprocess.run(["sleep", "1.5"], check=True)
store = dist.TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), world, rank == 0,
                      datetime.timedelta(seconds=60), wait_for_workers=False)
pg = dist.ProcessGroupGloo(store, rank, world, datetime.timedelta(seconds=60))
res = {"rank": rank}
pg.barrier().wait()
t0 = time.perf_counter()

# Point to point around the ring: 1 MB to rank+1 from rank-1.
a = torch.full((250_000,), float(rank))
b = torch.empty_like(a)
s = pg.send([a], (rank + 1) % world, 0)
pg.recv([b], (rank - 1) % world, 0).wait()
s.wait()
assert float(b[0]) == float((rank - 1) % world)

pg.barrier().wait()
y = torch.full((1_000_000,), 1.0)                  # 4 MB
pg.allreduce([y]).wait()
assert float(y[0]) == world

pg.barrier().wait()
x = torch.full((500_000,), float(rank))            # 2 MB
outs = [torch.empty_like(x) for _ in range(world)]
pg.allgather([outs], [x]).wait()
assert float(outs[world - 1][0]) == world - 1

pg.barrier().wait()
z = torch.full((500_000,), 1.0)
w = pg.allreduce([z])
time.sleep(0.2)
w.wait()
assert float(z[0]) == world

res["program_ms"] = 1e3 * (time.perf_counter() - t0)
print(json.dumps(res), flush=True)
pg.barrier().wait()
