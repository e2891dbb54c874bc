#!/usr/bin/env python3
"""Deterministic mode's rendezvous-store probe (test_sim_det_store.sh):
every rank opens torch's TCPStore (rank 0 hosts it, as init_process_group
does under unirun), computes for a rank-dependent while, sets a key,
meets the others in a store-based barrier (add, then polls with sleeps,
as init_process_group's _store_based_barrier), reads every rank's key
(a get waits for it) and prints how many polls its barrier took and the
values, and its clock (virtual in simulate mode) just before it set its
key and added itself, when its barrier passed and when it had every key
("times: set S add A passed P got G"): no rank passes the barrier before
the last rank added itself, nor has a key before it was set. With "gloo" as argument it goes on to init_process_group and an
all_reduce (the turn does not follow Gloo's loop thread yet)."""
import datetime
import os
import sys
import time

import torch.distributed as dist

from rankconn import work

rank = int(os.environ["RANK"])
world = int(os.environ["WORLD_SIZE"])
store = dist.TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), world, rank == 0,
                      datetime.timedelta(seconds=60))
work(40000 * (world - rank))
t_set = time.monotonic_ns()
store.set(f"k{rank}", str(rank * 7))
t_add = time.monotonic_ns()
store.add("barrier", 1)
n, polls = store.add("barrier", 0), 0
while n != world:
    time.sleep(0.01)
    n = store.add("barrier", 0)
    polls += 1
t_passed = time.monotonic_ns()
vals = [store.get(f"k{i}").decode() for i in range(world)]
t_got = time.monotonic_ns()
sys.stdout.write(f"rank {rank}: polls {polls} values {' '.join(vals)}\n"  # one write: the ranks share stdout
                 f"times: rank {rank} set {t_set} add {t_add} passed {t_passed} got {t_got}\n")
sys.stdout.flush()
store.add("done", 1)
if rank == 0:  # the store's host stays until every rank is done with it
    while store.add("done", 0) != world:
        time.sleep(0.005)
if sys.argv[1:] == ["gloo"]:
    import torch
    dist.init_process_group("gloo", store=store, rank=rank, world_size=world)
    t = torch.ones(4) * (rank + 1)
    dist.all_reduce(t)
    sys.stdout.write(f"rank {rank}: sum {t.tolist()}\n")
    sys.stdout.flush()
