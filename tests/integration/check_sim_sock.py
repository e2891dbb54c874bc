#!/usr/bin/env python3
"""Checks sim_sock.py's output (test_sim_sock.sh): a blocking sendall of S
bytes returns when all but the send buffer's bytes have left the sender,
(S - send_buffer) x 8 / bandwidth after it began (0 when S fits), within
0.5% + 0.5 ms (the CPU of copying it into the kernel), also when sent as
one sendmsg of two iovecs ("msg"), and when the socket has a timeout
(non-blocking: "timeout": CPython polls and writes what the kernel takes;
each such write returns at its completion); the receiver's last byte
arrives at latency + S x 8 / bandwidth after the send began (it reads at
or after that, within 2% + 5 ms of its own compute; no upper bound for
"timeout": the CPU of many small reads, when the sender's non-blocking
writes came in small parts, is charged to it);
the one-byte reply reaches the sender a latency
after the receiver sent it (within 1 ms).
  check_sim_sock.py DIR LATENCY_NS BANDWIDTH_BPS SEND_BUFFER|unlimited NAME"""
import sys

log, lat, bw, model = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), sys.argv[5]
buf = 1 << 62 if sys.argv[4] == "unlimited" else int(sys.argv[4])
sends, recvs = [], []
bad = 0
for line in open(log + "/rank0.txt").readlines() + open(log + "/rank1.txt").readlines():
    f = line.split()
    if f and f[0] == "sndtimeo":
        print(f"{model}: sendall past SO_SNDTIMEO raised {f[1]}")
        if f[1] != "BlockingIOError":
            print(f"FAIL: {model}: a blocking sendall past its SO_SNDTIMEO did not fail with EAGAIN"); bad = 1
    elif f and f[0] == "send":
        sends.append([int(x) for x in f[1:5]] + [f[5]])
    elif f and f[0] == "recv":
        recvs.append([int(x) for x in f[1:3]])
assert sends and len(sends) == len(recvs), f"{len(sends)} sends, {len(recvs)} receives"
for (size, t0, t1, t2, way), (rsize, tr) in zip(sends, recvs):
    assert size == rsize
    want = max(0, size - buf) * 8e9 / bw
    got = t1 - t0
    arr = t0 + lat + size * 8e9 / bw
    print(f"{model} {size} B ({way}): sendall took {got / 1e6:.3f} ms (model {want / 1e6:.3f}); "
          f"last byte read at +{(tr - t0) / 1e6:.3f} ms (arrives +{(arr - t0) / 1e6:.3f}); "
          f"reply +{(t2 - tr) / 1e6:.3f} ms after it was sent")
    if abs(got - want) > 0.005 * want + 5e5:  # + the CPU of the kernel copies
        print(f"FAIL: {model} {size} B: the sendall did not take the send-completion time"); bad = 1
    # Non-blocking writes come in parts as the kernel takes them (small
    # ones, when the reader is slow to drain the socket), and the reader's
    # CPU for as many small reads is its compute: it may read the last
    # byte well after it arrived, so only "not before" holds for them.
    slack = float("inf") if way == "timeout" else 0.02 * (arr - t0) + 5e6
    if not (arr - 1e3 <= tr <= arr + slack):
        print(f"FAIL: {model} {size} B: the receiver's last byte is not at its arrival"); bad = 1
    if not (lat <= t2 - tr <= lat + 1e6):
        print(f"FAIL: {model} {size} B: the reply did not take a latency"); bad = 1
sys.exit(bad)
