#!/usr/bin/env python3
"""Checks `unitrace export --chrome` of a real simulate-mode trace against
the trace itself (its `unitrace dump --json`): valid JSON, a named process
per rank, a slice per send and per recv on the thread that made it, a
"wire" slice per send on its link track from leaving to arrival, and
arrows (flow events) that start at a send and end at the read that
completes it, later in time; every Gloo data message that a single read
completes has one.

Usage: check_chrome.py EXPORT.json DUMP.jsonl"""
import collections
import json
import sys

j = json.load(open(sys.argv[1]))
dump = [json.loads(l) for l in open(sys.argv[2])]
ev = j["traceEvents"]
fails = []


def need(cond, what):
    if not cond:
        fails.append(what)


need(j["otherData"]["mode"] == "simulate" and j["otherData"]["time"] == "virtual", "header")
ranks = sorted({r["rank"] for r in dump if r["kind"] == "rank_attach"})
procs = {e["pid"]: e["args"]["name"] for e in ev if e["ph"] == "M" and e["name"] == "process_name"}
need(sorted(procs) == ranks, f"processes {sorted(procs)} != ranks {ranks}")
sends = [r for r in dump if r["kind"] == "send"]
recvs = [r for r in dump if r["kind"] == "recv"]
X = collections.Counter(e["cat"] for e in ev if e["ph"] == "X")
need(X["send"] == len(sends), f"{X['send']} send slices, {len(sends)} sends")
need(X["recv"] == len(recvs), f"{X['recv']} recv slices, {len(recvs)} recvs")
need(X["wire"] == len(sends), f"{X['wire']} wire slices, {len(sends)} sends")
# every slice sits where its record says (microseconds, ns decimals)
wire = sorted((round(e["ts"] * 1000), round(e["dur"] * 1000)) for e in ev if e.get("cat") == "wire")
need(wire == sorted((r["a"], r["t1"] - r["a"]) for r in sends), "wire slices differ from the sends' leave/arrival")
tracks = {(e["pid"], e["tid"]) for e in ev if e["ph"] == "M" and e["name"] == "thread_name"}
need(all((e["pid"], e["tid"]) in tracks for e in ev if e["ph"] == "X"), "a slice on an unnamed track")
s = {e["id"]: e for e in ev if e["ph"] == "s"}
f = {e["id"]: e for e in ev if e["ph"] == "f"}
need(set(f) <= set(s), f"{len(set(f) - set(s))} arrows end without a start")
# An arrow ends at the start of the read's slice (a reader may have begun
# waiting before the send); the read must not finish before the send began.
recv_slice = {}
for e in ev:
    if e["ph"] == "X" and e["cat"] == "recv":
        recv_slice[(e["pid"], e["tid"], e["ts"])] = e
ok_time = 0
for i in f:
    sl = recv_slice.get((f[i]["pid"], f[i]["tid"], f[i]["ts"]))
    need(sl is not None, f"arrow {i} does not start a read slice")
    if sl is not None:
        need(sl["ts"] + sl["dur"] >= s[i]["ts"] - 1e-3, f"arrow {i}: the read ends before the send")
        ok_time += 1
need(all(f[i]["pid"] != s[i]["pid"] for i in f), "an arrow stays inside one rank")
data = [r for r in sends if not r["flags"] & 4 and r["len"] > 48]
ends = {(r["conn"], r["off"] + r["len"]) for r in recvs}
conn_peer = {r["conn"]: r["a"] for r in dump if r["kind"] == "conn"}
matched = sum(1 for r in data if f"c{r['conn']}e{r['off'] + r['len']}" in f)
completes = sum(1 for r in data
                if any((rc, r["off"] + r["len"]) in ends for rc, pc in conn_peer.items() if pc == r["conn"]))
need(completes > 0 and matched == completes, f"{matched} data arrows, {completes} data sends completed by one read")
print(f"chrome export: {len(ev)} events, {len(procs)} processes, {X['send']} sends, {X['recv']} recvs, "
      f"{len(f)} arrows ({matched} of {len(data)} data messages)")
for m in fails:
    print("FAIL:", m)
sys.exit(1 if fails else 0)
