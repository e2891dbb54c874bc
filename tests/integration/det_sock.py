#!/usr/bin/env python3
"""Deterministic mode's socket probe (test_sim_det.sh): how many bytes a
read returns. Rank 0 writes bursts of messages of several sizes on a
program's own TCP connection with compute between the bursts; rank 1
reads with a large buffer, computing a little after each read, and
prints the sizes its reads returned ("reads: ..."). Without the turn a
read returns what the kernel had then; in turn, what had arrived in
virtual time by the reader's clock. Arguments: PORT (rank 0 connects to
it; rank 1 listens there), and optionally "timeout": the reader's socket
has a time-out (Python then polls before each read); "recvmsg": the
reader reads with recvmsg; "readv": with readv into two buffers (4 kB,
then 1 MB)."""
import os
import sys
import time

from rankconn import accept_one, connect, work

rank = int(os.environ["RANK"])
port = int(sys.argv[1])
TOTAL = 0
sizes = [3000, 40000, 700, 120000, 9000, 20000, 1]
for s in sizes * 3:
    TOTAL += s


if rank == 1:
    c = accept_one(port)
    if sys.argv[2:] == ["timeout"]:
        c.settimeout(10.0)
    got, reads = 0, []
    mode = sys.argv[2] if len(sys.argv) > 2 else ""
    b1, b2 = bytearray(4096), bytearray(1 << 20)
    while got < TOTAL:
        if mode == "recvmsg":
            k = len(c.recvmsg(1 << 20)[0])
        elif mode == "readv":
            k = os.readv(c.fileno(), [b1, b2])
        else:
            k = len(c.recv(1 << 20))
        if not k:
            break
        got += k
        reads.append(k)
        work(3000)
    sys.stdout.write("reads: " + " ".join(map(str, reads)) + f"\nend: {time.monotonic_ns()}\n")
    sys.stdout.flush()
else:
    work(300000)  # rank 1 listens first in virtual time
    c = connect(port)
    for burst in range(3):
        for s in sizes:
            c.sendall(bytes([s % 251]) * s)
        work(20000)
    c.close()
