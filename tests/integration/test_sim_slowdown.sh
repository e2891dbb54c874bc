#!/bin/bash
# Simulate mode: a rank with slowdown 3 is charged 3x the compute virtual
# time of an identical rank (same program, same work): the ratio of the
# main threads' compute is 3 within 10% (CPU time of two processes doing
# the same work differs by a few percent; virtual time only, never wall
# time, so a loaded machine does not matter). The barrier makes rank 0 wait
# for rank 1: rank 0's communication time covers most of the difference.
#   test_sim_slowdown.sh UNIRUN UNITRACE
set -euo pipefail
. "$(dirname "$0")/lib.sh"
UNIRUN=$1 UNITRACE=$2
T=$(mktemp -d /tmp/uni-slow.XXXXXX)
trap 'rm -rf "$T"' EXIT
cat >"$T/c.yaml" <<YAML
mode: simulate
network: { model: alpha-beta, default: { latency: 1ms, bandwidth: 1Gbit } }
devices:
  default: { slowdown: 1.0 }
  ranks: { 1: { slowdown: 3.0 } }
YAML
timeout 300 "$UNIRUN" -n 2 --config "$T/c.yaml" --trace "$T/t.unitrace" -- $PY "$HERE/sim_slowdown.py" >"$T/log" 2>&1 ||
	{ cat "$T/log"; fail "sim_slowdown under unirun"; }
"$UNITRACE" summary --json "$T/t.unitrace" | $PY -c '
import json, sys
d = json.load(sys.stdin)
r = {x["rank"]: x for x in d["ranks"]}
c0, c1 = r[0]["compute_ms"], r[1]["compute_ms"]
w0 = r[0]["communication_ms"]
e0, e1 = r[0]["end_ns"] / 1e6, r[1]["end_ns"] / 1e6
print(f"compute: rank 0 {c0:.1f} ms, rank 1 {c1:.1f} ms, ratio {c1/c0:.3f}; rank 0 waited {w0:.1f} ms")
assert 2.7 <= c1 / c0 <= 3.3, "compute ratio %.3f is not 3 within 10%%" % (c1 / c0)
# Part of the compute difference comes after the barrier (interpreter exit,
# also 3x slower on rank 1), so the wait covers most of it, not all.
assert w0 >= 0.6 * (c1 - c0), "rank 0 waited %.1f ms for a rank %.1f ms behind" % (w0, c1 - c0)
' || fail "slowdown"
ok "slowdown 3 gives 3x the compute virtual time; the barrier makes the fast rank wait"
