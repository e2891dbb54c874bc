#!/bin/bash
# --deterministic and torch's rendezvous store (docs/simulate.md
# "Deterministic mode"): the turn follows the store's connections
# (costing nothing: a control plane) and its daemon thread.
# det_store.py (three ranks; rank 0 hosts a TCPStore; each rank computes,
# sets a key, meets the others in a store-based barrier that polls with
# sleeps, as init_process_group's does, and gets every key):
#   - recorded once, replayed twice with --compute-from: the turn is not
#     given up, every thread (main threads, the store's daemons) followed
#     the recorded run to its end, the two traces are the same file byte
#     for byte, and every rank polled the barrier as often as in the
#     recording (without the turn: the host's count, 1 to 18 seen);
#   - the store carries time: in every run no rank passes the barrier
#     (virtual clock) before the last rank added itself to it, and none has
#     every key before the last was set;
#   - with Gloo after the store (init_process_group on it, an all_reduce):
#     the turn holds to the end (test_sim_det_gloo.sh replays such a
#     program), and the sum is right.
#   test_sim_det_store.sh UNIRUN
set -euo pipefail
. "$(dirname "$0")/lib.sh"
UNIRUN=$1
det_session sdst 3 60
run() { det_run "$@"; }
polls() { grep '^rank [0-9]: polls' "$T/$1.log" | sort; }

run rec --deterministic -- $PY "$HERE/det_store.py"
for x in a b; do
	run $x --deterministic --compute-from "$T/rec.unitrace" -- $PY "$HERE/det_store.py"
	det_followed $x "$T/$x.log" 7
	cmp <(polls rec) <(polls $x) || fail "run $x polled the store's barrier another number of times"
done
for x in rec a b; do
	! grep -q "goes on without the turn" "$T/$x.log" || { cat "$T/$x.log"; fail "$x: the turn was given up"; }
	[ "$(polls $x | grep -c 'values 0 7 14$')" = 3 ] || { cat "$T/$x.log"; fail "$x: the values"; }
	$PY - "$T/$x.log" <<'PY' || fail "$x: the store did not carry time"
import sys
t = {}
for line in open(sys.argv[1]):
    if line.startswith("times: rank "):
        f = line.split()
        t[int(f[2])] = {f[i]: int(f[i + 1]) for i in range(3, len(f), 2)}
assert len(t) == 3, t
last_add = max(v["add"] for v in t.values())
last_set = max(v["set"] for v in t.values())
for r, v in t.items():
    assert v["passed"] >= last_add, (r, v, last_add)
    assert v["got"] >= last_set, (r, v, last_set)
PY
done
cmp "$T/a.unitrace" "$T/b.unitrace" || fail "two deterministic replays wrote different traces"
echo "det_store.py: the turn follows the store; two replays: the same trace ($(stat -c %s "$T/a.unitrace") bytes), the recorded polls: $(polls rec | sed 's/ values.*//' | tr '\n' ';')"

# The store's messages are no network traffic: unitrace summary counts them
# apart (a note; "store_messages" in --json), not in the totals or a
# pair's bytes, and they took no time (every one arrived when sent).
grep -qE "^note: the rendezvous store's [1-9][0-9]* messages" "$T/rec.log" ||
	{ cat "$T/rec.log"; fail "the summary does not set the store's messages apart"; }
grep -qE "^totals .* bytes sent 0, bytes received 0$" "$T/rec.log" ||
	{ grep "^totals" "$T/rec.log"; fail "the store's bytes are in the totals"; }
"${UNITRACE:-$(dirname "$UNIRUN")/unitrace}" dump --json "$T/rec.unitrace" | $PY -c '
import json, sys
recs = [json.loads(l) for l in sys.stdin]
store = {r["conn"] for r in recs if r["kind"] == "conn" and r["flags"] & 1}
sends = [r for r in recs if r["kind"] == "send" and r["conn"] in store]
assert store and sends, (len(store), len(sends))
late = [r for r in sends if r["t1"] != r["t0"]]
assert not late, late[:3]
print(f"the store: {len(store)} connection ends flagged, {len(sends)} sends, each arriving when sent")
' || fail "the store's connections are not flagged in the trace, or took time"

# Gloo after the store: the turn holds.
run g --deterministic -- $PY "$HERE/det_store.py" gloo
[ "$(grep -c '^rank [0-9]: sum \[6.0, 6.0, 6.0, 6.0\]$' "$T/g.log")" = 3 ] || { cat "$T/g.log"; fail "the Gloo program's sum"; }
! grep -q "goes on without the turn" "$T/g.log" || { cat "$T/g.log"; fail "the turn given up with Gloo"; }
echo "with Gloo after the store: the turn holds, the sum right"
ok "deterministic mode and the rendezvous store"
