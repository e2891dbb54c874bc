#!/usr/bin/env python3
"""Both ranks do the same fixed compute (float32 matmuls), one after the
other (so they never compete for the host's CPUs, which would change their
CPU time), each timed with the program's own clock (virtual under simulate
mode). Then pure-Python compute followed at once by a 50 ms sleep. Prints one JSON
line per rank. Used by test_sim_slowdown.sh with rank
1 configured 3x slower."""
import ctypes
import json
import time

import torch
import torch.distributed as dist

libc = ctypes.CDLL(None)
dist.init_process_group("gloo")
rank = dist.get_rank()
torch.manual_seed(0)
a = torch.randn(256, 256)


def compute():
    x = a
    for _ in range(300):
        x = torch.tanh(x @ a)
    return x


res = {"rank": rank}
compute()  # warm-up, both ranks
for turn in range(2):
    dist.barrier()
    if turn == rank:
        t0, c0 = time.perf_counter(), time.thread_time()
        compute()
        res["compute_ms"] = 1e3 * (time.perf_counter() - t0)  # virtual
        res["cpu_ms"] = 1e3 * (time.thread_time() - c0)       # the host's CPU time
        # Compute that never enters the shim (pure Python: no lock, no
        # clock read) right before a sleep: both count (such compute used
        # to be dropped).
        c0, t0 = time.thread_time(), time.perf_counter()
        acc = 0
        for i in range(2_000_000):
            acc += i * i
        libc.usleep(50000)  # time.sleep reads the clock first, usleep not
        t1 = time.perf_counter()                             # virtual
        res["sleep_ms"] = 1e3 * (t1 - t0)
        res["sleep_cpu_ms"] = 1e3 * (time.thread_time() - c0)
dist.barrier()
res["main_cpu_ms"] = 1e3 * time.thread_time()  # the whole run's, main thread
print(json.dumps(res), flush=True)
