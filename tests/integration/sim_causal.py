#!/usr/bin/env python3
"""Sleeps and connects in virtual-time order (docs/simulate.md, "Sleeps
and connects in causal order"). Rank 1 runs with slowdown 0.1 (a device
ten times faster than the host): its second of CPU is 100 ms of virtual
time. Two ranks, DIR/port names rank 0's listener.
1. "poll": rank 1 computes 1 s of CPU, then sends a byte; rank 0 polls
   for it with a non-blocking recv and 10 ms sleeps. In virtual time the
   byte comes at about 100 ms, so rank 0 must see it after about one poll
   (in real time its sleeps ran beside a second of compute: a hundred
   of them, 1000 ms, when a sleep ended by the real clock alone).
2. "connect": rank 0 computes 0.3 s of CPU (300 ms virtual) before it
   listens on a second port; rank 1 computes 1 s of CPU (100 ms virtual)
   and then tries to connect every 50 ms. In real time the listener is up
   long before; in virtual time it is not there before 300 ms, so rank 1
   must connect no earlier.
3. "pollwait": rank 1 computes 1 s of CPU again, then sends a byte; rank
   0 waits for it in poll() with 10 ms time-outs (as an event loop's
   timers do). Each time-out takes 10 ms of virtual time: a hundred of
   them ran out in real time beside the compute; in virtual time the
   byte comes after about 101 ms.
4. "accept": rank 0 listens on a third port and blocks in accept();
   rank 1 computes 1 s of CPU (100 ms virtual) and connects. The
   connection is not accepted before it is made: rank 0's accept returns
   about 100 ms after it began in virtual time (at once, when the
   accepting thread kept its own clock), and rank 0 speaks first.
5. "store": rank 0 computes 0.3 s of CPU (300 ms virtual) before it
   listens on MASTER_PORT, the rendezvous store's port, in slices with a
   short sleep after each (so its clock passes rank 1's long before it
   listens, as rank 0's does while it imports torch); rank 1 connects to
   it at once, and like torch's store client sleeps 1 s when refused.
   The store is up when it is needed (as under torchrun): rank 1's
   connect completes when rank 0 listens, about 300 ms, not after its
   1 s retry (it was refused in real time while rank 0 computed).
Prints "poll MS", "pollwait MS", "accept MS" (rank 0) and "connect MS",
"store MS" (rank 1), virtual ms."""
import os
import select
import socket
import sys
import time

d = sys.argv[1]
rank = int(os.environ["RANK"])


def burn(cpu_s):
    c0 = time.thread_time()
    x = 0
    while time.thread_time() - c0 < cpu_s:
        for i in range(10000):
            x = (x * 31 + i) % 1000003
    return x


def publish(name, port):
    with open(os.path.join(d, name + ".tmp"), "w") as f:
        f.write(str(port))
    os.rename(os.path.join(d, name + ".tmp"), os.path.join(d, name))


def port_of(name):
    p = os.path.join(d, name)
    while not os.path.exists(p):
        time.sleep(0.01)
    return int(open(p).read())


if rank == 0:
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(1)
    publish("port", ls.getsockname()[1])
    c, _ = ls.accept()
    assert c.recv(1) == b"s"  # both at the start line
    c.sendall(b"g")
    t0 = time.monotonic_ns()
    c.setblocking(False)
    while True:
        try:
            if c.recv(1) == b"x":
                break
        except BlockingIOError:
            time.sleep(0.01)
    print(f"poll {(time.monotonic_ns() - t0) / 1e6:.3f}", flush=True)
    c.setblocking(True)
    burn(0.3)
    l2 = socket.socket()
    l2.bind(("127.0.0.1", 0))
    l2.listen(1)
    publish("port2", l2.getsockname()[1])
    c2, _ = l2.accept()
    assert c2.recv(1) == b"y"
    c.sendall(b"h")
    t0 = time.monotonic_ns()
    p = select.poll()
    p.register(c, select.POLLIN)
    while not p.poll(10):
        pass
    assert c.recv(1) == b"z"
    print(f"pollwait {(time.monotonic_ns() - t0) / 1e6:.3f}", flush=True)
    l3 = socket.socket()
    l3.bind(("127.0.0.1", 0))
    l3.listen(1)
    publish("port3", l3.getsockname()[1])
    t0 = time.monotonic_ns()
    c3, _ = l3.accept()
    print(f"accept {(time.monotonic_ns() - t0) / 1e6:.3f}", flush=True)
    c3.sendall(b"g")
    c.sendall(b"e")
    for _ in range(15):
        burn(0.02)
        time.sleep(0.0001)
    l4 = socket.socket()
    l4.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    l4.bind(("127.0.0.1", int(os.environ["MASTER_PORT"])))
    l4.listen(1)
    c4, _ = l4.accept()
    c4.sendall(b"k")
else:
    s = socket.create_connection(("127.0.0.1", port_of("port")))
    s.sendall(b"s")
    assert s.recv(1) == b"g"
    burn(1.0)
    s.sendall(b"x")
    t0 = time.monotonic_ns()
    burn(1.0)
    # rank 0 publishes the port once it listens (in real time, long ago)
    p2 = port_of("port2")
    while True:
        try:
            c2 = socket.create_connection(("127.0.0.1", p2))
            break
        except ConnectionRefusedError:
            time.sleep(0.05)
    print(f"connect {(time.monotonic_ns() - t0) / 1e6:.3f}", flush=True)
    c2.sendall(b"y")
    assert s.recv(1) == b"h"
    burn(1.0)
    s.sendall(b"z")
    p3 = port_of("port3")
    burn(1.0)
    c3 = socket.create_connection(("127.0.0.1", p3))
    assert c3.recv(1) == b"g"
    assert s.recv(1) == b"e"
    t0 = time.monotonic_ns()
    while True:
        try:
            c4 = socket.create_connection(("127.0.0.1", int(os.environ["MASTER_PORT"])))
            break
        except ConnectionRefusedError:
            time.sleep(1.0)  # as torch's store client does
    print(f"store {(time.monotonic_ns() - t0) / 1e6:.3f}", flush=True)
    assert c4.recv(1) == b"k"
