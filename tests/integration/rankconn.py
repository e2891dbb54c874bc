"""Shared by the socket probes (det_sock.py, det_epoll.py, det_edge.py,
sim_determinism.py, sim_deadlock_sock.py, sim_early_exit.py): one rank listens on a port of
loopback, the others connect to it, retrying while refused (they may get
there first in real time); work(n) is a fixed block of pure-Python
compute."""
import socket
import time


def listen(port, backlog=1):
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", port))
    ls.listen(backlog)
    return ls


def accept_one(port):
    """The first connection made to port (the listener closed after)."""
    ls = listen(port)
    c, _ = ls.accept()
    ls.close()
    return c


def connect(port):
    while True:
        try:
            return socket.create_connection(("127.0.0.1", port))
        except ConnectionRefusedError:
            time.sleep(0.01)


def read_upto(c, n):
    """Reads until n bytes came or the peer closed; how many came."""
    got = 0
    while got < n:
        b = c.recv(1 << 20)
        if not b:
            break
        got += len(b)
    return got


def work(n):
    x = 0
    for i in range(n):
        x += i * i
    return x
