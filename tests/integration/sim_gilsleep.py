#!/usr/bin/env python3
"""A sleep does not wait for the threads of its own rank (docs/simulate.md,
"Sleeps and connects in causal order"): a thread computes 3 s of CPU in
pure Python, holding the GIL (it enters the shim only when somebody asks
for the GIL), while the main thread polls it with 50 ms sleeps. The main
thread must wake every 50 ms of real time, as without the shim (waiting
for the computing thread's clock, its first sleep ended only when that
thread was done: one poll). Prints "sleeps N MS". Used by
test_sim_sleeps.sh."""
import threading, time, os
def burn():
    c0 = time.thread_time(); x = 0
    while time.thread_time() - c0 < 3.0:
        for i in range(10000):
            x = (x * 31 + i) % 1000003
t = threading.Thread(target=burn); t.start()
t0 = time.monotonic_ns()
n = 0
while t.is_alive():
    time.sleep(0.05); n += 1
print(f"sleeps {n} {(time.monotonic_ns() - t0) / 1e6:.1f}", flush=True)
