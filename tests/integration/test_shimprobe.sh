#!/bin/bash
# Every interposed call on one connection, byte-exact (see shimprobe.c):
# rank 1's writes through write/send/writev/sendmsg/sendto and dup, fcntl
# and dup2 copies are all on one modelled connection (1722 bytes, offsets
# contiguous); the 64 bytes its forked child writes are not rank 1's; rank
# 0's reads through every read call add up to all 1786 bytes that arrived,
# the MSG_PEEK is not counted; /dev/null is not traced; the child is no rank.
#   test_shimprobe.sh UNIRUN UNITRACE SHIMPROBE
set -euo pipefail
. "$(dirname "$0")/lib.sh"
UNIRUN=$1 UNITRACE=$2 PROBE=$3
T=$(mktemp -d /tmp/uni-probe.XXXXXX)
trap 'rm -rf "$T"' EXIT
timeout 120 "$UNIRUN" -n 2 --mode record --trace "$T/t.unitrace" -- "$PROBE" "$T" >"$T/log" 2>&1 ||
	{ cat "$T/log"; fail "shimprobe under unirun"; }
"$UNITRACE" dump --json "$T/t.unitrace" | $PY -c '
import json, sys
recs = [json.loads(l) for l in sys.stdin]
def tot(kind, rank):
    return sum(r["len"] for r in recs if r["kind"] == kind and r["rank"] == rank)
def offs(kind, rank):
    pos = 0
    for r in sorted((r for r in recs if r["kind"] == kind and r["rank"] == rank), key=lambda r: r["off"]):
        assert r["off"] == pos, f"{kind} of rank {rank}: gap at {pos}"
        pos += r["len"]
    return pos
attached = sorted(r["rank"] for r in recs if r["kind"] == "rank_attach")
conns = [r for r in recs if r["kind"] == "conn"]
checks = [
    (attached == [0, 1], f"ranks attached {attached}"),
    (len(conns) == 2 and {c["peer"] for c in conns} == {0, 1}, f"conn records {conns}"),
    (tot("send", 1) == 1722, "rank 1 sent %d, want 1722" % tot("send", 1)),
    (offs("send", 1) == 1722, "rank 1 send offsets"),
    (tot("recv", 0) == 1786, "rank 0 read %d, want 1786 (1722 + 64 from the child)" % tot("recv", 0)),
    (offs("recv", 0) == 1786, "rank 0 recv offsets"),
    (tot("send", 0) == 1 and tot("recv", 1) == 1, "the ack byte"),
    (len([r for r in recs if r["kind"] == "conn_close"]) == 2, "one close per connection end"),
]
bad = [m for okk, m in checks if not okk]
for m in bad:
    print("FAIL:", m)
sys.exit(1 if bad else 0)
' || fail "trace of shimprobe"
ok "every interposed call traced byte-exact; dup/fcntl/dup2 copies on one connection; forked child pass-through"
