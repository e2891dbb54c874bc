#!/usr/bin/env python3
"""Deterministic mode's epoll probe (test_sim_det.sh): an event loop on
epoll in rank 0's main thread serves ranks 1 and 2, which connect and
send messages of several sizes with compute between them, and a pipe that
a thread of rank 0 writes now and then (sleeping between its writes). The
loop handles what epoll says is ready: accepts, reads (a large buffer),
pipe bytes; to each client, once it has sent all, it replies 256 kB on the
non-blocking socket, waiting for room with EPOLLOUT. Rank 0 prints what it
handled in order ("events: ..."), the virtual clock at each event
("clocks: ...", ns from the first), and each client prints the sizes its reads of the reply
returned. Without the turn the order and the sizes are the host's; in
turn, those of the virtual network. Arguments: PORT (rank 0 listens),
and optionally "pipe" (the pipe and its thread; without it the loop
serves the sockets alone)."""
import os
import select
import sys
import threading
import time

from rankconn import connect, listen, work

rank = int(os.environ["RANK"])
port = int(sys.argv[1])
SIZES = {1: [5000, 70000, 300, 90000, 12000], 2: [800, 40000, 60000, 2000, 30000]}
REPLY = 256 << 10
PIPE_BYTES = 6 if sys.argv[2:] == ["pipe"] else 0


if rank == 0:
    ls = listen(port, 4)
    ls.setblocking(False)
    rfd, wfd = os.pipe()

    def ticker():
        for _ in range(PIPE_BYTES):
            time.sleep(0.004)
            os.write(wfd, b"x")

    th = threading.Thread(target=ticker)
    th.start()
    ep = select.epoll()
    ep.register(ls.fileno(), select.EPOLLIN)
    if PIPE_BYTES:
        ep.register(rfd, select.EPOLLIN)
    conns, got, out = {}, {}, {}
    events, clocks = [], []
    done, ticks = 0, 0
    while done < 2 or ticks < PIPE_BYTES:
        for fd, ev in ep.poll(1.0):
            clocks.append(time.monotonic_ns())
            if fd == ls.fileno():
                c, _ = ls.accept()
                c.setblocking(False)
                conns[c.fileno()] = c
                got[c.fileno()] = 0
                ep.register(c.fileno(), select.EPOLLIN)
                events.append("accept")
            elif fd == rfd:
                ticks += len(os.read(rfd, 64))
                events.append("pipe")
            elif ev & select.EPOLLOUT:
                c = conns[fd]
                n = c.send(out[fd])
                out[fd] = out[fd][n:]
                events.append(f"w{n}")
                if not out[fd]:
                    ep.unregister(fd)
                    c.close()
                    done += 1
            else:
                b = conns[fd].recv(1 << 20)
                got[fd] += len(b)
                events.append(f"r{len(b)}")
                work(2000)
                if len(b) and got[fd] in (sum(SIZES[1]), sum(SIZES[2])):
                    out[fd] = bytes(REPLY)
                    ep.modify(fd, select.EPOLLOUT)
    th.join()
    # (The virtual clock's origin is the host's at the session's start.)
    clocks = [c - clocks[0] for c in clocks]
    sys.stdout.write("events: " + " ".join(events) + "\nclocks: " + " ".join(map(str, clocks)) + "\n")
    sys.stdout.flush()
else:
    work(200000 * rank)  # rank 0 listens first in virtual time
    c = connect(port)
    for s in SIZES[rank]:
        c.sendall(bytes([s % 251]) * s)
        work(10000 * rank)
    reads, n = [], 0
    while n < REPLY:
        b = c.recv(1 << 20)
        if not b:
            break
        n += len(b)
        reads.append(len(b))
        work(1000)
    c.close()
    sys.stdout.write(f"reply{rank}: " + " ".join(map(str, reads)) + "\n")
    sys.stdout.flush()
