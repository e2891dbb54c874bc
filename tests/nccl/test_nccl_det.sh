#!/bin/bash
# The simulated NCCL in deterministic mode (docs/nccl.md "Deterministic
# mode"), ranks handing the unique id over TCP as torch's store does:
#  - nccl_check timing (every collective and a send/recv, 1 MB, 3 ranks)
#    recorded with --deterministic and replayed twice with --compute-from:
#    the same trace byte for byte, every thread followed the recorded run,
#    none left the turn, the virtual times printed those of the recording
#    and within 0.5% of a run without the turn;
#  - nccl_check pytorch (ProcessGroupNCCL's call sequences: a grouped
#    lazy init, a watchdog thread polling, a non-blocking init in
#    progress until its peers join, Split, a 2-rank communicator, abort)
#    on 4 ranks: every check passes in turn, two replays the same trace;
#  - sends larger than a pair's ring, in turn: two replays the same trace;
#  - a receive cycle in turn: unid's deadlock report says the NCCL call;
#  - a rank that dies while the others wait in turn beside watchdog
#    threads: ncclRemoteError at once; one killed between moving an
#    AllReduce's data and timing it: the others complete it;
#  - UNI_NCCL_TIMEOUT in turn while timed waits keep the turn busy;
#  - the schedule logs run out: the turn given up with one line;
#  - device buffers (the stand-in runtime, tests/nccl/mock_cudart.c):
#    every collective and a send/recv ring, in turn, two replays the same
#    trace, the runtime's own thread not one of the program's; and with
#    the stand-in CUPTI, kernels and AllReduces on the device timeline:
#    two replays the same trace, the recording's times;
#  - what the turn does not follow yet gives it up with one line and the
#    run goes on: CommInitAll;
#  - under nic (the network in turn): timing and contending AllReduces
#    replay to the same trace, within 0.5% of the runs without the turn.
#   test_nccl_det.sh UNIRUN NCCL_CHECK MOCK_CUDART MOCK_CUPTI
set -euo pipefail
UNIRUN=$1 CHECK=$2 MOCK=$3 MOCK_CUPTI=$4
PY=/usr/bin/python3
fail() { echo "FAIL: $*" >&2; exit 1; }
ok() { echo "ok: $*"; }
T=$(mktemp -d /tmp/uni-nccl-det.XXXXXX)
trap 'rm -rf "$T"' EXIT
cd "$T"
printf 'mode: simulate\nnetwork: { model: alpha-beta, default: { latency: 2ms, bandwidth: 100Mbit } }\n' >"$T/ab.yaml"
printf 'mode: simulate\nnetwork: { model: nic, default: { latency: 2ms, bandwidth: 100Mbit } }\n' >"$T/nic.yaml"
export NCCL_CHECK_ID=tcp UNI_DET_DEBUG=1
SESSION=ncdet-$$
# run NAME N [unirun options] -- ARGS: one session name for a recording
# and its replays (a replay's trace is the same file only under it);
# the config is CONFIG, else ab.yaml.
run() {
	local name=$1 n=$2
	shift 2
	timeout 300 "$UNIRUN" -n "$n" --session "$SESSION" --config "${CONFIG:-$T/ab.yaml}" --trace "$T/$name.unitrace" "$@" \
		>"$T/$name.log" 2>&1 || { cat "$T/$name.log"; fail "$name: unirun"; }
}
in_turn() {
	! grep -E "waits outside the turn|goes on without the turn|while it had the turn|det_vrecv: rank .* unid answers" \
		"$T/$1.log" || fail "$1: a thread left the turn, or a receive went to unid"
}
followed() {
	grep -qE "threads: $2 followed the recorded run to their end, 0 left it" "$T/$1.log" ||
		{ cat "$T/$1.log"; fail "$1 did not follow the recorded run"; }
}
times() { grep '^{"rank"' "$T/$1.log" | sort; }
# det_replays NAME RANKS THREADS ARGS: nccl_check ARGS recorded in turn
# (NAME) and replayed twice from it (NAME-a, NAME-b): all in turn, every
# thread of the replays followed the recorded run, they printed the
# recording's times and wrote the same trace.
det_replays() {
	local name=$1 n=$2 nth=$3 x
	shift 3
	run "$name" "$n" --deterministic -- "$CHECK" "$@"
	in_turn "$name"
	for x in a b; do
		run "$name-$x" "$n" --deterministic --compute-from "$T/$name.unitrace" -- "$CHECK" "$@"
		in_turn "$name-$x"
		followed "$name-$x" "$nth"
		[ "$(times "$name-$x")" = "$(times "$name")" ] ||
			{ times "$name"; times "$name-$x"; fail "$name: replay $x printed other times"; }
	done
	cmp "$T/$name-a.unitrace" "$T/$name-b.unitrace" || fail "$name: two replays wrote different traces"
}

det_replays rec 3 3 timing 1000000
SESSION=ncfree-$$ run free 3 -- "$CHECK" timing 1000000
$PY - "$T/rec.log" "$T/free.log" <<'PYEOF' || fail "the turn's times against the run without it"
import json, re, sys
def load(p):
    return {d["rank"]: d for d in map(json.loads, re.findall(r'^\{"rank".*\}$', open(p).read(), re.M))}
det, free = load(sys.argv[1]), load(sys.argv[2])
bad = 0
for r in sorted(det):
    for k, v in det[r].items():
        if k.endswith("_ns") and v > 1e6:  # (an operation that waits for nothing takes microseconds)
            dev = abs(v - free[r][k]) / free[r][k]
            bad |= dev > 0.005
            print(f"rank {r} {k[:-3]}: {v/1e6:.3f} ms in turn, {free[r][k]/1e6:.3f} ms without ({100*dev:.3f}%)")
sys.exit(bad)
PYEOF
ok "NCCL timing in turn: two replays the same trace ($(stat -c %s "$T/rec-a.unitrace") bytes), every thread followed, the recording's times, within 0.5% of the run without the turn"

run prec 4 --deterministic -- "$CHECK" pytorch
in_turn prec
[ "$(grep -c 'checks passed' "$T/prec.log")" = 4 ] || { cat "$T/prec.log"; fail "pytorch sequences in turn"; }
for x in pa pb; do
	run $x 4 --deterministic --compute-from "$T/prec.unitrace" -- "$CHECK" pytorch
	in_turn $x
	[ "$(grep -c 'checks passed' "$T/$x.log")" = 4 ] || { cat "$T/$x.log"; fail "pytorch sequences, replay $x"; }
done
cmp "$T/pa.unitrace" "$T/pb.unitrace" || fail "pytorch sequences: two replays wrote different traces"
ok "ProcessGroupNCCL's call sequences in turn (non-blocking init, watchdog thread, Split, abort): every check passes, two replays the same trace"

# Sends larger than a pair's 1 MiB ring (two 4 MiB sends in a group, then
# 200 small ones; in turn no message is put outside the ring, docs/nccl.md
# "Data path"): the ring fills and empties in turn, each side waking the
# other as it moves data.
run srec 2 --deterministic -- "$CHECK" p2ptwo
in_turn srec
[ "$(grep -c 'checks passed' "$T/srec.log")" = 2 ] || { cat "$T/srec.log"; fail "large sends in turn"; }
for x in sa sb; do
	run $x 2 --deterministic --compute-from "$T/srec.unitrace" -- "$CHECK" p2ptwo
	followed $x 2
done
cmp "$T/sa.unitrace" "$T/sb.unitrace" || fail "large sends: two replays wrote different traces"
ok "sends larger than the pair's ring in turn: two replays the same trace"

st=0
timeout 60 "$UNIRUN" -n 2 --session "dl$SESSION" --config "$T/ab.yaml" --trace "$T/dl.unitrace" --deterministic -- \
	"$CHECK" deadlock recv >"$T/dl.log" 2>&1 || st=$?
[ $st = 97 ] || { cat "$T/dl.log"; fail "a receive cycle in turn: status $st, want 97"; }
grep -qE "in ncclRecv on NCCL communicator [0-9a-f]{16} \(rank 0 of 2\): waits for rank 1; rank 1 is in ncclRecv from rank 0" \
	"$T/dl.unitrace.deadlock.txt" || { cat "$T/dl.unitrace.deadlock.txt"; fail "a receive cycle in turn: the report"; }
ok "a receive cycle in turn: unid's deadlock report names the NCCL calls"

# A rank dies (SIGKILL) while the others wait in an AllReduce in turn, each
# with a watchdog thread polling every 50 ms, which keeps the turn busy:
# they get ncclRemoteError at once. (The wait looked again only once the
# turn had been idle 200 ms: never; the run hung.) The ranks' shells are
# not ranks (UNI_DISABLE), so that rank 2's ends with status 0 and unirun
# does not stop the others.
start=$(date +%s)
UNI_DISABLE=1 timeout 60 "$UNIRUN" -n 3 --session "dw$SESSION" --config "$T/ab.yaml" --deterministic -- \
	sh -c 'env -u UNI_DISABLE "$0" diewatch; st=$?; [ "$RANK" = 2 ] || exit $st' "$CHECK" >"$T/dw.log" 2>&1 ||
	{ cat "$T/dw.log"; fail "a rank dies in turn: the others did not end well"; }
[ "$(grep -c 'checks passed' "$T/dw.log")" = 2 ] || { cat "$T/dw.log"; fail "a rank dies in turn: the others' checks"; }
grep -q "rank 2 (pid [0-9]*) died while rank [01] waited for AllReduce" "$T/dw.log" || { cat "$T/dw.log"; fail "a rank dies in turn: no message"; }
[ $(( $(date +%s) - start )) -lt 30 ] || fail "a rank dies in turn: the others took $(( $(date +%s) - start )) s"
ok "a rank dies while the others wait in turn beside polling watchdogs: ncclRemoteError at once"

# ... and killed inside the AllReduce, after its data moved and before it
# timed it (UNI_NCCL_TEST_KILL_TIMING): the others' timing receives wait
# for its sends; unid answers them once it sees the rank dead, the
# AllReduce completes and the next one gets the death. (They waited in
# turn for ever.)
start=$(date +%s)
UNI_DISABLE=1 timeout 60 "$UNIRUN" -n 3 --session "dt$SESSION" --config "$T/ab.yaml" --deterministic -- \
	sh -c '[ "$RANK" = 2 ] && export UNI_NCCL_TEST_KILL_TIMING=1; env -u UNI_DISABLE "$0" dietiming; st=$?; [ "$RANK" = 2 ] || exit $st' \
	"$CHECK" >"$T/dt.log" 2>&1 || { cat "$T/dt.log"; fail "a rank dies in its timing: the others did not end well"; }
[ "$(grep -c '4 checks passed' "$T/dt.log")" = 2 ] || { cat "$T/dt.log"; fail "a rank dies in its timing: the others' checks"; }
[ $(( $(date +%s) - start )) -lt 30 ] || fail "a rank dies in its timing: the others took $(( $(date +%s) - start )) s"
ok "a rank dies between moving an AllReduce's data and timing it: the others complete it, then ncclRemoteError"

# A rank that never joins the AllReduce and sleeps in a loop (timed waits
# keep the turn busy) while the others wait in it beside polling
# watchdogs: UNI_NCCL_TIMEOUT (2 s here) ends their wait. (In turn the
# wait looked again only once the turn was idle 200 ms: never.)
start=$(date +%s)
UNI_NCCL_TIMEOUT=2 timeout 60 "$UNIRUN" -n 3 --session "to$SESSION" --config "$T/ab.yaml" --deterministic -- \
	"$CHECK" timeoutwatch >"$T/to.log" 2>&1 || { cat "$T/to.log"; fail "a time-out in turn: the run"; }
[ "$(grep -c 'checks passed' "$T/to.log")" = 3 ] || { cat "$T/to.log"; fail "a time-out in turn: the checks"; }
grep -q "no progress for 2 s waiting for AllReduce (UNI_NCCL_TIMEOUT)" "$T/to.log" || { cat "$T/to.log"; fail "a time-out in turn: no message"; }
[ $(( $(date +%s) - start )) -lt 20 ] || fail "a time-out in turn took $(( $(date +%s) - start )) s"
ok "a rank that never joins while timed waits keep the turn busy: UNI_NCCL_TIMEOUT ends the others' wait"

# The schedule logs run out (8 instead of 512 here): the turn is given up
# with one line and the run completes. (A receive of a stream without a
# log waited in turn for unid's answer: a false deadlock, exit 97.)
UNI_SCHED_LOGS=8 timeout 120 "$UNIRUN" -n 4 --session "sl$SESSION" --config "$T/ab.yaml" --deterministic -- \
	"$CHECK" pytorch >"$T/sl.log" 2>&1 || { cat "$T/sl.log"; fail "schedule logs run out: the run failed"; }
[ "$(grep -c 'checks passed' "$T/sl.log")" = 4 ] || { cat "$T/sl.log"; fail "schedule logs run out: the checks"; }
[ "$(grep -c "the session's schedule logs are all taken: this session goes on without the turn" "$T/sl.log")" = 1 ] ||
	{ cat "$T/sl.log"; fail "schedule logs run out: the turn given up, said once"; }
ok "the schedule logs run out: the turn given up with one line, the run completes"

# Device buffers in turn (docs/nccl.md "Deterministic mode"): the
# synchronous path (the stream path's data would move in the runtime's
# thread, outside the turn); the runtime's own threads (here the
# stand-in's device thread) are the device's, not the program's: before,
# that thread waited for the turn a rank held while it synchronised with
# the stream (5 s, then the turn went on without it).
cp "$MOCK" "$T/libcudart.so.13"
cp "$MOCK_CUPTI" "$T/libcupti.so.13"
det_replays dv 3 3 device "$T/libcudart.so.13"
for x in dv-a dv-b; do
	[ "$(grep -c 'checks passed' "$T/$x.log")" = 3 ] || { cat "$T/$x.log"; fail "$x: checks"; }
done
[ "$(grep -c 'detached cleanly, 1 thread$' "$T/dv-a.log")" = 3 ] || { cat "$T/dv-a.log"; fail "device buffers: the runtime's thread was the program's"; }
# With the stand-in CUPTI: kernels of known lengths (sgemm at slowdown 2)
# and AllReduces on the device timeline, every time exact in the replays.
{ cat "$T/ab.yaml"; printf 'devices:\n  kernels:\n    - { match: "*sgemm*", slowdown: 2 }\n'; } >"$T/cu.yaml"
export LD_LIBRARY_PATH=$T UNI_CUPTI_DEBUG=1
CONFIG=$T/cu.yaml det_replays cu 2 2 cupti "$T/libcudart.so.13" 4194304
for x in cu-a cu-b; do
	[ "$(grep -c 'CUPTI on' "$T/$x.log")" = 2 ] || { cat "$T/$x.log"; fail "$x: CUPTI not on"; }
done
unset LD_LIBRARY_PATH UNI_CUPTI_DEBUG
ok "device buffers in turn: two replays the same trace, every thread followed, the runtime's thread not the program's; with CUPTI's device timeline, the recording's times"

timeout 120 "$UNIRUN" -n 1 --session "ia$SESSION" --config "$T/ab.yaml" --deterministic -- "$CHECK" initall 3 \
	>"$T/ia.log" 2>&1 || { cat "$T/ia.log"; fail "CommInitAll with --deterministic"; }
[ "$(grep -c 'ncclCommInitAll (one thread drives several ranks of the simulated NCCL), which the turn does not follow yet' "$T/ia.log")" = 1 ] ||
	{ cat "$T/ia.log"; fail "CommInitAll: the turn given up, said once"; }
ok "CommInitAll: the turn given up with one line, the run completes"

# Under nic the network moves in turn (docs/simulate.md "The network in
# turn"): the timing run and two AllReduces contending for the links from
# two threads, recorded and replayed twice: the same trace, every thread
# followed; the times within 0.5% of a run without the turn, and the
# contended AllReduces take about twice the time alone. (Until session 22
# the turn was given up under nic.)
nic_det() { # NAME THREADS ARGS: recording NAME, replays NAME-a and NAME-b
	local name=$1 nth=$2
	shift 2
	SESSION=nd$name-$$ det_replays "$name" 3 "$nth" "$@"
	[ "$name" != ntime ] || SESSION=nf$name-$$ run "$name-free" 3 -- "$CHECK" "$@"
}
CONFIG=$T/nic.yaml nic_det ntime 3 timing 1000000
CONFIG=$T/nic.yaml nic_det ncont 9 contend 1000000
# (The run without the turn follows the horizon's real-time rules: a
# transfer it started late moved its times; then not compared.)
grep -q '^late:' "$T/ntime-free.log" && { grep '^late:' "$T/ntime-free.log"; : >"$T/ntime-free.cmp"; } ||
	cp "$T/ntime-free.log" "$T/ntime-free.cmp"
$PY - "$T/ntime.log" "$T/ntime-free.cmp" "$T/ncont.log" <<'PYEOF' || fail "nic in turn: the times"
import json, re, sys
def load(p):
    return {d["rank"]: d for d in map(json.loads, re.findall(r'^\{"rank".*\}$', open(p).read(), re.M))}
bad = 0
d, f = load(sys.argv[1]), load(sys.argv[2])
if not f:
    print("nic: the run without the turn had late transfers: not compared")
for r in sorted(d) if f else []:
    for k, v in d[r].items():
        if k.endswith("_ns") and v > 1e6:
            dev = abs(v - f[r][k]) / f[r][k]
            bad |= dev > 0.005
            print(f"nic rank {r} {k[:-3]}: {v/1e6:.3f} ms in turn, {f[r][k]/1e6:.3f} ms without ({100*dev:.3f}%)")
# Contended: the AllReduce alone within 2% of the timing run's (the
# line-up before it leaves the ranks up to 0.6% apart here, in the run
# without the turn too, and up to 1.07% on a loaded CI machine: the
# compute between them is measured CPU time at slowdown 1, and a
# --compute-from replay is exact only there); two at once about twice
# that.
for r in sorted(load(sys.argv[3]).values(), key=lambda r: r["rank"]):
    one = d[r["rank"]]["allreduce_ns"]
    print(f"nic rank {r['rank']} contend: alone {r['alone_ns']/1e6:.3f} ms (timing run {one/1e6:.3f}), "
          f"two at once {r['a_ns']/1e6:.3f} and {r['b_ns']/1e6:.3f} ms")
    bad |= abs(r["alone_ns"] - one) / one > 0.02
    bad |= not (1.8 < r["a_ns"] / r["alone_ns"] < 2.2 and 1.8 < r["b_ns"] / r["alone_ns"] < 2.2)
sys.exit(bad)
PYEOF
ok "nic in turn: the timing run and two contending AllReduces replay to the same trace; the timing within 0.5% of the run without the turn, contended about twice alone"
# With compute of a few ns between the operations (slowdown 0.001) the
# replay follows the recorded run to its end too: each operation starts
# right after a compute record (trace 1.9, for unitrace replay -o), and
# where the turn had just written one, no second one (a replay, whose
# turn writes the recorded one there, left the recorded run at the first
# operation that had none before it). (Its times are not compared: the
# recorded run truncates each charge's CPU x 0.001 to ns, the replay a
# stretch's sum, a few ns apart.)
printf 'mode: simulate\nnetwork: { model: nic, default: { latency: 2ms, bandwidth: 100Mbit } }\ndevices: { default: { slowdown: 0.001 } }\n' >"$T/nic0.yaml"
CONFIG=$T/nic0.yaml SESSION=nd0-$$ run n0 3 --deterministic -- "$CHECK" timing 1000000
CONFIG=$T/nic0.yaml SESSION=nd0-$$ run n0-a 3 --deterministic --compute-from "$T/n0.unitrace" -- "$CHECK" timing 1000000
followed n0-a 3
ok "nic in turn at slowdown 0.001: the replay follows the recorded run"
