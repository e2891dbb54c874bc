#!/usr/bin/env python3
"""Deterministic mode's edge cases for the turn's socket buffer
(test_sim_det.sh). Arguments: PORT MODE [N].
  exchange N  both ranks sendall N bytes, then read N: natively the
              host's buffers hold both; in turn each writer may run only
              a buffer ahead of its reader, so both wait until the turn
              lets them further (it must, or this is a false deadlock).
              Each rank prints "rank R: sent N got N".
  peerclose   rank 1 reads 1000 bytes and closes; rank 0 sendall()s
              20 MB: it must get the kernel's error, not wait for room
              for ever. Rank 0 prints "rank 0: sendall: ERROR".
  sndtimeo    rank 0 sets a 300 ms send time-out (SO_SNDTIMEO) and
              sends 4 MB while rank 1 sleeps 2 s before it reads: the
              send stops at its time-out in virtual time. Rank 0 prints
              "rank 0: send: SENT of N after MS ms" (the virtual time the
              call took), rank 1 "rank 1: got SENT".
  select      rank 1 sleeps 200 ms, then writes 8 messages of 20 kB with
              30 ms of sleep between; rank 0 waits with select.select:
              first with a 50 ms time-out (it times out: "rank 0: select
              timed out after MS ms", virtual), then with 1 s, reading
              what select says is there, until all came ("rank 0: got N
              in K selects")."""
import os
import signal
import sys
import time

from rankconn import accept_one, connect, read_upto

rank = int(os.environ["RANK"])
port, mode = int(sys.argv[1]), sys.argv[2]
if rank == 0:
    c = accept_one(port)
else:
    c = connect(port)
if mode == "exchange":
    n = int(sys.argv[3])
    c.sendall(bytes([rank + 1]) * n)
    got = read_upto(c, n)
    print(f"rank {rank}: sent {n} got {got}", flush=True)
elif mode == "sndtimeo":
    import socket
    import struct
    n = 4_000_000
    if rank == 0:
        c.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, struct.pack("ll", 0, 300_000))
        t0 = time.monotonic_ns()
        try:
            sent = c.send(b"x" * n)
        except OSError:
            sent = 0
        ms = (time.monotonic_ns() - t0) / 1e6
        print(f"rank 0: send: {sent} of {n} after {ms:.3f} ms", flush=True)
        c.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, struct.pack("ll", 0, 0))
        c.sendall(b"!")
        c.shutdown(socket.SHUT_WR)
        c.recv(1)
    else:
        time.sleep(2)
        got = 0
        while True:
            b = c.recv(1 << 20)
            if not b or b.endswith(b"!"):
                got += len(b) - (1 if b else 0)
                break
            got += len(b)
        print(f"rank 1: got {got}", flush=True)
        c.close()
elif mode == "select":
    import select
    if rank == 0:
        t0 = time.monotonic_ns()
        r, _, _ = select.select([c], [], [], 0.05)
        print(f"rank 0: select timed out after {(time.monotonic_ns() - t0) / 1e6:.3f} ms" if not r
              else "rank 0: select did not time out", flush=True)
        got, k = 0, 0
        while got < 8 * 20000:
            r, w, _ = select.select([c], [c], [], 1.0)
            k += 1
            if not w:
                print("rank 0: not writable", flush=True)
            if r:
                b = c.recv(1 << 16)
                if not b:
                    break
                got += len(b)
            else:
                time.sleep(0.001)  # (writable only: wait a moment)
        print(f"rank 0: got {got} in {k} selects", flush=True)
    else:
        time.sleep(0.2)
        for _ in range(8):
            c.sendall(b"s" * 20000)
            time.sleep(0.03)
elif rank == 0:
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    try:
        c.sendall(b"x" * 20_000_000)
        print("rank 0: sendall returned", flush=True)
    except OSError as e:
        print(f"rank 0: sendall: {e.strerror}", flush=True)
else:
    c.recv(1000)
    c.close()
    time.sleep(0.5)
c.close()
