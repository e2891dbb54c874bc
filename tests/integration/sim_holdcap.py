#!/usr/bin/env python3
"""A sleep that waits for a rank that computes without entering the shim
gives up after UNI_HOLD_MAX_NS (10 s) of real time (docs/simulate.md,
"Sleeps and connects in causal order"). Rank 1 computes 11 s of CPU in
pure Python (no call into the shim) from the start; rank 0 sleeps 10 ms
once rank 1 has begun. Rank 0 prints "slept MS" (virtual). Used by
test_sim_sleeps.sh, which checks unirun says a sleep gave up."""
import os
import time

rank = int(os.environ["RANK"])
if rank == 0:
    time.sleep(0.5)  # rank 1 computes by now
    t0 = time.monotonic_ns()
    time.sleep(0.01)
    print(f"slept {(time.monotonic_ns() - t0) / 1e6:.3f}", flush=True)
else:
    c0 = time.thread_time()
    x = 0
    while time.thread_time() - c0 < 11.0:
        for i in range(10000):
            x = (x * 31 + i) % 1000003
