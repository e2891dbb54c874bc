# Shared helpers of the bash integration tests test_lifecycle*.sh,
# test_passthrough.sh, test_torchrun.sh and test_deadcoord*.sh.  Sourced, not
# run.  Each test starts with
#
#   HERE=$(cd "$(dirname "$0")" && pwd)
#   . "$HERE/test_lifecycle_lib.sh"
#   lc_start MODE "$@"
#
# lc_start checks the arguments (UNICTL UNIRUN UNITRACE UNISHIM), re-runs the
# test under test_lifecycle_reaper.py --MODE (prompt or never; "" for none),
# sets UNICTL UNIRUN UNITRACE SHIM (absolute) and T (a temp dir named after
# the test), and changes into T.
#
#   check DESC CMD...    passes when CMD succeeds
#   run NAME CMD...      runs CMD bounded by $RUN_TIMEOUT (60 s); stdout in
#                        $T/NAME.out, stderr in $T/NAME.err, status in $rc
#   expect_rc NAME WANT  WANT a number, or "nonzero" (any failure but 124)
#   has FILE TEXT / lacks FILE TEXT / lines FILE N / count FILE REGEX N
#   occurs FILE REGEX N  N matches anywhere (not per line)
#   pycheck FILE EXPR... each Python EXPR over j (FILE's JSON) is true
#   finish NAME          prints the verdict, returns 0 or 1

PY=${PYTHON:-/usr/bin/python3}

lc_start() {
	local mode=$1
	shift
	if [ $# -lt 4 ]; then
		echo "usage: $0 UNICTL UNIRUN UNITRACE UNISHIM" >&2
		exit 99
	fi
	if [ -n "$mode" ] && [ "${UNI_TEST_REAPER_MODE:-}" != "$mode" ]; then
		exec "$PY" "$HERE/test_lifecycle_reaper.py" "--$mode" /bin/bash "$0" "$@"
	fi
	UNICTL=$(realpath "$1")
	UNIRUN=$(realpath "$2")
	UNITRACE=$(realpath "$3")
	SHIM=$(realpath "$4")
	T=$(mktemp -d "${TMPDIR:-/tmp}/$(basename "$0" .sh).XXXXXX")
	cd "$T"
}

failures=0
checks=0
RUN_TIMEOUT=${RUN_TIMEOUT:-60}

# Nothing from the caller's environment may steer the tools or the shim.
unset UNI_SESSION UNI_STRICT UNI_DISABLE LD_PRELOAD RANK WORLD_SIZE LOCAL_RANK \
	LOCAL_WORLD_SIZE GROUP_RANK MASTER_ADDR MASTER_PORT UNI_UNID UNI_SHIM \
	UNI_UNITRACE 2>/dev/null || true

fail() {
	echo "  FAIL: $*" >&2
	failures=$((failures + 1))
}
pass() {
	checks=$((checks + 1))
	echo "  ok: $*"
}
check() {
	local what=$1
	shift
	if "$@"; then pass "$what"; else fail "$what"; fi
}
show() { sed 's/^/    | /' "$@" >&2; }
run() {
	local name=$1
	shift
	set +e
	timeout "$RUN_TIMEOUT" "$@" >"$T/$name.out" 2>"$T/$name.err"
	rc=$?
	set -e
}
expect_rc() {
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
		fail "$name: exit $rc, want $want (124 = timed out)"
		show "$T/$name.out" "$T/$name.err"
	fi
}
has() {
	if grep -qF -- "$2" "$1"; then
		pass "$(basename "$1") mentions '$2'"
	else
		fail "$(basename "$1") lacks '$2'"
		show "$1"
	fi
}
lacks() {
	if grep -qF -- "$2" "$1"; then
		fail "$(basename "$1") should not mention '$2'"
		show "$1"
	else
		pass "$(basename "$1") does not mention '$2'"
	fi
}
lines() {
	local n
	n=$(wc -l <"$1")
	if [ "$n" -eq "$2" ]; then
		pass "$(basename "$1") has $2 line(s)"
	else
		fail "$(basename "$1") has $n lines, want $2"
		show "$1"
	fi
}
count() { # count FILE EREGEX N: exactly N lines match
	local n
	n=$(grep -cE -- "$2" "$1" || true)
	if [ "$n" -eq "$3" ]; then
		pass "$(basename "$1"): $3 line(s) match /$2/"
	else
		fail "$(basename "$1"): $n lines match /$2/, want $3"
		show "$1"
	fi
}
occurs() { # occurs FILE EREGEX N: exactly N matches, wherever they are (two
	# processes writing one file may leave a line of one inside a line of the
	# other: Python under PYTHONUNBUFFERED=1 writes a print's text and its
	# newline separately)
	local n
	n=$({ grep -oE -- "$2" "$1" || true; } | wc -l)
	if [ "$n" -eq "$3" ]; then
		pass "$(basename "$1"): $3 match(es) of /$2/"
	else
		fail "$(basename "$1"): $n matches of /$2/, want $3"
		show "$1"
	fi
}
pycheck() {
	local f=$1 n
	shift
	n=$#
	if "$PY" - "$f" "$@" <<'EOF'; then
import json, sys
try:
    j = json.load(open(sys.argv[1]))
except Exception as ex:
    print(f"  FAIL: {sys.argv[1]}: not JSON: {ex}", file=sys.stderr)
    sys.exit(1)
bad = 0
for e in sys.argv[2:]:
    try:
        ok = eval(e, {"j": j})
    except Exception as ex:
        ok = False
        e += f"  ({type(ex).__name__}: {ex})"
    if not ok:
        print(f"  FAIL: {sys.argv[1].rsplit('/', 1)[-1]}: not true: {e}", file=sys.stderr)
        bad += 1
    else:
        print(f"  ok: {e}")
sys.exit(1 if bad else 0)
EOF
		checks=$((checks + n))
	else
		failures=$((failures + 1))
		show "$f"
	fi
}
seg_gone() { [ ! -e "/dev/shm/uni.$1" ]; }
lock_gone() { [ ! -e "/dev/shm/uni.$1.lock" ]; }
pid_alive() { kill -0 "$1" 2>/dev/null; }
json_get() { # json_get FILE KEY: prints j[KEY], or "none" when it cannot
	if ! "$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2" \
		2>/dev/null; then
		echo "  (no '$2' in $(basename "$1"))" >&2
		echo none
	fi
}
# kill_unid PID: SIGKILL to PID, only if it is a unid process.
kill_unid() {
	case $1 in
	'' | *[!0-9]* | 0)
		fail "no unid pid to kill ('$1')"
		return 0
		;;
	esac
	if tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null | grep -q '/unid '; then
		kill -9 "$1"
	else
		fail "pid $1 is not a unid"
	fi
}
# wait_reaped PID: waits (10 s at most) until PID is gone for good, zombie
# included.  A unid killed with SIGKILL stays a zombie until its new parent
# reaps it (see test_lifecycle_zombie.sh for that window).
wait_reaped() {
	for _ in $(seq 1 200); do
		[ -e "/proc/$1" ] || return 0
		sleep 0.05
	done
	return 1
}
proc_state() { # the one-letter state of PID, or "gone"
	local s
	s=$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) || true
	echo "${s:-gone}"
}
free_port() {
	"$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
# stop_sessions S...: for the trap: stops each session, kills a unid that
# would not stop, removes what is left of it.
stop_sessions() {
	local s p
	for s in "$@"; do
		[ -n "$s" ] || continue
		[ -e "/dev/shm/uni.$s" ] || [ -e "/dev/shm/uni.$s.lock" ] || {
			rm -f "/tmp/uni.$s.log"
			continue
		}
		timeout 30 "$UNICTL" stop --session "$s" >/dev/null 2>&1 || true
		if [ -f "/dev/shm/uni.$s.lock" ]; then
			p=$(cat "/dev/shm/uni.$s.lock" 2>/dev/null || true)
			# Only a unid of this session (the pid may have been reused).
			if [ -n "$p" ] && tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null |
				grep -qF -- "unid --session $s "; then
				kill -9 "$p" 2>/dev/null || true
			fi
		fi
		rm -f "/dev/shm/uni.$s" "/dev/shm/uni.$s.lock" "/tmp/uni.$s.log"
	done
}
finish() {
	echo
	if [ "$failures" -ne 0 ]; then
		echo "$1: $failures failure(s), $checks checks passed"
		return 1
	fi
	echo "$1: all $checks checks passed"
}
