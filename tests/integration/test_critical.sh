#!/bin/bash
# unitrace critical-path on a real 3-stage pipeline (sim_pipeline.py) in
# simulate mode, compute made negligible (slowdown 0.001): the chain ends
# with the 1 MB transfer rank 0 -> 1, rank 1's 200 ms of work, the 1 MB
# transfer 1 -> 2 and rank 2's 300 ms (before them: Gloo's notices, e.g.
# rank 1's RECV_READY that lets rank 0's data go); each transfer takes
# latency + bytes / bandwidth, and the steps add up to the makespan.
#   test_critical.sh UNIRUN UNITRACE
set -euo pipefail
. "$(dirname "$0")/lib.sh"
UNIRUN=$1 UNITRACE=$2
T=$(mktemp -d /tmp/uni-critical.XXXXXX)
trap 'rm -rf "$T"' EXIT
cat >"$T/c.yaml" <<YAML
mode: simulate
network:
  model: alpha-beta
  default: { latency: 2ms, bandwidth: 100Mbit }
devices:
  default: { slowdown: 0.001 }
YAML
timeout 300 "$UNIRUN" -n 3 --config "$T/c.yaml" --trace "$T/t.unitrace" -- $PY "$HERE/sim_pipeline.py" \
	>"$T/log" 2>&1 || { cat "$T/log"; fail "pipeline run"; }
"$UNITRACE" critical-path "$T/t.unitrace" | tee "$T/cp.txt"
"$UNITRACE" critical-path "$T/t.unitrace" --json >"$T/cp.json"
$PY - "$T/cp.json" <<'PYEOF' || fail "critical path"
import json, sys
j = json.load(open(sys.argv[1]))
steps = j["steps"]
assert j["last_rank"] == 2, j["last_rank"]
span = sum(s["t1_ns"] - s["t0_ns"] for s in steps)
assert span == j["makespan_ns"], (span, j["makespan_ns"])
assert abs(sum(s["share"] for s in steps) - 1) < 1e-4  # printed with 6 decimals
big = [s for s in steps if s["kind"] == "transfer" and s["bytes"] > 1_000_000]
assert [(s["rank"], s["to"]) for s in big] == [(0, 1), (1, 2)], big
one = 2e-3 + (1048576 + 48) * 8 / 1e8
for s in big:
    d = (s["t1_ns"] - s["t0_ns"]) / 1e9
    assert abs(d - one) / one < 0.01, (d, one)
i1 = steps.index(big[0]); i2 = steps.index(big[1])
# Between the two transfers only rank 1's own work: rank 2's receive notice,
# which reached rank 1 while it worked, gated nothing.
between = steps[i1 + 1:i2]
assert all(s["kind"] == "local" and s["rank"] == 1 for s in between), between
w1 = sum(s["t1_ns"] - s["t0_ns"] for s in between)
assert abs(w1 / 1e9 - 0.2) < 0.01 * 0.2, w1
w2 = sum(s["t1_ns"] - s["t0_ns"] for s in steps[i2 + 1:])
assert abs(w2 / 1e9 - 0.3) < 0.01 * 0.3, w2
print(f"critical path: {len(steps)} steps; rank 1 works {w1/1e6:.3f} ms, rank 2 {w2/1e6:.3f} ms, "
      f"transfers {[(s['t1_ns']-s['t0_ns'])/1e6 for s in big]} ms")
PYEOF
ok "critical path of a 3-stage pipeline: rank 0 -> 1 -> 2, work and transfers as simulated"
