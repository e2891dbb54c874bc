#!/bin/bash
# Session lifecycle through unictl: start, status (text and --json), a second
# start of the same session, two sessions side by side, stop (segment, lock,
# trace), a second stop, stale segments left by a killed unid (status, start
# over it, stop over it), config errors (unknown key with file:line:key, YAML
# syntax error, missing file), a bad session name, and --mode simulate (not
# implemented yet).
#
#   test_lifecycle.sh UNICTL UNIRUN UNITRACE UNISHIM
#
# Exit 0 pass, 1 fail, 99 bad usage.  Needs /usr/bin/python3 (or $PYTHON)
# only for JSON checks.
set -euo pipefail

if [ $# -lt 4 ]; then
	echo "usage: $0 UNICTL UNIRUN UNITRACE UNISHIM" >&2
	exit 99
fi
UNICTL=$(realpath "$1")
UNITRACE=$(realpath "$3")
PY=${PYTHON:-/usr/bin/python3}

# Nothing from the caller's environment may steer the tools.
unset UNI_SESSION UNI_STRICT UNI_DISABLE LD_PRELOAD RANK WORLD_SIZE LOCAL_RANK \
	MASTER_ADDR MASTER_PORT UNI_UNID UNI_SHIM UNI_UNITRACE 2>/dev/null || true

T=$(mktemp -d "${TMPDIR:-/tmp}/test_lifecycle.XXXXXX")
cd "$T"
BASE=lc-$$
STARTED=() # sessions this test may have started

cleanup() {
	local s p
	set +e
	for s in "${STARTED[@]}"; do
		timeout 30 "$UNICTL" stop --session "$s" >/dev/null 2>&1
		# A unid that did not stop (or a segment left stale): remove what is ours.
		if [ -f "/dev/shm/uni.$s.lock" ]; then
			p=$(cat "/dev/shm/uni.$s.lock" 2>/dev/null)
			[ -n "$p" ] && kill -9 "$p" 2>/dev/null
		fi
		rm -f "/dev/shm/uni.$s" "/dev/shm/uni.$s.lock" "/tmp/uni.$s.log"
	done
	rm -rf "$T"
}
trap cleanup EXIT

failures=0
checks=0
fail() {
	echo "  FAIL: $*" >&2
	failures=$((failures + 1))
}
pass() {
	checks=$((checks + 1))
	echo "  ok: $*"
}
check() { # check DESCRIPTION CMD...: passes when CMD succeeds
	local what=$1
	shift
	if "$@"; then pass "$what"; else fail "$what"; fi
}
show() { sed 's/^/    | /' "$@" >&2; }

# run NAME CMD...: runs CMD (bounded), stdout in $T/NAME.out, stderr in
# $T/NAME.err, status in $rc.
run() {
	local name=$1
	shift
	set +e
	timeout 60 "$@" >"$T/$name.out" 2>"$T/$name.err"
	rc=$?
	set -e
}
expect_rc() { # expect_rc NAME WANT (WANT "nonzero" for any failure)
	local name=$1 want=$2
	if [ "$want" = nonzero ]; then
		if [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ]; then
			pass "$name: exits non-zero ($rc)"
		else
			fail "$name: exit $rc, want non-zero (124 = timed out)"
			show "$T/$name.out" "$T/$name.err"
		fi
	elif [ "$rc" -eq "$want" ]; then
		pass "$name: exits $want"
	else
		fail "$name: exit $rc, want $want"
		show "$T/$name.out" "$T/$name.err"
	fi
}
has() { # has FILE TEXT: fixed-string match
	if grep -qF -- "$2" "$1"; then
		pass "$(basename "$1") mentions '$2'"
	else
		fail "$(basename "$1") lacks '$2'"
		show "$1"
	fi
}
lines() { # lines FILE N: FILE has exactly N lines
	local n
	n=$(wc -l <"$1")
	if [ "$n" -eq "$2" ]; then
		pass "$(basename "$1") has $2 line(s)"
	else
		fail "$(basename "$1") has $n lines, want $2"
		show "$1"
	fi
}
pycheck() { # pycheck FILE EXPR...: each Python EXPR over j (FILE's JSON) is true
	local f=$1
	shift
	if "$PY" - "$f" "$@" <<'EOF'; then
import json, sys
j = json.load(open(sys.argv[1]))
bad = 0
for e in sys.argv[2:]:
    try:
        ok = eval(e, {"j": j})
    except Exception as ex:
        ok = False
        e += f"  ({type(ex).__name__}: {ex})"
    if not ok:
        print(f"  FAIL: {sys.argv[1]}: not true: {e}", file=sys.stderr)
        bad += 1
    else:
        print(f"  ok: {e}")
sys.exit(1 if bad else 0)
EOF
		checks=$((checks + $#))
	else
		failures=$((failures + 1))
		show "$f"
	fi
}
seg_gone() { [ ! -e "/dev/shm/uni.$1" ]; }
lock_gone() { [ ! -e "/dev/shm/uni.$1.lock" ]; }
pid_alive() { kill -0 "$1" 2>/dev/null; }
unid_pid() { "$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["unid_pid"])' "$1"; }
# wait_reaped PID: waits (10 s at most) until PID is gone for good, zombie
# included.  A unid killed with SIGKILL is a zombie until its new parent
# (init here) reaps it; see test_lifecycle_zombie.sh for that window.
wait_reaped() {
	local i
	for i in $(seq 1 200); do
		[ -e "/proc/$1" ] || return 0
		sleep 0.05
	done
	return 1
}

S1=$BASE-a
S2=$BASE-b
S3=$BASE-stale
S4=$BASE-stale2
S5=$BASE-cfg
STARTED=("$S1" "$S2" "$S3" "$S4" "$S5")

echo "== start and status ($S1)"
run start1 "$UNICTL" start --session "$S1" --mode record
expect_rc start1 0
has "$T/start1.out" "session '$S1' started"
run status1 "$UNICTL" status --session "$S1"
expect_rc status1 0
has "$T/status1.out" "session '$S1'"
has "$T/status1.out" "mode record"
has "$T/status1.out" "(running)"
has "$T/status1.out" "no rank has attached yet"
run status1j "$UNICTL" status --session "$S1" --json
expect_rc status1j 0
check "status --json is valid JSON (json.tool)" "$PY" -m json.tool "$T/status1j.out" >/dev/null
pycheck "$T/status1j.out" "j['session'] == '$S1'" "j['mode'] == 'record'" "j['alive'] is True" \
	"j['ranks'] == []" "j['trace'] == '$T/uni-trace/$S1.unitrace'"
P1=$(unid_pid "$T/status1j.out")
check "unid pid $P1 is alive" pid_alive "$P1"
has "$T/status1.out" "unid pid $P1"
check "segment /dev/shm/uni.$S1 exists" test -e "/dev/shm/uni.$S1"
check "lock /dev/shm/uni.$S1.lock exists" test -e "/dev/shm/uni.$S1.lock"
# UNI_SESSION is the default session name.
run status1e env UNI_SESSION="$S1" "$UNICTL" status
expect_rc status1e 0
has "$T/status1e.out" "session '$S1'"

echo "== the same session again"
run start1b "$UNICTL" start --session "$S1" --mode record
expect_rc start1b nonzero
has "$T/start1b.err" "already running"
lines "$T/start1b.err" 1
lines "$T/start1b.out" 0
check "the first unid (pid $P1) still runs" pid_alive "$P1"
run status1b "$UNICTL" status --session "$S1" --json
expect_rc status1b 0
pycheck "$T/status1b.out" "j['unid_pid'] == $P1"

echo "== two sessions side by side ($S1, $S2)"
run start2 "$UNICTL" start --session "$S2" --mode record --trace "$T/two.unitrace"
expect_rc start2 0
run status2 "$UNICTL" status --session "$S2" --json
expect_rc status2 0
pycheck "$T/status2.out" "j['session'] == '$S2'" "j['alive'] is True" "j['unid_pid'] != $P1" \
	"j['trace'] == '$T/two.unitrace'"
P2=$(unid_pid "$T/status2.out")
run status1c "$UNICTL" status --session "$S1" --json
expect_rc status1c 0
pycheck "$T/status1c.out" "j['unid_pid'] == $P1" "j['alive'] is True"
check "both unid pids alive" pid_alive "$P1"
check "second unid pid $P2 alive" pid_alive "$P2"

echo "== stop ($S1, $S2)"
run stop1 "$UNICTL" stop --session "$S1"
expect_rc stop1 0
has "$T/stop1.out" "session '$S1' stopped"
check "unid pid $P1 is gone after stop" wait_reaped "$P1"
check "segment /dev/shm/uni.$S1 removed" seg_gone "$S1"
check "lock /dev/shm/uni.$S1.lock removed" lock_gone "$S1"
TR1=$T/uni-trace/$S1.unitrace
check "trace $TR1 exists (default path, relative to the start directory)" test -s "$TR1"
run sum1 "$UNITRACE" summary "$TR1"
expect_rc sum1 0
has "$T/sum1.out" "session    $S1"
has "$T/sum1.out" "session end"
run sum1j "$UNITRACE" summary "$TR1" --json
expect_rc sum1j 0
pycheck "$T/sum1j.out" "j['session'] == '$S1'" "j['mode'] == 'record'" "j['complete'] is True" \
	"j['truncated'] is False" "j['nranks'] == 0" "j['unid_pid'] == $P1"
check "$S2 still runs after $S1 stopped" pid_alive "$P2"
run stop2 "$UNICTL" stop --session "$S2"
expect_rc stop2 0
check "segment /dev/shm/uni.$S2 removed" seg_gone "$S2"
check "trace $T/two.unitrace exists" test -s "$T/two.unitrace"
run sum2 "$UNITRACE" summary "$T/two.unitrace"
expect_rc sum2 0

echo "== stop again, status of a stopped session"
run stop1b "$UNICTL" stop --session "$S1"
expect_rc stop1b nonzero
has "$T/stop1b.err" "not running"
lines "$T/stop1b.err" 1
run status1d "$UNICTL" status --session "$S1"
expect_rc status1d nonzero
has "$T/status1d.err" "$S1"

echo "== stale segment: unid killed with SIGKILL, then status and start ($S3)"
run start3 "$UNICTL" start --session "$S3" --mode record --trace "$T/stale.unitrace"
expect_rc start3 0
run status3 "$UNICTL" status --session "$S3" --json
P3=$(unid_pid "$T/status3.out")
kill -9 "$P3"
check "killed unid pid $P3 is reaped" wait_reaped "$P3"
check "segment /dev/shm/uni.$S3 left behind" test -e "/dev/shm/uni.$S3"
run status3b "$UNICTL" status --session "$S3"
expect_rc status3b nonzero
has "$T/status3b.out" "stale"
has "$T/status3b.out" "unid pid $P3"
run status3j "$UNICTL" status --session "$S3" --json
expect_rc status3j nonzero
check "stale status --json is valid JSON" "$PY" -m json.tool "$T/status3j.out" >/dev/null
pycheck "$T/status3j.out" "j['alive'] is False" "j['unid_pid'] == $P3"
run start3b "$UNICTL" start --session "$S3" --mode record --trace "$T/stale2.unitrace"
expect_rc start3b 0
has "/tmp/uni.$S3.log" "stale"
has "/tmp/uni.$S3.log" "$P3"
run status3c "$UNICTL" status --session "$S3" --json
expect_rc status3c 0
pycheck "$T/status3c.out" "j['alive'] is True" "j['unid_pid'] != $P3" "j['trace'] == '$T/stale2.unitrace'"
run stop3 "$UNICTL" stop --session "$S3"
expect_rc stop3 0
check "segment /dev/shm/uni.$S3 removed" seg_gone "$S3"
check "lock of $S3 removed" lock_gone "$S3"
# The killed unid's trace is still readable (no session end).
run sum3 "$UNITRACE" summary "$T/stale.unitrace"
expect_rc sum3 0
has "$T/sum3.out" "did not end cleanly"

echo "== stale segment, then stop ($S4)"
run start4 "$UNICTL" start --session "$S4" --mode record --trace "$T/stale4.unitrace"
expect_rc start4 0
run status4 "$UNICTL" status --session "$S4" --json
P4=$(unid_pid "$T/status4.out")
kill -9 "$P4"
check "killed unid pid $P4 is reaped" wait_reaped "$P4"
run stop4 "$UNICTL" stop --session "$S4"
expect_rc stop4 nonzero
has "$T/stop4.err" "stale"
has "$T/stop4.err" "$P4"
check "stale segment /dev/shm/uni.$S4 removed by stop" seg_gone "$S4"
check "stale lock of $S4 removed by stop" lock_gone "$S4"
run stop4b "$UNICTL" stop --session "$S4"
expect_rc stop4b nonzero
has "$T/stop4b.err" "not running"

echo "== config errors ($S5)"
printf 'mode: record\nstrict: false\nbogus_key: 1\n' >"$T/unknown-key.yaml"
run cfg1 "$UNICTL" start --session "$S5" --config "$T/unknown-key.yaml"
expect_rc cfg1 nonzero
has "$T/cfg1.err" "unknown-key.yaml:3:"
has "$T/cfg1.err" "bogus_key"
lines "$T/cfg1.err" 1
check "no segment after a config error" seg_gone "$S5"
check "no lock after a config error" lock_gone "$S5"
printf 'mode: record\ntrace:\n  path: [a, b\n' >"$T/syntax.yaml"
run cfg2 "$UNICTL" start --session "$S5" --config "$T/syntax.yaml"
expect_rc cfg2 nonzero
has "$T/cfg2.err" "syntax.yaml:"
has "$T/cfg2.err" "syntax error"
lines "$T/cfg2.err" 1
check "no segment after a YAML syntax error" seg_gone "$S5"
run cfg3 "$UNICTL" start --session "$S5" --config "$T/does-not-exist.yaml"
expect_rc cfg3 nonzero
has "$T/cfg3.err" "does-not-exist.yaml"
lines "$T/cfg3.err" 1
check "no segment after a missing config" seg_gone "$S5"
# A good config: its mode and trace path are used.
printf 'mode: record\ntrace:\n  path: %s/cfg-{session}.unitrace\n' "$T" >"$T/good.yaml"
run cfg4 "$UNICTL" start --session "$S5" --config "$T/good.yaml"
expect_rc cfg4 0
run cfg4s "$UNICTL" status --session "$S5" --json
expect_rc cfg4s 0
pycheck "$T/cfg4s.out" "j['mode'] == 'record'" "j['trace'] == '$T/cfg-$S5.unitrace'"
run cfg4x "$UNICTL" stop --session "$S5"
expect_rc cfg4x 0
check "trace from the config's trace.path exists" test -s "$T/cfg-$S5.unitrace"

echo "== bad session names and modes"
run bad1 "$UNICTL" start --session "a/b" --mode record
expect_rc bad1 nonzero
has "$T/bad1.err" "bad session name 'a/b'"
lines "$T/bad1.err" 1
check "no segment for 'a/b'" test ! -e "/dev/shm/uni.a/b"
run bad2 "$UNICTL" start --session "$(printf 'x%.0s' $(seq 1 48))" --mode record
expect_rc bad2 nonzero
has "$T/bad2.err" "bad session name"
run bad3 env UNI_SESSION="../x" "$UNICTL" status
expect_rc bad3 nonzero
has "$T/bad3.err" "bad session name"
run sim "$UNICTL" start --session "$S5" --mode simulate
expect_rc sim nonzero
has "$T/sim.err" "not implemented"
has "$T/sim.err" "record"
lines "$T/sim.err" 1
check "no segment after --mode simulate" seg_gone "$S5"
check "no lock after --mode simulate" lock_gone "$S5"
run sim2 "$UNICTL" status --session "$S5"
expect_rc sim2 nonzero
run badmode "$UNICTL" start --session "$S5" --mode bogus
expect_rc badmode nonzero
has "$T/badmode.err" "unknown mode 'bogus'"

echo
if [ "$failures" -ne 0 ]; then
	echo "test_lifecycle: $failures failure(s), $checks checks passed"
	exit 1
fi
echo "test_lifecycle: all $checks checks passed"
