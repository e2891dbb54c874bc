#!/bin/bash
# A rank killed mid-run: unirun names it and exits with its status
# (128 + 9), stops the others, and the trace written so far is readable,
# says that rank died, and what it recorded is consistent (no byte read
# that was not written).
#   test_killrank.sh UNIRUN UNICTL UNITRACE
set -euo pipefail
. "$(dirname "$0")/lib.sh"
UNIRUN=$1 UNICTL=$2 UNITRACE=$3
T=$(mktemp -d /tmp/uni-kill.XXXXXX)
S=kill-$$
trap 'rm -rf "$T"; "$UNICTL" stop --session $S >/dev/null 2>&1 || true' EXIT

timeout 300 "$UNIRUN" -n 3 --mode record --session $S --trace "$T/t.unitrace" -- \
	$PY "$HERE/collectives.py" --iters 50 --sleep-after-first 3 --out "$T/out" >"$T/log" 2>&1 &
runner=$!
# Wait until all three ranks are attached and have sent traffic.
pid=""
for _ in $(seq 1 200); do
	pid=$("$UNICTL" status --session $S --json 2>/dev/null | $PY -c '
import json,sys
s=json.load(sys.stdin)
r=[x for x in s["ranks"] if x["state"]=="attached"]
if len(r)==3 and s["modelled_connections"]>=6: print([x["pid"] for x in r if x["rank"]==1][0])' || true)
	[ -n "$pid" ] && break
	sleep 0.1
done
[ -n "$pid" ] || { cat "$T/log"; fail "ranks never attached"; }
sleep 0.5
kill -9 "$pid"
rc=0
wait $runner || rc=$?
cat "$T/log"
[ $rc -eq 137 ] || fail "unirun exited $rc, want 137 (rank 1 killed by signal 9)"
grep -q "unirun: rank 1 (pid $pid) was killed by signal 9" "$T/log" || fail "unirun did not name rank 1"
ok "unirun named the killed rank and exited 137"
"$UNITRACE" summary "$T/t.unitrace" >"$T/sum" || fail "unitrace summary failed"
grep -q "rank 1: pid $pid, died" "$T/sum" || { cat "$T/sum"; fail "summary does not say rank 1 died"; }
"$UNITRACE" dump --json "$T/t.unitrace" | $PY "$HERE/check_trace.py" --ranks 3 --partial ||
	fail "partial trace inconsistent"
ok "trace readable up to the kill and consistent"
