#!/bin/bash
# A program's own blocking TCP socket between two ranks (not Gloo's) in
# simulate mode (docs/simulate.md, "Send completion"): a blocking sendall
# returns at the send-completion model's time (all but network.send_buffer
# bytes have left), the last byte arrives at latency + S/bandwidth, the
# reply takes a latency (check_sim_sock.py); under alpha-beta and nic, under
# nic with an 8 MB send_buffer (more than the kernel's buffers: the 16 MB
# write's completion comes while it still waits for room), and with
# send_buffer unlimited (the write costs nothing). A blocking sendall
# that outlasts its SO_SNDTIMEO fails with EAGAIN, as without the shim
# (the shim's own wait once ignored it: a hang). The 16 MB message
# is larger than the socket buffers: the writer's blocking write used to
# wait for a reader that waited for the write's bytes (a hang).
# unitrace replay of each run under its own configuration gives the
# recorded ends (the blocking write's parts and completion replay), within
# 1 us; within 1% for the nic run whose last write is cut short by its
# SO_SNDTIMEO (the network may already have sent some of the bytes the
# write announced before the cut came: docs/simulate.md).
#   test_sim_sock.sh UNIRUN UNITRACE
set -euo pipefail
. "$(dirname "$0")/lib.sh"
UNIRUN=$1 UNITRACE=$2
T=$(mktemp -d /tmp/uni-simsock.XXXXXX)
trap 'rm -rf "$T"' EXIT
for run in "alpha-beta 2ms 100Mbit 2e6 1e8 640kB 640000 --sndtimeo" "nic 2ms 100Mbit 2e6 1e8 640kB 640000 --sndtimeo" \
	"nic 2ms 100Mbit 2e6 1e8 8MB 8000000" "alpha-beta 350us 1Gbit 350e3 1e9 unlimited unlimited"; do
	set -- $run
	cat >"$T/c.yaml" <<YAML
mode: simulate
network:
  model: $1
  default: { latency: $2, bandwidth: $3 }
  send_buffer: $6
YAML
	rm -f "$T/port" "$T/done" "$T"/rank*.txt
	timeout 120 "$UNIRUN" -n 2 --config "$T/c.yaml" --trace "$T/t.unitrace" -- \
		$PY "$HERE/sim_sock.py" "$T" ${8:-} >"$T/log" 2>&1 || { cat "$T/log"; fail "sim_sock under unirun ($run)"; }
	[ -z "${8:-}" ] || grep -q "^sndtimeo" "$T/rank0.txt" || fail "no SO_SNDTIMEO result ($run)"
	$PY "$HERE/check_sim_sock.py" "$T" $4 $5 $7 "$1/$6" || fail "blocking socket times ($run)"
	"$UNITRACE" replay "$T/t.unitrace" --config "$T/c.yaml" --json >"$T/r.json" || fail "replay ($run)"
	tol=1000
	[ "$1/${8:-}" != "nic/--sndtimeo" ] || tol=0.01
	$PY - "$T/r.json" "$1/$6" "$tol" <<'PYEOF' || fail "replay ($run)"
import json, sys
r = json.load(open(sys.argv[1]))
for k in r["ranks"]:
    print(f"{sys.argv[2]} replayed: rank {k['rank']} ends {k['end_ns'] / 1e6:.3f} ms, recorded {k['recorded_end_ns'] / 1e6:.3f} ms")
    tol = float(sys.argv[3])
    tol = tol * k["recorded_end_ns"] if tol < 1 else tol
    assert abs(k["end_ns"] - k["recorded_end_ns"]) <= tol, "the replay under the recorded configuration is not the recording"
PYEOF
done
# Two ranks that both sendall 16 MB before reading (a deadlock on any
# host): unid's report names both writers, unirun exits 97.
printf 'mode: simulate\n' >"$T/d.yaml"
rm -f "$T/port" "$T/done" "$T"/rank*.txt
set +e
timeout 120 "$UNIRUN" -n 2 --config "$T/d.yaml" --trace "$T/d.unitrace" -- $PY "$HERE/sim_sock.py" "$T" --deadlock >"$T/log" 2>&1
rc=$?
set -e
[ "$rc" = 97 ] || { cat "$T/log"; fail "two blocking writers: exit status $rc, not 97 (deadlock)"; }
[ "$(grep -c 'in a blocking write on connection .* its peer does not read' "$T/d.unitrace.deadlock.txt")" = 2 ] ||
	{ cat "$T/d.unitrace.deadlock.txt"; fail "the deadlock report does not name both blocking writers"; }
[ "$(grep -c 'native stack' "$T/d.unitrace.deadlock.txt")" = 2 ] ||
	{ cat "$T/d.unitrace.deadlock.txt"; fail "the deadlock report has no stacks of the blocking writers"; }
ok "two ranks blocked writing to each other: deadlock report naming both writers, exit 97"
# Record mode leaves blocking writes to the kernel: every message goes,
# and the trace's bytes tile (nothing timed: real time).
printf 'mode: record\n' >"$T/r.yaml"
rm -f "$T/port" "$T/done" "$T"/rank*.txt
timeout 120 "$UNIRUN" -n 2 --config "$T/r.yaml" --trace "$T/r.unitrace" -- $PY "$HERE/sim_sock.py" "$T" >"$T/log" 2>&1 ||
	{ cat "$T/log"; fail "sim_sock in record mode"; }
[ "$(grep -c '^send' "$T/rank0.txt")" = 5 ] && [ "$(grep -c '^recv' "$T/rank1.txt")" = 5 ] ||
	fail "record mode: not every message went"
grep -q "consistency: bytes sent == bytes received on every connection" "$T/log" || { cat "$T/log"; fail "record mode: trace bytes"; }
ok "a program's own blocking socket: sendall takes the send-completion time, arrivals and replies the network's"
