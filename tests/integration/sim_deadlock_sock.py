#!/usr/bin/env python3
"""Two ranks on a program's own TCP connection (no Gloo) that each send a
byte, read the other's, then both recv first: they wait for each other
for ever. Argument: PORT (rank 0 listens there). Used by
test_sim_deadlock.sh."""
import os
import sys

from rankconn import accept_one, connect

rank = int(os.environ["RANK"])
port = int(sys.argv[1])
if rank == 0:
    c = accept_one(port)
else:
    c = connect(port)
c.sendall(b"x")
c.recv(1)
c.recv(100)
print("unreachable")
