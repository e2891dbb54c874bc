#!/usr/bin/env python3
"""Rank 0 writes 1 MB to rank 1 over a plain TCP connection and exits at
once; rank 1 reads it all. Each prints its clock (virtual under simulate
mode, one session clock for both): rank 0 before it writes, rank 1 when the
last byte arrived. Under nic the network must go on
moving after rank 0 has gone: it once stopped as soon as a rank of the
world ended, and rank 1 read for ever."""
import json
import os
import socket
import time

from rankconn import accept_one, read_upto

rank = int(os.environ["RANK"])
port = int(os.environ["MASTER_PORT"]) + 1
N = 1000 * 1000
if rank == 1:
    c = accept_one(port)
    got = read_upto(c, N)
    print(json.dumps({"got": got, "end_ms": 1e3 * time.perf_counter()}), flush=True)
else:
    for _ in range(500):
        try:
            s = socket.create_connection(("127.0.0.1", port))
            break
        except OSError:
            time.sleep(0.01)
    data = b"x" * N
    # The clock right before the write (printed after it: the print's own
    # work would count as time before the write).
    send_ms = 1e3 * time.perf_counter()
    s.sendall(data)
    print(json.dumps({"send_ms": send_ms}), flush=True)
    s.close()
