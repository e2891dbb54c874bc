#!/bin/bash
# Simulate mode: two ranks that both receive first (a real Gloo job hangs
# 30 minutes). unirun must end within 60 s with status 97 and a report that
# names every blocked rank and thread, what it waits for (data from the
# other rank, Gloo slot and size), its virtual time and its native stack
# (libunwind: c10d's RecvWork::wait); the trace holds deadlock records and
# unitrace summary says DEADLOCK. Then the same pattern on a program's own
# TCP connection (sim_deadlock_sock.py), with and without --deterministic:
# status 97 and both reads named with their peer and virtual time.
#   test_sim_deadlock.sh UNIRUN UNITRACE
set -euo pipefail
. "$(dirname "$0")/lib.sh"
UNIRUN=$1 UNITRACE=$2
T=$(mktemp -d /tmp/uni-dl.XXXXXX)
trap 'rm -rf "$T"' EXIT
cat >"$T/c.yaml" <<YAML
mode: simulate
network: { model: alpha-beta, default: { latency: 2ms, bandwidth: 100Mbit } }
YAML
rc=0
start=$(date +%s)
timeout 120 "$UNIRUN" -n 2 --config "$T/c.yaml" --trace "$T/t.unitrace" -- $PY "$HERE/sim_deadlock.py" >"$T/out" 2>"$T/err" || rc=$?
took=$(( $(date +%s) - start ))
cat "$T/err"
[ $rc -eq 97 ] || fail "unirun exited $rc, want 97 (deadlock)"
[ $took -le 60 ] || fail "took $took s to detect"
grep -q "unirun: deadlock: every rank waits and nothing is in flight" "$T/err" || fail "no deadlock line"
for r in 0 1; do
	o=$((1 - r))
	grep -q "^rank $r (pid [0-9]*):" "$T/err" || fail "report does not name rank $r"
	grep -q "waits for data from rank $o (connection [0-9]*): 1 Gloo receive announced and not served, the last one slot 0x0, 4096 bytes" "$T/err" ||
		fail "report does not say rank $r waits for 4096 bytes from rank $o"
done
[ "$(grep -c "blocked on condition variable .* since virtual time" "$T/err")" -ge 2 ] || fail "blocked threads not listed with their virtual time"
[ "$(grep -c "RecvWork4wait" "$T/err")" -ge 2 ] || fail "native stacks do not show c10d's RecvWork::wait"
[ -s "$T/t.unitrace.deadlock.txt" ] || fail "no report file beside the trace"
"$UNITRACE" summary "$T/t.unitrace" >"$T/sum" || fail "unitrace summary"
grep -q "^DEADLOCK: unid found" "$T/sum" || fail "unitrace summary does not say DEADLOCK"
n=$("$UNITRACE" dump --json "$T/t.unitrace" | grep -c '"kind":"deadlock"' || true)
[ "$n" -ge 2 ] || fail "$n deadlock records in the trace"
grep -q unreachable "$T/out" && fail "a rank got past the deadlock"
ok "deadlock found in $took s: exit 97, report with ranks, peers, bytes, virtual times and stacks"

# The same on a program's own connection (no Gloo), with and without the
# deterministic turn: each rank's thread waits for bytes from the other.
PORT=$(free_port)
for det in "" --deterministic; do
	rc=0
	start=$(date +%s)
	timeout 120 "$UNIRUN" -n 2 $det --config "$T/c.yaml" --trace "$T/s.unitrace" -- $PY "$HERE/sim_deadlock_sock.py" $PORT \
		>"$T/sout" 2>"$T/serr" || rc=$?
	took=$(( $(date +%s) - start ))
	[ $rc -eq 97 ] || { cat "$T/serr"; fail "own sockets ${det:-}: unirun exited $rc, want 97 (deadlock)"; }
	[ $took -le 60 ] || fail "own sockets: took $took s to detect"
	grep -q "waiting for bytes on connection [0-9]* (from rank 1) for .* s, since virtual time" "$T/serr" &&
		grep -q "waiting for bytes on connection [0-9]* (from rank 0) for .* s, since virtual time" "$T/serr" ||
		{ cat "$T/serr"; fail "own sockets ${det:-}: the report does not name both waits"; }
	ok "own sockets ${det:-(without the turn)}: deadlock found in $took s, both reads named with peer and virtual time"
done
