#!/usr/bin/env python3
"""Sleeps that end early in wall time must not change what a program
does (docs/simulate.md, "The program's clock"). Two ranks, a socket
between them (rank 0 listens on a port it writes to DIR/port):
1. Rank 0 sleeps 0.3 s under a SIGALRM every 50 ms (CPython retries the
   absolute clock_nanosleep with the same deadline after each signal: the
   time slept before a signal must count, or it never ends): "alarm MS".
2. Rank 0 sleeps 2 s while rank 1 computes (so the sleep is not ended
   early): exactly 2000 ms virtual, the 20 ms slices' own CPU not charged
   as compute: "busy MS".
3. Rank 1 waits at most 1 s for a byte (a socket time-out: a poll with a
   time-out) that rank 0 sends only after sleeping 3 s: the recv must time
   out (ending rank 0's sleep early while rank 1's time-out comes first
   would deliver the byte in time): "recv timeout" or "recv got".
Writes DIR/rankR.txt. Used by test_sim_sleeps.sh."""
import os
import signal
import socket
import sys
import time

d = sys.argv[1]
rank = int(os.environ["RANK"])
out = open(os.path.join(d, f"rank{rank}.txt"), "w")
if rank == 0:
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(1)
    with open(os.path.join(d, "port.tmp"), "w") as f:
        f.write(str(ls.getsockname()[1]))
    os.rename(os.path.join(d, "port.tmp"), os.path.join(d, "port"))
    c, _ = ls.accept()
    signal.signal(signal.SIGALRM, lambda *a: None)
    signal.setitimer(signal.ITIMER_REAL, 0.05, 0.05)
    t0 = time.monotonic_ns()
    time.sleep(0.3)
    print(f"alarm {(time.monotonic_ns() - t0) / 1e6:.3f}", file=out, flush=True)
    signal.setitimer(signal.ITIMER_REAL, 0, 0)
    c.sendall(b"b")          # rank 1: start computing
    assert c.recv(1) == b"c"  # ... it has
    t0 = time.monotonic_ns()
    time.sleep(2.0)
    print(f"busy {(time.monotonic_ns() - t0) / 1e6:.3f}", file=out, flush=True)
    assert c.recv(1) == b"w"  # rank 1 waits for the byte now
    time.sleep(3.0)
    c.sendall(b"x")
    assert c.recv(1) == b"e"
else:
    p = os.path.join(d, "port")
    while not os.path.exists(p):
        time.sleep(0.01)
    s = socket.create_connection(("127.0.0.1", int(open(p).read())))
    assert s.recv(1) == b"b"
    s.sendall(b"c")
    c0 = time.thread_time()
    x = 0
    while time.thread_time() - c0 < 2.5:
        for i in range(10000):
            x = (x * 31 + i) % 1000003
    s.sendall(b"w")
    s.settimeout(1.0)
    try:
        got = s.recv(1)
        print(f"recv got {got!r}", file=out, flush=True)
    except socket.timeout:
        print("recv timeout", file=out, flush=True)
    s.settimeout(None)
    assert s.recv(1) == b"x"
    s.sendall(b"e")
print(f"rank {rank} ok", flush=True)
