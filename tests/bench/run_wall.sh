#!/usr/bin/env bash
# Wall time of the 4-rank example (examples/torch/tp_infer.py) on this host:
# without the shim (tests/integration/launch.py), under unirun in record
# mode, and under unirun in simulate mode with the default config. Prints a
# markdown table (median of RUNS runs each, interleaved) for docs/benchmarks.md.
#
#   tests/bench/run_wall.sh BUILD_DIR [RUNS]
set -euo pipefail
B=$(cd "$1" && pwd)
RUNS=${2:-3}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PY=/usr/bin/python3
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
run() { # label command...
	local label=$1; shift
	local t0 t1
	t0=$(date +%s.%N)
	"$@" >"$T/out" 2>&1 || { cat "$T/out"; echo "run_wall: $label failed" >&2; exit 1; }
	t1=$(date +%s.%N)
	echo "$label $(echo "$t1 - $t0" | bc) $(grep -o 'time per token: [0-9.]*' "$T/out" | awk '{print $4}')" >>"$T/times"
}
for _ in $(seq "$RUNS"); do
	run plain $PY "$ROOT/tests/integration/launch.py" -n 4 -- $PY "$ROOT/examples/torch/tp_infer.py"
	run record "$B/tools/unirun" -n 4 --mode record --trace "$T/r.unitrace" -- $PY "$ROOT/examples/torch/tp_infer.py"
	run simulate "$B/tools/unirun" -n 4 --config "$ROOT/examples/configs/default.yaml" --trace "$T/s.unitrace" -- $PY "$ROOT/examples/torch/tp_infer.py"
done
$PY - "$T/times" <<'PYEOF'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    label, wall, tok = line.split()
    rows.setdefault(label, []).append((float(wall), float(tok)))
base = statistics.median(w for w, _ in rows["plain"])
print("| run | wall time of the whole job (median) | vs. no shim | time per token the program printed |")
print("|---|---|---|---|")
names = {"plain": "no shim", "record": "unirun, record mode", "simulate": "unirun, simulate mode (default config)"}
for label in ("plain", "record", "simulate"):
    w = statistics.median(x for x, _ in rows[label])
    t = statistics.median(y for _, y in rows[label])
    kind = "virtual (predicted)" if label == "simulate" else "host wall"
    print(f"| {names[label]} | {w:.2f} s | {w / base:.2f}x | {t:.1f} ms ({kind}) |")
PYEOF
