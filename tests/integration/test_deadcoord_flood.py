#!/usr/bin/env python3
"""Many small TCP messages, for test_deadcoord*.sh.

  test_deadcoord_flood.py [--wait-for FILE] [--timeout S] [--rounds N]

Optionally waits (at most --timeout s) until FILE exists, then opens a TCP
connection to itself over loopback and does N rounds (default 3000) of: 1
byte client -> server, 1 byte back.  Under the shim as an attached rank that
is 4 events per round, far more than one event ring holds (2048), so once
the coordinator is gone the ring fills and the shim must notice instead of
waiting for a drain that never comes.  Prints a digest of what came back
and "done"; the output does not depend on pids, ports or time.
"""

import argparse
import hashlib
import os
import socket
import sys
import time


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--wait-for", metavar="FILE")
    p.add_argument("--timeout", type=float, default=60.0)
    p.add_argument("--rounds", type=int, default=3000)
    a = p.parse_args()
    if a.wait_for:
        deadline = time.monotonic() + a.timeout
        while not os.path.exists(a.wait_for):
            if time.monotonic() > deadline:
                print("timed out waiting for " + a.wait_for, file=sys.stderr)
                return 2
            time.sleep(0.02)
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    c = socket.create_connection(srv.getsockname())
    s, _ = srv.accept()
    for x in (c, s):
        x.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    h = hashlib.sha256()
    for i in range(a.rounds):
        b = bytes([i & 0xFF])
        c.sendall(b)
        got = s.recv(1)
        s.sendall(got)
        back = c.recv(1)
        if back != b:
            print(f"round {i}: sent {b!r}, got back {back!r}", file=sys.stderr)
            return 1
        h.update(back)
    c.close()
    s.close()
    srv.close()
    print("rounds", a.rounds, h.hexdigest())
    print("done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
