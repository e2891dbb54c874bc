#!/bin/bash
# A program's own asyncio event loop in a rank's main thread (simulate
# mode): it has a clock of its own, as any program thread (it used to be
# taken for an event loop working for others, like Gloo's: its clock read
# real time and its compute was charged to nobody). Rank 1's asyncio server
# reads a 4 MB message no earlier than its last byte arrives (latency +
# S x 8 / bandwidth after rank 0's sendall began; it was read 54 ms after
# in "real" time before) and its compute is charged at its slowdown
# (virtual / CPU = 2.0 within 5%; it was 1.0). Its asyncio.sleep(0.25)
# takes 250 ms (an epoll_wait time-out moves the clock on; it used to wait
# for ever: asyncio's timers are computed from the virtual clock), and a
# socket time-out of 0.1 s in rank 0 (a poll time-out) 100 ms. Under
# alpha-beta and nic; and under nic with rank 0 blocked in the kernel's
# recv for the reply from the start (--direct: it held the horizon at its
# clock and the asyncio loop, which reads only final bytes, waited for
# ever; a review found it).
#   test_sim_asyncio.sh UNIRUN
set -euo pipefail
. "$(dirname "$0")/lib.sh"
UNIRUN=$1
T=$(mktemp -d /tmp/uni-asyncio.XXXXXX)
trap 'rm -rf "$T"' EXIT
for run in "alpha-beta" "nic" "nic --direct --size=65536"; do
set -- $run
model=$1
cat >"$T/c.yaml" <<YAML
mode: simulate
network: { model: $model, default: { latency: 2ms, bandwidth: 100Mbit } }
devices:
  ranks: { 1: { slowdown: 2.0 } }
YAML
rm -f "$T/port" "$T"/rank*.txt
timeout 120 "$UNIRUN" -n 2 --config "$T/c.yaml" --trace "$T/t.unitrace" -- $PY "$HERE/sim_asyncio.py" "$T" "${@:2}" >"$T/log" 2>&1 ||
	{ cat "$T/log"; fail "sim_asyncio under unirun ($run)"; }
echo "$run:"
$PY - "$T" <<'PYEOF' || fail "asyncio main thread's clock ($run)"
import sys
d = sys.argv[1]
r0 = {l.split()[0]: l.split() for l in open(d + "/rank0.txt").read().splitlines()}
r1 = {l.split()[0]: l.split() for l in open(d + "/rank1.txt").read().splitlines()}
send, recv, comp = r0["send"], r1["recv"], r1["compute"]
if "timeout" in r0 or "asleep" in r1:
    tmo, slept = r0["timeout"], r1["asleep"]
    print(f"asyncio.sleep(0.25): {int(slept[1]) / 1e6:.3f} ms virtual; socket time-out 0.1 s: {tmo[1]}")
    assert tmo[1] != "none" and 100e6 <= int(tmo[1]) < 105e6, "the socket time-out did not take 100 ms"
    assert 250e6 <= int(slept[1]) < 255e6, "asyncio.sleep(0.25) did not take 250 ms"
size, t0 = int(send[1]), int(send[2])
tr = int(recv[2])
virt, cpu = int(comp[1]), int(comp[2])
arr = t0 + 2e6 + size * 8e9 / 1e8
print(f"last byte read at +{(tr - t0) / 1e6:.3f} ms (arrives +{(arr - t0) / 1e6:.3f} ms); "
      f"compute {virt / 1e6:.3f} ms virtual for {cpu / 1e6:.3f} ms CPU (x{virt / cpu:.3f})")
assert tr >= arr - 1e3, "the asyncio loop read the message before it arrived"
# (--direct: rank 1 reads as soon as it is up: its clock may be past the
# arrival already, so only "not before" holds.)
assert "timeout" not in r0 or tr - t0 < 3 * (arr - t0), "the asyncio loop read the message far after it arrived"
assert abs(virt / cpu - 2.0) < 0.1, "the asyncio loop's compute is not charged at its slowdown"
PYEOF
done
# Deterministic mode (alpha-beta): the asyncio loop's epoll set holds its
# self-pipe, a socketpair, which the turn follows as a channel each way
# since session 19 (before, every epoll_wait of the loop waited outside
# the turn): recorded and replayed twice, no thread waits outside the
# turn, both replays follow the recording and write the same trace, and
# print the recording's virtual times.
printf 'mode: simulate\nnetwork: { model: alpha-beta, default: { latency: 2ms, bandwidth: 100Mbit } }\n' >"$T/c.yaml"
for x in rec a b; do
	rm -f "$T/port" "$T"/rank*.txt
	cf=()
	[ $x = rec ] || cf=(--compute-from "$T/rec.unitrace")
	UNI_DET_DEBUG=1 timeout 120 "$UNIRUN" -n 2 --session "sda-$$" --config "$T/c.yaml" --trace "$T/$x.unitrace" \
		--deterministic "${cf[@]}" -- $PY "$HERE/sim_asyncio.py" "$T" >"$T/$x.log" 2>&1 ||
		{ cat "$T/$x.log"; fail "sim_asyncio under --deterministic ($x)"; }
	det_in_turn $x "$T/$x.log"
	[ $x = rec ] || det_followed $x "$T/$x.log"
	$PY - "$T" >"$T/$x.times" <<'PYEOF'
import sys
d = sys.argv[1]
r0 = {l.split()[0]: l.split() for l in open(d + "/rank0.txt").read().splitlines()}
r1 = {l.split()[0]: l.split() for l in open(d + "/rank1.txt").read().splitlines()}
print(r0["timeout"][1], r1["asleep"][1], int(r1["recv"][2]) - int(r0["send"][2]), r1["compute"][1])
PYEOF
	[ $x = rec ] || cmp "$T/rec.times" "$T/$x.times" || fail "$x printed other virtual times than the recording"
done
cmp "$T/a.unitrace" "$T/b.unitrace" || fail "two deterministic replays of the asyncio program wrote different traces"
echo "deterministic: two replays, the same trace ($(stat -c %s "$T/a.unitrace") bytes), the recording's times ($(cat "$T/rec.times"))"
ok "an asyncio loop in a rank's main thread: reads at the arrival, compute at its slowdown, timers and socket time-outs in virtual time, deterministic under the turn"
