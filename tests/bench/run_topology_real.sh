#!/usr/bin/env bash
# The topology model against a real shaped network (docs/benchmarks.md):
# tests/integration/sim_cross.py (rank 0 sends 8 MB to rank 2, ranks 1 and
# 2 each 16 MB to rank 3, at once) run for real on two switches built from
# network namespaces, Linux bridges and veth pairs: ranks 0, 1 on switch 0,
# ranks 2, 3 on switch 1, the link between the switches shaped by tbf to
# TRUNK Mbit/s each way and rank 3's downlink to DOWN3 Mbit/s (0: not
# shaped); then the
# same program under unirun with the topology model of that network, and
# under nic (the same NICs, no switches). Prints the receives' end times
# (ms after the barrier) of each. QUEUE sets tbf's queue (its latency
# limit, default 50ms). Needs root.
#
#   tests/bench/run_topology_real.sh BUILD_DIR [RUNS] [TRUNK] [DOWN3]
set -euo pipefail
B=$(cd "$1" && pwd)
RUNS=${2:-3}
TRUNK=${3:-50}
DOWN3=${4:-40}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PY=/usr/bin/python3
T=$(mktemp -d)
NS="utr$$"
cleanup() {
	for n in 0 1 2 3; do ip netns del "${NS}r$n" 2>/dev/null || true; done
	for s in 0 1; do ip netns del "${NS}s$s" 2>/dev/null || true; done
	rm -rf "$T"
}
trap cleanup EXIT
# tbf burst: at least rate / HZ (a 250 Hz kernel) and a few frames.
tbf() { # dev-in-ns... rate_mbit
	local ns=$1 dev=$2 rate=$3
	ip netns exec "$ns" tc qdisc add dev "$dev" root tbf rate "${rate}mbit" burst 64kb latency "${QUEUE:-50ms}"
}
for s in 0 1; do
	ip netns add "${NS}s$s"
	ip netns exec "${NS}s$s" ip link add name sw type bridge
	ip netns exec "${NS}s$s" ip link set sw up
done
for n in 0 1 2 3; do
	s=$((n / 2))
	ip netns add "${NS}r$n"
	ip link add "v$n$NS" type veth peer name "p$n$NS"
	ip link set "v$n$NS" netns "${NS}r$n" name eth0
	ip link set "p$n$NS" netns "${NS}s$s" name "p$n"
	ip netns exec "${NS}r$n" ip addr add "10.77.0.$((n + 1))/24" dev eth0
	ip netns exec "${NS}r$n" ip link set eth0 up
	ip netns exec "${NS}r$n" ip link set lo up
	ip netns exec "${NS}s$s" ip link set "p$n" master sw
	ip netns exec "${NS}s$s" ip link set "p$n" up
done
ip link add "t0$NS" type veth peer name "t1$NS"
ip link set "t0$NS" netns "${NS}s0" name trunk
ip link set "t1$NS" netns "${NS}s1" name trunk
for s in 0 1; do
	ip netns exec "${NS}s$s" ip link set trunk master sw
	ip netns exec "${NS}s$s" ip link set trunk up
	tbf "${NS}s$s" trunk "$TRUNK"
done
[ "$DOWN3" = 0 ] || tbf "${NS}s1" p3 "$DOWN3"
port=$((20000 + $$ % 20000))
real_run() {
	local pids=()
	for n in 0 1 2 3; do
		ip netns exec "${NS}r$n" env RANK=$n LOCAL_RANK=$n WORLD_SIZE=4 MASTER_ADDR=10.77.0.1 MASTER_PORT=$port \
			GLOO_SOCKET_IFNAME=eth0 OMP_NUM_THREADS=1 $PY "$ROOT/tests/integration/sim_cross.py" >"$T/real$n.out" 2>&1 &
		pids+=($!)
	done
	for p in "${pids[@]}"; do wait "$p" || { cat "$T"/real*.out; echo "real run failed" >&2; exit 1; }; done
	cat "$T"/real*.out | grep '^{"rank"' >>"$T/real.jsonl"
	port=$((port + 1))
}
# The model of that network. tbf counts whole frames: a full TCP segment
# carries 1448 bytes of data in 1514 (timestamps on), so the data rate a
# shaped link gives is rate x 1448 / 1514; the NICs (unshaped veths) are
# far faster than the shaped links.
gp() { $PY -c "print('%.3fMbit' % ($1 * 1448 / 1514))"; }
cat >"$T/topo.yaml" <<YAML
mode: simulate
network:
  model: topology
  default: { bandwidth: 10Gbit }
$([ "$DOWN3" = 0 ] || echo "  ranks: { 3: { downlink: $(gp "$DOWN3") } }")
  topology:
    switches:
      - { name: s0, ranks: [0, 1] }
      - { name: s1, ranks: [2, 3] }
    links:
      - { between: [s0, s1], bandwidth: $(gp "$TRUNK") }
YAML
sed 's/model: topology/model: nic/; /topology:/,$d' "$T/topo.yaml" >"$T/nic.yaml"
sim_run() { # model
	"$B/tools/unirun" -n 4 --config "$T/$1.yaml" --trace "$T/$1.unitrace" --no-summary -- \
		$PY "$ROOT/tests/integration/sim_cross.py" >"$T/$1.out" 2>&1 || { cat "$T/$1.out"; exit 1; }
	grep -o '{"rank".*}}' "$T/$1.out" >>"$T/$1.jsonl"
}
for _ in $(seq "$RUNS"); do
	real_run
	sim_run topo
	sim_run nic
done
$PY - "$T" "$TRUNK" "$DOWN3" <<'PYEOF'
import json, statistics, sys
d = sys.argv[1]
def load(name):
    res = {}
    for l in open(f"{d}/{name}.jsonl"):
        r = json.loads(l)
        for src, ms in r["done_ms"].items():
            res.setdefault((int(src), r["rank"]), []).append(ms)
    return res
real, topo, nic = load("real"), load("topo"), load("nic")
import os
print(f"tbf queue {os.environ.get('QUEUE', '50ms')}, {sys.argv[2]} Mbit/s between the switches, {sys.argv[3] + ' Mbit/s' if sys.argv[3] != '0' else 'no shaping'} to rank 3; median (range) of {len(real[(0, 2)])} runs, ms after the barrier")
print()
print("| receive | real (namespaces, tbf) | topology model | vs. real | nic model | vs. real |")
print("|---|---|---|---|---|---|")
for k in sorted(real):
    r, t, n = (statistics.median(x[k]) for x in (real, topo, nic))
    rng = f"{min(real[k]):.0f}-{max(real[k]):.0f}"
    print(f"| {k[0]} -> {k[1]}, {8 if k == (0, 2) else 16} MB | {r:.0f} ({rng}) | {t:.0f} | {100 * (t - r) / r:+.1f}% | {n:.0f} | {100 * (n - r) / r:+.1f}% |")
PYEOF
