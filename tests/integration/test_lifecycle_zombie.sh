#!/bin/bash
# A unid killed with SIGKILL whose parent has not reaped it yet (a zombie):
# this is how a killed unid looks for a while under a slow init, and forever
# under a container PID 1 that does not reap.  The test runs itself under
# test_lifecycle_reaper.py --never, which adopts unid (child subreaper) and reaps it
# only when asked, so the window is deterministic.
#
# Checks, with unid killed but not reaped:
#   - `unictl status` reports the session as stale and exits non-zero
#     (the daemon cannot serve: it is dead);
#   - `unictl stop` returns within a bounded time (30 s), non-zero, says
#     "stale" and removes the segment and the lock;
#   - `unictl start` of the same session succeeds over the leftovers, and
#     a clean `unictl stop` of that new unid (also never reaped) returns 0
#     within 30 s;
# and, with unid killed and reaped only while `unictl stop` already waits
# for it (the order of events under a slow init), that stop does not report
# a clean stop: non-zero, "stale", and the segment and lock are removed.
#
#   test_lifecycle_zombie.sh UNICTL UNIRUN UNITRACE UNISHIM
#
# Exit 0 pass, 1 fail, 99 bad usage.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/test_lifecycle_lib.sh"
lc_start "never" "$@"
BASE=lcz-$$
S1=$BASE-a
S2=$BASE-b
# reap PID: asks the subreaper to reap PID; waits for it (10 s at most).
reap() {
	rm -f "$UNI_TEST_REAPER_DIR/reaped"
	echo "$1" >"$UNI_TEST_REAPER_DIR/reap.pid"
	kill -USR1 "$UNI_TEST_REAPER_PID"
	for _ in $(seq 1 200); do
		[ -e "$UNI_TEST_REAPER_DIR/reaped" ] && break
		sleep 0.05
	done
	grep -q "^reaped $1\$" "$UNI_TEST_REAPER_DIR/reaped" 2>/dev/null
}
ppid_of() { sed 's/^.*) //' "/proc/$1/stat" | cut -d' ' -f2; }

cleanup() {
	set +e
	# Reap any zombie unid first, so that stop sees it gone.
	for p in ${P1:-} ${P2:-}; do
		[ "$(proc_state "$p")" = Z ] && reap "$p"
	done
	stop_sessions "$S1" "$S2"
	cd /
	rm -rf "$T"
}
trap cleanup EXIT

echo "== killed unid, not reaped yet ($S1)"
run start1 "$UNICTL" start --session "$S1" --mode record --trace "$T/a.unitrace"
expect_rc start1 0
run st "$UNICTL" status --session "$S1" --json
P1=$(json_get "$T/st.out" unid_pid)
check "unid pid $P1 was adopted by the test's subreaper (pid $UNI_TEST_REAPER_PID)" \
	test "$(ppid_of "$P1")" = "$UNI_TEST_REAPER_PID"
kill_unid "$P1"
for _ in $(seq 1 100); do
	[ "$(proc_state "$P1")" = Z ] && break
	sleep 0.02
done
check "unid pid $P1 is a zombie now (state $(proc_state "$P1"))" test "$(proc_state "$P1")" = Z
run status1 "$UNICTL" status --session "$S1"
expect_rc status1 nonzero
has "$T/status1.out" "stale"
run status1j "$UNICTL" status --session "$S1" --json
pycheck "$T/status1j.out" "j['alive'] is False"
RUN_TIMEOUT=30 run stop1 "$UNICTL" stop --session "$S1"
expect_rc stop1 nonzero
has "$T/stop1.err" "stale"
check "segment of $S1 removed by stop" seg_gone "$S1"
check "lock of $S1 removed by stop" lock_gone "$S1"
run start1b "$UNICTL" start --session "$S1" --mode record --trace "$T/a2.unitrace"
expect_rc start1b 0
# A clean stop of a live unid whose parent does not reap it: unid removes
# the segment and exits; stop must notice that without the pid vanishing.
RUN_TIMEOUT=30 run stop1b "$UNICTL" stop --session "$S1"
expect_rc stop1b 0
check "segment of $S1 removed after start over a zombie's session and stop" seg_gone "$S1"
check "zombie unid pid $P1 reaped" reap "$P1"

echo "== killed unid, reaped while 'unictl stop' waits for it ($S2)"
run start2 "$UNICTL" start --session "$S2" --mode record --trace "$T/b.unitrace"
expect_rc start2 0
run st2 "$UNICTL" status --session "$S2" --json
P2=$(json_get "$T/st2.out" unid_pid)
kill_unid "$P2"
for _ in $(seq 1 100); do
	[ "$(proc_state "$P2")" = Z ] && break
	sleep 0.02
done
set +e
timeout 30 "$UNICTL" stop --session "$S2" >"$T/stop2.out" 2>"$T/stop2.err" &
STOPPER=$!
set -e
sleep 0.5
check "zombie unid pid $P2 reaped while stop waits" reap "$P2"
set +e
wait "$STOPPER"
rc=$?
set -e
expect_rc stop2 nonzero
has "$T/stop2.err" "stale"
lacks "$T/stop2.out" "stopped"
check "segment of $S2 removed by stop" seg_gone "$S2"
check "lock of $S2 removed by stop" lock_gone "$S2"

finish test_lifecycle_zombie
