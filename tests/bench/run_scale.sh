#!/usr/bin/env bash
# Many ranks on one host (DESIGN 8: "64 ranks of a small model on one
# 2-core host, with memory accounted"): examples/torch/tp_infer.py with N
# ranks (N heads, so that every rank holds one), under unirun in simulate
# mode with the default config, and the same program without the shim
# (tests/integration/launch.py, OMP_NUM_THREADS=1 as unirun sets it).
# Reports, per run: the wall time, the CPU time of every process of the
# job (user + system), the host memory in use at its peak (`free`, sampled
# every 0.5 s, less what was in use before), the largest rank's resident
# set, the time per token the program printed and, under unirun, the
# trace's records and size and unid's own CPU time and resident set.
#
#   tests/bench/run_scale.sh BUILD_DIR N [D_MODEL]
set -euo pipefail
B=$(cd "$1" && pwd)
N=$2
D=${3:-$((N * 8 > 256 ? N * 8 : 256))}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PY=/usr/bin/python3
T=$(mktemp -d)
trap 'rm -rf "$T"; kill $(jobs -p) 2>/dev/null || true' EXIT
PROG=("$ROOT/examples/torch/tp_infer.py" --heads "$N" --d-model "$D" --tokens 4)
used() { free -k | awk '/^Mem:/{print $3}'; }
run() { # label command...
	local label=$1; shift
	local base; base=$(used)
	(while sleep 0.5; do used; done) >"$T/mem" &
	local m=$!
	/usr/bin/time -f "%e %U %S %M" -o "$T/time" "$@" >"$T/out" 2>&1 ||
		{ kill $m; tail -20 "$T/out"; echo "run_scale: $label failed" >&2; exit 1; }
	kill $m
	local peak; peak=$(sort -n "$T/mem" | tail -1)
	read -r wall user sys maxrss <"$T/time"
	local tok; tok=$(grep -o 'time per token: [0-9.]*' "$T/out" | awk '{print $4}')
	printf '%s: %d ranks, wall %.1f s, CPU %.1f s, memory at peak %.2f GiB (%.1f MiB per rank), largest rank %.0f MiB, time per token %s ms\n' \
		"$label" "$N" "$wall" "$(echo "$user + $sys" | bc)" "$(echo "($peak - $base) / 1048576" | bc -l)" \
		"$(echo "($peak - $base) / 1024 / $N" | bc -l)" "$(echo "$maxrss / 1024" | bc -l)" "$tok"
}
run "without the shim" env OMP_NUM_THREADS=1 $PY "$ROOT/tests/integration/launch.py" -n "$N" --timeout 1800 -- $PY "${PROG[@]}"
run "unirun simulate" "$B/tools/unirun" -n "$N" --config "$ROOT/examples/configs/default.yaml" --trace "$T/s.unitrace" -- $PY "${PROG[@]}"
grep -E "^(unirun:|predicted makespan|session end)" "$T/out" | sed 's/^/  /'
echo "  trace: $(du -k "$T/s.unitrace" | cut -f1) kB"
