#!/bin/bash
# Session lifecycle through unictl: start, status (text and --json), a second
# start of the same session, two sessions side by side, stop (segment, lock,
# trace), a second stop, stale segments left by a killed unid (status, start
# over it, stop over it), config errors (unknown key with file:line:key, YAML
# syntax error, missing file), a bad session name, and a mode that is not
# implemented yet (--mode emulate: record and simulate exist), and
# unirun's MASTER_PORT below deterministic mode's ports and the kernel's
# ephemeral port range.
#
#   test_lifecycle.sh UNICTL UNIRUN UNITRACE UNISHIM
#
# Exit 0 pass, 1 fail, 99 bad usage.  Needs /usr/bin/python3 (or $PYTHON)
# only for JSON checks.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/test_lifecycle_lib.sh"
# Under a prompt reaper a unid killed here vanishes at once, whatever this
# machine's init does (test_lifecycle_zombie.sh covers the zombie window).
lc_start "prompt" "$@"
BASE=lc-$$
S1=$BASE-a
S2=$BASE-b
S3=$BASE-stale
S4=$BASE-stale2
S5=$BASE-cfg
cleanup() {
	set +e
	stop_sessions "$S1" "$S2" "$S3" "$S4" "$S5"
	cd /
	rm -rf "$T"
}
trap cleanup EXIT

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
P1=$(json_get "$T/status1j.out" unid_pid)
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
P2=$(json_get "$T/status2.out" unid_pid)
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
P3=$(json_get "$T/status3.out" unid_pid)
kill_unid "$P3"
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
P4=$(json_get "$T/status4.out" unid_pid)
kill_unid "$P4"
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
run emu "$UNICTL" start --session "$S5" --mode emulate
expect_rc emu nonzero
has "$T/emu.err" "not implemented"
has "$T/emu.err" "record"
lines "$T/emu.err" 1
check "no segment after --mode emulate" seg_gone "$S5"
check "no lock after --mode emulate" lock_gone "$S5"
run emu2 "$UNICTL" status --session "$S5"
expect_rc emu2 nonzero
run badmode "$UNICTL" start --session "$S5" --mode bogus
expect_rc badmode nonzero
has "$T/badmode.err" "unknown mode 'bogus'"

# unirun's MASTER_PORT lies from 10000 below deterministic mode's ports
# (16384 on) and the kernel's ephemeral range, which the kernel hands
# nobody by itself (a port from it could be another process's connection
# by the time rank 0's store binds it).
read -r ELO _ </proc/sys/net/ipv4/ip_local_port_range
for i in 1 2 3; do
	run port$i "$UNIRUN" -n 1 --no-summary -- sh -c 'echo "$MASTER_PORT"'
	expect_rc port$i 0
	p=$(head -1 "$T/port$i.out")
	if [ "$ELO" -ge 11000 ]; then
		check "MASTER_PORT $p is a number from 10000 below 16384 and the ephemeral range ($ELO)" \
			test "$p" -ge 10000 -a "$p" -lt 16384 -a "$p" -lt "$ELO"
	else # (too small a range below it: the kernel's choice)
		check "MASTER_PORT $p is a port" test "$p" -gt 0
	fi
done

finish test_lifecycle
