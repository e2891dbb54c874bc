#!/bin/bash
# examples/c/nccl_tp.c as a user runs it (README): under unirun with the
# default config, on 1, 2 and 4 ranks. The prediction is the same on every
# world size (integer arithmetic: the shim's AllReduce is exact); the time
# per token is the simulated one: with 4 ranks at least the 4 AllReduces'
# latency on the 2 ms network (each is 2(n-1) or 2 log2(n) latencies), and
# more than on 1 rank (no network); the run writes a trace and a picture.
# Then 16 ranks on examples/configs/gpu-nodes.yaml (two nodes of eight, each
# GPU on its node's NVLink switch and network leaf): the same prediction,
# and unitrace links shows every transfer within a node on NVLink cables
# (the leaves carry exactly what crosses the spine).
# Then examples/c/nccl_pp.c, the same model as a pipeline of 1, 2 and 4
# stages (ncclSend/ncclRecv): the same prediction as nccl_tp's; on 4
# stages a token takes at least its ring of hops (three of 2048 bytes,
# one of 4, on the 2 ms, 100 Mbit/s network), four requests in flight
# take less than twice one request's time per token (the pipeline
# overlaps them; one after the other they would take four times), and
# every message received sent its 8-byte credit back (NCCL's flow
# control, docs/nccl.md); and under nic with 16 requests, none late and
# no wait of the network for an arrival's reader (below).
#   test_nccl_example.sh UNIRUN NCCL_TP DEFAULT_YAML UNITRACE GPU_NODES_YAML NCCL_PP
set -euo pipefail
UNIRUN=$1 TP=$2 CFG=$3 UNITRACE=$4 GPU=$5 PP=$6
fail() { echo "FAIL: $*" >&2; exit 1; }
ok() { echo "ok: $*"; }
T=$(mktemp -d /tmp/uni-nccl-ex.XXXXXX)
trap 'rm -rf "$T"' EXIT
cd "$T"
for n in 1 2 4; do
	timeout 240 "$UNIRUN" -n $n --config "$CFG" -- "$TP" 6 >"$T/log$n" 2>&1 || { cat "$T/log$n"; fail "$n ranks"; }
	grep -q '^prediction:' "$T/log$n" || { cat "$T/log$n"; fail "$n ranks: no prediction"; }
done
p1=$(grep '^prediction:' "$T/log1")
for n in 2 4; do
	[ "$(grep '^prediction:' "$T/log$n")" = "$p1" ] || fail "$n ranks predict $(grep '^prediction:' "$T/log$n"), 1 rank $p1"
done
ok "the same prediction on 1, 2 and 4 ranks ($p1)"
ms() { sed -n 's/^time per token: \([0-9.]*\) ms.*/\1/p' "$1"; }
t1=$(ms "$T/log1") t4=$(ms "$T/log4")
/usr/bin/python3 -c "import sys; t1, t4 = float('$t1'), float('$t4'); sys.exit(not (t4 >= 4 * 2 * 2 * 2.0 and t4 > t1))" ||
	fail "time per token: 4 ranks $t4 ms, 1 rank $t1 ms (want >= 32 ms of latency, and more than 1 rank)"
ok "time per token (simulated): $t1 ms on 1 rank, $t4 ms on 4 ranks"
ls uni-trace/*.unitrace uni-trace/*.svg >/dev/null 2>&1 || fail "no trace or picture in uni-trace/"
ls /tmp/nccl_tp-id.* 2>/dev/null | grep -q . && fail "the id file was left in /tmp"
ok "trace and picture written; nothing left in /tmp"
timeout 240 "$UNIRUN" -n 16 --config "$GPU" --trace "$T/g.unitrace" -- "$TP" 6 >"$T/log16" 2>&1 || { cat "$T/log16"; fail "16 ranks on gpu-nodes.yaml"; }
[ "$(grep '^prediction:' "$T/log16")" = "$p1" ] || fail "16 ranks predict $(grep '^prediction:' "$T/log16"), 1 rank $p1"
"$UNITRACE" links "$T/g.unitrace" --json >"$T/links.json" || fail "unitrace links"
/usr/bin/python3 - "$T/links.json" <<'PYEOF' || fail "16 ranks on two GPU nodes: routes"
import json, sys
d = json.load(open(sys.argv[1]))
B = {l["link"]: l["bytes"] for l in d["links"]}
nvl = sum(b for k, b in B.items() if "nvs" in k)
up_leaf = sum(b for k, b in B.items() if k.startswith("rank ") and "-> leaf" in k)
down_leaf = sum(b for k, b in B.items() if k.startswith("leaf") and "-> rank" in k)
spine_in = sum(b for k, b in B.items() if k.startswith("leaf") and k.endswith("-> spine"))
spine_out = sum(b for k, b in B.items() if k.startswith("spine ->"))
print(f"NVLink cables {nvl} bytes; network cables up {up_leaf}, down {down_leaf}; into the spine {spine_in}, out {spine_out}")
assert nvl > 0 and up_leaf > 0, "both kinds of cable carry traffic"
assert up_leaf == spine_in == spine_out == down_leaf, "a transfer within a node took the network"
PYEOF
ok "16 ranks on two GPU nodes: the same prediction; within a node NVLink, between them the network"

for n in 1 2 4; do
	timeout 240 "$UNIRUN" -n $n --config "$CFG" -- "$PP" 6 >"$T/pp$n" 2>&1 || { cat "$T/pp$n"; fail "nccl_pp: $n stages"; }
	[ "$(grep '^prediction:' "$T/pp$n")" = "$p1" ] || { cat "$T/pp$n"; fail "nccl_pp: $n stages predict $(grep '^prediction:' "$T/pp$n"), nccl_tp $p1"; }
	grep -q '^predictions: \[' "$T/pp$n" || fail "nccl_pp: $n stages: no predictions for the 4 requests"
done
[ "$(grep '^predictions:' "$T/pp1")" = "$(grep '^predictions:' "$T/pp4")" ] || fail "nccl_pp: 4 stages predict other tokens for requests 1-3 than 1 stage"
ok "nccl_pp: 1, 2 and 4 stages predict nccl_tp's tokens ($p1), and the same for every request"
timeout 240 "$UNIRUN" -n 4 --config "$CFG" --trace "$T/pp1r.unitrace" -- "$PP" 6 1 >"$T/pp4r1" 2>&1 || { cat "$T/pp4r1"; fail "nccl_pp: 4 stages, 1 request"; }
r1=$(ms "$T/pp4r1") r4=$(ms "$T/pp4")
/usr/bin/python3 -c "import sys; r1, r4 = float('$r1'), float('$r4'); ring = 3 * (2 + 2048 * 8 / 1e5) + 2 + 4 * 8 / 1e5; sys.exit(not (r1 >= ring and r4 >= ring and r4 < 2 * r1))" ||
	fail "nccl_pp on 4 stages: $r1 ms per token with 1 request, $r4 ms with 4 (want each >= the ring of hops, 8.49 ms, and 4 requests < twice 1)"
ok "nccl_pp on 4 stages: $r1 ms per token with 1 request, $r4 ms with 4 requests in flight"
"$UNITRACE" summary "$T/pp1r.unitrace" >"$T/pp1r.sum" || fail "unitrace summary of nccl_pp's trace"
recvs=$(sed -n 's/^totals *sends [0-9]*, recvs \([0-9]*\),.*/\1/p' "$T/pp1r.sum")
grep -q "^consistency: bytes sent == bytes received on every connection" "$T/pp1r.sum" || { cat "$T/pp1r.sum"; fail "nccl_pp's trace is not consistent"; }
grep -q "^note: the simulated NCCL's flow control sent $((8 * recvs)) credit bytes" "$T/pp1r.sum" ||
	{ cat "$T/pp1r.sum"; fail "nccl_pp: not one 8-byte credit for each of the $recvs messages received"; }
ok "nccl_pp: $recvs messages, each with its credit; the trace consistent"
# Its trace replayed under its own configuration: every rank ends where
# the run did (the ranks' meeting at init, the pipeline's sends, credits
# and their latencies; docs/unitrace.md).
"$UNITRACE" replay "$T/pp1r.unitrace" --config "$CFG" --json >"$T/pp1r.rep.json" || fail "unitrace replay of nccl_pp's trace"
"$UNITRACE" summary --json "$T/pp1r.unitrace" >"$T/pp1r.sum.json" || fail "unitrace summary --json of nccl_pp's trace"
/usr/bin/python3 - "$T/pp1r.sum.json" "$T/pp1r.rep.json" <<'PYEOF' || fail "nccl_pp's trace replayed under its configuration"
import json, sys
live = {r["rank"]: r["end_ns"] for r in json.load(open(sys.argv[1]))["ranks"]}
rep = {r["rank"]: r["end_ns"] for r in json.load(open(sys.argv[2]))["ranks"]}
assert sorted(live) == sorted(rep) == [0, 1, 2, 3], (live, rep)
for k in sorted(live):
    assert abs(rep[k] - live[k]) <= 1e-5 * live[k], (k, rep[k], live[k])
PYEOF
ok "nccl_pp: its trace replayed under its configuration ends where the run did"
# The communicator's init is a meeting: every rank goes on from the latest
# of the ranks' clocks at arrival, and the trace has it as takes from each
# rank's position, not as the idle time the run had. Replayed with rank
# 2's compute 20 times slower, ranks 0, 1 and 3 leave the init together,
# at rank 2's (later) arrival: more than 5 times the recorded time.
sed -e 's/^  # ranks:$/  ranks:/' -e 's/^  #   2: { slowdown: 3.5 }/    2: { slowdown: 20 }/' "$CFG" >"$T/slow2.yaml"
grep -q '^    2: { slowdown: 20 }' "$T/slow2.yaml" || fail "could not make rank 2 slower in $CFG"
"$UNITRACE" replay "$T/pp1r.unitrace" --config "$T/slow2.yaml" -o "$T/slow2.unitrace" >/dev/null || fail "replay with rank 2 slower"
"$UNITRACE" dump --json "$T/pp1r.unitrace" >"$T/pp1r.jsonl" && "$UNITRACE" dump --json "$T/slow2.unitrace" >"$T/slow2.jsonl" ||
	fail "dump of nccl_pp's trace and its replay"
/usr/bin/python3 - "$T/pp1r.jsonl" "$T/slow2.jsonl" <<'PYEOF' || fail "nccl_pp's init replayed with rank 2 slower"
import json, sys
def left(path):
    recs = [json.loads(l) for l in open(path)]
    out = {}
    for r in range(4):
        ev = [x for x in recs if x["rank"] == r and x["tid"] > 0]
        i = next(k for k, x in enumerate(ev) if x["kind"] == "nccl_comm")
        while ev[i]["kind"] != "take":
            i += 1
        j = i
        while ev[j]["kind"] == "take":
            j += 1
        out[r] = max([ev[i]["t0"]] + [x["t1"] for x in ev[i:j]])
    return out
rec, slow = left(sys.argv[1]), left(sys.argv[2])
print("init left at (ms), recorded:", {k: v / 1e6 for k, v in rec.items()}, "rank 2 slower:", {k: v / 1e6 for k, v in slow.items()})
assert abs(slow[0] - slow[1]) < 1000 and abs(slow[0] - slow[3]) < 1000, slow
assert slow[2] >= slow[0] > 5 * rec[0], (rec, slow)
PYEOF
ok "nccl_pp: its init replayed with rank 2's compute 20 times slower: the others leave it together, at rank 2's arrival"
ls /tmp/nccl_pp-id.* 2>/dev/null | grep -q . && fail "nccl_pp left its id file in /tmp"
ok "nccl_pp left nothing in /tmp"
# Under nic, sixteen requests in flight: stage 0 runs eight messages ahead
# and waits for credits while its next inputs arrive unread. Those
# arrivals must not hold the network while their reader waits for
# something else: before session 28 the network stood still there until
# each counted as stale (2 s of real time, again and again: 30 to 80 s of
# wall time for 0.3 s of virtual time, once reported as a deadlock). unid
# logs how many arrivals it went past only after such a wait: none after
# 2 s, and at most 8 after the soft hold's 200 ms (a rank the host does
# not run for 200 ms may cost one; without the fix: 80).
sed 's/model: alpha-beta.*/model: nic/' "$CFG" >"$T/nic.yaml"
S=ppnic-$$
timeout 240 "$UNIRUN" -n 4 --session $S --config "$T/nic.yaml" -- "$PP" 6 16 >"$T/ppnic" 2>&1 || { cat "$T/ppnic"; fail "nccl_pp under nic, 16 requests"; }
[ "$(grep '^prediction:' "$T/ppnic")" = "$p1" ] || { cat "$T/ppnic"; fail "nccl_pp under nic: another prediction"; }
! grep -q '^late:' "$T/ppnic" || { cat "$T/ppnic"; fail "nccl_pp under nic: transfers late"; }
grep -q 'unid.*stopped:' /tmp/uni.$S.log || { cat /tmp/uni.$S.log; fail "nccl_pp under nic: no unid log"; }
soft= stale=
read -r soft stale < <(sed -n 's/.*went past \([0-9]*\) arrivals unread after holding.* and past \([0-9]*\) after 2 s.*/\1 \2/p' /tmp/uni.$S.log) || true
if grep -q 'went past' /tmp/uni.$S.log && { [ -z "$soft" ] || [ "$stale" -gt 0 ] || [ "$soft" -gt 8 ]; }; then
	cat /tmp/uni.$S.log; fail "nccl_pp under nic: the network waited for unread arrivals (${soft:-?} after 200 ms, ${stale:-?} after 2 s)"
fi
rm -f /tmp/uni.$S.log
ok "nccl_pp under nic, 16 requests: nccl_tp's prediction, none late, the network waited for an arrival's reader ${soft:-0} times ($(sed -n 's/^time per token: \([0-9.]* ms\).*/\1/p' "$T/ppnic") per token)"
