#!/usr/bin/env python3
"""Deterministic mode's edge cases for the turn's socket buffer
(test_sim_det.sh). Arguments: PORT MODE [N].
  exchange N  both ranks sendall N bytes, then read N: natively the
              host's buffers hold both; in turn each writer may run only
              a buffer ahead of its reader, so both wait until the turn
              lets them further (it must, or this is a false deadlock).
              Each rank prints "rank R: sent N got N".
  peerclose   rank 1 reads 1000 bytes and closes; rank 0 sendall()s
              20 MB: it must get the kernel's error, not wait for room
              for ever. Rank 0 prints "rank 0: sendall: ERROR"."""
import os
import signal
import sys
import time

from rankconn import accept_one, connect, read_upto

rank = int(os.environ["RANK"])
port, mode = int(sys.argv[1]), sys.argv[2]
if rank == 0:
    c = accept_one(port)
else:
    c = connect(port)
if mode == "exchange":
    n = int(sys.argv[3])
    c.sendall(bytes([rank + 1]) * n)
    got = read_upto(c, n)
    print(f"rank {rank}: sent {n} got {got}", flush=True)
elif rank == 0:
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    try:
        c.sendall(b"x" * 20_000_000)
        print("rank 0: sendall returned", flush=True)
    except OSError as e:
        print(f"rank 0: sendall: {e.strerror}", flush=True)
else:
    c.recv(1000)
    c.close()
    time.sleep(0.5)
c.close()
