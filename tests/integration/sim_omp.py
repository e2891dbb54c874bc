#!/usr/bin/env python3
"""One rank, OMP_NUM_THREADS=2: a block of large element-wise ops that
PyTorch splits over two OpenMP threads (at::parallel_for), the second of
which never enters the shim. Prints the virtual time the block took (the program's clock), the
main thread's CPU time and the whole process's CPU time. Used by
test_sim_omp.sh."""
import json
import time

import torch
import torch.distributed as dist

dist.init_process_group("gloo")
assert torch.get_num_threads() == 2, torch.get_num_threads()
y = torch.randn(4_000_000)
z = torch.tanh(y)  # warm-up: the OpenMP team exists from here on
t0, c0, p0 = time.perf_counter(), time.thread_time(), time.process_time()
for _ in range(20):
    z = torch.tanh(y) * torch.sigmoid(y)
t1, c1, p1 = time.perf_counter(), time.thread_time(), time.process_time()
print(json.dumps({"virtual_ms": 1e3 * (t1 - t0), "thread_cpu_ms": 1e3 * (c1 - c0),
                  "process_cpu_ms": 1e3 * (p1 - p0)}), flush=True)
