#!/bin/bash
# The simulated NCCL with host buffers, real processes launched by unirun:
#  - correctness with 2, 3 and 4 ranks (every collective, type and op, in
#    and out of place, uneven and chunked counts, send/recv rings and self
#    send/recv in groups, error codes);
#  - CommSplit with colors, keys and NOCOLOR;
#  - ProcessGroupNCCL's call sequences (1.13 and current) and an abort;
#  - a count mismatch: ncclInvalidArgument with a message on every rank,
#    and the communicator still works;
#  - a rank that never joins: ncclRemoteError naming it, within the
#    time-out, no hang;
#  - virtual time under alpha-beta against the closed forms (within 1%);
#  - two communicators at once: independent under alpha-beta, sharing the
#    links under nic.
#   test_nccl.sh UNIRUN NCCL_CHECK UNITRACE
set -euo pipefail
UNIRUN=$1 CHECK=$2 UNITRACE=$3
PY=/usr/bin/python3
fail() { echo "FAIL: $*" >&2; exit 1; }
ok() { echo "ok: $*"; }
T=$(mktemp -d /tmp/uni-nccl.XXXXXX)
trap 'rm -rf "$T"' EXIT
cat >"$T/rec.yaml" <<YAML
mode: record
YAML
for n in 2 3 4; do
	rm -f "$T/id"
	NCCL_CHECK_ID=$T/id timeout 600 "$UNIRUN" -n $n --config "$T/rec.yaml" --trace "$T/c$n.unitrace" -- "$CHECK" correctness \
		>"$T/log" 2>&1 || { tail -40 "$T/log"; fail "correctness with $n ranks"; }
	got=$(grep -c "checks passed" "$T/log")
	[ "$got" = "$n" ] || { cat "$T/log"; fail "$got of $n ranks passed"; }
	ok "$n ranks: $(grep -m1 'checks passed' "$T/log" | sed 's/.*: //') on every rank"
done

for n in 2 4; do
	rm -f "$T/id"
	NCCL_CHECK_ID=$T/id timeout 120 "$UNIRUN" -n $n --config "$T/rec.yaml" --trace "$T/s.unitrace" -- "$CHECK" split \
		>"$T/log" 2>&1 || { cat "$T/log"; fail "split with $n ranks"; }
	[ "$(grep -c 'checks passed' "$T/log")" = $n ] || { cat "$T/log"; fail "split with $n ranks"; }
done
ok "CommSplit by color and key (NOCOLOR included): sizes, ranks and an AllReduce in each part"

for n in 2 4; do
	rm -f "$T"/id*
	NCCL_CHECK_ID=$T/id timeout 120 "$UNIRUN" -n $n --config "$T/rec.yaml" --trace "$T/p.unitrace" -- "$CHECK" pytorch \
		>"$T/log" 2>&1 || { cat "$T/log"; fail "PyTorch call sequences with $n ranks"; }
	[ "$(grep -c 'checks passed' "$T/log")" = $n ] || { cat "$T/log"; fail "PyTorch call sequences with $n ranks"; }
done
ok "ProcessGroupNCCL's call sequences (1.13: grouped lazy init, coalescing, uneven all_to_all and gather as grouped send/recv, PreMulSum residences, a 2-rank p2p comm, a polling watchdog thread; main: non-blocking init polled, Split for new_group, Finalize then Destroy)"

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

# CUDA present, no GPU: with libcudart loaded the host path still works.
CUDART=$(ls /usr/local/cuda/lib64/libcudart.so.* 2>/dev/null | head -1 || true)
if [ -n "$CUDART" ]; then
	rm -f "$T/id"
	NCCL_CHECK_ID=$T/id timeout 120 "$UNIRUN" -n 2 --config "$T/rec.yaml" --trace "$T/cu.unitrace" -- "$CHECK" cudart "$CUDART" \
		>"$T/log" 2>&1 || { cat "$T/log"; fail "host buffers with libcudart loaded"; }
	[ "$(grep -c 'checks passed' "$T/log")" = 2 ] || { cat "$T/log"; fail "cudart run"; }
	ok "libcudart loaded, no GPU: host buffers work ($(grep -m1 cudaGetDeviceCount "$T/log" | sed 's/rank .: //'))"
fi

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

# Time: alpha-beta, 4 ranks, 8 MB: ring AllReduce 2(n-1)(a + S/(nB)),
# AllGather and ReduceScatter (n-1)(a + S/(nB)), Broadcast and Reduce a
# chain of k 1 MiB chunks: (n-1)a + (n-1+k-1)c/B, i.e. the nccl-tests form
# (n-1)a + S/B plus the pipeline's fill (n-2)c/B; AlltoAll a + (S/n)/B;
# Send/Recv a + S/B.
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
want = {
    "allreduce": 2 * (n - 1) * (a + S / n * 8 / B),
    "allgather": (n - 1) * (a + S / n * 8 / B),
    "reducescatter": (n - 1) * (a + S / n * 8 / B),
    "broadcast": (n - 1) * a + (n - 1 + k - 1) * chunk * 8 / B,
    "reduce": (n - 1) * a + (n - 1 + k - 1) * chunk * 8 / B,
    "alltoall": a + S / n * 8 / B,
    "sendrecv": a + S * 8 / B,
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
        if err > 0.01:
            bad = 1
# the last in the chain matches exactly
for op in ("broadcast", "reduce"):
    best = max(r[op + "_ns"] for r in res) / 1e9
    if abs(best - want[op]) / want[op] > 0.01:
        print(f"{op}: slowest rank {best*1e3:.3f} ms, want {want[op]*1e3:.3f} ms"); bad = 1
sys.exit(bad)
PYEOF
ok "virtual time of every collective within 1% of its closed form (alpha-beta, 4 ranks, 8 MB)"
"$UNITRACE" summary "$T/t.unitrace" >/dev/null || fail "summary of the NCCL trace"

# Two communicators over the same 4 ranks, an 8 MB AllReduce on each from
# two threads at once: under alpha-beta they do not meet (one time each),
# under nic every rank's uplink carries both rings: 2(n-1)(a + 2S/(nB)).
for model in alpha-beta nic; do
	cat >"$T/$model.yaml" <<YAML
mode: simulate
network:
  model: $model
  default: { latency: 1ms, bandwidth: 1Gbit }
devices:
  default: { slowdown: 0.001 }
YAML
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
alone = 2 * (n - 1) * (a + S / n * 8 / B)
shared = 2 * (n - 1) * (a + 2 * S / n * 8 / B)
bad = 0
for name, res, want in (("alpha-beta", ab, alone), ("nic", nic, shared)):
    for r in res:
        for k in ("a_ns", "b_ns"):
            got = r[k] / 1e9
            err = abs(got - want) / want
            print(f"{name} rank {r['rank']} {k[0]}: {1e3*got:.3f} ms, want {1e3*want:.3f} ms ({100*err:.3f}%)")
            bad |= err > 0.01
        bad |= abs(r["alone_ns"] / 1e9 - alone) / alone > 0.01
sys.exit(bad)
PYEOF
ok "two communicators at once: alone under alpha-beta, sharing every uplink under nic (2x the transfer time), within 1%"
