#!/usr/bin/env python3
"""A program's own blocking TCP socket between two ranks (no Gloo): rank 0
sends one message of each size in --sizes with sendall and waits for a
one-byte reply from rank 1 after each; rank 1 reads them (checking the
bytes) and replies. Writes the clocks (time.monotonic_ns: virtual in
simulate mode) to DIR/rankR.txt:
  rank 0: "send S t_before t_after_sendall t_after_reply WAY"
  rank 1: "recv S t_after_last_byte"
Then, with --sndtimeo, rank 0 sets SO_SNDTIMEO (200 ms) and sends 64 MB
that rank 1 never reads: sendall must fail with EAGAIN (as without the
shim) instead of hanging; it writes "sndtimeo ERRNAME" and DIR/done, which
rank 1 waits for before it closes. Rank 1 listens on a free port it writes
to DIR/port. Used by test_sim_sock.sh."""
import argparse
import os
import socket
import struct
import time

ap = argparse.ArgumentParser()
ap.add_argument("dir")
ap.add_argument("--sizes", default="65536,1048576,16777216,4194304,4194304")
# How rank 0 sends each message: "all" sendall on the blocking socket;
# "timeout" sendall with a timeout set (CPython makes the socket
# non-blocking with ioctl(FIONBIO), polls and writes what the kernel takes:
# each write returns at its completion), then the timeout removed again;
# "msg" one sendmsg of two
# halves (two iovecs) on the blocking socket.
ap.add_argument("--ways", default="all,all,all,timeout,msg")
ap.add_argument("--sndtimeo", action="store_true")
# Both ranks sendall 16 MB before either reads: a deadlock on a real host
# too (both sockets fill); the run must end with unid's report.
ap.add_argument("--deadlock", action="store_true")
args = ap.parse_args()
rank = int(os.environ["RANK"])
sizes = [int(x) for x in args.sizes.split(",")]
ways = args.ways.split(",")
assert len(ways) == len(sizes)
port_file = os.path.join(args.dir, "port")
if rank == 1:
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(1)
    with open(port_file + ".tmp", "w") as f:
        f.write(str(ls.getsockname()[1]))
    os.rename(port_file + ".tmp", port_file)
    c, _ = ls.accept()
    if args.deadlock:
        c.sendall(bytes(16 << 20))
        c.recv(1)
    # A handshake first: the receiver's clock is then behind the first
    # message's arrival (its start-up compute, which may exceed the
    # sender's, no longer decides when it reads).
    assert c.recv(1) == b"h"
    c.sendall(b"h")
    out = open(os.path.join(args.dir, "rank1.txt"), "w")
    for i, size in enumerate(sizes):
        # Reads straight into the message (no compute between reads to
        # blur the last byte's arrival); checked after the reply.
        msg = bytearray(size)
        view, got = memoryview(msg), 0
        while got < size:
            n = c.recv_into(view[got:], size - got)
            assert n > 0, "connection closed early"
            got += n
        t = time.monotonic_ns()
        c.sendall(b"k")
        assert msg == bytes([i % 251]) * size, f"message {i}: wrong bytes"
        print(f"recv {size} {t}", file=out, flush=True)
    while args.sndtimeo and not os.path.exists(os.path.join(args.dir, "done")):
        time.sleep(0.01)
    c.close()
else:
    while not os.path.exists(port_file):
        time.sleep(0.01)
    with open(port_file) as f:
        port = int(f.read())
    s = socket.create_connection(("127.0.0.1", port))
    if args.deadlock:
        s.sendall(bytes(16 << 20))
        s.recv(1)
    s.sendall(b"h")
    assert s.recv(1) == b"h"
    out = open(os.path.join(args.dir, "rank0.txt"), "w")
    for i, size in enumerate(sizes):
        data = bytes([i % 251]) * size
        halves = [data[:size // 2], data[size // 2:]]  # (copied before the clock is read)
        if ways[i] == "timeout":
            s.settimeout(5.0)
        t0 = time.monotonic_ns()
        if ways[i] == "msg":
            assert s.sendmsg(halves) == size
        else:
            s.sendall(data)
        t1 = time.monotonic_ns()
        s.settimeout(None)
        assert s.recv(1) == b"k"
        t2 = time.monotonic_ns()
        print(f"send {size} {t0} {t1} {t2} {ways[i]}", file=out, flush=True)
    if args.sndtimeo:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, struct.pack("ll", 0, 200000))
        try:
            s.sendall(bytes(64 << 20))
            print("sndtimeo none", file=out, flush=True)
        except OSError as e:
            print(f"sndtimeo {type(e).__name__}", file=out, flush=True)
        open(os.path.join(args.dir, "done"), "w").close()
    s.close()
print(f"rank {rank} ok")
