#!/usr/bin/env bash
# Wall time of the 4-rank example (examples/torch/tp_infer.py) on this host:
# without the shim (tests/integration/launch.py), under unirun in record
# mode, and under unirun in simulate mode with the default config. The run
# without the shim gets OMP_NUM_THREADS=1, as torchrun and unirun set it
# (since session 9; before, it ran two OpenMP threads per rank). Prints a
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
	# Wall time, and the CPU time (user + system) of every process of the
	# job: the cost of the shim and unid without the host's scheduling
	# noise, which moves the wall time of this job by 10 to 20% from run
	# to run on 2 CPUs.
	/usr/bin/time -f "%e %U %S" -o "$T/time" "$@" >"$T/out" 2>&1 ||
		{ cat "$T/out"; echo "run_wall: $label failed" >&2; exit 1; }
	echo "$label $(tail -1 "$T/time") $(grep -o 'time per token: [0-9.]*' "$T/out" | awk '{print $4}')" >>"$T/times"
}
for _ in $(seq "$RUNS"); do
	run plain env OMP_NUM_THREADS=1 $PY "$ROOT/tests/integration/launch.py" -n 4 -- $PY "$ROOT/examples/torch/tp_infer.py"
	run record "$B/tools/unirun" -n 4 --mode record --trace "$T/r.unitrace" -- $PY "$ROOT/examples/torch/tp_infer.py"
	run simulate "$B/tools/unirun" -n 4 --config "$ROOT/examples/configs/default.yaml" --trace "$T/s.unitrace" -- $PY "$ROOT/examples/torch/tp_infer.py"
done
$PY - "$T/times" <<'PYEOF'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    label, wall, user, sys_, tok = line.split()
    rows.setdefault(label, []).append((float(wall), float(user) + float(sys_), float(tok)))
med = lambda label, i: statistics.median(r[i] for r in rows[label])
base, cbase = med("plain", 0), med("plain", 1)
print("| run | wall time of the whole job (median) | vs. no shim | CPU time, user + system (median) | vs. no shim | time per token the program printed |")
print("|---|---|---|---|---|---|")
names = {"plain": "no shim", "record": "unirun, record mode", "simulate": "unirun, simulate mode (default config)"}
for label in ("plain", "record", "simulate"):
    w, c, t = med(label, 0), med(label, 1), med(label, 2)
    kind = "virtual (predicted)" if label == "simulate" else "host wall"
    print(f"| {names[label]} | {w:.2f} s | {w / base:.2f}x | {c:.2f} s | {c / cbase:.2f}x | {t:.1f} ms ({kind}) |")
PYEOF
