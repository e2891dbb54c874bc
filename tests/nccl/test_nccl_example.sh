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
#   test_nccl_example.sh UNIRUN NCCL_TP DEFAULT_YAML UNITRACE GPU_NODES_YAML
set -euo pipefail
UNIRUN=$1 TP=$2 CFG=$3 UNITRACE=$4 GPU=$5
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
