#!/bin/bash
# The coordinator dies (SIGKILL) under running ranks, and its parent has not
# reaped it: a zombie, as for a while under a slow init and forever under a
# container PID 1 that does not reap.  The test runs itself under
# test_lifecycle_reaper.py --never, which adopts unid and reaps it only when asked.
# A dead unid never drains a ring again, whatever its process-table state.
#
# A. Two ranks of collectives.py (--iters 6 --sleep-after-first 2, launch.py,
#    no unirun); unid is killed during the sleep and stays a zombie.  Checks:
#    the ranks finish with status 0 in bounded time, each says exactly once
#    that the coordinator is gone, results are bit-identical to a run
#    without the shim.
# B. One rank (RANK=0 WORLD_SIZE=1) floods a loopback TCP connection after
#    unid was killed (zombie): more events than a ring holds.  Checks: it
#    finishes within 60 s with status 0 and the same output as without the
#    shim, and says once that the coordinator is gone.
#
#   test_deadcoord_zombie.sh UNICTL UNIRUN UNITRACE UNISHIM
#
# Exit 0 pass, 1 fail, 99 bad usage.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/test_lifecycle_lib.sh"
lc_start "never" "$@"
S=dcz-$$
S2=dcz-$$-flood
BG=
P=
P2=
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
cleanup() {
	set +e
	[ -n "$BG" ] && kill "$BG" 2>/dev/null && wait "$BG" 2>/dev/null
	for p in $P $P2; do
		[ "$(proc_state "$p")" = Z ] && reap "$p"
	done
	stop_sessions "$S" "$S2"
	cd /
	rm -rf "$T"
}
trap cleanup EXIT
RUN_TIMEOUT=240
wait_zombie() {
	for _ in $(seq 1 100); do
		[ "$(proc_state "$1")" = Z ] && return 0
		sleep 0.02
	done
	return 1
}
# wait_attached SESSION N: N ranks attached, each with 50+ events when N > 1
# (the first iteration), and counts quiet for 0.4 s; 60 s at most.
wait_attached() {
	"$PY" - "$UNICTL" "$1" "$2" <<'EOF'
import json, subprocess, sys, time
unictl, session, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
deadline = time.monotonic() + 60
last, since = None, None
while time.monotonic() < deadline:
    p = subprocess.run([unictl, "status", "--session", session, "--json"], capture_output=True, text=True)
    if p.returncode == 0:
        j = json.loads(p.stdout)
        ranks = [r for r in j["ranks"] if r["state"] == "attached"]
        ok = len(ranks) == n and (n == 1 or all(r["events"] >= 50 for r in ranks))
        key = tuple(r["events"] for r in ranks)
        if ok and key == last:
            if time.monotonic() - since >= 0.4:
                sys.exit(0)
        else:
            last, since = key, time.monotonic()
    time.sleep(0.05)
sys.exit(1)
EOF
}

echo "== A. baseline: collectives.py --iters 6 without the shim"
run base "$PY" "$HERE/launch.py" -n 2 --timeout 200 -- "$PY" "$HERE/collectives.py" --iters 6 \
	--out "$T/base"
expect_rc base 0

echo "== A. two ranks, unid killed after the first iteration and never reaped ($S)"
run start "$UNICTL" start --session "$S" --mode record --trace "$T/dcz.unitrace"
expect_rc start 0
run st0 "$UNICTL" status --session "$S" --json
P=$(json_get "$T/st0.out" unid_pid)
T0=$(date +%s)
set +e
timeout 200 "$PY" "$HERE/launch.py" -n 2 --timeout 150 -- env LD_PRELOAD="$SHIM" UNI_SESSION="$S" \
	"$PY" "$HERE/collectives.py" --iters 6 --sleep-after-first 2 --out "$T/shim" \
	>"$T/ranks.out" 2>"$T/ranks.err" &
BG=$!
set -e
check "both ranks attached, first iteration recorded" wait_attached "$S" 2
kill_unid "$P"
check "killed unid pid $P is a zombie" wait_zombie "$P"
set +e
wait "$BG"
rc=$?
BG=
set -e
ELAPSED=$(( $(date +%s) - T0 ))
expect_rc ranks 0
check "ranks finished in bounded time (${ELAPSED} s <= 150 s)" test "$ELAPSED" -le 150
occurs "$T/ranks.out" 'rank 0 ok' 1
occurs "$T/ranks.out" 'rank 1 ok' 1
occurs "$T/ranks.err" "uniference: rank 0: coordinator of session '$S' \\(unid pid $P\\) is gone" 1
occurs "$T/ranks.err" "uniference: rank 1: coordinator of session '$S' \\(unid pid $P\\) is gone" 1
run cmp "$PY" "$HERE/compare_outputs.py" "$T/base" "$T/shim"
expect_rc cmp 0
check "zombie unid pid $P reaped" reap "$P"
run stop "$UNICTL" stop --session "$S"
expect_rc stop nonzero
has "$T/stop.err" "stale"

echo "== B. baseline: flood without the shim"
run fbase "$PY" "$HERE/test_deadcoord_flood.py"
expect_rc fbase 0

echo "== B. one rank floods after unid was killed, never reaped ($S2)"
run start2 "$UNICTL" start --session "$S2" --mode record --trace "$T/flood.unitrace"
expect_rc start2 0
run st2 "$UNICTL" status --session "$S2" --json
P2=$(json_get "$T/st2.out" unid_pid)
set +e
timeout 60 env RANK=0 WORLD_SIZE=1 LD_PRELOAD="$SHIM" UNI_SESSION="$S2" \
	"$PY" "$HERE/test_deadcoord_flood.py" --wait-for "$T/go" >"$T/flood.out" 2>"$T/flood.err" &
BG=$!
set -e
check "the flood rank attached" wait_attached "$S2" 1
kill_unid "$P2"
check "killed unid pid $P2 is a zombie" wait_zombie "$P2"
touch "$T/go"
set +e
wait "$BG"
rc=$?
BG=
set -e
expect_rc flood 0
if cmp -s "$T/flood.out" "$T/fbase.out"; then
	pass "flood output identical to the run without the shim"
else
	fail "flood output differs from the run without the shim"
	show "$T/flood.out"
fi
occurs "$T/flood.err" "uniference: rank 0: coordinator of session '$S2' \\(unid pid $P2\\) is gone" 1
check "zombie unid pid $P2 reaped" reap "$P2"
run stop2 "$UNICTL" stop --session "$S2"
expect_rc stop2 nonzero
has "$T/stop2.err" "stale"

finish test_deadcoord_zombie
