#!/bin/bash
# unirun prints where each thread was (uni_print_threads, as unictl status
# --threads), forwards SIGTERM and SIGINT to the ranks once, waits for them,
# stops its session (segment and lock removed, trace complete) and exits
# with 128 + the signal.
#   test_signals.sh UNIRUN UNITRACE
set -euo pipefail
. "$(dirname "$0")/lib.sh"
UNIRUN=$1 UNITRACE=$2
T=$(mktemp -d /tmp/uni-sig.XXXXXX)
trap 'rm -rf "$T"' EXIT
export OUT=$T

for sig in TERM INT; do
	S=sig-$sig-$$
	# Each rank records that it got the signal, then exits 0 on its own:
	# unirun must report the forwarded signal, not a failing rank.
	"$UNIRUN" -n 2 --mode record --session $S --trace "$T/$sig.unitrace" -- $PY -c '
import os, signal, sys, time
def h(s, f):
    open(os.environ["OUT"] + "/rank" + os.environ["RANK"], "a").write("got %d\n" % s)
    sys.exit(0)
signal.signal(signal.SIGTERM, h); signal.signal(signal.SIGINT, h)
open(os.environ["OUT"] + "/ready" + os.environ["RANK"], "w").close()
time.sleep(60)' >"$T/$sig.log" 2>&1 &
	runner=$!
	for _ in $(seq 1 300); do [ -e "$T/ready0" ] && [ -e "$T/ready1" ] && break; sleep 0.05; done
	[ -e "$T/ready0" ] && [ -e "$T/ready1" ] || fail "ranks did not start"
	kill -$sig $runner
	rc=0
	wait $runner || rc=$?
	want=$((128 + $(kill -l $sig)))
	[ $rc -eq $want ] || { cat "$T/$sig.log"; fail "unirun exited $rc after SIG$sig, want $want"; }
	# Before it forwards the signal, where each thread was (a run that
	# seemed to hang; in record mode a sleeping thread has not reported
	# yet: "no thread reports").
	grep -q "^unirun: .*: where each thread was:" "$T/$sig.log" || { cat "$T/$sig.log"; fail "SIG$sig: no table of threads"; }
	for r in 0 1; do
		[ "$(wc -l <"$T/rank$r")" -eq 1 ] || fail "rank $r got SIG$sig $(wc -l <"$T/rank$r") times, want once"
	done
	[ ! -e /dev/shm/uni.$S ] || fail "segment of $S left behind"
	[ ! -e /dev/shm/uni.$S.lock ] || fail "lock of $S left behind"
	"$UNITRACE" summary "$T/$sig.unitrace" >"$T/$sig.sum" || fail "summary of $S"
	grep -q "session end" "$T/$sig.sum" || fail "trace of $S has no session end"
	rm -f "$T"/rank* "$T"/ready*
	ok "SIG$sig forwarded once to each rank; unirun exited $want; session stopped cleanly"
done
