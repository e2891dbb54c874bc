#!/bin/bash
# `unictl stop` while unid cannot answer: unid is frozen (SIGSTOP) when the
# stop is asked for, so it has not drained, ended the trace or removed the
# segment.
#
#   A. unid is resumed (SIGCONT) 0.5 s later: stop exits 0, the segment and
#      lock are gone, the trace is complete (control case).
#   B. unid is killed (SIGKILL) instead: it never finished, so stop must not
#      report a clean stop: non-zero, a message naming unid's pid, the
#      segment and lock removed, and the trace (without its end) readable.
#
#   test_lifecycle_stopdeath.sh UNICTL UNIRUN UNITRACE UNISHIM
#
# Exit 0 pass, 1 fail, 99 bad usage.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/test_lifecycle_lib.sh"
# Under a prompt reaper a unid killed here vanishes at once.
lc_start "prompt" "$@"
S1=lcsd-$$-a
S2=lcsd-$$-b
P1=
P2=
STOPPER=
cleanup() {
	set +e
	for p in $P1 $P2; do
		kill -CONT "$p" 2>/dev/null
	done
	[ -n "$STOPPER" ] && kill "$STOPPER" 2>/dev/null && wait "$STOPPER" 2>/dev/null
	stop_sessions "$S1" "$S2"
	cd /
	rm -rf "$T"
}
trap cleanup EXIT

# stop_in_background NAME SESSION: starts `unictl stop` (30 s at most).
stop_in_background() {
	set +e
	timeout 30 "$UNICTL" stop --session "$2" >"$T/$1.out" 2>"$T/$1.err" &
	STOPPER=$!
	set -e
}
wait_stopper() {
	set +e
	wait "$STOPPER"
	rc=$?
	STOPPER=
	set -e
}
frozen() { [ "$(proc_state "$1")" = T ]; }

echo "== A. unid frozen during stop, then resumed ($S1)"
run start1 "$UNICTL" start --session "$S1" --mode record --trace "$T/a.unitrace"
expect_rc start1 0
run st1 "$UNICTL" status --session "$S1" --json
P1=$(json_get "$T/st1.out" unid_pid)
kill -STOP "$P1"
check "unid pid $P1 is stopped (SIGSTOP)" frozen "$P1"
stop_in_background stop1 "$S1"
sleep 0.5
check "unictl stop waits for the frozen unid" pid_alive "$STOPPER"
kill -CONT "$P1"
wait_stopper
expect_rc stop1 0
has "$T/stop1.out" "stopped"
check "segment of $S1 removed" seg_gone "$S1"
check "lock of $S1 removed" lock_gone "$S1"
run sum1 "$UNITRACE" summary "$T/a.unitrace" --json
expect_rc sum1 0
pycheck "$T/sum1.out" "j['complete'] is True"

echo "== B. unid frozen during stop, then killed ($S2)"
run start2 "$UNICTL" start --session "$S2" --mode record --trace "$T/b.unitrace"
expect_rc start2 0
run st2 "$UNICTL" status --session "$S2" --json
P2=$(json_get "$T/st2.out" unid_pid)
kill -STOP "$P2"
check "unid pid $P2 is stopped (SIGSTOP)" frozen "$P2"
stop_in_background stop2 "$S2"
sleep 0.5
check "unictl stop waits for the frozen unid" pid_alive "$STOPPER"
kill_unid "$P2"
wait_stopper
expect_rc stop2 nonzero
has "$T/stop2.err" "$P2"
lacks "$T/stop2.out" "session '$S2' stopped"
check "segment of $S2 removed" seg_gone "$S2"
check "lock of $S2 removed" lock_gone "$S2"
run sum2 "$UNITRACE" summary "$T/b.unitrace"
expect_rc sum2 0
has "$T/sum2.out" "did not end cleanly"

finish test_lifecycle_stopdeath
