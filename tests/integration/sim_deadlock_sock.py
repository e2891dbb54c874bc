#!/usr/bin/env python3
"""Two ranks on a program's own TCP connection (no Gloo) that each send a
byte, read the other's, then both recv first: they wait for each other
for ever. Argument: PORT (rank 0 listens there). Used by
test_sim_deadlock.sh."""
import os
import socket
import sys
import time

rank = int(os.environ["RANK"])
port = int(sys.argv[1])
if rank == 0:
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", port))
    ls.listen(1)
    c, _ = ls.accept()
else:
    while True:
        try:
            c = socket.create_connection(("127.0.0.1", port))
            break
        except ConnectionRefusedError:
            time.sleep(0.01)
c.sendall(b"x")
c.recv(1)
c.recv(100)
print("unreachable")
