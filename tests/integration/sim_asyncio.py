#!/usr/bin/env python3
"""A program's own asyncio server between two ranks (no Gloo). Rank 1's
main thread runs an asyncio event loop (epoll) serving one connection: it
reads one message of --size bytes (readexactly), notes its clock, computes
a fixed block of pure-Python work timed with its clock and its thread CPU
time, and replies one byte. Rank 0 connects with a blocking socket, sends
the message with sendall and waits for the reply. Before that, rank 1
awaits asyncio.sleep(0.25) (a timer: an epoll_wait time-out) and rank 0
waits 0.1 s for a byte that does not come on its socket with a time-out
(a poll time-out). Writes to DIR/rankR.txt:
  rank 0: "timeout VIRTUAL_NS" and "send SIZE t_before"
  rank 1: "asleep VIRTUAL_NS", "recv SIZE t_last_byte" and
          "compute VIRTUAL_NS CPU_NS"
Rank 1 listens on a free port it writes to DIR/port. Used by
test_sim_asyncio.sh."""
import argparse
import asyncio
import os
import socket
import time

ap = argparse.ArgumentParser()
ap.add_argument("dir")
ap.add_argument("--size", type=int, default=4 << 20)
# Rank 0 sends at once and blocks in the kernel's recv for the reply; rank
# 1 reads at once (no time-out probes): under nic the blocked reader held
# the horizon at its clock and the asyncio loop, which reads only final
# bytes, waited for ever.
ap.add_argument("--direct", action="store_true")
args = ap.parse_args()
rank = int(os.environ["RANK"])
port_file = os.path.join(args.dir, "port")


def work():
    x = 0
    for i in range(3_000_000):
        x = (x * 31 + i) % 1000003
    return x


async def serve():
    done = asyncio.Event()
    out = open(os.path.join(args.dir, "rank1.txt"), "w")

    async def handle(reader, writer):
        # asyncio's timers: an epoll_wait time-out moves the clock on.
        if not args.direct:
            s0 = time.monotonic_ns()
            await asyncio.sleep(0.25)
            print(f"asleep {time.monotonic_ns() - s0}", file=out, flush=True)
        msg = await reader.readexactly(args.size)
        t = time.monotonic_ns()
        assert msg == bytes([7]) * args.size, "wrong bytes"
        print(f"recv {args.size} {t}", file=out, flush=True)
        v0, c0 = time.perf_counter_ns(), time.thread_time_ns()
        work()
        v1, c1 = time.perf_counter_ns(), time.thread_time_ns()
        print(f"compute {v1 - v0} {c1 - c0}", file=out, flush=True)
        writer.write(b"k")
        await writer.drain()
        writer.close()
        done.set()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    with open(port_file + ".tmp", "w") as f:
        f.write(str(server.sockets[0].getsockname()[1]))
    os.rename(port_file + ".tmp", port_file)
    await done.wait()
    server.close()


if rank == 1:
    asyncio.run(serve())
else:
    while not os.path.exists(port_file):
        time.sleep(0.01)
    with open(port_file) as f:
        port = int(f.read())
    s = socket.create_connection(("127.0.0.1", port))
    data = bytes([7]) * args.size
    out = open(os.path.join(args.dir, "rank0.txt"), "w")
    # A socket time-out (CPython polls with it): 100 ms of virtual time.
    if not args.direct:
        s.settimeout(0.1)
        w0 = time.monotonic_ns()
        try:
            s.recv(1)
            print("timeout none", file=out, flush=True)
        except socket.timeout:
            print(f"timeout {time.monotonic_ns() - w0}", file=out, flush=True)
        s.settimeout(None)
    if args.direct:
        c0 = time.thread_time()
        while time.thread_time() - c0 < 0.05:  # some compute first
            pass
    t0 = time.monotonic_ns()
    s.sendall(data)
    assert s.recv(1) == b"k"
    print(f"send {args.size} {t0}", file=out, flush=True)
    s.close()
print(f"rank {rank} ok")
