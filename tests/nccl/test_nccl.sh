#!/bin/bash
# The simulated NCCL with host buffers, real processes launched by unirun:
#  - correctness with 2, 3, 4 and 8 ranks (every collective, type and op, in
#    and out of place, uneven and chunked counts, send/recv rings and self
#    send/recv in groups, error codes);
#  - CommSplit with colors, keys and NOCOLOR;
#  - ProcessGroupNCCL's call sequences (1.13 and current) and an abort;
#  - a count mismatch: ncclInvalidArgument with a message on every rank,
#    and the communicator still works;
#  - a peer that sent and exited (or aborted) before the receive: the data
#    arrives; two sends to one peer in a group matched in order;
#  - a rank that never joins: ncclRemoteError naming it, within the
#    time-out, no hang; in simulate mode a deadlock report at once, as for
#    a receive cycle or a collective the others skip (what each waits for);
#  - virtual time under alpha-beta against the closed forms (within 1%);
#  - two communicators at once: independent under alpha-beta, sharing the
#    links under nic; the same with a rank the host does not run for 600 ms
#    (none late); a count mismatch under nic.
#  - device buffers through a CUDA runtime (a stand-in: no GPU here);
#  - the device timeline from CUPTI's records (a stand-in CUPTI too), and
#    the real CUPTI's failure without a GPU, said once.
#  - every function nccl.h declares is exported by the shim.
#   test_nccl.sh UNIRUN NCCL_CHECK UNITRACE MOCK_CUDART MOCK_CUPTI NCCL_H MOCK_CUDART_PLAIN
set -euo pipefail
UNIRUN=$1 CHECK=$2 UNITRACE=$3 MOCK=$4 MOCK_CUPTI=$5 NCCL_H=$6 MOCK_PLAIN=$7 MOCK_DRV=$8
PY=/usr/bin/python3
# The closed forms' Python helpers (nccl_trees.py) live beside this script.
export NCCL_TESTS=$(cd "$(dirname "$0")" && pwd)
fail() { echo "FAIL: $*" >&2; exit 1; }
ok() { echo "ok: $*"; }
T=$(mktemp -d /tmp/uni-nccl.XXXXXX)
trap 'rm -rf "$T"' EXIT
cat >"$T/rec.yaml" <<YAML
mode: record
YAML
# Simulate mode on 1 ms and 1 Gbit/s, per network model; the program's own
# CPU time between operations is made negligible (slowdown 0.001).
for model in alpha-beta nic; do
	cat >"$T/$model.yaml" <<YAML
mode: simulate
network:
  model: $model
  default: { latency: 1ms, bandwidth: 1Gbit }
devices:
  default: { slowdown: 0.001 }
YAML
done
# Communicators' segments left behind at the end are a leak.
segs_before=$(ls /dev/shm | grep -c '^uni-nccl-' || true)

# The shim is the whole of nccl.h: every function it declares (and its
# pnccl twin) is exported, so none comes from the real libnccl.
SHIM=$(dirname "$UNIRUN")/../shim/libunishim.so
grep -oE '^[a-zA-Z_][a-zA-Z_0-9 *]* +\*?p?nccl[A-Za-z0-9_]+\(' "$NCCL_H" | grep -oE 'p?nccl[A-Za-z0-9_]+\($' | tr -d '(' | sort -u >"$T/declared"
nm -D --defined-only "$SHIM" | awk '{print $3}' | sort -u >"$T/exported"
[ "$(wc -l <"$T/declared")" -gt 60 ] || fail "read only $(wc -l <"$T/declared") functions from $NCCL_H"
missing=$(comm -23 "$T/declared" "$T/exported" | tr '\n' ' ')
[ -z "$missing" ] || fail "nccl.h functions the shim does not export: $missing"
ok "every function of nccl.h ($(wc -l <"$T/declared") with the pnccl twins) is the shim's"
for n in 2 3 4 8; do
	rm -f "$T/id"
	NCCL_CHECK_ID=$T/id timeout 600 "$UNIRUN" -n $n --config "$T/rec.yaml" --trace "$T/c$n.unitrace" -- "$CHECK" correctness \
		>"$T/log" 2>&1 || { tail -40 "$T/log"; fail "correctness with $n ranks"; }
	got=$(grep -c "checks passed" "$T/log")
	[ "$got" = "$n" ] || { cat "$T/log"; fail "$got of $n ranks passed"; }
	ok "$n ranks: $(grep -m1 'checks passed' "$T/log" | sed 's/.*: //') on every rank"
done

# run_ranks N WHAT ARGS...: nccl_check ARGS on N ranks under unirun in
# record mode; every rank must print "checks passed" (else the log, and
# FAIL: WHAT).
run_ranks() {
	local n=$1 what=$2
	shift 2
	rm -f "$T"/id*
	NCCL_CHECK_ID=$T/id timeout 120 "$UNIRUN" -n $n --config "$T/rec.yaml" --trace "$T/run.unitrace" -- "$CHECK" "$@" \
		>"$T/log" 2>&1 || { cat "$T/log"; fail "$what"; }
	[ "$(grep -c 'checks passed' "$T/log")" = $n ] || { cat "$T/log"; fail "$what"; }
}

for n in 2 4; do
	run_ranks $n "split with $n ranks" split
done
ok "CommSplit by color and key (NOCOLOR included): sizes, ranks and an AllReduce in each part; InitRankScalable with ids from two ranks, bad ids refused"

for n in 2 4; do
	run_ranks $n "PyTorch call sequences with $n ranks" pytorch
done
ok "ProcessGroupNCCL's call sequences (1.13: grouped lazy init, coalescing, uneven all_to_all and gather as grouped send/recv, PreMulSum residences, a 2-rank p2p comm, a polling watchdog thread; main: non-blocking init polled, Split for new_group, Finalize then Destroy; a non-blocking init in progress until its peers join, refused before, aborted at once)"

# The same under nic: the watchdog thread polls ncclCommGetAsyncError in
# a loop with sched_yield and enters the shim nowhere else; the horizon
# waited for it at its creation for ever (the ranks' first AllReduce
# never ended) until GetAsyncError published its clock. Until session 29
# a rank in the join (or in CommSplit) held the horizon at its clock while
# the others slept in virtual time polling for the unique id: the horizon
# stood still 4 times for 250 ms until unid found it blocked outside the
# shim (the join is a meeting now, docs/nccl.md "Meetings"); and the
# first arrival on a connection its reader had not opened yet, the
# reader still in an earlier operation, held the network for the 200 ms
# soft hold twice.
printf 'mode: simulate\nnetwork: { model: nic, default: { latency: 2ms, bandwidth: 100Mbit } }\n' >"$T/ptnic.yaml"
rm -f "$T"/id*
S=ptnic.$$
rm -f /tmp/uni.$S.log
NCCL_CHECK_ID=$T/id timeout 120 "$UNIRUN" -n 4 --session $S --config "$T/ptnic.yaml" --trace "$T/ptnic.unitrace" \
	-- "$CHECK" pytorch >"$T/log" 2>&1 || { cat "$T/log"; fail "PyTorch call sequences under nic"; }
[ "$(grep -c 'checks passed' "$T/log")" = 4 ] || { cat "$T/log"; fail "PyTorch call sequences under nic"; }
! grep -q '^late:' "$T/log" || { cat "$T/log"; fail "PyTorch call sequences under nic: late transfers"; }
grep -q 'unid.*stopped:' /tmp/uni.$S.log || { cat /tmp/uni.$S.log; fail "PyTorch call sequences under nic: no unid log"; }
! grep -q 'horizon (.*) stood still' /tmp/uni.$S.log ||
	{ cat /tmp/uni.$S.log; fail "PyTorch call sequences under nic: the horizon waited for threads not running"; }
# (One soft hold is let pass: a rank the loaded host does not run for 200
# ms can ask late. Stale arrivals are: on a loaded host the watchdog
# threads, polling with sched_yield, get little CPU, and virtual time,
# which their clocks hold back, creeps with it: 30 s of wall time beside
# two busy loops on 2 CPUs instead of 0.8 s, and a reader still
# computing toward an arrival leaves it unread for 2 s.)
read -r soft stale < <(sed -n 's/.*went past \([0-9]*\) arrivals unread after holding.* and past \([0-9]*\) after 2 s.*/\1 \2/p' /tmp/uni.$S.log) || true
if grep -q 'went past' /tmp/uni.$S.log && { [ -z "$soft" ] || [ "$soft" -gt 1 ]; }; then
	cat /tmp/uni.$S.log
	fail "PyTorch call sequences under nic: the network waited for unread arrivals (${soft:-?} after 200 ms, ${stale:-?} after 2 s)"
fi
rm -f /tmp/uni.$S.log
# The join is a meeting: the ranks, which joined 10 ms of virtual time
# apart (rank 0 writes the id, the others find it after a 10 ms sleep),
# leave it together, and their first AllReduce starts within 1 ms on all
# four (before: 10 ms apart).
spread=$("$UNITRACE" dump "$T/ptnic.unitrace" | awk '$2 == "nccl_op" && !seen[$3]++ { t = substr($7, 4) + 0; if (n++ == 0 || t < lo) lo = t; if (t > hi) hi = t } END { print (n == 4 ? hi - lo : -1) }')
[ "$spread" -ge 0 ] && [ "$spread" -lt 1000000 ] ||
	{ "$UNITRACE" dump "$T/ptnic.unitrace" | grep nccl_op | head; fail "PyTorch call sequences under nic: the first AllReduces start $spread ns apart"; }
ok "ProcessGroupNCCL's call sequences under nic (a watchdog thread polling in a loop), none late, no wall-time stalls, the ranks leave the join together"

# Split under nic: rank 0, in no new communicator, starts the parent's
# AllReduce while ranks 1 and 3 still time theirs in the new one, and
# its first send to rank 1 arrives on a connection rank 1 has not opened,
# of a communicator whose ends it has opened none of yet: the thread that
# joined it stands for its reader (before, the network held the arrival
# for the 200 ms soft hold in every run, and unirun said so). A host
# that does not run a rank for 200 ms can cost one such hold: a second
# run must show it too.
for try in 1 2; do
	rm -f "$T"/id*
	NCCL_CHECK_ID=$T/id timeout 120 "$UNIRUN" -n 4 --config "$T/ptnic.yaml" -- "$CHECK" split >"$T/log" 2>&1 ||
		{ cat "$T/log"; fail "split under nic"; }
	[ "$(grep -c 'checks passed' "$T/log")" = 4 ] || { cat "$T/log"; fail "split under nic"; }
	grep -q '^unirun: virtual time stood still' "$T/log" || break
	[ $try = 1 ] || { cat "$T/log"; fail "split under nic: the simulation stood still in wall time (twice)"; }
done
ok "split under nic: the first arrival on a connection of a communicator its reader has opened no end of yet does not hold the network"

# Rooted operations in a row under nic: the root of a Broadcast or
# Scatter and the other ranks of a Reduce or Gather need nothing from
# their peers and run ahead of them in virtual time. Their data moves as
# messages between the root and each rank, so none meets its peers in
# real time: before (the slots' barriers), 20 rounds stood still 40 times
# (11 s of wall time for 0.1 s), and what the ranks sent after was late.
for try in 1 2; do
	rm -f "$T"/id* /tmp/uni.ncro-$$.log
	NCCL_CHECK_ID=$T/id timeout 120 "$UNIRUN" -n 4 --session "ncro-$$" --config "$T/ptnic.yaml" -- "$CHECK" rooted 20 \
		>"$T/log" 2>&1 || { cat "$T/log"; fail "rooted operations under nic"; }
	[ "$(grep -c 'checks passed' "$T/log")" = 4 ] || { cat "$T/log"; fail "rooted operations under nic"; }
	grep -q 'unid.*stopped:' /tmp/uni.ncro-$$.log || { cat "$T/log"; fail "rooted operations under nic: no unid log"; }
	! grep -q 'transfers were stamped before the network time' /tmp/uni.ncro-$$.log ||
		{ cat /tmp/uni.ncro-$$.log; fail "rooted operations under nic: transfers sent late"; }
	grep -q '^unirun: virtual time stood still' "$T/log" || break
	[ $try = 1 ] || { cat "$T/log"; fail "rooted operations under nic: the simulation stood still in wall time (twice)"; }
done
rm -f /tmp/uni.ncro-$$.log
ok "rooted operations in a row under nic (Broadcast, Reduce, Gather, Scatter): nobody waits for peers it needs nothing from, none late"

rm -f "$T"/id*
start=$(date +%s)
NCCL_CHECK_ID=$T/id timeout 60 "$UNIRUN" -n 3 --config "$T/rec.yaml" --trace "$T/a.unitrace" -- "$CHECK" abort \
	>"$T/log" 2>&1 || { cat "$T/log"; fail "abort run"; }
[ "$(grep -c 'checks passed' "$T/log")" = 3 ] || { cat "$T/log"; fail "abort: not every rank passed"; }
[ $(( $(date +%s) - start )) -lt 30 ] || fail "abort took too long"
ok "a rank aborts: the others' collective returns ncclRemoteError with a message, no hang"

rm -f "$T/id"
NCCL_CHECK_ID=$T/id timeout 120 "$UNIRUN" -n 3 --config "$T/rec.yaml" --trace "$T/m.unitrace" -- "$CHECK" mismatch \
	>"$T/log" 2>&1 || { cat "$T/log"; fail "mismatch run"; }
[ "$(grep -c 'checks passed' "$T/log")" = 3 ] || { cat "$T/log"; fail "mismatch not reported on every rank"; }
grep -q "NCCL: AllReduce: rank . has count" "$T/log" || { cat "$T/log"; fail "no message naming the counts"; }
ok "a count mismatch: ncclInvalidArgument and a message on every rank; the communicator goes on"

# Broadcast, Reduce, Gather and Scatter move as messages (docs/nccl.md
# "Data path"): in and out of place, of nothing, a Reduce in several parts
# (UNI_NCCL_REDUCE_PART: 4 kB of the peers' data a part); a count that
# differs is found by the rank that receives, which must abort.
for n in 3 4; do
	UNI_NCCL_REDUCE_PART=4096 run_ranks $n "rooted operations as messages on $n ranks" rooted 8
done
run_ranks 3 "a rooted operation's count mismatch" rootedmismatch
grep -q "ncclBroadcast: rank 2 expects .*which sent .*(the ranks disagree on the count)" "$T/log" ||
	{ cat "$T/log"; fail "a rooted operation's count mismatch: no message"; }
ok "Broadcast, Reduce, Gather, Scatter as messages: in place, empty, a Reduce in parts; a count mismatch is the receiver's error, its communicator to be aborted"

# A peer that sent and exited while the receiver waited: what it sent was
# in the pair's ring before it died, so the receive completes (it used to
# be called dead now and then; three runs, each failed with the old check
# two times in three here).
for i in 1 2 3; do
	rm -f "$T/id"
	NCCL_CHECK_ID=$T/id timeout 60 "$UNIRUN" -n 2 --config "$T/rec.yaml" -- "$CHECK" sendexit \
		>"$T/log" 2>&1 || { cat "$T/log"; fail "sendexit run $i"; }
	grep -q '^rank 1: 1 checks passed' "$T/log" || { cat "$T/log"; fail "sendexit: rank 1 did not receive"; }
done
ok "a peer that sent and exited at once: the receive completes with its data"

# Two sends to one peer in a group, two receives in one, matched in order
# (each message 4 MiB, more than the pair's ring; then 200 rounds of
# 16 kB): the second message used to write into the middle of the first
# and the second receive read the first's data as its length. And a peer
# that sends and then aborts: what it sent arrives (the receiver used to
# see the abort first).
rm -f "$T/id"
NCCL_CHECK_ID=$T/id timeout 120 "$UNIRUN" -n 2 --config "$T/rec.yaml" -- "$CHECK" p2ptwo >"$T/log" 2>&1 ||
	{ cat "$T/log"; fail "p2ptwo run"; }
grep -q '^rank 1: [1-9][0-9]* checks passed' "$T/log" || { cat "$T/log"; fail "p2ptwo: rank 1"; }
for i in 1 2 3; do
	rm -f "$T/id"
	NCCL_CHECK_ID=$T/id timeout 60 "$UNIRUN" -n 2 --config "$T/rec.yaml" -- "$CHECK" sendabort >"$T/log" 2>&1 ||
		{ cat "$T/log"; fail "sendabort run $i"; }
	grep -q '^rank 1: 1 checks passed' "$T/log" || { cat "$T/log"; fail "sendabort: rank 1 did not receive"; }
done
ok "two sends and two receives between one pair in a group, matched in order; a peer that sent, then aborted: the data arrives"

# CUDA present, no GPU: with libcudart loaded the host path still works.
CUDART=$(ls /usr/local/cuda/lib64/libcudart.so.* 2>/dev/null | head -1 || true)
if [ -n "$CUDART" ]; then
	rm -f "$T/id"
	NCCL_CHECK_ID=$T/id timeout 120 "$UNIRUN" -n 2 --config "$T/rec.yaml" --trace "$T/cu.unitrace" -- "$CHECK" cudart "$CUDART" \
		>"$T/log" 2>&1 || { cat "$T/log"; fail "host buffers with libcudart loaded"; }
	[ "$(grep -c 'checks passed' "$T/log")" = 2 ] || { cat "$T/log"; fail "cudart run"; }
	ok "libcudart loaded, no GPU: host buffers work ($(grep -m1 cudaGetDeviceCount "$T/log" | sed 's/rank .: //'))"
	# In simulate mode the shim loads the real CUPTI, which fails without
	# a GPU: said once per rank, and the host path goes on.
	printf 'mode: simulate\n' >"$T/sim0.yaml"
	rm -f "$T/id"
	NCCL_CHECK_ID=$T/id timeout 120 "$UNIRUN" -n 2 --config "$T/sim0.yaml" --trace "$T/cu.unitrace" -- "$CHECK" cudart "$CUDART" \
		>"$T/log" 2>&1 || { cat "$T/log"; fail "host buffers with libcudart loaded (simulate)"; }
	[ "$(grep -c 'checks passed' "$T/log")" = 2 ] || { cat "$T/log"; fail "cudart run (simulate)"; }
	[ "$(grep -c 'CUPTI is not available' "$T/log")" = 2 ] || { cat "$T/log"; fail "CUPTI's failure not said once per rank"; }
	ok "no GPU: CUPTI's failure said once per rank ($(grep -m1 -o 'cupti[A-Za-z]*: [A-Z_]*' "$T/log")), host buffers work"
fi

# The CUDA driver without libcudart.so (a runtime linked into the program
# statically, nvcc's default): the shim asks the driver about buffers, and
# a device buffer is ncclInvalidUsage with a message, not read on the host
# (the stand-in's device memory faults on a host read, as real device
# memory does; before, the shim took it for host memory).
cp "$MOCK_DRV" "$T/libcuda.so.1"
printf 'mode: simulate\n' >"$T/simd.yaml"
for cfg in rec simd; do
	rm -f "$T/id"
	NCCL_CHECK_ID=$T/id timeout 60 "$UNIRUN" -n 2 --config "$T/$cfg.yaml" -- "$CHECK" driveronly "$T/libcuda.so.1" \
		>"$T/log" 2>&1 || { cat "$T/log"; fail "driveronly ($cfg)"; }
	[ "$(grep -c 'checks passed' "$T/log")" = 2 ] || { cat "$T/log"; fail "driveronly ($cfg): checks"; }
done
ok "the CUDA driver without a runtime library: a device buffer is ncclInvalidUsage, said; host buffers work"

for n in 3 4; do
	run_ranks $n "shrink with $n ranks" shrink
done
ok "CommShrink: the excluded rank never calls it; the rest renumbered in order, twice; bad lists are ncclInvalidArgument"

# CommInitAll: several ranks in one process, one thread driving them
# through groups (every rank's part of a group progresses in a thread of
# its own), in record and in simulate mode. In a world of one process the
# NCCL ranks are the network's nodes: a ring AllReduce of 400 kB takes
# 2(n-1) steps of latency + S/n / bandwidth, the send/recv ring latency +
# S / bandwidth (compute made negligible).
printf 'mode: simulate\nnetwork: { default: { latency: 1ms, bandwidth: 1Gbit } }\ndevices: { default: { slowdown: 0.001 } }\n' >"$T/sim1.yaml"
# The same ranks made by InitRank calls in one group (group; groupnb:
# non-blocking ones, polled), as NCCL has a thread make several (and
# nccl-tests -g): before session 32 the first call waited for the ranks
# its thread was still to make.
for how in "" group groupnb; do
	for cfg in rec sim1; do
		rm -f "$T/id"
		# shellcheck disable=SC2086
		NCCL_ALGO=Ring NCCL_CHECK_ID=$T/id timeout 120 "$UNIRUN" -n 1 --config "$T/$cfg.yaml" --trace "$T/ia.unitrace" -- "$CHECK" initall 3 $how \
			>"$T/log" 2>&1 || { cat "$T/log"; fail "initall $how ($cfg)"; }
		grep -q 'rank 0: [0-9]* checks passed' "$T/log" || { cat "$T/log"; fail "initall $how ($cfg)"; }
	done
	$PY - "$T/log" <<'PYEOF' || fail "InitAll's network time ($how)"
import json, re, sys
t = json.loads(re.findall(r'initall times: (\{.*?\})', open(sys.argv[1]).read())[0])
a, B, S, n = 1e-3, 1e9, t["bytes"], 3
base, hop = 8.4e-6, 14e-6  # NCCL's Simple protocol (its choice at this size): per operation, per hop
want = {"allreduce_s": base + 2 * (n - 1) * (a + hop + S / n * 8 / B), "ring_s": base + a + hop + S * 8 / B}
bad = 0
for k, w in want.items():
    print(f"InitAll, 3 ranks in one process: {k[:-2]} {1e3*t[k]:.3f} ms, closed form {1e3*w:.3f} ms")
    bad |= abs(t[k] - w) > 0.01 * w
sys.exit(bad)
PYEOF
done
ok "CommInitAll and InitRank calls in a group (blocking and not): 3 ranks in one process, AllReduce, a send/recv ring and Broadcast in groups from one thread; in simulate mode timed between the ranks (ring AllReduce and send/recv within 1% of the closed forms)"
# InitRank in a group across processes (nccl_check groupinit): alone,
# with an AllReduce on it in the same group (run after the join, as in
# NCCL); a group that fails on rank 0 after its InitRank: rank 0's
# GroupEnd says so, its Destroy aborts the communicator, and the other
# ranks' GroupEnd ends with ncclRemoteError at once (they waited for rank
# 0 until UNI_NCCL_TIMEOUT; the test's timeout would end them).
for cfg in rec sim1; do
	rm -f "$T/id"
	NCCL_CHECK_ID=$T/id timeout 60 "$UNIRUN" -n 3 --config "$T/$cfg.yaml" -- "$CHECK" groupinit \
		>"$T/log" 2>&1 || { cat "$T/log"; fail "groupinit ($cfg)"; }
	[ "$(grep -c 'checks passed' "$T/log")" = 3 ] || { cat "$T/log"; fail "groupinit ($cfg): checks"; }
	[ "$(grep -c 'the communicator was aborted while it joined' "$T/log")" = 2 ] || { cat "$T/log"; fail "groupinit ($cfg): the peers' message"; }
done
ok "InitRank in a group across processes: alone with an AllReduce in the group; a group failed on rank 0 ends the others' joins with ncclRemoteError"
# A thread per rank in one process (nccl-tests -t): InitRank in each, a ring
# AllReduce of 8 MB on 4 ranks timed by each thread: the closed form.
rm -f "$T/id"
NCCL_ALGO=Ring NCCL_CHECK_ID=$T/id timeout 120 "$UNIRUN" -n 1 --config "$T/sim1.yaml" --trace "$T/th.unitrace" -- "$CHECK" threads 4 8388608 \
	>"$T/log" 2>&1 || { cat "$T/log"; fail "threads"; }
grep -q 'rank 0: [0-9]* checks passed' "$T/log" || { cat "$T/log"; fail "threads"; }
$PY - "$T/log" <<'PYEOF' || fail "a thread per rank: network time"
import json, re, sys
t = json.loads(re.findall(r'threads times: (\{.*?\})', open(sys.argv[1]).read())[0])
a, B, S, n = 1e-3, 1e9, t["bytes"], 4
base, hop = 8.4e-6, 14e-6  # Simple
w = base + 2 * (n - 1) * (a + hop + S / n * 8 / B)
print("a thread per rank, 4 ranks in one process: AllReduce", [round(x / 1e6, 3) for x in t["ns"]], f"ms, closed form {1e3*w:.3f} ms")
sys.exit(any(abs(x / 1e9 - w) > 0.01 * w for x in t["ns"]))
PYEOF
# The tools show each NCCL rank as its own node: summary (ranks 1-3 in
# rank 0's process, every connection consistent), plot (a row each).
"$UNITRACE" summary "$T/th.unitrace" --json >"$T/th.json" || fail "summary of the threads trace"
"$UNITRACE" plot "$T/th.unitrace" -o "$T/th.svg" || fail "plot of the threads trace"
$PY - "$T/th.json" "$T/th.svg" <<'PYEOF' || fail "the tools on a single-process NCCL trace"
import json, re, sys
d = json.load(open(sys.argv[1]))
ranks = {r["rank"]: r for r in d["ranks"]}
assert sorted(ranks) == [0, 1, 2, 3], sorted(ranks)
for k in (1, 2, 3):
    assert ranks[k].get("node_of_rank") == 0 and ranks[k]["bytes_sent"] > 8000000, ranks[k]
assert d["consistent"], d["mismatches"]
assert d["makespan_ms"] > 100, d["makespan_ms"]  # the main thread joined its ranks' threads
rows = re.findall(r'>rank (\d+)</text>', open(sys.argv[2]).read())
assert rows == ["0", "1", "2", "3"], rows
print("summary and plot: 4 nodes, consistent, makespan", d["makespan_ms"], "ms")
PYEOF
ok "a thread per rank in one process (InitRank each): the ring AllReduce within 1% of its closed form; summary and plot show each rank as a node, the joined makespan"

# Device buffers (docs/nccl.md, "Device buffers"): through the program's
# CUDA runtime, here tests/nccl/mock_cudart.c under a libcudart.so.* name,
# whose device memory the host cannot touch (PROT_NONE): every collective
# and a send/recv ring on device buffers, results checked, and the shim's
# copies through the runtime counted (one per device input and output).
cp "$MOCK" "$T/libcudart.so.13"
for n in 2 4; do
	run_ranks $n "device buffers with $n ranks" device "$T/libcudart.so.13"
done
ok "device buffers: every collective and a send/recv ring through the CUDA runtime's copies, results exact (2 and 4 ranks)"

# Empty collectives are discarded, as NCCL does: rank 0's return at once
# though the others call theirs 0.5 s later; an AllReduce after them meets.
run_ranks 3 "empty collectives" empty
ok "empty collectives: discarded (no meeting), the next operation in step"

# The pinned copies' cache keeps what the program had out at once lately
# (base 1 MiB here): repeated AllReduces of 2 MiB pin their copies once,
# big and small in turn pin nothing new, many small ones after them let
# the large copies go, three queued on a stream pin nothing the second
# time.
UNI_NCCL_STAGE_KEEP_BYTES=1048576 run_ranks 2 "the pinned copies' cache" pinned "$T/libcudart.so.13"
ok "pinned copies: repeated, alternating and queued operations larger than the cache's base pin their copies once; many smaller ones after them free them"

# Each communicator's CUDA device (docs/nccl.md, "Devices"): the stand-in
# with 4 devices; CuDevice says InitRank's current device, a Split's
# parent's, InitAll's list's (a device beyond the 4 refused); operations
# called with another device current, on a stream and synchronous, and a
# Finalize from a thread with no device while the stream holds one: every
# call the shim makes on the communicator's stream runs with its device
# current (the stand-in counts the others: 10 to 12 per rank without the
# switch), and the caller's device comes back. Record mode on 2 ranks,
# alpha-beta on 4.
export MOCK_CUDA_DEVICES=4
run_ranks 2 "devices with 2 ranks" devices "$T/libcudart.so.13"
rm -f "$T"/id*
NCCL_CHECK_ID=$T/id timeout 120 "$UNIRUN" -n 4 --config "$T/alpha-beta.yaml" --trace "$T/run.unitrace" -- "$CHECK" devices \
	"$T/libcudart.so.13" >"$T/log" 2>&1 || { cat "$T/log"; fail "devices, simulate mode"; }
[ "$(grep -c 'checks passed' "$T/log")" = 4 ] || { cat "$T/log"; fail "devices, simulate mode"; }
grep -q "rank 3: device 3, called from device 0: 0 calls on the stream from another device" "$T/log" ||
	{ cat "$T/log"; fail "devices: rank 3"; }
unset MOCK_CUDA_DEVICES
ok "each communicator's device: CuDevice (InitRank's current, Split's parent's, InitAll's list), the shim's CUDA calls with it current, the caller's back after (2 and 4 ranks)"

# Stream work (docs/nccl.md, "Device buffers"): the stand-in's device held
# by a gate; every call returns while it holds, the results come once it
# opens (2 ranks in record mode, 4 in simulate mode). The same program
# with the synchronous path fails (its first call waits until the gate
# opens by itself): the test tells the two apart.
run_ranks 2 "stream work with 2 ranks" stream "$T/libcudart.so.13"
grep -q "22 items queued behind the gate" "$T/log" || { cat "$T/log"; fail "stream work: queue"; }
rm -f "$T"/id*
NCCL_CHECK_ID=$T/id timeout 120 "$UNIRUN" -n 4 --config "$T/alpha-beta.yaml" --trace "$T/run.unitrace" -- "$CHECK" stream \
	"$T/libcudart.so.13" >"$T/log" 2>&1 || { cat "$T/log"; fail "stream work, simulate mode"; }
[ "$(grep -c 'checks passed' "$T/log")" = 4 ] || { cat "$T/log"; fail "stream work, simulate mode"; }
rm -f "$T"/id*
if UNI_NCCL_DEVICE_SYNC=1 MOCK_CUDA_GATE_S=2 NCCL_CHECK_ID=$T/id timeout 120 "$UNIRUN" -n 2 --config "$T/rec.yaml" \
	--trace "$T/run.unitrace" -- "$CHECK" stream "$T/libcudart.so.13" >"$T/log" 2>&1; then
	cat "$T/log"
	fail "stream work: the synchronous path passed the stream test"
fi
grep -q "waited for the work queued on its stream" "$T/log" || { cat "$T/log"; fail "stream work: sync control"; }
# The way a real runtime takes (the stand-in without its hooks, under a
# libcudart name of its own): the stream held 2 s by a host function that
# sleeps; the calls must return within 1 s (tools/gpu_check.sh runs this
# on a GPU).
mkdir -p "$T/plain"
cp "$MOCK_PLAIN" "$T/plain/libcudart.so.13"
run_ranks 2 "stream work, a runtime without the stand-in's hooks" stream "$T/plain/libcudart.so.13"
grep -q "the calls returned after 0\.[0-9]* s of real time, the stream held for 2 s" "$T/log" || { cat "$T/log"; fail "stream work: held stream"; }
# And every collective through it (it refuses streams it did not make).
run_ranks 2 "device buffers, a runtime without the stand-in's hooks" device "$T/plain/libcudart.so.13"
ok "stream work: device operations queued behind held work return at once, results exact once it runs (incl. PreMulSum by a device scalar, a send/recv group), in record and simulate mode, and behind a host function holding the stream 2 s (as on a real runtime); the synchronous path fails the same test"

# A communicator aborted by another thread while a call waits in it (as
# PyTorch's watchdog does): the call returns ncclRemoteError (it used to
# crash: the abort freed the memory under it), on the host path and while
# it waits for work queued on a stream; the queued in-place AllReduce
# then leaves its device buffer as it was (its copy back used to carry a
# reused host copy's leftovers: another operation's result).
for lib in "" "$T/libcudart.so.13"; do
	rm -f "$T/id"
	NCCL_CHECK_ID=$T/id timeout 60 "$UNIRUN" -n 2 --config "$T/rec.yaml" -- "$CHECK" abortwait $lib >"$T/log" 2>&1 ||
		{ cat "$T/log"; fail "abort from another thread${lib:+ (stream work)}"; }
	[ "$(grep -c 'checks passed' "$T/log")" = 2 ] || { cat "$T/log"; fail "abortwait: not every rank passed"; }
done
ok "an abort from another thread while a call waits: ncclRemoteError, no crash (host path, and waiting for queued work); the queued in-place buffer unchanged"

# A sticky CUDA error while an operation is queued (nothing will run any
# more): Finalize returns ncclUnhandledCudaError at once (it waited for
# UNI_NCCL_TIMEOUT, by default 30 minutes), Destroy returns.
rm -f "$T/id"
UNI_NCCL_TIMEOUT=60 NCCL_CHECK_ID=$T/id timeout 120 "$UNIRUN" -n 2 --config "$T/rec.yaml" -- "$CHECK" sticky "$T/libcudart.so.13" \
	>"$T/log" 2>&1 || { cat "$T/log"; fail "sticky CUDA error run"; }
[ "$(grep -c 'checks passed' "$T/log")" = 2 ] || { cat "$T/log"; fail "sticky: not every rank passed"; }
ok "a sticky CUDA error with work queued: Finalize says so at once, Destroy returns"

# The device timeline (docs/nccl.md, "CUPTI"): the stand-in runtime
# reports its calls and kernels to a stand-in CUPTI (tests/nccl/mock_cupti.c,
# loaded by the shim as libcupti.so.13). Kernels of 5 ms (sgemm: slowdown 2)
# and 1 ms, then an AllReduce of 4 MB on the same stream: the host does not
# wait at the call, and after the stream's sync it is at 11 ms + the ring's
# time R; a 30 ms sgemm (60 ms) on another stream beside an AllReduce: the
# device sync at max(60 ms, R); an AllReduce ordered after a 10 ms sgemm
# of the other stream by an event: 20 ms + R at the sync of an event after
# it. With CUDA_INJECTION64_PATH (unirun's default; the stand-in runtime
# calls the hook as the driver does) and without it (CUPTI starts at the
# first NCCL call), alpha-beta on 2 ranks and nic on 4.
cp "$MOCK_CUPTI" "$T/libcupti.so.13"
for model in alpha-beta nic; do
	{ cat "$T/$model.yaml"; printf '  kernels:\n    - { match: "*sgemm*", slowdown: 2 }\n    - { match: "*relu*", slowdown: 1 }\n'; } \
		>"$T/cu-$model.yaml"
done
for run in "alpha-beta 2 inject" "alpha-beta 2 first" "nic 4 inject"; do
	set -- $run
	rm -f "$T"/id*
	# unirun sets CUDA_INJECTION64_PATH unless it is set (here: empty).
	inj=(-u CUDA_INJECTION64_PATH)
	[ "$3" = first ] && inj=(CUDA_INJECTION64_PATH=)
	env "${inj[@]}" UNI_CUPTI_DEBUG=1 LD_LIBRARY_PATH=$T NCCL_CHECK_ID=$T/id timeout 120 \
		"$UNIRUN" -n $2 --config "$T/cu-$1.yaml" --trace "$T/cu.unitrace" -- "$CHECK" cupti "$T/libcudart.so.13" 4194304 \
		>"$T/log" 2>&1 || { cat "$T/log"; fail "device timeline ($run)"; }
	[ "$(grep -c 'checks passed' "$T/log")" = $2 ] || { cat "$T/log"; fail "device timeline ($run)"; }
	want=CUDA_INJECTION64_PATH
	[ "$3" = first ] && want="the first NCCL call"
	[ "$(grep -c "CUPTI on ($want)" "$T/log")" = $2 ] || { cat "$T/log"; fail "CUPTI not started by $want"; }
	$PY - "$T/log" $2 <<'PYEOF' || fail "device timeline ($run)"
import json, re, sys
res = [json.loads(m) for m in re.findall(r'\{"rank".*?\}', open(sys.argv[1]).read())]
n = int(sys.argv[2])
assert len(res) == n, res
a, B, S = 1e-3, 1e9, 4194304
R = 8.4e-6 + 2 * (n - 1) * (a + 14e-6 + S / n * 8 / B)  # NCCL's Simple protocol
want = {"serial": 11e-3 + R, "overlap": max(60e-3, R), "event": 20e-3 + R}
bad = 0
for r in res:
    if r["launched_ns"] > 1e5:
        print(f"rank {r['rank']}: the host waited {r['launched_ns']} ns at the call"); bad = 1
    for k, w in want.items():
        got = r[k + "_ns"] / 1e9
        print(f"rank {r['rank']} {k}: {1e3*got:.3f} ms, want {1e3*w:.3f} ms")
        if abs(got - w) / w > 0.005:
            bad = 1
sys.exit(bad)
PYEOF
done
ok "device timeline: kernels scaled by devices.kernels, an AllReduce after them on its stream, beside a kernel on another, after an event; the host not held at the call (injection and first-call start; alpha-beta 2 ranks, nic 4)"
# unitrace replay -o of that trace (nic, 4 ranks): the operations timed on
# the device timeline (nccl_op flags bit 15) are left out, the rest kept.
"$UNITRACE" replay "$T/cu.unitrace" -o "$T/cu-rep.unitrace" >/dev/null || fail "replay of the device timeline's trace"
"$UNITRACE" dump --json "$T/cu.unitrace" >"$T/cu.jsonl" && "$UNITRACE" dump --json "$T/cu-rep.unitrace" >"$T/cu-rep.jsonl" ||
	fail "dump of the device timeline's trace and its replay"
$PY - "$T/cu.jsonl" "$T/cu-rep.jsonl" <<'PYEOF' || fail "replay -o of the device timeline's trace"
import json, sys
rec, rep = ([json.loads(l) for l in open(f)] for f in sys.argv[1:])
ops = [r for r in rec if r["kind"] == "nccl_op"]
dev = [r for r in ops if r["flags"] & 1 << 15]
out = [r for r in rep if r["kind"] == "nccl_op"]
print(f"{len(ops)} nccl_op records, {len(dev)} timed on the device timeline; the replay's output has {len(out)}")
assert dev and all(r["flags"] & 1 << 8 for r in dev)
assert len(out) == len(ops) - len(dev) and not any(r["flags"] & 1 << 15 for r in out)
PYEOF
ok "unitrace replay -o leaves out the operations timed on the device timeline"

# More streams than the timeline's table holds (300 > 256): said once.
rm -f "$T"/id*
env -u CUDA_INJECTION64_PATH LD_LIBRARY_PATH=$T NCCL_CHECK_ID=$T/id timeout 120 \
	"$UNIRUN" -n 1 --config "$T/cu-alpha-beta.yaml" -- "$CHECK" streams "$T/libcudart.so.13" >"$T/log" 2>&1 ||
	{ cat "$T/log"; fail "300 streams"; }
[ "$(grep -c "device timeline's tables are full" "$T/log")" = 1 ] || { cat "$T/log"; fail "300 streams: not said once"; }
ok "more streams than the device timeline holds: said once"

# Rank 2 of 3 never joins (it is not started): the others give up with a
# message after UNI_NCCL_TIMEOUT and exit non-zero; nothing hangs.
rm -f "$T/id"
start=$(date +%s)
( export NCCL_CHECK_ID=$T/id UNI_NCCL_TIMEOUT=2 WORLD_SIZE=3
  RANK=0 LD_PRELOAD=$(dirname "$UNIRUN")/../shim/libunishim.so timeout 60 "$CHECK" correctness >"$T/j0" 2>&1 & p0=$!
  RANK=1 LD_PRELOAD=$(dirname "$UNIRUN")/../shim/libunishim.so timeout 60 "$CHECK" correctness >"$T/j1" 2>&1 & p1=$!
  wait $p0; echo $? >"$T/rc0"; wait $p1; echo $? >"$T/rc1" ) || true
el=$(( $(date +%s) - start ))
for r in 0 1; do
	[ "$(cat "$T/rc$r")" = 1 ] || { cat "$T/j$r"; fail "rank $r without its peer: status $(cat "$T/rc$r"), want 1"; }
	grep -q "waited 2 s for ranks 2 to join" "$T/j$r" || { cat "$T/j$r"; fail "rank $r: no message naming rank 2"; }
done
[ "$el" -lt 30 ] || fail "a missing rank took $el s to be reported"
ok "a rank that never joins: ncclRemoteError naming it after UNI_NCCL_TIMEOUT"

# The same under unirun, stopped while rank 0 waits for rank 1 (which
# never calls InitRank): rank 0 dies in the join, its communicator's
# segment stays named; unid removes it when the session ends.
rm -f "$T/id"
before=$(ls /dev/shm | grep -c '^uni-nccl-' || true)
NCCL_CHECK_ID=$T/id UNI_NCCL_TIMEOUT=300 "$UNIRUN" -n 2 --config "$T/rec.yaml" --trace "$T/k.unitrace" -- \
	sh -c 'if [ "$RANK" = 1 ]; then exec sleep 60; else exec "$0" correctness; fi' "$CHECK" >"$T/klog" 2>&1 &
up=$!
for _ in $(seq 100); do [ -s "$T/id" ] && [ "$(ls /dev/shm | grep -c '^uni-nccl-' || true)" -gt "$before" ] && break; sleep 0.1; done
[ "$(ls /dev/shm | grep -c '^uni-nccl-' || true)" -gt "$before" ] || { kill $up; cat "$T/klog"; fail "rank 0 made no segment"; }
sleep 0.5
kill -TERM $up
wait $up || true
after=$(ls /dev/shm | grep -c '^uni-nccl-' || true)
[ "$after" = "$before" ] || { ls -l /dev/shm; cat "$T/klog"; fail "a killed join left its segment in /dev/shm"; }
grep -q "removed the NCCL communicator segment /dev/shm/uni-nccl-" "/tmp/uni.unirun-$up.log" ||
	{ cat "/tmp/uni.unirun-$up.log"; fail "unid did not say it removed the segment"; }
rm -f "/tmp/uni.unirun-$up.log"
ok "a join killed midway: unid removes the communicator's segment at the session's end"

# Deadlocks in NCCL calls (simulate mode): unid reports them within
# seconds, each blocked thread with the call it is in, its communicator,
# whom it waits for and what that rank is doing, and its stack; exit 97.
# nojoin: the last rank ends without joining (an ended rank counts: the
# others would have waited UNI_NCCL_TIMEOUT, 30 minutes).
dl_case() { # n how expected-line-regex...
	local n=$1 how=$2
	shift 2
	rm -f "$T/id" "$T/dl.unitrace.deadlock.txt"
	local st=0
	NCCL_CHECK_ID=$T/id UNI_NCCL_TIMEOUT=600 timeout 60 "$UNIRUN" -n $n --config "$T/alpha-beta.yaml" \
		--trace "$T/dl.unitrace" -- "$CHECK" deadlock $how >"$T/dlog" 2>&1 || st=$?
	[ $st = 97 ] || { cat "$T/dlog"; fail "deadlock $how: status $st, want 97"; }
	for re in "$@"; do
		grep -qE "$re" "$T/dl.unitrace.deadlock.txt" ||
			{ cat "$T/dl.unitrace.deadlock.txt"; fail "deadlock $how: no line matching: $re"; }
	done
	! grep -q "came back" "$T/dlog" || { cat "$T/dlog"; fail "deadlock $how: a rank came back"; }
	"$UNITRACE" export "$T/dl.unitrace" --chrome "$T/dl.json" >/dev/null
	grep -q '"wait_kind":6' "$T/dl.json" || fail "deadlock $how: no deadlock record of an NCCL wait in the trace"
}
K='NCCL communicator [0-9a-f]{16}'
dl_case 3 recv "in ncclRecv on $K \(rank 0 of 3\): waits for rank 1; rank 1 is in ncclRecv from rank 2" \
	"in ncclRecv on $K \(rank 2 of 3\): waits for rank 0; rank 0 is in ncclRecv from rank 1" \
	"ncclRecv\+0x[0-9a-f]+ \(libunishim.so\)"
dl_case 3 coll "in ncclAllReduce on $K \(rank 0 of 3\): waits for ranks that have not called it: rank 1 is in ncclRecv from rank 0; rank 2 is in ncclRecv from rank 0" \
	"in ncclRecv on $K \(rank 1 of 3\): waits for rank 0; rank 0 is in ncclAllReduce"
dl_case 2 cond "in ncclAllReduce on $K \(rank 0 of 2\): waits for ranks that have not called it: rank 1 is in no call on it" \
	"blocked on condition variable"
dl_case 2 empty "in ncclAllReduce on $K \(rank 0 of 2\): waits for ranks that have not called it: rank 1 called ncclAllReduce with count 0 \(discarded: it does not come\)"
dl_case 3 sends "in ncclRecv on $K \(rank 0 of 3\): waits for rank 1 to take what it sent \(flow control: .*\); rank 1 is in ncclRecv from rank 0" \
	"ncclRecv\+0x[0-9a-f]+ \(libunishim.so\)"
dl_case 3 nojoin "in ncclCommInitRank on $K \(rank 0 of 3\): waits for rank 2 to join" \
	"in ncclCommInitRank on $K \(rank 1 of 3\): waits for rank 2 to join" "^rank 2: ended"
# Not a deadlock: the last rank works 4 s outside the shim's sight before
# it joins (the others wait in the join all that time).
rm -f "$T/id"
NCCL_CHECK_ID=$T/id timeout 60 "$UNIRUN" -n 3 --config "$T/alpha-beta.yaml" --trace "$T/sj.unitrace" -- \
	"$CHECK" deadlock slowjoin >"$T/dlog" 2>&1 || { cat "$T/dlog"; fail "a slow join was taken for a deadlock"; }
[ "$(grep -c 'checks passed' "$T/dlog")" = 3 ] || { cat "$T/dlog"; fail "slow join"; }
ok "deadlocks in NCCL calls (receive cycle, a collective others skip or call empty, sends of 2 MiB before receives, a rank that never joins): reported with the call, whom it waits for and what that rank does"
# Under nic, ranks far apart in virtual time (2 ms, 100 Mbit/s, 1 MB: a
# Broadcast's root is done 160 ms before its last rank): every operation
# completes. Until session 21 unread arrivals of ranks waiting for their
# peers in real time, and data sent before its receiver's end opened, held
# the network: rank 2 waited in its Broadcast for ever (exit 97).
printf 'mode: simulate\nnetwork: { model: nic, default: { latency: 2ms, bandwidth: 100Mbit } }\n' >"$T/nic2.yaml"
rm -f "$T/id"
NCCL_CHECK_ID=$T/id timeout 120 "$UNIRUN" -n 3 --config "$T/nic2.yaml" -- "$CHECK" timing 1000000 >"$T/log" 2>&1 ||
	{ cat "$T/log"; fail "nic, 3 ranks far apart: the run"; }
$PY - "$T/log" <<'PYEOF' || { cat "$T/log"; fail "nic, 3 ranks far apart"; }
import json, re, sys
res = [json.loads(m) for m in re.findall(r'^\{"rank".*\}$', open(sys.argv[1]).read(), re.M)]
assert len(res) == 3, res
a, B, S, n = 2e-3, 1e8, 1e6, 3
w = 8.4e-6 + 2 * (n - 1) * (a + 14e-6 + S / n * 8 / B)  # the ring, Simple
for r in res:
    got = r["allreduce_ns"] / 1e9
    # (no bound: transfers of a rank that waited for its peers in real
    # time may start late, how late depends on the host's load)
    print(f"rank {r['rank']}: AllReduce {1e3*got:.3f} ms, closed form {1e3*w:.3f} ms")
    assert got >= w * 0.999
PYEOF
ok "nic, 3 ranks far apart in virtual time: every operation completes"

# The rest of a message whose receiver makes no room in the pair's ring for
# 2 ms is kept outside it (docs/nccl.md "Data path"), so a sender waits
# that long at most for its receiver to read. Before,
# under nic a sender that ran ahead in virtual time filled the 1 MiB ring
# and held the network at its clock while its receiver, still in an
# earlier operation, needed the network to move, until the horizon left
# it out: p2ptwo (two 4 MiB sends in a group, then 200 rounds of two
# 16 kB sends) took 15.7 s of host time with 400 transfers late by up to
# 1.8 s. And sends and receives grouped differently on the two sides (two
# sends a call each received in one group, four sent in one group received
# a call each), 4 MiB each, under both models; a message nobody receives
# is removed with its receiver's communicator.
rm -f "$T/id"
NCCL_CHECK_ID=$T/id timeout 120 "$UNIRUN" -n 2 --config "$T/nic2.yaml" -- "$CHECK" p2ptwo >"$T/log" 2>&1 ||
	{ cat "$T/log"; fail "p2ptwo under nic"; }
grep -q '^rank 1: [1-9][0-9]* checks passed' "$T/log" || { cat "$T/log"; fail "p2ptwo under nic: rank 1"; }
! grep -q '^late:' "$T/log" || { cat "$T/log"; fail "p2ptwo under nic: late transfers"; }
for model in alpha-beta nic; do
	rm -f "$T/id"
	NCCL_CHECK_ID=$T/id timeout 120 "$UNIRUN" -n 2 --config "$T/$model.yaml" -- "$CHECK" p2pgroups 4194304 >"$T/log" 2>&1 ||
		{ cat "$T/log"; fail "p2pgroups ($model)"; }
	[ "$(grep -c 'checks passed' "$T/log")" = 2 ] || { cat "$T/log"; fail "p2pgroups ($model): checks"; }
	! grep -q '^late:' "$T/log" || { cat "$T/log"; fail "p2pgroups ($model): late transfers"; }
done
rm -f "$T/id"
NCCL_CHECK_ID=$T/id timeout 60 "$UNIRUN" -n 2 --config "$T/rec.yaml" -- "$CHECK" sendlost >"$T/log" 2>&1 ||
	{ cat "$T/log"; fail "sendlost: a message nobody received was not removed with its receiver's communicator"; }
[ "$(grep -c 'checks passed' "$T/log")" = 2 ] || { cat "$T/log"; fail "sendlost: checks"; }
ok "messages kept outside the pair's ring: p2ptwo under nic (2 ms, 100 Mbit/s) none late, sends and receives grouped differently on the two sides, a message nobody received removed"

# Flow control (docs/nccl.md "Flow control"): rank 0 sends 32 messages of
# 128 kB (a chunk each), a call each. The first eight leave at once (the
# FIFO's eight slots); the k-th after them leaves once the credit of the
# (k-8)-th came back (rank 1 consumed it): the sends end with the 24th
# message's arrival plus a credit's latency, b + h + 24 S/B + 2a + 8 B/B,
# and rank 1's receives take 24 S/B after its first eight (the link stays
# busy). Two messages of 8 MiB (64 chunks): the second call's transfers
# leave once the first is complete (its last chunk has a slot: the credit
# its receiver sends once all but 7 chunks are in), b + h + 57 c/B + 2a +
# 8 B/B, and an empty Recv after them starts once the second is complete.
# In both, rank 1 then sends an empty message, which rank 0's empty Recv
# waits for (NCCL's zero-byte Send and Recv synchronise): an 8-byte
# transfer with LL's latencies (b' = 6.6 us, h' = 5 us), sent once rank 1
# received all, at b + h + a + nS/B, and in at b + h + a + nS/B + b' + h'
# + a + 8 B/B. Under alpha-beta and nic, none late; every
# credit's record is in the trace (unid finishes the network's flows as it
# stops: the last credit, never read, was lost under nic), and
# unitrace summary counts them.
for model in alpha-beta nic; do
	for w in "32 131072" "2 8388608"; do
		rm -f "$T/id"
		# shellcheck disable=SC2086
		NCCL_CHECK_ID=$T/id timeout 120 "$UNIRUN" -n 2 --config "$T/$model.yaml" -- \
			"$CHECK" p2pbench $w >"$T/log" 2>&1 || { cat "$T/log"; fail "flow control $w ($model): the run"; }
		! grep -q '^late:' "$T/log" || { cat "$T/log"; fail "flow control $w ($model): late transfers"; }
		# (credits never read are left out of the check)
		grep -q "^consistency: bytes sent == bytes received on every connection" "$T/log" ||
			{ cat "$T/log"; fail "flow control $w ($model): the summary's consistency check"; }
		# shellcheck disable=SC2086
		$PY - "$T/log" $w <<'PYEOF' || { cat "$T/log"; fail "flow control, $model, $w"; }
import json, re, sys
text = open(sys.argv[1]).read()
res = {r["rank"]: r for r in (json.loads(m) for m in re.findall(r'^\{"rank".*\}$', text, re.M))}
n, size = int(sys.argv[2]), int(sys.argv[3])
a, B, b, h, c, cb = 1e-3, 1e9, 8.4e-6, 14e-6, 131072, 8 * 8 / 1e9
# rank 1's empty message, sent once it received everything
done = b + h + a + n * size * 8 / B + 6.6e-6 + 5e-6 + a + cb
if size == c:
    want = b + h + (n - 8) * size * 8 / B + 2 * a + cb
    got8, rest = res[0]["first8_ms"] / 1e3, (res[1]["ms"] - res[1]["first8_ms"]) / 1e3
    print(f"sends: first 8 {1e6 * got8:.3f} us; receives after the first 8 {1e3 * rest:.3f} ms, want {1e3 * (n - 8) * size * 8 / B:.3f}")
    assert got8 < 20e-6, got8
    assert abs(rest - (n - 8) * size * 8 / B) < 1e-3 * rest, rest
    credits = (n, n - 8)  # sent, read
else:
    k = size // c
    want = b + h + (k - 7) * c * 8 / B + 2 * a + cb
    credits = (2 * n, 2 * n - 1)
got, gotd = res[0]["ms"] / 1e3, res[0]["done_ms"] / 1e3
print(f"sends: {1e3 * got:.3f} ms, closed form {1e3 * want:.3f} ms; complete {1e3 * gotd:.3f} ms, closed form {1e3 * done:.3f} ms")
assert abs(got - want) < 1e-3 * want, (got, want)
assert abs(gotd - done) < 1e-3 * done, (gotd, done)
m = re.search(r"flow control sent (\d+) credit bytes, of which senders read (\d+)", text)
assert m and (int(m[1]), int(m[2])) == (8 * credits[0], 8 * credits[1]), (m and m.groups(), credits)
PYEOF
	done
done
# fc_run MODEL NRANKS ARGS...: one run of nccl_check under MODEL: every
# rank passes its checks, none late, no connection left unmodelled.
fc_run() {
	local model=$1 n=$2
	shift 2
	rm -f "$T/id"
	NCCL_CHECK_ID=$T/id timeout 60 "$UNIRUN" -n "$n" --config "$T/$model.yaml" -- "$CHECK" "$@" >"$T/log" 2>&1 ||
		{ cat "$T/log"; fail "$* ($model)"; }
	[ "$(grep -c 'checks passed' "$T/log")" = "$n" ] || { cat "$T/log"; fail "$* ($model): checks"; }
	grep -q "^session end: .*, 0 unmodelled connections" "$T/log" ||
		{ cat "$T/log"; fail "$* ($model): unmodelled connections"; }
	! grep -q '^late:' "$T/log" || { cat "$T/log"; fail "$* ($model): late transfers"; }
}
# 256 messages of 1 MiB under nic: the sender reads its last credit while
# it waits for its peers and holds the network at its operation's end
# (soft_floor); unid read that hold as 2^64 ns old, and so none, when the
# shim set it after unid took the time for its scan: 4 to 16 transfers
# started 6.4 ms late in every run.
fc_run nic 2 p2pbench 256 1048576
# The same where the kernel has no futex_waitv (before Linux 5.16): the
# waits for peers look for unid's answers every millisecond instead of
# being woken by them.
UNI_NO_FUTEX_WAITV=1 fc_run nic 2 p2pbench 256 1048576
for model in alpha-beta nic; do
	# One message: its credit's connection is matched (the sender opens
	# its end with its first message, though it never reads it) and the
	# credit is in the trace.
	fc_run $model 2 p2pbench 1 131072
	grep -q "flow control sent 8 credit bytes, of which senders read 0 " "$T/log" ||
		{ cat "$T/log"; fail "one message ($model): the credit"; }
	# A receive of the wrong count (rank 1 expects 4 MiB of rank 0's 2
	# MiB) fails on the receiver only, which starts new connections before
	# any of its reads was answered; rank 0's next operation (128 kB to
	# rank 2) waits for its first send's completion, a credit rank 1 will
	# never send: unid answers it once rank 1's credit end closed (the end
	# opened with the first message).
	fc_run $model 3 p2pmismatch
	# Empty messages against counts that disagree (0 sent, 1 kB expected,
	# and the other way round): the receivers get the error and an
	# asynchronous one (their virtual connections are apart from their
	# peers'), their next call says "abort it" at once, and a peer of an
	# aborted rank gets ncclRemoteError (its connections to them stay
	# unmatched: no check of unmodelled ones). Before, a receiver's next
	# call waited for ever in a timing its peer no longer met.
	rm -f "$T/id"
	NCCL_CHECK_ID=$T/id timeout 60 "$UNIRUN" -n 3 --config "$T/$model.yaml" -- "$CHECK" p2pzero >"$T/log" 2>&1 ||
		{ cat "$T/log"; fail "p2pzero ($model)"; }
	[ "$(grep -c 'checks passed' "$T/log")" = 3 ] || { cat "$T/log"; fail "p2pzero ($model): checks"; }
	! grep -q '^late:' "$T/log" || { cat "$T/log"; fail "p2pzero ($model): late transfers"; }
	# A send of 2 MiB returns at once, as NCCL's does on a GPU (its stream,
	# the communicator's next operation, waits for the receiver): rank 0
	# tells rank 1 through a file that it sent, and only then does rank 1
	# receive. (A sender that waited in its call for the receiver hung.)
	fc_run $model 2 sendsync
done
ok "flow control: eight chunks in flight, a sender paced by its receiver's credits (closed forms within 0.1%, alpha-beta and nic, none late); a Send returns before its receiver receives"

# Time: alpha-beta, 4 ranks, 8 MB, NCCL's Simple protocol (base b = 8.4 us
# per operation, h = 14 us per hop): ring AllReduce b + 2(n-1)(a + h +
# S/(nB)), AllGather and ReduceScatter b + (n-1)(a + h + S/(nB)),
# Broadcast and Reduce a chain of k 1 MiB chunks: b + (n-1)(a + h) +
# (n-1+k-1)c/B, i.e. the nccl-tests form (n-1)a + S/B plus the pipeline's
# fill (n-2)c/B; AlltoAll b + a + h + (S/n)/B; Send/Recv b + a + h + S/B.
# The program's own CPU time between operations is compute (and noisy on a
# loaded host): made negligible with slowdown 0.001, as the comparison is
# about communication.
cat >"$T/sim.yaml" <<YAML
mode: simulate
network:
  model: alpha-beta
  default: { latency: 1ms, bandwidth: 1Gbit }
devices:
  default: { slowdown: 0.001 }
YAML
rm -f "$T/id"
NCCL_CHECK_ID=$T/id timeout 300 "$UNIRUN" -n 4 --config "$T/sim.yaml" --trace "$T/t.unitrace" -- "$CHECK" timing 8388608 \
	>"$T/log" 2>&1 || { cat "$T/log"; fail "timing run"; }
$PY - "$T/log" <<'PYEOF' || fail "closed forms"
import json, math, re, sys
res = [json.loads(m) for m in re.findall(r'\{"rank".*?\}', open(sys.argv[1]).read())]
assert len(res) == 4, res
a, B, S, n = 1e-3, 1e9, 8388608, 4
chunk = 1 << 20
k = math.ceil(S / chunk)
# NCCL's Simple protocol (its choice for every one of these at 8 MB):
# 8.4 us per operation, 14 us per hop over the network.
base, h = 8.4e-6, 14e-6
want = {
    "allreduce": base + 2 * (n - 1) * (a + h + S / n * 8 / B),
    "allgather": base + (n - 1) * (a + h + S / n * 8 / B),
    "reducescatter": base + (n - 1) * (a + h + S / n * 8 / B),
    "broadcast": base + (n - 1) * (a + h) + (n - 1 + k - 1) * chunk * 8 / B,
    "reduce": base + (n - 1) * (a + h) + (n - 1 + k - 1) * chunk * 8 / B,
    "alltoall": base + a + h + S / n * 8 / B,
    "sendrecv": base + a + h + S * 8 / B,
}
bad = 0
for r in sorted(res, key=lambda r: r["rank"]):
    for op, w in want.items():
        got = r[op + "_ns"] / 1e9
        err = abs(got - w) / w
        # Broadcast and Reduce: the rank at the end of the chain takes the
        # whole pipeline; others leave earlier (their part ends sooner).
        if op in ("broadcast", "reduce") and got < w * 0.99:
            continue
        print(f"rank {r['rank']} {op}: {1e3*got:.3f} ms, closed form {1e3*w:.3f} ms ({100*err:.3f}%)")
        if err > 0.001:
            bad = 1
# the last in the chain matches exactly
for op in ("broadcast", "reduce"):
    best = max(r[op + "_ns"] for r in res) / 1e9
    if abs(best - want[op]) / want[op] > 0.001:
        print(f"{op}: slowest rank {best*1e3:.3f} ms, want {want[op]*1e3:.3f} ms"); bad = 1
sys.exit(bad)
PYEOF
ok "virtual time of every collective within 0.1% of its closed form with NCCL's Simple protocol (alpha-beta, 4 ranks, 8 MB)"
# unitrace replay of the simulated NCCL (docs/unitrace.md): each transfer's
# protocol latencies after the clock are in the trace (delay records,
# 1.8), and the ranks' meeting at init is a take from each rank's clock.
# The trace replayed under its own configuration ends where the run did,
# and under 200 Mbit/s (and under nic, 200 Mbit/s) where a live run under
# that ends; within 0.01%. Before, the replay left the latencies out
# (0.16% short) and a rank that waited 91 us at init lost them (0.4%).
sed 's/model: alpha-beta/model: nic/' "$T/sim.yaml" >"$T/simnic.yaml"
sed 's/bandwidth: 1Gbit/bandwidth: 200Mbit/' "$T/sim.yaml" >"$T/sim200.yaml"
sed 's/bandwidth: 1Gbit/bandwidth: 200Mbit/' "$T/simnic.yaml" >"$T/simnic200.yaml"
for c in sim200 simnic200; do
	rm -f "$T/id"
	NCCL_CHECK_ID=$T/id timeout 300 "$UNIRUN" -n 4 --config "$T/$c.yaml" --trace "$T/$c.unitrace" -- "$CHECK" timing 8388608 \
		>"$T/$c.log" 2>&1 || { cat "$T/$c.log"; fail "timing run under $c"; }
done
cp "$T/t.unitrace" "$T/sim.unitrace"
for c in sim sim200 simnic200; do
	"$UNITRACE" replay "$T/t.unitrace" --config "$T/$c.yaml" -o "$T/rep-$c.unitrace" >/dev/null || fail "replay under $c"
	for f in "$c" "rep-$c"; do
		"$UNITRACE" summary --json "$T/$f.unitrace" >"$T/$f.sum.json" || fail "summary of $f"
		"$UNITRACE" dump --json "$T/$f.unitrace" >"$T/$f.jsonl" || fail "dump of $f"
	done
done
# (Each rank's end less its first transfer's stamp: the ranks sleep 1 ms
# at a time until rank 0's unique id is there, as many times as the host
# takes, 10 or 20 ms, and leave the init together before any transfer.)
$PY - "$T" <<'PYEOF' || fail "the simulated NCCL's trace replayed"
import json, sys
T = sys.argv[1]
def span(name):
    end = {r["rank"]: r["end_ns"] for r in json.load(open(f"{T}/{name}.sum.json"))["ranks"]}
    first, ops = {}, {}
    for l in open(f"{T}/{name}.jsonl"):
        r = json.loads(l)
        if r["kind"] == "send" and r["tid"] > 0:
            first[r["rank"]] = min(first.get(r["rank"], r["t0"]), r["t0"])
        if r["kind"] == "nccl_op":
            ops.setdefault(r["rank"], []).append(r)
    # (each operation's start and end from the rank's first transfer)
    return ({k: end[k] - first[k] for k in end},
            {k: [(o["flags"], o["len"], o["t0"] - first[k], o["t1"] - first[k]) for o in v] for k, v in ops.items()})
bad = 0
for c in ("sim", "sim200", "simnic200"):
    (live, lops), (rep, rops) = span(c), span("rep-" + c)
    for k in sorted(live):
        err = abs(rep[k] - live[k]) / live[k]
        print(f"replayed under {c}: rank {k} ends {rep[k]/1e6:.3f} ms after its first transfer, a run under it {live[k]/1e6:.3f} ms ({100*err:.4f}%)")
        bad |= err > 1e-4
    # -o's nccl_op records (trace 1.9): every operation of every rank,
    # from its call to its end in the replayed run, where a run under
    # that configuration has it: under the recorded one within 1 us (the
    # recording again), else within 0.01% of the rank's span.
    worst = 0
    for k in sorted(live):
        a, b = lops.get(k, []), rops.get(k, [])
        if len(a) < 10 or [x[:2] for x in a] != [y[:2] for y in b]:
            print(f"{c}: rank {k}: the replay's nccl_op records are not the run's operations: {len(b)} for {len(a)}")
            bad = 1
            continue
        for x, y in zip(a, b):
            worst = max(worst, abs(x[2] - y[2]), abs(x[3] - y[3]))
            if y[3] < y[2] or abs(x[2] - y[2]) > (1000 if c == "sim" else 1e-4 * live[k]) or \
               abs(x[3] - y[3]) > (1000 if c == "sim" else 1e-4 * live[k]):
                print(f"{c}: rank {k}: operation {x[:2]} from {x[2]} to {x[3]} ns in the run, {y[2]} to {y[3]} replayed")
                bad = 1
    print(f"replayed under {c}: {sum(len(v) for v in rops.values())} nccl_op records, each start and end within {worst} ns of a run's")
sys.exit(bad)
PYEOF
ok "unitrace replay of the simulated NCCL's trace: under its configuration, 200 Mbit/s and nic, every rank ends within 0.01% of a run, and so does every operation in -o's nccl_op records"
# The trace's nccl_op records (trace 1.4): every operation of every rank,
# from its call to its completion as the program's own clock measured it,
# with its size, type, algorithm and communicator; nccl_comm: one
# communicator of 4 ranks, each rank in it once.
"$UNITRACE" dump --json "$T/t.unitrace" >"$T/t.jsonl" || fail "dump of the NCCL trace"
$PY - "$T/log" "$T/t.jsonl" <<'PYEOF' || fail "nccl_op records"
import json, re, sys
res = {r["rank"]: r for r in (json.loads(m) for m in re.findall(r'\{"rank".*?\}', open(sys.argv[1]).read()))}
recs = [json.loads(l) for l in open(sys.argv[2])]
comms = [r for r in recs if r["kind"] == "nccl_comm"]
assert sorted((r["rank"], r["len"], r["off"]) for r in comms) == [(k, k, 4) for k in range(4)], comms
assert len({r["a"] for r in comms}) == 1, comms
ops = [r for r in recs if r["kind"] == "nccl_op"]
S = 8388608
# (kind, algorithm, bytes, grouped) of the timed operations, in call order;
# the 1-element AlltoAlls that line the ranks up come before each.
want = {"allreduce": (1, 1, S, 0), "allgather": (4, 1, S, 0), "reducescatter": (5, 1, S, 0),
        "broadcast": (2, 3, S, 0), "reduce": (3, 3, S, 0), "alltoall": (6, 4, S, 0)}
for rank in range(4):
    mine = [r for r in ops if r["rank"] == rank]
    assert all(r["a"] == comms[0]["a"] and r["conn"] == rank | 4 << 16 for r in mine), mine
    assert all((r["flags"] >> 9) & 15 == 7 for r in mine), "float32"
    big = [r for r in mine if r["len"] >= S // 4]
    for op, (kind, algo, nbytes, grouped) in want.items():
        got = [r for r in big if r["flags"] & 15 == kind and r["len"] == nbytes]
        assert len(got) == 1, (rank, op, got)
        r = got[0]
        assert (r["flags"] >> 4) & 7 == algo and bool(r["flags"] & 128) == bool(grouped), (op, r)
        d, w = r["t1"] - r["t0"], res[rank][op + "_ns"]
        assert abs(d - w) <= 1000 + 1e-4 * w, (rank, op, d, w)
    sr = [r for r in big if r["flags"] & 15 in (9, 10)]
    assert sorted(r["flags"] & 15 for r in sr) == [9, 10] and all(r["flags"] & 128 for r in sr), sr
    assert {r["peer"] for r in sr} == {(rank + 1) % 4, (rank + 3) % 4}, sr
    assert all(abs(r["t1"] - r["t0"] - res[rank]["sendrecv_ns"]) <= 1000 + 1e-4 * res[rank]["sendrecv_ns"]
               for r in sr), sr
print(f"{len(ops)} nccl_op records: each timed operation's duration is the program's own measure")
PYEOF
ok "nccl_op and nccl_comm records in the trace"
"$UNITRACE" summary "$T/t.unitrace" >"$T/sum" || fail "summary of the NCCL trace"
grep -q '^NCCL communicators: 1: [0-9a-f]\{16\} (4 ranks)$' "$T/sum" || { cat "$T/sum"; fail "summary: communicators"; }
grep -A1 '^longest NCCL operations' "$T/sum" | tail -1 | grep -q ' B float32 ' || { cat "$T/sum"; fail "summary: NCCL operations"; }
grep -q '^  by kind:.* all_reduce [0-9]* ' "$T/sum" || { cat "$T/sum"; fail "summary: NCCL operations by kind"; }
"$UNITRACE" summary "$T/t.unitrace" --json >"$T/sum.json" || fail "summary --json of the NCCL trace"
# nccl-tests' bus bandwidth of the 8 MB ring AllReduce: below the 1 Gbit/s
# links by the latency's share, 2(n-1)(a + h) + b of 106.8 ms (0.943 Gbit/s).
$PY - "$T/sum.json" <<'PYEOF' || fail "summary: bus bandwidth"
import json, sys
j = json.load(open(sys.argv[1]))
ar = [o for o in j["top_nccl_ops"] if o["op"] == "all_reduce" and o["bytes"] == 8388608]
assert ar, j["top_nccl_ops"]
for o in ar:
    want = 8388608 * 8 / (o["duration_ms"] / 1e3) * 2 * 3 / 4
    print(f"rank {o['rank']}: busbw {o['busbw_bps'] / 1e9:.4f} Gbit/s")
    assert 0.93e9 < o["busbw_bps"] < 1e9 and abs(o["busbw_bps"] - want) < 1e-6 * want, o
PYEOF
"$UNITRACE" export "$T/t.unitrace" --chrome "$T/t.json" || fail "chrome export of the NCCL trace"
grep -q '"cat":"nccl","name":"nccl all_reduce"' "$T/t.json" || fail "chrome export: NCCL operations"
"$UNITRACE" plot "$T/t.unitrace" -o "$T/t.svg" || fail "plot of the NCCL trace"
for k in 0 1 2 3; do
	grep -q "<title>rank $k: nccl all_reduce 8388608 B float32 ring/Simple, " "$T/t.svg" || fail "plot: rank $k's AllReduce"
done
ok "unitrace summary, export and plot show the NCCL operations"

# Two communicators over the same 4 ranks, an 8 MB AllReduce on each from
# two threads at once: under alpha-beta they do not meet (one time each),
# under nic every rank's uplink carries both rings: 2(n-1)(a + 2S/(nB)).
for model in alpha-beta nic; do
	rm -f "$T"/id*
	NCCL_CHECK_ID=$T/id timeout 300 "$UNIRUN" -n 4 --config "$T/$model.yaml" --trace "$T/$model.unitrace" -- \
		"$CHECK" contend 8388608 >"$T/$model.log" 2>&1 || { cat "$T/$model.log"; fail "contend under $model"; }
done
$PY - "$T/alpha-beta.log" "$T/nic.log" <<'PYEOF' || fail "contention"
import json, re, sys
def load(f):
    return [json.loads(m) for m in re.findall(r'\{"rank".*?\}', open(f).read())]
ab, nic = load(sys.argv[1]), load(sys.argv[2])
assert len(ab) == 4 and len(nic) == 4
a, B, S, n = 1e-3, 1e9, 8388608, 4
b, h = 8.4e-6, 14e-6  # NCCL's Simple protocol
alone = b + 2 * (n - 1) * (a + h + S / n * 8 / B)
shared = b + 2 * (n - 1) * (a + h + 2 * S / n * 8 / B)
bad = 0
for name, res, want in (("alpha-beta", ab, alone), ("nic", nic, shared)):
    for r in res:
        for k in ("a_ns", "b_ns"):
            got = r[k] / 1e9
            err = abs(got - want) / want
            print(f"{name} rank {r['rank']} {k[0]}: {1e3*got:.3f} ms, want {1e3*want:.3f} ms ({100*err:.3f}%)")
            bad |= err > 0.001
        bad |= abs(r["alone_ns"] / 1e9 - alone) / alone > 0.001
sys.exit(bad)
PYEOF
ok "two communicators at once: alone under alpha-beta, sharing every uplink under nic (2x the transfer time), within 0.1%"

# A rank the host does not run for a while: rank 1's two threads spin
# 600 ms of real time as the data of their AllReduces begins to move
# (UNI_NCCL_TEST_STALL, a hook for tests), 3 ranks under nic at 2 ms and
# 100 Mbit/s. The ranks that wait for it go on timing their operations
# while they wait (docs/nccl.md "While the data moves"), the stalled one's
# answered reads hold the network: no transfer starts late, and both
# AllReduces take at least their time alone, 2(n-1)(a + S/(nB)), and at
# most 1% above the shared time, b + 2(n-1)(a + h + 2S/(nB)) (the compute
# between the calls is the host's, unscaled: the two threads start a
# little apart, up to 18 ms on a loaded host, and overlap less; until
# session 26 3 or 4 transfers started up to 900 ms late, in every run;
# with the compute scaled to nothing the threads started together and
# none was late).
printf 'mode: simulate\nnetwork: { model: nic, default: { latency: 2ms, bandwidth: 100Mbit } }\n' >"$T/slow.yaml"
rm -f "$T"/id*
UNI_NCCL_TEST_STALL=1:600:2 NCCL_CHECK_ID=$T/id timeout 300 "$UNIRUN" -n 3 --config "$T/slow.yaml" -- \
	"$CHECK" contend 8388608 >"$T/stall.log" 2>&1 || { cat "$T/stall.log"; fail "contend with a stalled rank"; }
grep '^late:' "$T/stall.log" && fail "contend with a stalled rank: transfers started late"
$PY - "$T/stall.log" <<'PYEOF' || fail "contend with a stalled rank: times"
import json, re, sys
res = [json.loads(m) for m in re.findall(r'\{"rank".*?\}', open(sys.argv[1]).read())]
assert len(res) == 3, res
a, B, S, n, b, h = 2e-3, 1e8, 8388608, 3, 8.4e-6, 14e-6
alone = 2 * (n - 1) * (a + S / n * 8 / B)
shared = b + 2 * (n - 1) * (a + h + 2 * S / n * 8 / B)
bad = 0
for r in res:
    for k in ("a_ns", "b_ns"):
        got = r[k] / 1e9
        print(f"stalled run rank {r['rank']} {k[0]}: {1e3*got:.3f} ms, alone {1e3*alone:.3f}, shared {1e3*shared:.3f} ms")
        bad |= not alone <= got <= shared * 1.01
sys.exit(bad)
PYEOF
ok "a rank stalled 600 ms in real time under nic: none late, both AllReduces between their time alone and the shared time"

# A count mismatch under nic: reads asked for while the data moved are
# dropped (UNI_EV_READ_CANCEL), and the next AllReduce works.
rm -f "$T"/id*
NCCL_CHECK_ID=$T/id timeout 120 "$UNIRUN" -n 3 --config "$T/slow.yaml" -- "$CHECK" mismatch >"$T/mm.log" 2>&1 ||
	{ cat "$T/mm.log"; fail "mismatch under nic"; }
[ "$(grep -c 'checks passed' "$T/mm.log")" = 3 ] || { cat "$T/mm.log"; fail "mismatch under nic: a rank failed"; }
ok "a count mismatch under nic: every rank gets the error, the next AllReduce works"

# AllReduce algorithms. NCCL's double binary tree (tree 0 rooted at 0 by
# the lowest set bit; tree 1 mirrored for even n, shifted for odd n), each
# tree half the data, reduce up and broadcast down pipelined in 1 MiB
# chunks: under alpha-beta a rank at depth d of a tree of height H gets its
# last chunk at b + (k-1)tau + (H+d)(tau+a+h), tau = chunk/B, k chunks per
# tree (b, h: the protocol's latencies, Simple here); it ends with the
# later of its two trees. The choice by size (auto, the
# default) is NCCL's rule with NCCL's formulas: ring 2(n-1)a + 2(n-1)/n S/B,
# tree 2 log2i(n) a + 2S/B, the smaller wins (for 4 ranks, 1 ms and
# 1 Gbit/s: tree below 500 kB). nccl.algorithm forces one; NCCL_ALGO
# (NCCL's own variable) wins over the config (the ring forced at 64 kB
# takes LL128 by NCCL's rule: its closed form with LL128's latencies and
# bytes).
{ cat "$T/sim.yaml"; printf 'nccl:\n  algorithm: tree\n'; } >"$T/tree.yaml"
runs=""
for spec in "auto 4 sim" "tree 4 tree" "tree 5 tree" "ringenv 4 tree"; do
	set -- $spec
	rm -f "$T/id"
	env=()
	[ "$1" = ringenv ] && env=(NCCL_ALGO=Ring)
	env "${env[@]}" NCCL_CHECK_ID=$T/id timeout 300 "$UNIRUN" -n $2 --config "$T/$3.yaml" --trace "$T/ar.unitrace" -- \
		"$CHECK" allreduce 65536 8388608 >"$T/ar-$1-$2.log" 2>&1 || { cat "$T/ar-$1-$2.log"; fail "allreduce $spec"; }
	[ "$(grep -c 'checks passed' "$T/ar-$1-$2.log")" = $2 ] || { cat "$T/ar-$1-$2.log"; fail "allreduce results ($spec)"; }
	runs="$runs $1:$2:$T/ar-$1-$2.log"
done
$PY - $runs <<'PYEOF' || fail "AllReduce algorithms"
import json, os, re, sys
sys.path.insert(0, os.environ["NCCL_TESTS"])
from nccl_trees import depth
a, B, chunk = 1e-3, 1e9, 1 << 20
base, hop = 8.4e-6, 14e-6  # Simple, NCCL's choice at 64 kB and 8 MB here (tree and ring alike)
def tree(n, S, r, ll128=False):
    half = S // 2
    k = -(-half // chunk)
    c = min(half, chunk)
    tau = (-(-c * 16 // 15) if ll128 else c) * 8 / B
    b, h = (14e-6, 8.5e-6) if ll128 else (base, hop)
    end = 0
    for t in (0, 1):
        H = max(depth(n, x, t) for x in range(n))
        end = max(end, (k - 1) * tau + (H + depth(n, r, t)) * (tau + a + h))
    return b + end
def tree_ll128(n, S, r):  # the tree forced at 8 MB: NCCL's rule, with its correction of the tree's
    return tree(n, S, r, True)  # bandwidth by size (0.8 for Simple, 0.9 for LL128 there), takes LL128
def ring(n, S, r):
    return base + 2 * (n - 1) * (a + hop + S / n * 8 / B)
def ring_ll128(n, S, r):  # the ring forced at 64 kB: NCCL's rule takes LL128 (14 us, 8.5 us a hop, 16/15 on the wire)
    return 14e-6 + 2 * (n - 1) * (a + 8.5e-6 + -(-(S // n) * 16 // 15) * 8 / B)
want_algo = {"auto": {65536: tree, 8388608: ring}, "tree": {65536: tree, 8388608: tree_ll128},
             "ringenv": {65536: ring_ll128, 8388608: ring}}
bad = 0
for spec in sys.argv[1:]:
    name, n, path = spec.split(":", 2)
    n = int(n)
    res = [json.loads(m) for m in re.findall(r'\{"rank".*?\}', open(path).read())]
    assert len(res) == n, (spec, res)
    for r in sorted(res, key=lambda r: r["rank"]):
        for S, got in zip((65536, 8388608), r["ns"]):
            f = want_algo[name][S]
            w = f(n, S, r["rank"])
            err = abs(got / 1e9 - w) / w
            print(f"{name} n={n} rank {r['rank']} S={S}: {got/1e6:.3f} ms, {f.__name__} {w*1e3:.3f} ms ({100*err:.3f}%)")
            bad |= err > 0.001
sys.exit(bad)
PYEOF
ok "AllReduce by NCCL's double binary tree within 0.1% of its pipelined closed form (4 and 5 ranks); auto picks tree below NCCL's crossover and ring above; NCCL_ALGO=Ring overrides the config"

# Protocols (docs/nccl.md "Protocols"): NCCL's LL, LL128 and Simple, each
# with NCCL's latencies (per operation, per hop) and its bytes on the
# wire (LL twice the data, LL128 16/15 of it). NCCL_PROTO=LL and
# nccl.protocol: LL128 force one (ring AllReduce on 4 ranks, 1 ms,
# 1 Gbit/s: b + 2(n-1)(a + h + wire(S/n)/B)); on a fast network (5 us,
# 100 Gbit/s) NCCL's rule picks the tree with LL for 1 kB and the ring with
# Simple for 8 MB, recorded in each nccl_op record (flags bits 13-14).
{ cat "$T/sim.yaml"; printf 'nccl:\n  protocol: LL128\n'; } >"$T/ll128.yaml"
printf 'mode: simulate\nnetwork: { default: { latency: 5us, bandwidth: 100Gbit } }\ndevices: { default: { slowdown: 0.000001 } }\n' >"$T/fast.yaml"
runs=""
for spec in "ll sim 65536,8388608" "ll128 ll128 65536,8388608" "auto fast 1024,8388608"; do
	set -- $spec
	rm -f "$T/id"
	env=(NCCL_ALGO=Ring)
	[ "$1" = ll ] && env=(NCCL_ALGO=Ring NCCL_PROTO=LL)
	[ "$1" = auto ] && env=()
	env "${env[@]}" NCCL_CHECK_ID=$T/id timeout 300 "$UNIRUN" -n 4 --config "$T/$2.yaml" --trace "$T/pr-$1.unitrace" -- \
		"$CHECK" allreduce ${3//,/ } >"$T/pr-$1.log" 2>&1 || { cat "$T/pr-$1.log"; fail "protocol $spec"; }
	[ "$(grep -c 'checks passed' "$T/pr-$1.log")" = 4 ] || { cat "$T/pr-$1.log"; fail "protocol results ($spec)"; }
	runs="$runs $1:$3:$T/pr-$1.log:$T/pr-$1.unitrace"
done
$PY - $runs <<'PYEOF' || fail "protocols"
import json, math, os, re, struct, sys
sys.path.insert(0, os.environ["NCCL_TESTS"])
from nccl_trees import depth, recorded
chunk = 1 << 20
# ring base, hop; tree base, hop; wire. A rank per node: every hop is the
# network's, the tree's latency for the ring too (NCCL: "with ppn=1
# latencies are fully exposed").
LAT = {"LL": (6.6e-6, 5e-6, 6.8e-6, 5e-6, 2.0), "LL128": (14e-6, 8.5e-6, 14e-6, 8.5e-6, 16 / 15),
       "Simple": (8.4e-6, 14e-6, 8.4e-6, 14e-6, 1.0)}
def wire(b, f):
    return math.ceil(b * 16 / 15) if f == 16 / 15 else b * f
def ring(n, S, r, a, B, p):
    base, hop, _, _, f = LAT[p]
    return base + 2 * (n - 1) * (a + hop + wire(math.ceil(S / n), f) * 8 / B)
def tree(n, S, r, a, B, p):
    _, _, base, hop, f = LAT[p]
    end = 0
    for t in (0, 1):
        half = S // 2 if t == 0 else S - S // 2
        k = -(-half // chunk)
        tau = wire(min(half, chunk), f) * 8 / B
        H = max(depth(n, x, t) for x in range(n))
        end = max(end, (k - 1) * tau + (H + depth(n, r, t)) * (tau + a + hop))
    return base + end
want = {"ll": (1e-3, 1e9, {65536: (ring, "LL"), 8388608: (ring, "LL")}),
        "ll128": (1e-3, 1e9, {65536: (ring, "LL128"), 8388608: (ring, "LL128")}),
        "auto": (5e-6, 1e11, {1024: (tree, "LL"), 8388608: (ring, "Simple")})}
bad = 0
for spec in sys.argv[1:]:
    name, sizes, log, trace = spec.split(":", 3)
    sizes = [int(x) for x in sizes.split(",")]
    a, B, exp = want[name]
    res = [json.loads(m) for m in re.findall(r'\{"rank".*?\}', open(log).read())]
    assert len(res) == 4, (spec, res)
    rec = recorded(trace)
    for S in sizes:
        f, p = exp[S]
        label = f.__name__ + "/" + p
        if rec.get(S) != {label}:
            print(f"{name} S={S}: recorded {rec.get(S)}, want {label}")
            bad = 1
    for r in sorted(res, key=lambda r: r["rank"]):
        for S, got in zip(sizes, r["ns"]):
            f, p = exp[S]
            w = f(4, S, r["rank"], a, B, p)
            err = abs(got / 1e9 - w) / w
            print(f"{name} rank {r['rank']} S={S}: {got/1e3:.3f} us, {f.__name__}/{p} {w*1e6:.3f} us ({100*err:.3f}%)")
            bad |= err > 0.001
sys.exit(bad)
PYEOF
ok "protocols: NCCL_PROTO=LL and nccl.protocol LL128 within 0.1% of their closed forms (wire bytes x2 and x16/15, NCCL's latencies); on a 5 us, 100 Gbit/s network NCCL's rule picks tree/LL for 1 kB and ring/Simple for 8 MB"

# PAT (NCCL 2.28's AllGather and ReduceScatter with one GPU a node, the
# default here): timed by NCCL's own step generator (shim/nccl_pat.c, its
# port checked in the unit test nccl_pat). With little data PAT
# aggregates: a rank sends one message per dimension, each after the
# last, so on 2^k ranks the operation takes PAT's latency (8 us + 2.8 us a
# rank), then k steps of (4 us + a), plus the (n-1) blocks each rank
# receives at B. NCCL's rule picks it at 4 kB on this network (1 ms: the
# ring's n-1 latencies against PAT's log2 n), the ring at 8 MB (PAT's
# bandwidth is 3/4 of the ring's in NCCL's formula); NCCL_ALGO=^PAT,
# NCCL_PAT_ENABLE=0 and two ranks a node (PAT needs one) give the ring. 8 MB with NCCL_ALGO=PAT
# under nic: above the uplink bound (n-1)/n S/B plus a latency, below
# NCCL's own estimate for PAT (its latencies, S at 3/4 of B): NCCL runs
# the steps in order, so a post waits for every earlier receive.
for n in 4 8; do
	rm -f "$T/id"
	NCCL_CHECK_ID=$T/id timeout 300 "$UNIRUN" -n $n --config "$T/sim.yaml" --trace "$T/pat$n.unitrace" -- \
		"$CHECK" timing 4096 >"$T/pat$n.log" 2>&1 || { cat "$T/pat$n.log"; fail "PAT run, $n ranks"; }
	"$UNITRACE" dump --json "$T/pat$n.unitrace" >"$T/pat$n.jsonl" || fail "dump of the PAT trace"
done
for v in NCCL_ALGO=^PAT NCCL_PAT_ENABLE=0; do
	rm -f "$T/id"
	env "$v" NCCL_CHECK_ID=$T/id timeout 300 "$UNIRUN" -n 4 --config "$T/sim.yaml" --trace "$T/nopat.unitrace" -- \
		"$CHECK" timing 4096 >"$T/nopat.log" 2>&1 || { cat "$T/nopat.log"; fail "$v run"; }
	"$UNITRACE" dump --json "$T/nopat.unitrace" >"$T/nopat-${v%%=*}.jsonl" || fail "dump"
done
sed 's/^network:/nccl: { ranks_per_node: 2, algorithm: pat }\nnetwork:/' "$T/sim.yaml" >"$T/patnodes.yaml"
rm -f "$T/id"
NCCL_CHECK_ID=$T/id timeout 300 "$UNIRUN" -n 4 --config "$T/patnodes.yaml" --trace "$T/patnodes.unitrace" -- \
	"$CHECK" timing 4096 >"$T/patnodes.log" 2>&1 || { cat "$T/patnodes.log"; fail "PAT with nodes run"; }
"$UNITRACE" dump --json "$T/patnodes.unitrace" >"$T/patnodes.jsonl" || fail "dump"
sed 's/model: alpha-beta/model: nic/' "$T/sim.yaml" >"$T/patnic.yaml"
rm -f "$T/id"
NCCL_ALGO=PAT NCCL_CHECK_ID=$T/id timeout 300 "$UNIRUN" -n 4 --config "$T/patnic.yaml" --trace "$T/patbig.unitrace" -- \
	"$CHECK" timing 8388608 >"$T/patbig.log" 2>&1 || { cat "$T/patbig.log"; fail "PAT 8 MB under nic run"; }
"$UNITRACE" dump --json "$T/patbig.unitrace" >"$T/patbig.jsonl" || fail "dump"
$PY - "$T" <<'PYEOF' || fail "PAT"
import json, math, re, sys
T = sys.argv[1]
a, B = 1e-3, 1e9
bad = 0
def res(name):
    return [json.loads(m) for m in re.findall(r'\{"rank".*?\}', open(f"{T}/{name}.log").read())]
def algos(name):
    """{(op kind, bytes): {algorithm/protocol code}} of the AllGathers and ReduceScatters"""
    out = {}
    for l in open(f"{T}/{name}.jsonl"):
        r = json.loads(l)
        if r["kind"] == "nccl_op" and r["flags"] & 15 in (4, 5):
            out.setdefault((r["flags"] & 15, r["len"]), set()).add(((r["flags"] >> 4) & 7, (r["flags"] >> 13) & 3))
    return out
for n in (4, 8):
    rs = res(f"pat{n}")
    assert len(rs) == n, rs
    S = 4096 // 4 // n * n * 4  # the bytes timed: n blocks of whole floats
    rec = algos(f"pat{n}")
    for k in (4, 5):
        if rec.get((k, S)) != {(6, 3)}:
            print(f"{n} ranks: op {k} of {S} B recorded as {rec.get((k, S))}, want PAT/Simple"); bad = 1
    want = 8e-6 + 2.8e-6 * n + math.log2(n) * (4e-6 + a) + (n - 1) * (S // n) * 8 / B
    for r in rs:
        for op in ("allgather", "reducescatter"):
            got = r[op + "_ns"] / 1e9
            err = abs(got - want) / want
            print(f"{n} ranks, rank {r['rank']} {op}: {got*1e3:.6f} ms, closed form {want*1e3:.6f} ms ({100*err:.4f}%)")
            bad |= err > 0.001
for name, why in (("nopat-NCCL_ALGO", "NCCL_ALGO=^PAT"), ("nopat-NCCL_PAT_ENABLE", "NCCL_PAT_ENABLE=0"),
                  ("patnodes", "two ranks a node")):
    for (k, S), al in algos(name).items():
        if S >= 1024 and al != {(1, 3)} and al != {(1, 1)} and al != {(1, 2)}:
            print(f"{why}: op {k} of {S} B recorded as {al}, want the ring"); bad = 1
    print(f"{why}: the ring")
big = res("patbig")
S, n = 8388608, 4
lo = (n - 1) / n * S * 8 / B
hi = 8e-6 + 2.8e-6 * n + math.log2(n) * (4e-6 + a) + S * 8 / B / 0.75
assert algos("patbig").get((4, S)) == {(6, 3)}, algos("patbig")
for r in big:
    for op in ("allgather", "reducescatter"):
        got = r[op + "_ns"] / 1e9
        print(f"nic, 8 MB, rank {r['rank']} {op}: {got*1e3:.3f} ms, bound {lo*1e3:.3f} .. {hi*1e3:.3f} ms")
        bad |= not (lo + a <= got <= hi)
sys.exit(bad)
PYEOF
ok "PAT: AllGather and ReduceScatter on 4 and 8 ranks within 0.1% of PAT's aggregated closed form, chosen by NCCL's rule at 4 kB; the ring with NCCL_ALGO=^PAT, NCCL_PAT_ENABLE=0 and two ranks a node; 8 MB under nic between the uplink's bound and NCCL's estimate"

# Nodes (docs/nccl.md "Nodes"): nccl.ranks_per_node consecutive ranks
# share a node; a hop within a node takes NCCL's NVLink (or PCI) latency,
# at least the network overhead on a ring across nodes, a hop between
# nodes the network's; the tree goes over the nodes, a chain inside each.
# Forced ring and tree AllReduce at 64 kB and 8 MB on 4 ranks in 2 nodes
# (NVLink) and 6 ranks in 3 nodes (PCI; three nodes: the second tree is
# shifted), every rank within 0.1% of its closed form (the ring: the hops
# walked back from the rank; the tree: the longest way up, then down to
# the rank). Then NCCL's rule with nodes on a 5 us, 100 Gbit/s network (8
# ranks in 2 nodes): the pair its formula picks, in the nccl_op records
# (each rank within 0.1% or 5 us: with nodes the ranks' calls line up only
# within the difference of two hop latencies, below).
{ cat "$T/sim.yaml"; printf 'nccl:\n  ranks_per_node: 2\n'; } >"$T/nodes2.yaml"
{ cat "$T/sim.yaml"; printf 'nccl:\n  ranks_per_node: 2\n  intra_node: pci\n'; } >"$T/nodes2pci.yaml"
{ cat "$T/fast.yaml"; printf 'nccl:\n  ranks_per_node: 4\n'; } >"$T/nodes4fast.yaml"
runs=""
for spec in "Ring 4 nodes2" "Tree 4 nodes2" "Tree 5 nodes2" "Ring 6 nodes2pci" "Tree 6 nodes2pci" "auto 8 nodes4fast"; do
	set -- $spec
	rm -f "$T/id"
	env=(NCCL_ALGO=$1)
	sizes="65536 8388608"
	[ "$1" = auto ] && env=() && sizes="1024 65536 8388608"
	env "${env[@]}" NCCL_CHECK_ID=$T/id timeout 300 "$UNIRUN" -n $2 --config "$T/$3.yaml" --trace "$T/nd-$1-$2.unitrace" -- \
		"$CHECK" allreduce $sizes >"$T/nd-$1-$2.log" 2>&1 || { cat "$T/nd-$1-$2.log"; fail "nodes $spec"; }
	[ "$(grep -c 'checks passed' "$T/nd-$1-$2.log")" = $2 ] || { cat "$T/nd-$1-$2.log"; fail "nodes results ($spec)"; }
	runs="$runs $1:$2:$3:$T/nd-$1-$2.log:$T/nd-$1-$2.unitrace"
done
$PY - $runs <<'PYEOF' || fail "nodes"
import json, math, os, re, struct, sys
sys.path.insert(0, os.environ["NCCL_TESTS"])
from nccl_trees import node_tree_end, recorded, ring_end
chunk = 1 << 20
BASE = {"ring": {"LL": 6.6e-6, "LL128": 14e-6, "Simple": 8.4e-6}, "tree": {"LL": 6.8e-6, "LL128": 14e-6, "Simple": 8.4e-6}}
HW = {"nvlink": {"ring": {"LL": .6e-6, "LL128": 1.9e-6, "Simple": 3.4e-6}, "tree": {"LL": .6e-6, "LL128": 1.25e-6, "Simple": 4e-6}},
      "pci": {"ring": {"LL": 1e-6, "LL128": 2.5e-6, "Simple": 5.7e-6}, "tree": {"LL": 1e-6, "LL128": 1.9e-6, "Simple": 4e-6}},
      "net": {"ring": {"LL": 2.7e-6, "LL128": 4e-6, "Simple": 14e-6}, "tree": {"LL": 5e-6, "LL128": 8.5e-6, "Simple": 14e-6}}}
WIRE = {"LL": 2.0, "LL128": 16 / 15, "Simple": 1.0}
CFG = {"nodes2": (2, "nvlink", 1e-3, 1e9), "nodes2pci": (2, "pci", 1e-3, 1e9), "nodes4fast": (4, "nvlink", 5e-6, 1e11)}
def wire(b, p):
    return math.ceil(b * 16 / 15) if p == "LL128" else b * WIRE[p]
def hops(algo, p, n, ppn, hw):
    nn = -(-n // ppn)
    intra = HW[hw][algo][p]
    inter = HW["net"]["tree" if nn == n else algo][p]
    if algo == "ring" and nn > 1:
        intra = max(intra, 1e-6 * (3 if p == "Simple" else 1))
    return intra, inter
def closed(algo, p, n, ppn, hw, a, B, S, r):
    hi, ho = hops(algo, p, n, ppn, hw)
    w = lambda x, y: a + (hi if x // ppn == y // ppn else ho)
    if algo == "ring":
        return BASE[algo][p] + ring_end(n, r, 2 * (n - 1), wire(math.ceil(S / n), p) * 8 / B, w)
    end = 0
    for t in (0, 1):
        half = S // 2 if t == 0 else S - S // 2
        k = -(-half // chunk)
        end = max(end, node_tree_end(n, ppn, r, t, k, wire(min(half, chunk), p) * 8 / B, w))
    return BASE[algo][p] + end
def choose(n, ppn, hw, a, B, S, algos=("tree", "ring")):  # NCCL's rule (tuning.cc): LL, LL128, Simple
    nn = -(-n // ppn)
    best = None
    for algo in algos:
        # LL128 only where a node's GPUs have NVLink
        for p in ("LL", "Simple") if hw == "pci" and nn < n else ("LL", "LL128", "Simple"):
            hi, ho = hops(algo, p, n, ppn, hw)
            if algo == "tree":
                intra, inter, frac = 2 * (n // nn - 1), 2 * int(math.log2(nn)), 2.0
            else:
                inter = 2 * (nn - 1) if nn > 1 else 0
                intra, frac = 2 * (n - 1) - inter, 2 * (n - 1) / n
            lat = BASE[algo][p] + intra * hi + inter * ho
            if algo == "ring" and p == "Simple" and nn > 1 and S // n >= 64:
                lat *= 1.4
            # NCCL's treeCorrectionFactor (tuning.cc), by protocol and log2(S/64)
            ls = int(math.log2(S >> 6)) if S >> 6 else -1
            if algo == "tree" and 0 <= ls < 23:
                frac /= TREE_CORR[p][ls]
            t = lat + (intra + inter) * a + frac * S * 8 / B * WIRE[p]
            if best is None or t < best[0]:
                best = (t, algo, p)
    return best[1], best[2]
TREE_CORR = {
    "LL": (1.0, 1.0, 1.0, 1.0, .9, .8, .7, .7, .7, .7, .6, .5, .4, .4, .5, .6, .7, .8, .9, 1.0, 1.0, 1.0, 1.0),
    "LL128": (1.0, 1.0, 1.0, 1.0, 1.0, .9, .8, .8, .8, .7, .6, .6, .6, .6, .6, .6, .8, .9, .9, .9, .9, 1.0, 1.0),
    "Simple": (.9, .9, .9, .9, .9, .9, .9, .8, .7, .6, .6, .5, .5, .5, .5, .6, .7, .8, .7, .7, .8, .9, .9)}
bad = 0
for spec in sys.argv[1:]:
    force, n, cfg, log, trace = spec.split(":", 4)
    n = int(n)
    ppn, hw, a, B = CFG[cfg]
    res = [json.loads(m) for m in re.findall(r'\{"rank".*?\}', open(log).read())]
    assert len(res) == n, (spec, res)
    sizes = (1024, 65536, 8388608) if force == "auto" else (65536, 8388608)
    rec = recorded(trace)
    for S in sizes:
        algo, p = choose(n, ppn, hw, a, B, S, (force.lower(),) if force != "auto" else ("tree", "ring"))
        if rec.get(S) != {algo + "/" + p}:
            print(f"{force} n={n} S={S}: recorded {rec.get(S)}, want {algo}/{p}")
            bad = 1
        for r in sorted(res, key=lambda r: r["rank"]):
            got = r["ns"][sizes.index(S)] / 1e9
            w = closed(algo, p, n, ppn, hw, a, B, S, r["rank"])
            err = abs(got - w) / w
            print(f"{force} n={n} ({cfg}) rank {r['rank']} S={S}: {got*1e3:.4f} ms, {algo}/{p} {w*1e3:.4f} ms ({100*err:.3f}%)")
            # Each rank times from its own call. The two 1-element
            # AlltoAlls that line the ranks up cannot make their calls
            # simultaneous with nodes: a rank's end is the latest peer's
            # start plus that peer's hop (LL: 0.6 us within a node, 5 us
            # between), and the skew they start from is the host's (the
            # ranks poll for rank 0's unique-id file). So up to 4.4 us
            # apart (seen: 1.7 us on a 1.33 ms ring, 0.13%).
            bad |= abs(got - w) > max(0.001 * w, 5e-6)
sys.exit(bad)
PYEOF
ok "nodes: ring and tree AllReduce with ranks_per_node (4 ranks in 2 NVLink nodes, 5 in nodes of 2, 6 in 3 PCI nodes) within 0.1% of their closed forms (intra- and inter-node hops, NCCL's tree over nodes with a chain in each); NCCL's rule with nodes picks what its formula says (8 ranks in 2 nodes, 5 us, 100 Gbit/s)"

# Under nic the trees' transfers contend for the ranks' links: the run
# must end with no transfer started late (each rank acts in virtual-time
# order: it waits for the first of its pending receives).
rm -f "$T/id"
NCCL_ALGO=Tree NCCL_CHECK_ID=$T/id timeout 300 "$UNIRUN" -n 4 --config "$T/nic.yaml" --trace "$T/tn.unitrace" -- \
	"$CHECK" allreduce 65536 8388608 >"$T/tn.log" 2>&1 || { cat "$T/tn.log"; fail "tree under nic"; }
sess=$(sed -n 's/^session *//p' "$T/tn.log" | head -1)
[ -n "$sess" ] && [ -f "/tmp/uni.$sess.log" ] || { cat "$T/tn.log"; fail "no unid log for the tree run under nic"; }
if grep -q "stamped before the network time" "/tmp/uni.$sess.log"; then
	cat "/tmp/uni.$sess.log"; fail "tree under nic: transfers started late"
fi
$PY - "$T/tn.log" <<'PYEOF' || fail "tree under nic"
import json, re, sys
res = [json.loads(m) for m in re.findall(r'\{"rank".*?\}', open(sys.argv[1]).read())]
assert len(res) == 4
a, B, S, n = 1e-3, 1e9, 8388608, 4
# Contention only slows it: at least the uncontended (alpha-beta) time.
lo = 3 * (1 << 20) * 8 / B + 4 * ((1 << 20) * 8 / B + a)
for r in res:
    print(f"nic tree rank {r['rank']}: {r['ns'][1]/1e6:.3f} ms (uncontended {lo*1e3:.3f} ms)")
    assert r["ns"][1] / 1e9 >= lo * 0.999, r
PYEOF
ok "tree under nic: no transfer late, contention only adds time"

# A group of two AllReduces is one fused operation: under alpha-beta the
# two run side by side (the time of one), under nic they share every
# uplink (as two communicators at once above).
for model in alpha-beta nic; do
	rm -f "$T/id"
	NCCL_CHECK_ID=$T/id timeout 300 "$UNIRUN" -n 4 --config "$T/$model.yaml" --trace "$T/g.unitrace" -- \
		"$CHECK" group2 8388608 >"$T/g-$model.log" 2>&1 || { cat "$T/g-$model.log"; fail "group2 under $model"; }
done
$PY - "$T/g-alpha-beta.log" "$T/g-nic.log" <<'PYEOF' || fail "fused group"
import json, re, sys
a, B, S, n = 1e-3, 1e9, 8388608, 4
b, h = 8.4e-6, 14e-6  # NCCL's Simple protocol
alone = b + 2 * (n - 1) * (a + h + S / n * 8 / B)
shared = b + 2 * (n - 1) * (a + h + 2 * S / n * 8 / B)
bad = 0
for path, want in zip(sys.argv[1:], (alone, shared)):
    res = [json.loads(m) for m in re.findall(r'\{"rank".*?\}', open(path).read())]
    assert len(res) == 4
    for r in res:
        err = abs(r["ns"] / 1e9 - want) / want
        print(f"{path.split('/g-')[1][:-4]} rank {r['rank']}: {r['ns']/1e6:.3f} ms, want {want*1e3:.3f} ms ({100*err:.3f}%)")
        bad |= err > 0.001
sys.exit(bad)
PYEOF
ok "a group of two AllReduces is one operation: side by side under alpha-beta, sharing the uplinks under nic"

segs_after=$(ls /dev/shm | grep -c '^uni-nccl-' || true)
[ "$segs_after" = "$segs_before" ] || fail "communicator segments left in /dev/shm: $segs_before before, $segs_after after"
ok "no communicator segment left in /dev/shm"
