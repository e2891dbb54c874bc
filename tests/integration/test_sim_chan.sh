#!/bin/bash
# Wake-ups through semaphores, pipes and eventfds inside a rank carry
# virtual time (issue 3, item 1; docs/simulate.md "Inside a rank"): a thread
# sleeps 200 ms (exact virtual idle time) and posts; the waiting main thread
# must come out at or after the poster's time, under alpha-beta and nic.
# And a semaphore posted at +100 ms and +400 ms by two threads is taken in
# virtual-time order (first wait: the early post). And compute that enters
# no wrapper right before a sleep is charged (virtual = CPU + 50 ms).
#   test_sim_chan.sh UNIRUN CHANPROBE UNITRACE
set -euo pipefail
. "$(dirname "$0")/lib.sh"
UNIRUN=$1
PROBE=$2
UNITRACE=$3
T=$(mktemp -d /tmp/uni-chan.XXXXXX)
trap 'rm -rf "$T"' EXIT
for model in alpha-beta nic; do
	printf 'mode: simulate\nnetwork: { model: %s }\n' "$model" >"$T/c.yaml"
	timeout 120 "$UNIRUN" -n 1 --config "$T/c.yaml" --trace "$T/t.unitrace" -- "$PROBE" >"$T/log" 2>&1 ||
		{ cat "$T/log"; fail "chanprobe under $model"; }
	$PY - "$T/log" "$model" <<'PYEOF' || { cat "$T/log"; fail "wake-ups under $1"; }
import sys
model = sys.argv[2]
lines = {l.split()[0]: [float(x) for x in l.split()[1:]] for l in open(sys.argv[1]) if l[:3] in ("sem", "pip", "eve", "soc", "sle", "joi", "det", "try", "tim", "clo")}
stale = {l.split()[1]: [float(x) for x in l.split()[2:]] for l in open(sys.argv[1]) if l.startswith("stale ")}
bad = 0
for kind in ("sem", "pipe", "eventfd", "sockpair"):
    before, after, posted = lines[kind]
    print(f"{model} {kind}: waiter {before:.3f} -> {after:.3f} ms, poster posted at {posted:.3f} ms")
    if not (after >= posted and after - before >= 199.0):
        print(f"FAIL: {kind}: the waiter did not take the poster's time"); bad = 1
first, second, early, late = lines["sem2"]
print(f"{model} sem2: first wait {first:.3f} ms (early post {early:.3f}), second {second:.3f} ms (late post {late:.3f})")
if not (early <= first < late and second >= late):
    print("FAIL: sem2: waits did not take the posts in virtual-time order"); bad = 1
for kind in ("join", "tryjoin", "timedjoin", "clockjoin"):
    before, after, ended = lines[kind]
    print(f"{model} {kind}: joiner {before:.3f} -> {after:.3f} ms, the thread ended at {ended:.3f} ms")
    if not (after >= ended and ended - before >= 299.0):
        print(f"FAIL: pthread_{kind} did not hand the thread's end to the joiner"); bad = 1
    if kind != "tryjoin" and after - ended > 50:
        print(f"FAIL: pthread_{kind} went on {after - ended:.3f} ms after the thread's end"); bad = 1
before, after, timedout = lines["jointimeout"]
print(f"{model} timedjoin past a 4 s deadline: joiner {before:.3f} -> {after:.3f} ms, ETIMEDOUT: {bool(timedout)}")
if not (timedout and 3999.0 <= after - before < 4050.0):
    print("FAIL: a timed join that timed out did not leave the joiner at its virtual deadline"); bad = 1
worst, = lines["detached"]
print(f"{model} a detached thread's end, then 50 joins of new threads: the joiner moved at most {worst:.3f} ms per join")
if worst > 100:
    print("FAIL: a joiner took the end of a detached thread that ran before (a reused pthread_t)"); bad = 1
virt, cpu = lines["sleep"]
print(f"{model} compute then usleep(50 ms): {virt:.3f} ms virtual for {cpu:.3f} ms of CPU")
if not (cpu > 20 and abs(virt - (cpu + 50)) < 0.05 * cpu + 1):
    print("FAIL: the compute right before a sleep is not charged"); bad = 1
before, after, sig = stale["same"]
print(f"{model} a mutex locked after a signal under it: {before:.3f} -> {after:.3f} ms, signalled at {sig:.3f} ms")
if not (after >= sig and sig - before >= 250):
    print("FAIL: the mutex did not hand the signaller's time on"); bad = 1
before, after, sig = stale["new"]
print(f"{model} the same, the condition variable destroyed and a new object made in its memory: {before:.3f} -> {after:.3f} ms, signalled at {sig:.3f} ms")
if not (sig - before >= 250 and after - before < 1):
    print("FAIL: a new object took the stamp of the one destroyed before it at its address"); bad = 1
sys.exit(bad)
PYEOF
	[ "$model" = alpha-beta ] || continue
	# unitrace replay at twice the slowdown: the main thread takes each of
	# the two posts at the poster's replayed clock, its compute before the
	# post doubled (a post is a position, not an event: the replay scales
	# the compute the position adds to the event before it; both posts
	# have the same position, and both takes are recorded).
	printf 'mode: simulate\ndevices: { default: { slowdown: 2.0 } }\n' >"$T/c2.yaml"
	"$UNITRACE" replay "$T/t.unitrace" --config "$T/c2.yaml" -o "$T/r.unitrace" >/dev/null || fail "replay at slowdown 2"
	"$UNITRACE" dump --json "$T/t.unitrace" >"$T/rec.jsonl"
	"$UNITRACE" dump --json "$T/r.unitrace" >"$T/rep.jsonl"
	$PY - "$T/rec.jsonl" "$T/rep.jsonl" <<'PYEOF' || fail "a semaphore post by position, replayed at slowdown 2"
import json, sys
rec = [json.loads(l) for l in open(sys.argv[1])]
rep = [json.loads(l) for l in open(sys.argv[2])]
assert len(rec) == len(rep)
POS = 0x80000000
found = 0
for i, r in enumerate(rec):
    if r["kind"] != "take" or not (r["a"] & POS):
        continue
    tid = r["a"] >> 32
    # The poster's compute: one stretch (the posts are no events), from
    # its clock after its event before the position.
    cands = [j for j, c in enumerate(rec) if c["kind"] == "compute" and c["tid"] == tid and c["t1"] - c["t0"] > 50e6]
    if not cands:
        continue
    c0, c1 = rec[cands[-1]], rep[cands[-1]]
    d0, d1 = r["t1"] - c0["t0"], rep[i]["t1"] - c1["t0"]
    print(f"post after {d0 / 1e6:.3f} ms of the poster's compute, taken at {r['t1'] / 1e6:.3f} ms; "
          f"replayed at slowdown 2: after {d1 / 1e6:.3f} ms, taken at {rep[i]['t1'] / 1e6:.3f} ms")
    assert abs(d1 - 2 * d0) <= 0.001 * d1 + 1000, "the take is not the poster's replayed clock (compute doubled)"
    found += 1
assert found == 2, f"{found} takes of a computing poster's position, want 2"
PYEOF
done
ok "semaphores, pipes, eventfds and the pthread joins carry time to the waiter; compute right before a sleep is charged"
