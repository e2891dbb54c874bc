#!/usr/bin/env python3
"""Checks a simulate-mode trace of sim_p2p.py under alpha-beta against the
closed form: for each data message of S payload bytes (48-byte Gloo preamble
+ S), the virtual arrival of its last byte at rank 1 equals its start on the
wire + latency + (48 + S) * 8 / bandwidth within 0.5%, and it starts when it
is stamped or, at most, after the 48-byte notice queued ahead of it (FIFO); its stamp is not before the arrival of rank 1's
RECV_READY notice that released it (rule 3 of DESIGN section 4); and rank 1
ends (detaches) no earlier than the last arrival.

    unitrace dump --json T | check_sim_p2p.py --sizes ... --latency-ns L --bandwidth-bps B
"""
import argparse
import json
import sys

ap = argparse.ArgumentParser()
ap.add_argument("--sizes", required=True)
ap.add_argument("--latency-ns", type=float, required=True)
ap.add_argument("--bandwidth-bps", type=float, required=True)
a = ap.parse_args()
sizes = [int(x) for x in a.sizes.split(",")]
recs = [json.loads(l) for l in sys.stdin]
sends = sorted((r for r in recs if r["kind"] == "send" and r["rank"] == 0), key=lambda r: r["off"])
recvs = sorted((r for r in recs if r["kind"] == "recv" and r["rank"] == 1), key=lambda r: r["off"])
rr_arrivals = sorted(r["a"] for r in recs if r["kind"] == "recv" and r["rank"] == 0)
exits = {r["rank"]: r for r in recs if r["kind"] == "rank_exit"}

# Rank 0's stream: per message SEND_READY (48) then data (48 + S).
off = 0
errors = []
last_arrival = 0
for i, size in enumerate(sizes):
    off += 48                      # SEND_READY notify
    start_off, end_off = off, off + 48 + size
    off = end_off
    first = [s for s in sends if s["off"] == start_off]
    last = [r for r in recvs if r["off"] + r["len"] == end_off]
    if not first or not last:
        errors.append(f"size {size}: data message [{start_off},{end_off}) not found in the trace")
        continue
    s, r = first[0], last[0]
    stamp, start, arrival = s["t0"], s["a"], r["a"]
    want = a.latency_ns + (48 + size) * 8e9 / a.bandwidth_bps
    got = arrival - start
    err = abs(got - want) / want
    print(f"size {size:>9}: stamp {stamp/1e6:10.3f} ms, arrival - start {got/1e6:10.4f} ms, "
          f"closed form {want/1e6:10.4f} ms, error {err*100:.4f}%")
    if err > 0.005:
        errors.append(f"size {size}: error {err*100:.3f}% > 0.5%")
    # The link is FIFO: the data may queue behind the 48-byte SEND_READY of
    # the same message, never behind more.
    notify = 48 * 8e9 / a.bandwidth_bps
    if not stamp <= start <= stamp + notify + 1:
        errors.append(f"size {size}: started at {start}, stamped {stamp}: queued longer than one notify")
    released = [t for t in rr_arrivals if t <= stamp]
    if not released:
        errors.append(f"size {size}: stamped {stamp} before any RECV_READY arrived at rank 0")
    last_arrival = max(last_arrival, arrival)
if 1 in exits and exits[1]["t0"] < last_arrival:
    errors.append(f"rank 1 ended at {exits[1]['t0']} before the last arrival {last_arrival}")
for e in errors:
    print("FAIL:", e)
sys.exit(1 if errors else 0)
