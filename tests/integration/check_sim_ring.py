#!/usr/bin/env python3
"""Checks a simulate-mode trace of sim_ring.py (4 ranks: all_gather of
--gather-bytes per rank, then all_reduce of --reduce-bytes) against the
algorithms Gloo ran, under alpha-beta with negligible compute.

1. The message pattern: all_gather is Gloo's ring (gloo/allgather.cc): each
   rank sends 2(n-1) data messages of half its contribution, all to rank+1.
   all_reduce is Gloo's ring (gloo/allreduce.cc): numSegments =
   roundUp(max(ceil(bytes / 1 MiB), 2n), n) segments; each rank sends
   2(numSegments - numSegments/n) data messages of one segment, all to
   rank-1.
2. The timing: a reference model of those loops and of Gloo's TCP protocol,
   written here independently of the simulator, gives every rank's
   completion; the trace must agree within 1% of the collective's duration.
   The loops: at iteration i >= 2 a rank waits for its receive and its send
   of iteration i-2, then (while ops remain) posts the receive and the send
   of iteration i. The protocol: a receive posts RECV_READY (48 bytes, one
   latency); the data message (48 + payload bytes) is written when the send
   is posted and the matching RECV_READY has arrived, leaves when the
   connection's previous data has left (FIFO), and arrives latency +
   bytes / bandwidth after it left; a send is complete when its data is
   written and every byte of the connection but the last --send-buffer
   ones has left (network.send_buffer, default 640 kB; the connection's
   notices, 48 bytes each, are left out of that count), a receive when its
   last byte arrived.
   Each rank starts at the time of its first notification in the
   collective (read from the trace).
3. The program's own clock: each rank's printed duration agrees with the
   reference duration within 1%.

Usage: check_sim_ring.py DUMP.jsonl OUTPUT.log --latency-ns L --bandwidth-bps B
"""
import argparse
import collections
import json
import re
import sys

ap = argparse.ArgumentParser()
ap.add_argument("dump")
ap.add_argument("output")
ap.add_argument("--latency-ns", type=float, required=True)
ap.add_argument("--bandwidth-bps", type=float, required=True)
ap.add_argument("--gather-bytes", type=int, default=8_000_000)
ap.add_argument("--reduce-bytes", type=int, default=16_000_000)
ap.add_argument("--world", type=int, default=4)
ap.add_argument("--send-buffer", type=int, default=640_000)
args = ap.parse_args()
LAT, BW, N = args.latency_ns, args.bandwidth_bps, args.world
HDR = 48
NOTIFY = 4  # UNI_EVF_NOTIFY


def wire(nbytes):
    return nbytes * 8 / BW * 1e9


recs = [json.loads(l) for l in open(args.dump)]
sends = collections.defaultdict(list)  # (src, dst) -> chunks in stream order
for r in recs:
    if r["kind"] == "send" and r["len"] > 0:
        sends[(r["rank"], r["peer"])].append(r)
for ch in sends.values():
    ch.sort(key=lambda r: r["off"])


def messages(src, dst, size):
    """Data messages of `size` bytes (header included) src -> dst:
    contiguous non-notification chunks with one stamp (the rest of a message
    keeps its first part's stamp), split by size."""
    out, cur = [], None
    for c in sends[(src, dst)]:
        if c["flags"] & NOTIFY:
            cur = None
            continue
        if cur and cur["end"] == c["off"] and cur["stamp"] == c["t0"]:
            cur["end"] += c["len"]
            cur["t1"] = c["t1"]
            cur["parts"].append(c)
        else:
            cur = {"start": c["off"], "end": c["off"] + c["len"], "stamp": c["t0"],
                   "left": c["a"], "t1": c["t1"], "parts": [c]}
            out.append(cur)
    msgs = []
    for m in out:
        total = m["end"] - m["start"]
        if total % size:
            continue
        # split a run of back-to-back messages with one stamp
        acc, first = 0, None
        for c in m["parts"]:
            if acc == 0:
                first = c
            acc += c["len"]
            if acc == size:
                msgs.append({"stamp": first["t0"], "left": first["a"], "arrival": c["t1"]})
                acc = 0
            elif acc > size:
                raise SystemExit(f"a chunk straddles two {size}-byte messages {src}->{dst}")
    return msgs


def fail(msg):
    print("FAIL:", msg)
    sys.exit(1)


def reference(starts, dst_of, plan, size):
    """Per rank: the time each loop finishes (all its waits done) and the
    arrival of its last receive. plan = number of ops per phase."""
    # Post times, written/arrival times per rank and op index (all phases
    # numbered consecutively), solved by iterating to the fixed point.
    ops = sum(plan)
    INF = float("inf")
    post = {r: [starts[r]] * ops for r in range(N)}  # a lower bound
    for _ in range(4 * ops + 8):
        written = {r: [INF] * ops for r in range(N)}  # send completions
        arrival = {r: [INF] * ops for r in range(N)}  # receives of r, by index
        # data r -> dst_of(r), in order on one FIFO connection
        full = HDR + size
        for r in range(N):
            d = dst_of(r)
            free = -INF
            lefts = []
            for k in range(ops):
                w = max(post[r][k], post[d][k] + LAT + wire(HDR))
                left = max(w, free)
                lefts.append(left)
                free = left + wire(full)
                arrival[d][k] = free + LAT
                # complete when all but the last send_buffer bytes have left
                b = (k + 1) * full - args.send_buffer - 1
                if b >= 0:
                    j = b // full
                    w = max(w, lefts[j] + wire(b - j * full + 1))
                written[r][k] = w
        changed = False
        done = {}
        for r in range(N):
            t, base, new = starts[r], 0, []
            for K in plan:
                for i in range(K + 2):
                    if i >= 2:
                        t = max(t, arrival[r][base + i - 2], written[r][base + i - 2])
                    if i < K:
                        new.append(t)
                base += K
            done[r] = t
            if new != post[r]:
                post[r] = new
                changed = True
        if not changed:
            return done, {r: arrival[r][ops - 1] for r in range(N)}
    fail("reference model did not converge")


def check(name, size, dst_of, plan, printed):
    ops = sum(plan)
    msgs = {}
    for r in range(N):
        for d in range(N):
            if d == r:
                continue
            m = messages(r, d, size)
            if d == dst_of(r):
                if len(m) != ops:
                    fail(f"{name}: rank {r} sent {len(m)} messages of {size} B to rank {d}, Gloo's ring sends {ops}")
                msgs[r] = m
            elif m:
                fail(f"{name}: rank {r} sent {len(m)} data messages of {size} B to rank {d} (not its ring neighbour)")
    # Each rank's start: its first notification in the collective: the first
    # one on its data connection after the previous barrier's data reached it.
    starts = {}
    for r in range(N):
        first_data = msgs[r][0]["stamp"]
        prior = [c for c in sends[(r, dst_of(r))] if c["flags"] & NOTIFY and c["t0"] <= first_data]
        barrier = [c["t1"] for (s, d), ch in sends.items() if d == r for c in ch
                   if not c["flags"] & NOTIFY and c["len"] == HDR and c["t1"] <= first_data]
        bend = max(barrier) if barrier else 0
        cand = [c["t0"] for c in prior if c["t0"] >= bend]
        if not cand:
            fail(f"{name}: no notification from rank {r} opens the collective")
        starts[r] = min(cand)
    done, last = reference(starts, dst_of, plan, size)
    worst = 0.0
    for r in range(N):
        d = next(s for s in range(N) if dst_of(s) == r)
        got = msgs[d][-1]["arrival"]
        dur = last[r] - starts[r]
        err = abs(got - last[r]) / dur
        worst = max(worst, err)
        pr = printed[r] * 1e6
        perr = abs(pr - (done[r] - starts[r])) / (done[r] - starts[r])
        print(f"{name} rank {r}: start {starts[r]/1e9:.6f} s, last arrival {got/1e9:.6f} s, "
              f"reference {last[r]/1e9:.6f} s (error {100*err:.3f}%), program says {printed[r]:.3f} ms, "
              f"reference {(done[r]-starts[r])/1e6:.3f} ms (error {100*perr:.3f}%)")
        if err > 0.01:
            fail(f"{name}: rank {r} completes at {got/1e9:.6f} s, reference {last[r]/1e9:.6f} s")
        if perr > 0.01:
            fail(f"{name}: rank {r}'s program measured {printed[r]:.3f} ms, reference {(done[r]-starts[r])/1e6:.3f} ms")
    return worst


printed = {}
# Rank outputs share one pipe: a line may hold two results ("}{").
for m in re.finditer(r'\{"rank": \d+[^{}]*\}', open(args.output, errors="replace").read()):
    d = json.loads(m.group(0))
    printed[d["rank"]] = d
if sorted(printed) != list(range(N)):
    fail(f"ranks printed {sorted(printed)}")

half = args.gather_bytes // 2
check("all_gather", HDR + half, lambda r: (r + 1) % N, [2 * (N - 1)],
      {r: printed[r]["all_gather_ms"] for r in range(N)})
MiB = 1 << 20
nseg = -(-max(-(-args.reduce_bytes // MiB), 2 * N) // N) * N
seg = -(-args.reduce_bytes // nseg)
seg = -(-seg // 4) * 4
per_phase = nseg - nseg // N
check("all_reduce", HDR + seg, lambda r: (r - 1) % N, [per_phase, per_phase],
      {r: printed[r]["all_reduce_ms"] for r in range(N)})
print("ok")
