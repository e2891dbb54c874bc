#!/usr/bin/env python3
"""Two ranks exchange messages over a program's own TCP connection, with
compute (a pure-Python loop) before each message: the program whose
event graph does not depend on the host's scheduling (one thread per
rank; rank 1 computes longer before it connects to the port on which rank 0
listens, so that in virtual time the listener is there
first; every message is one
write of at most 60000 bytes, read whole). Prints the clock
(time.monotonic_ns: virtual in simulate mode) at the end, and a checksum
of what it received. Arguments: PORT (rank 0 listens there) and
optionally "other": the third message 5000 bytes shorter (a different
program for the same compute). Used by
test_sim_determinism.sh (--compute-from)."""
import os
import sys
import time

from rankconn import accept_one, connect, work

rank = int(os.environ["RANK"])
port = int(sys.argv[1])


if rank == 0:
    c = accept_one(port)
else:
    # (A connect before the listener in virtual time is answered by what
    # the host did first: refused and retried, or taking the listener's
    # time; docs/simulate.md "Compute from a trace".)
    work(2000000)
    c = connect(port)
sizes = [1000, 20000, 60000, 8000, 300, 45000]
if sys.argv[2:] == ["other"]:
    sizes[2] -= 5000
got = 0
for i, s in enumerate(sizes * 4):
    work(20000 * (rank + 1) + 1000 * i)
    if i % 2 == rank:
        c.sendall(bytes([i % 251]) * s)
    else:
        n = 0
        while n < s:
            b = c.recv(s - n)
            if not b:
                raise SystemExit("peer closed early")
            assert b == bytes([i % 251]) * len(b)
            n += len(b)
        got += n
c.close()
print("rank %d end %d received %d" % (rank, time.monotonic_ns(), got), flush=True)
