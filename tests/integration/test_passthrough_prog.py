#!/usr/bin/env python3
"""A small deterministic program for test_passthrough.sh.

  test_passthrough_prog.py [--wait-for FILE] [--timeout S]

Prints to stdout (only) the results of: arithmetic, a file written and read
back, stdin (when it is not a terminal), a TCP echo over loopback with
several message sizes (socket, bind, listen, accept, connect, send, recv,
sendall, recv_into, shutdown, close all go through the shim's wrappers), a
socketpair, a forked child's exit status and a subprocess's output.  The
output does not depend on pids, ports or time.  With --wait-for FILE it
first waits (at most --timeout seconds, default 30) until FILE exists.
"""

import argparse
import hashlib
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time


def echo_server(srv):
    conn, _ = srv.accept()
    with conn:
        while True:
            data = conn.recv(65536)
            if not data:
                break
            conn.sendall(data)


def recv_exact(s, n):
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        k = s.recv_into(view[got:], n - got)
        if k == 0:
            raise EOFError("peer closed")
        got += k
    return bytes(buf)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--wait-for", metavar="FILE")
    p.add_argument("--timeout", type=float, default=30.0)
    a = p.parse_args()
    if a.wait_for:
        deadline = time.monotonic() + a.timeout
        while not os.path.exists(a.wait_for):
            if time.monotonic() > deadline:
                print("timed out waiting for " + a.wait_for, file=sys.stderr)
                return 2
            time.sleep(0.02)

    print("sum", sum(i * i for i in range(1000)))

    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "f")
        with open(path, "wb") as f:
            f.write(bytes(range(256)) * 100)
        with open(path, "rb") as f:
            print("file", hashlib.sha256(f.read()).hexdigest())

    if not sys.stdin.isatty():
        data = sys.stdin.buffer.read()
        print("stdin", len(data), hashlib.sha256(data).hexdigest())

    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    t = threading.Thread(target=echo_server, args=(srv,))
    t.start()
    c = socket.create_connection(srv.getsockname())
    h = hashlib.sha256()
    for n in (1, 7, 4096, 100000, 1 << 20):
        msg = bytes((i * 31 + n) & 0xFF for i in range(n))
        c.sendall(msg)
        back = recv_exact(c, n)
        h.update(back)
        assert back == msg, n
    c.shutdown(socket.SHUT_WR)
    assert c.recv(1) == b""
    c.close()
    t.join()
    srv.close()
    print("tcp echo", h.hexdigest())

    x, y = socket.socketpair()
    x.sendall(b"pair")
    print("socketpair", y.recv(16).decode())
    x.close()
    y.close()

    pid = os.fork()
    if pid == 0:
        os._exit(7)
    _, st = os.waitpid(pid, 0)
    print("fork child status", os.waitstatus_to_exitcode(st))

    out = subprocess.run(["/bin/echo", "from", "subprocess"], capture_output=True, check=True)
    print("subprocess", out.stdout.decode().strip())
    print("done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
