#!/bin/bash
# unitrace compare on real traces of one program (2 ranks, sim_p2p.py):
#  - a trace against itself: no error, R^2 = 1;
#  - against a copy with every time scaled by 1.1: +10% total, 10% MAPE of
#    latencies and completions, and the R^2 that formula gives;
#  - a record-mode run against a simulate-mode run of the same program:
#    every data message of the program is matched (sizes checked), and the
#    statistics are computed from the matched messages as documented
#    (recomputed here from --json).
#   test_compare.sh UNIRUN UNITRACE
set -euo pipefail
. "$(dirname "$0")/lib.sh"
UNIRUN=$1 UNITRACE=$2
T=$(mktemp -d /tmp/uni-compare.XXXXXX)
trap 'rm -rf "$T"' EXIT
SIZES=1024,65536,1048576,4194304
cat >"$T/c.yaml" <<YAML
mode: simulate
network:
  model: alpha-beta
  default: { latency: 50us, bandwidth: 10Gbit }
YAML
timeout 300 "$UNIRUN" -n 2 --mode record --trace "$T/real.unitrace" -- $PY "$HERE/sim_p2p.py" --sizes $SIZES \
	>"$T/log" 2>&1 || { cat "$T/log"; fail "record run"; }
timeout 300 "$UNIRUN" -n 2 --config "$T/c.yaml" --trace "$T/sim.unitrace" -- $PY "$HERE/sim_p2p.py" --sizes $SIZES \
	>"$T/log" 2>&1 || { cat "$T/log"; fail "simulate run"; }

# Self: zero error.
"$UNITRACE" compare "$T/real.unitrace" "$T/real.unitrace" --json >"$T/self.json" || fail "compare self"
$PY - "$T/self.json" <<'PYEOF' || fail "self-compare"
import json, sys
j = json.load(open(sys.argv[1]))
assert j["operations"] >= 4, j["operations"]
assert j["total_error_pct"] == 0 and j["mape_latency_pct"] == 0 and j["mape_completion_pct"] == 0, j
assert abs(j["r2"] - 1) < 1e-12, j["r2"]
PYEOF
ok "a trace against itself: 0% error, R^2 = 1"

# Scaled by 1.1: the times of sends and recvs (kinds 6, 7) are t0, t1 and a
# (bytes 24..40 and 56..64 of a record).
$PY - "$T/real.unitrace" "$T/scaled.unitrace" <<'PYEOF'
import struct, sys
data = bytearray(open(sys.argv[1], "rb").read())
hdr = struct.unpack_from("<I", data, 12)[0]
for off in range(hdr, len(data) - 63, 64):
    if struct.unpack_from("<H", data, off)[0] not in (6, 7):
        continue
    for f in (24, 32, 56):
        v, = struct.unpack_from("<Q", data, off + f)
        struct.pack_into("<Q", data, off + f, round(v * 1.1))
open(sys.argv[2], "wb").write(data)
PYEOF
"$UNITRACE" compare "$T/real.unitrace" "$T/scaled.unitrace" --json >"$T/scaled.json" || fail "compare scaled"
$PY - "$T/scaled.json" <<'PYEOF' || fail "scaled compare"
import json, sys
j = json.load(open(sys.argv[1]))
near = lambda a, b: abs(a - b) < 1e-3
assert near(j["total_error_pct"], 10), j["total_error_pct"]
assert near(j["mape_latency_pct"], 10), j["mape_latency_pct"]
assert near(j["mape_completion_pct"], 10), j["mape_completion_pct"]
d = [o["real_done_ns"] for o in j["ops"]]
m = sum(d) / len(d)
r2 = 1 - sum((0.1 * x) ** 2 for x in d) / sum((x - m) ** 2 for x in d)
assert abs(j["r2"] - r2) < 1e-4, (j["r2"], r2)
PYEOF
ok "a trace against itself x 1.1: +10% total, 10% MAPE"

# Record against simulate.
"$UNITRACE" compare "$T/real.unitrace" "$T/sim.unitrace" >"$T/cmp.txt" || fail "compare real sim"
cat "$T/cmp.txt"
"$UNITRACE" compare "$T/real.unitrace" "$T/sim.unitrace" --json >"$T/cmp.json"
$PY - "$T/cmp.json" "$SIZES" <<'PYEOF' || fail "record vs simulate compare"
import json, sys
j = json.load(open(sys.argv[1]))
assert j["real"]["mode"] == "record" and j["sim"]["mode"] == "simulate", j
sizes = sorted(int(s) + 48 for s in sys.argv[2].split(","))
got = sorted(o["bytes"] for o in j["ops"] if o["from"] == 0 and o["to"] == 1 and o["bytes"] > 1000)
assert got == sizes, (got, sizes)
ops = j["ops"]
lat = [abs(o["sim_latency_ns"] - o["real_latency_ns"]) / o["real_latency_ns"] for o in ops if o["real_latency_ns"] > 0]
assert abs(100 * sum(lat) / len(lat) - j["mape_latency_pct"]) < 1e-3
total_real = max(o["real_done_ns"] for o in ops)
assert abs(total_real - j["total_real_ns"]) <= 1
PYEOF
ok "record vs simulate: every data message matched, statistics as documented"
