#!/bin/bash
# The coordinator dies (SIGKILL) under running ranks.
#
# A. Two ranks of tests/integration/collectives.py (--iters 6
#    --sleep-after-first 2), started by launch.py (no unirun) with
#    LD_PRELOAD=shim UNI_SESSION=S; unid is killed during the sleep after
#    the first iteration (once both ranks are attached, their connection is
#    modelled and their event counts have stopped moving).  Checks: the
#    ranks finish with status 0 in bounded time (no hang); each prints
#    exactly one "uniference: rank R: coordinator ... is gone" line and
#    nothing else from the shim; the results are bit-identical to a run
#    without the shim; the trace written before the kill is readable
#    (`unitrace summary` exits 0 and says the session did not end cleanly)
#    and holds both ranks' first iteration, consistent; `unictl status`
#    and `unictl stop` report the stale session (non-zero, "stale") and
#    stop removes the segment and lock.
# B. One rank (RANK=0 WORLD_SIZE=1) that attaches, waits while unid is
#    killed, then floods a loopback TCP connection (far more events than a
#    ring holds): it finishes with status 0 and the same output as without
#    the shim, and says once that the coordinator is gone.
#
#   test_deadcoord.sh UNICTL UNIRUN UNITRACE UNISHIM
#
# Exit 0 pass, 1 fail, 99 bad usage.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/test_lifecycle_lib.sh"
# Under a prompt reaper (as under systemd) the killed unid vanishes at once.
# This machine's init reaps orphans only every ~2 s, and a dead unid that is
# still a zombie looks alive to the shim: test_deadcoord_zombie.sh covers
# that window on purpose; here it would only make the outcome timing-bound.
lc_start "prompt" "$@"
S=dc-$$
S2=dc-$$-flood
BG=
cleanup() {
	set +e
	[ -n "$BG" ] && kill "$BG" 2>/dev/null && wait "$BG" 2>/dev/null
	stop_sessions "$S" "$S2"
	cd /
	rm -rf "$T"
}
trap cleanup EXIT
RUN_TIMEOUT=240

# wait_quiet SESSION NRANKS MIN_EVENTS OUT: polls `unictl status --json`
# (60 s at most) until NRANKS ranks are attached, each with MIN_EVENTS
# events or more, every connection is modelled, and the counts did not move
# for 0.4 s; the last status is left in OUT.
wait_quiet() {
	"$PY" - "$UNICTL" "$@" <<'EOF'
import json, subprocess, sys, time
unictl, session, nranks, min_events, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
deadline = time.monotonic() + 60
last, since = None, None
while time.monotonic() < deadline:
    p = subprocess.run([unictl, "status", "--session", session, "--json"], capture_output=True, text=True)
    if p.returncode == 0:
        open(out, "w").write(p.stdout)
        j = json.loads(p.stdout)
        ranks = [r for r in j["ranks"] if r["state"] == "attached"]
        ok = (len(ranks) == nranks and all(r["events"] >= min_events for r in ranks)
              and (nranks < 2 or j["modelled_connections"] >= 2))
        key = (j["events"], tuple(r["events"] for r in ranks))
        if ok and key == last:
            if time.monotonic() - since >= 0.4:
                sys.exit(0)
        else:
            last, since = key, time.monotonic()
    time.sleep(0.05)
try:
    last_status = open(out).read()
except OSError:
    last_status = "(none)"
print("wait_quiet: timed out; last status: " + last_status, file=sys.stderr)
sys.exit(1)
EOF
}

echo "== A. baseline: collectives.py --iters 6 without the shim"
run base "$PY" "$HERE/launch.py" -n 2 --timeout 200 -- "$PY" "$HERE/collectives.py" --iters 6 \
	--out "$T/base"
expect_rc base 0

echo "== A. two ranks under session $S, unid killed after the first iteration"
run start "$UNICTL" start --session "$S" --mode record --trace "$T/dc.unitrace"
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
check "both ranks attached, first iteration recorded, traffic quiet" \
	wait_quiet "$S" 2 50 "$T/st_before.json"
kill_unid "$P"
echo "  (killed unid pid $P $(( $(date +%s) - T0 )) s after the launch)"
gone_soon() { # gone_soon PID: gone, zombie included, within 1 s
	for _ in $(seq 1 50); do
		[ -e "/proc/$1" ] || return 0
		sleep 0.02
	done
	return 1
}
check "killed unid pid $P vanished within 1 s (prompt reaper)" gone_soon "$P"
pycheck "$T/st_before.json" "sorted(r['rank'] for r in j['ranks']) == [0, 1]"
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
occurs "$T/ranks.err" 'uniference:' 2
check "unid pid $P is gone" wait_reaped "$P"

run cmp "$PY" "$HERE/compare_outputs.py" "$T/base" "$T/shim"
expect_rc cmp 0
count "$T/cmp.out" '^identical: [1-9][0-9]* tensors$' 1

echo "== A. the trace written before the kill"
run sum "$UNITRACE" summary "$T/dc.unitrace"
expect_rc sum 0
has "$T/sum.out" "did not end cleanly"
run sumj "$UNITRACE" summary "$T/dc.unitrace" --json
expect_rc sumj 0
pycheck "$T/sumj.out" \
	"j['session'] == '$S'" \
	"j['complete'] is False" \
	"'session_end' not in j or not j['session_end']" \
	"j['nranks'] == 2 and [r['rank'] for r in j['ranks']] == [0, 1]" \
	"all(r['bytes_sent'] >= 600000 and r['bytes_received'] >= 600000 for r in j['ranks'])" \
	"j['consistent'] is True and j['mismatches'] == []" \
	"j['totals']['bytes_sent'] == j['totals']['bytes_received']"

echo "== A. the stale session"
run status "$UNICTL" status --session "$S"
expect_rc status nonzero
has "$T/status.out" "stale"
run stop "$UNICTL" stop --session "$S"
expect_rc stop nonzero
has "$T/stop.err" "stale"
check "segment removed" seg_gone "$S"
check "lock removed" lock_gone "$S"

echo "== B. baseline: flood without the shim"
run fbase "$PY" "$HERE/test_deadcoord_flood.py"
expect_rc fbase 0

echo "== B. one rank floods after unid was killed ($S2)"
run start2 "$UNICTL" start --session "$S2" --mode record --trace "$T/flood.unitrace"
expect_rc start2 0
run st2 "$UNICTL" status --session "$S2" --json
P2=$(json_get "$T/st2.out" unid_pid)
set +e
timeout 120 env RANK=0 WORLD_SIZE=1 LD_PRELOAD="$SHIM" UNI_SESSION="$S2" \
	"$PY" "$HERE/test_deadcoord_flood.py" --wait-for "$T/go" >"$T/flood.out" 2>"$T/flood.err" &
BG=$!
set -e
check "the flood rank attached" wait_quiet "$S2" 1 0 "$T/st2b.json"
kill_unid "$P2"
check "killed unid pid $P2 vanished within 1 s (prompt reaper)" gone_soon "$P2"
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
occurs "$T/flood.err" 'uniference:' 1
run stop2 "$UNICTL" stop --session "$S2"
expect_rc stop2 nonzero
has "$T/stop2.err" "stale"
check "segment of $S2 removed" seg_gone "$S2"

finish test_deadcoord
