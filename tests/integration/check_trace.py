#!/usr/bin/env python3
"""Checks a record-mode trace of a Gloo job, read from `unitrace dump --json`.

    unitrace dump --json TRACE | check_trace.py --ranks N [--master-port P]

Asserts:
  * exactly ranks 0..N-1 attached, each once, and each exited cleanly
    (unless --allow-died lists it);
  * every modelled connection joins two different ranks, and the two
    CONN records of a pair point at each other;
  * the full mesh: every rank has a modelled connection to every other rank;
  * no modelled connection touches the rendezvous port (--master-port);
  * on every connection, the bytes one end wrote are exactly the bytes the
    other end read: send records cover offsets 0..T without gap or overlap,
    recv records on the peer cover 0..T the same way (unless a rank died);
  * the session ended (a session_end record).
Prints one line per finding and "trace ok: ..." on success; exit 1 on failure.
"""
import argparse
import json
import sys
from collections import defaultdict


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ranks", type=int, required=True)
    ap.add_argument("--master-port", type=int, default=0)
    ap.add_argument("--allow-died", type=int, action="append", default=[])
    ap.add_argument("--partial", action="store_true",
                    help="a rank was killed: only check that what was recorded is consistent")
    args = ap.parse_args()

    errors = []
    attach = defaultdict(int)
    exits = {}
    conns = {}                 # conn -> record
    sends = defaultdict(list)  # conn -> [(off, len)]
    recvs = defaultdict(list)
    ended = False
    for line in sys.stdin:
        r = json.loads(line)
        k = r["kind"]
        if k == "rank_attach":
            attach[r["rank"]] += 1
        elif k == "rank_exit":
            exits[r["rank"]] = r
        elif k == "conn":
            conns[r["conn"]] = r
        elif k == "send":
            sends[r["conn"]].append((r["off"], r["len"]))
        elif k == "recv":
            recvs[r["conn"]].append((r["off"], r["len"]))
        elif k == "session_end":
            ended = True

    want = set(range(args.ranks))
    if set(attach) != want:
        errors.append(f"ranks attached {sorted(attach)}, want {sorted(want)}")
    for rk, n in attach.items():
        if n != 1:
            errors.append(f"rank {rk} attached {n} times")
    for rk in want:
        e = exits.get(rk)
        if e is None:
            errors.append(f"rank {rk} has no rank_exit record")
        elif rk not in args.allow_died and not args.partial and not (e["flags"] & 1):
            errors.append(f"rank {rk} did not exit cleanly (flags {e['flags']})")
    if not ended:
        errors.append("no session_end record")

    mesh = defaultdict(set)
    for c, r in conns.items():
        peer = r["peer"]
        pc = r["a"]
        if peer == r["rank"] or peer < 0:
            errors.append(f"conn {c} of rank {r['rank']} has peer {peer}")
            continue
        other = conns.get(pc)
        if other is None or other["a"] != c or other["rank"] != peer or other["peer"] != r["rank"]:
            errors.append(f"conn {c} (rank {r['rank']}) and its peer conn {pc} do not point at each other")
        if args.master_port and args.master_port in (r["off"], r["len"]):
            errors.append(f"conn {c} of rank {r['rank']} uses the rendezvous port {args.master_port}")
        mesh[r["rank"]].add(peer)
    for rk in want:
        if mesh[rk] != want - {rk}:
            errors.append(f"rank {rk} has modelled connections to {sorted(mesh[rk])}, want {sorted(want - {rk})}")

    def cover(segs, what):
        segs = sorted(segs)
        pos = 0
        for off, ln in segs:
            if off != pos:
                errors.append(f"{what}: gap or overlap at offset {pos} (next record at {off})")
                return pos
            pos += ln
        return pos

    total = 0
    for c, r in conns.items():
        pc = r["a"]
        if pc not in conns:
            continue
        sent = cover(sends[c], f"sends of conn {c} (rank {r['rank']} -> {r['peer']})")
        got = cover(recvs[pc], f"recvs of conn {pc} (rank {r['peer']} <- {r['rank']})")
        if sent != got and not args.partial:
            errors.append(f"rank {r['rank']} -> {r['peer']}: {sent} bytes written, {got} read")
        if args.partial and got > sent:
            errors.append(f"rank {r['rank']} -> {r['peer']}: read {got} > written {sent}")
        total += sent
    if total == 0:
        errors.append("no bytes moved between ranks")

    for e in errors:
        print("check_trace:", e)
    if errors:
        return 1
    print(f"trace ok: {args.ranks} ranks, {len(conns)} connection ends, {total} bytes written "
          f"and read, rendezvous port {args.master_port or 'not checked'} unmodelled")
    return 0


if __name__ == "__main__":
    sys.exit(main())
