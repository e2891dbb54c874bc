#!/bin/bash
# Pass-through of libunishim.so: processes that are not ranks, or cannot
# attach, run exactly as without the shim.
#
#   - live session, LD_PRELOAD=shim, no RANK/WORLD_SIZE: a python program
#     (files, stdin, TCP over loopback, socketpair, fork, subprocess),
#     /bin/echo and cat in a pipe give byte-identical stdout, empty stderr
#     and the same status as without the shim; RANK without WORLD_SIZE,
#     UNI_DISABLE=1, and RANK >= WORLD_SIZE (one warning line) do not attach
#     either; `unictl status --json` shows no rank and no events;
#   - RANK=0 WORLD_SIZE=1 and no session reachable: same stdout, exactly one
#     stderr line with "uniference:" and "pass-through", exit 0; with
#     UNI_STRICT=1: exit 3, one line, the program does not run; UNI_STRICT=0
#     is pass-through;
#   - a stale session (unid killed): one "stale" line, pass-through, exit 0;
#   - a second process with the same RANK while the first is attached: one
#     line saying "already attached", pass-through, the same output; the
#     first keeps the rank.
#
#   test_passthrough.sh UNICTL UNIRUN UNITRACE UNISHIM
#
# Exit 0 pass, 1 fail, 99 bad usage.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/test_lifecycle_lib.sh"
# Under a prompt reaper a unid killed here vanishes at once, whatever this
# machine's init does (test_lifecycle_zombie.sh covers the zombie window).
lc_start "prompt" "$@"
PROG=$HERE/test_passthrough_prog.py
S=pt-$$
S2=pt-$$-stale
NOSESS=nonexistent-$$
BG=
cleanup() {
	set +e
	[ -n "$BG" ] && kill "$BG" 2>/dev/null && wait "$BG" 2>/dev/null
	stop_sessions "$S" "$S2"
	cd /
	rm -rf "$T"
}
trap cleanup EXIT

same() { # same A B: byte-identical files
	if cmp -s "$1" "$2"; then
		pass "$(basename "$1") is byte-identical to $(basename "$2")"
	else
		fail "$(basename "$1") differs from $(basename "$2")"
		diff "$1" "$2" | head -20 | show
	fi
}
empty() {
	if [ ! -s "$1" ]; then
		pass "$(basename "$1") is empty"
	else
		fail "$(basename "$1") is not empty"
		show "$1"
	fi
}
no_ranks() { # no_ranks NAME: unictl status --json shows no rank, no events
	run "$1" "$UNICTL" status --session "$S" --json
	expect_rc "$1" 0
	pycheck "$T/$1.out" "j['ranks'] == []" "j['events'] == 0" "j['connections'] == 0" \
		"j['alive'] is True"
}

head -c 300000 /dev/urandom >"$T/data.bin"
printf 'line one\nline two\n' >"$T/stdin.txt"

echo "== baseline without the shim"
run base "$PY" "$PROG" <"$T/stdin.txt"
expect_rc base 0
empty "$T/base.err"
has "$T/base.out" "done"
run base_nostdin "$PY" "$PROG" </dev/null
expect_rc base_nostdin 0

echo "== live session, not a rank ($S)"
run start "$UNICTL" start --session "$S" --mode record --trace "$T/pt.unitrace"
expect_rc start 0
export UNI_SESSION=$S
run nr_py env LD_PRELOAD="$SHIM" "$PY" "$PROG" <"$T/stdin.txt"
expect_rc nr_py 0
same "$T/nr_py.out" "$T/base.out"
empty "$T/nr_py.err"
run nr_echo env LD_PRELOAD="$SHIM" /bin/echo "hello, pass-through" -n 'a  b'
expect_rc nr_echo 0
/bin/echo "hello, pass-through" -n 'a  b' >"$T/echo.want"
same "$T/nr_echo.out" "$T/echo.want"
empty "$T/nr_echo.err"
set +e
timeout 60 env LD_PRELOAD="$SHIM" cat "$T/data.bin" | timeout 60 env LD_PRELOAD="$SHIM" cat \
	>"$T/nr_cat.out" 2>"$T/nr_cat.err"
rc=$?
set -e
expect_rc nr_cat 0
same "$T/nr_cat.out" "$T/data.bin"
empty "$T/nr_cat.err"
set +e
timeout 60 env LD_PRELOAD="$SHIM" cat <"$T/data.bin" | timeout 60 env LD_PRELOAD="$SHIM" "$PY" \
	-c 'import sys, hashlib; print(hashlib.sha256(sys.stdin.buffer.read()).hexdigest())' \
	>"$T/nr_pipe.out" 2>"$T/nr_pipe.err"
rc=$?
set -e
expect_rc nr_pipe 0
sha256sum <"$T/data.bin" | cut -d' ' -f1 >"$T/pipe.want"
same "$T/nr_pipe.out" "$T/pipe.want"
# Exit status passes through too.
run nr_false env LD_PRELOAD="$SHIM" "$PY" -c 'import sys; sys.exit(5)'
expect_rc nr_false 5
no_ranks status_nr
run nr_rankonly env RANK=0 LD_PRELOAD="$SHIM" "$PY" "$PROG" <"$T/stdin.txt"
expect_rc nr_rankonly 0
same "$T/nr_rankonly.out" "$T/base.out"
empty "$T/nr_rankonly.err"
run nr_disable env RANK=0 WORLD_SIZE=1 UNI_DISABLE=1 LD_PRELOAD="$SHIM" "$PY" "$PROG" <"$T/stdin.txt"
expect_rc nr_disable 0
same "$T/nr_disable.out" "$T/base.out"
empty "$T/nr_disable.err"
run nr_badrank env RANK=3 WORLD_SIZE=2 LD_PRELOAD="$SHIM" "$PY" "$PROG" <"$T/stdin.txt"
expect_rc nr_badrank 0
same "$T/nr_badrank.out" "$T/base.out"
lines "$T/nr_badrank.err" 1
has "$T/nr_badrank.err" "uniference:"
has "$T/nr_badrank.err" "pass-through"
no_ranks status_nr2

echo "== RANK=0 WORLD_SIZE=1, no session '$NOSESS'"
run ns env RANK=0 WORLD_SIZE=1 UNI_SESSION="$NOSESS" LD_PRELOAD="$SHIM" "$PY" "$PROG" <"$T/stdin.txt"
expect_rc ns 0
same "$T/ns.out" "$T/base.out"
lines "$T/ns.err" 1
has "$T/ns.err" "uniference:"
has "$T/ns.err" "pass-through"
has "$T/ns.err" "$NOSESS"
check "no segment created for $NOSESS" seg_gone "$NOSESS"
run ns_echo env RANK=0 WORLD_SIZE=1 UNI_SESSION="$NOSESS" LD_PRELOAD="$SHIM" /bin/echo hi
expect_rc ns_echo 0
echo hi >"$T/hi.want"
same "$T/ns_echo.out" "$T/hi.want"
lines "$T/ns_echo.err" 1
run ns_strict env RANK=0 WORLD_SIZE=1 UNI_SESSION="$NOSESS" UNI_STRICT=1 LD_PRELOAD="$SHIM" \
	"$PY" "$PROG" <"$T/stdin.txt"
expect_rc ns_strict 3
empty "$T/ns_strict.out"
lines "$T/ns_strict.err" 1
has "$T/ns_strict.err" "uniference:"
has "$T/ns_strict.err" "UNI_STRICT"
has "$T/ns_strict.err" "$NOSESS"
run ns_strict0 env RANK=0 WORLD_SIZE=1 UNI_SESSION="$NOSESS" UNI_STRICT=0 LD_PRELOAD="$SHIM" \
	"$PY" "$PROG" <"$T/stdin.txt"
expect_rc ns_strict0 0
same "$T/ns_strict0.out" "$T/base.out"
lines "$T/ns_strict0.err" 1
has "$T/ns_strict0.err" "pass-through"

echo "== stale session ($S2)"
run start2 "$UNICTL" start --session "$S2" --mode record --trace "$T/stale.unitrace"
expect_rc start2 0
run st2 "$UNICTL" status --session "$S2" --json
P2=$(json_get "$T/st2.out" unid_pid)
kill_unid "$P2"
check "killed unid pid $P2 is reaped" wait_reaped "$P2"
run stale env RANK=0 WORLD_SIZE=1 UNI_SESSION="$S2" LD_PRELOAD="$SHIM" "$PY" "$PROG" <"$T/stdin.txt"
expect_rc stale 0
same "$T/stale.out" "$T/base.out"
lines "$T/stale.err" 1
has "$T/stale.err" "stale"
has "$T/stale.err" "pass-through"
run stop2 "$UNICTL" stop --session "$S2"
expect_rc stop2 nonzero
has "$T/stop2.err" "stale"

echo "== a second process with the same RANK ($S)"
set +e
timeout 60 env RANK=0 WORLD_SIZE=2 LD_PRELOAD="$SHIM" "$PY" "$PROG" --wait-for "$T/go" \
	</dev/null >"$T/first.out" 2>"$T/first.err" &
BG=$!
set -e
# timeout forks: the rank is its child.
FIRST=
for _ in $(seq 1 200); do
	FIRST=$(pgrep -P "$BG" 2>/dev/null | head -1 || true)
	if [ -n "$FIRST" ] && "$UNICTL" status --session "$S" --json >"$T/st_first.json" 2>/dev/null &&
		"$PY" -c 'import json,sys; j=json.load(open(sys.argv[1])); sys.exit(0 if any(r["rank"]==0 and r["pid"]==int(sys.argv[2]) and r["state"]=="attached" for r in j["ranks"]) else 1)' \
			"$T/st_first.json" "$FIRST"; then
		break
	fi
	sleep 0.05
done
pycheck "$T/st_first.json" "[(r['rank'], r['pid'], r['state']) for r in j['ranks']] == [(0, ${FIRST:-0}, 'attached')]"
run second env RANK=0 WORLD_SIZE=2 LD_PRELOAD="$SHIM" "$PY" "$PROG" </dev/null
expect_rc second 0
same "$T/second.out" "$T/base_nostdin.out"
lines "$T/second.err" 1
has "$T/second.err" "uniference:"
has "$T/second.err" "already attached"
has "$T/second.err" "pid ${FIRST:-?}"
has "$T/second.err" "pass-through"
run st_second "$UNICTL" status --session "$S" --json
pycheck "$T/st_second.out" "[(r['rank'], r['pid'], r['state']) for r in j['ranks']] == [(0, ${FIRST:-0}, 'attached')]"
touch "$T/go"
set +e
wait "$BG"
rc=$?
BG=
set -e
expect_rc first 0
same "$T/first.out" "$T/base_nostdin.out"
empty "$T/first.err"
for _ in $(seq 1 100); do
	"$UNICTL" status --session "$S" --json >"$T/st_end.json" 2>/dev/null || true
	grep -q '"exited"' "$T/st_end.json" && break
	sleep 0.05
done
pycheck "$T/st_end.json" "[(r['rank'], r['pid'], r['state']) for r in j['ranks']] == [(0, ${FIRST:-0}, 'exited')]"
run stop "$UNICTL" stop --session "$S"
expect_rc stop 0
run sum "$UNITRACE" summary "$T/pt.unitrace" --json
expect_rc sum 0
pycheck "$T/sum.out" "j['nranks'] == 1" "[(r['rank'], r['pid'], r['end']) for r in j['ranks']] == [(0, ${FIRST:-0}, 'clean')]"

finish test_passthrough
