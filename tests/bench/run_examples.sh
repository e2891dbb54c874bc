#!/usr/bin/env bash
# The predictions of the example programs (docs/examples.md): each example
# under unirun in simulate mode on each network config, RUNS times; prints
# a markdown table of the time per token (and tokens per second; for the
# Llama-style example the time per output token and the time to first
# token) the program printed (virtual time: the prediction), median and
# range.
#
#   tests/bench/run_examples.sh BUILD_DIR [RUNS]
#
# EXAMPLES=torch or EXAMPLES=c runs only the PyTorch examples or only the
# NCCL examples in C (built where nccl.h exists); both by default.
set -euo pipefail
B=$(cd "$1" && pwd)
RUNS=${2:-2}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PY=/usr/bin/python3
EX=$ROOT/examples/torch
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
run() { # config label args...
	local cfg=$1 label=$2
	shift 2
	local prog=()
	case "$1" in *.py) prog=("$PY") ;; esac
	"$B/tools/unirun" -n 4 --config "$ROOT/examples/configs/$cfg.yaml" --trace "$T/t.unitrace" --no-summary -- \
		"${prog[@]}" "$@" >"$T/out" 2>&1 || { cat "$T/out"; echo "run_examples: $label on $cfg failed" >&2; exit 1; }
	if grep -q 'time to first token' "$T/out"; then
		echo "$cfg|$label: time to first token|$(grep -o 'time to first token: [0-9.]*' "$T/out" | awk '{print $NF}')|" >>"$T/times"
		label="$label: time per output token"
	fi
	if grep -q 'time per batch of images' "$T/out"; then
		echo "$cfg|$label: time to embed the classes|$(grep -o 'embed the classes: [0-9.]*' "$T/out" | awk '{print $NF}')|" >>"$T/times"
		echo "$cfg|$label: time per batch of images|$(grep -o 'batch of images: [0-9.]*' "$T/out" | awk '{print $NF}')|" >>"$T/times"
		return
	fi
	echo "$cfg|$label|$(grep -o 'time per \(output \)\?token: [0-9.]*' "$T/out" | awk '{print $NF}')|$(grep -o 'tokens per second: [0-9.]*' "$T/out" | awk '{print $4}')" >>"$T/times"
}
WHICH=${EXAMPLES:-all}
for _ in $(seq "$RUNS"); do
	for cfg in default net-100mbit-10ms net-1gbit-1ms; do
		if [ "$WHICH" != torch ] && [ -x "$B/examples/c/nccl_pp" ]; then
			run $cfg "nccl_tp (C, NCCL, TP, 1 request)" "$B/examples/c/nccl_tp"
			run $cfg "nccl_pp (C, NCCL, PP, 4 requests)" "$B/examples/c/nccl_pp"
			run $cfg "nccl_pp 8 16 (C, NCCL, PP, 16 requests)" "$B/examples/c/nccl_pp" 8 16
		fi
		[ "$WHICH" != c ] || continue
		run $cfg "tp_infer.py (TP, 1 request)" "$EX/tp_infer.py"
		run $cfg "pp_infer.py --requests 1 (PP)" "$EX/pp_infer.py" --requests 1
		run $cfg "pp_infer.py --requests 4 (PP)" "$EX/pp_infer.py" --requests 4
		run $cfg "pp_infer.py --requests 4 --tp 2 (TP+PP)" "$EX/pp_infer.py" --requests 4 --tp 2
		run $cfg "voltage_infer.py (Voltage)" "$EX/voltage_infer.py"
		run $cfg "voltage_infer.py --overlap (Kilovolts)" "$EX/voltage_infer.py" --overlap
		run $cfg "llama_infer.py (TP, KV cache)" "$EX/llama_infer.py"
		run $cfg "clip_infer.py (a tower per group, TP in each)" "$EX/clip_infer.py"
	done
done
$PY - "$T/times" <<'PYEOF'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    cfg, label, tpt, tps = line.rstrip("\n").split("|")
    rows.setdefault((label, cfg), []).append((float(tpt), float(tps) if tps else None))
cfgs = ["default", "net-100mbit-10ms", "net-1gbit-1ms"]
print("| example | " + " | ".join(cfgs) + " |")
print("|---|" + "---|" * len(cfgs))
for label in dict.fromkeys(l for l, _ in rows):
    cells = []
    for c in cfgs:
        v = rows.get((label, c), [])
        t = [x[0] for x in v]
        cell = f"{statistics.median(t):.1f} ms ({min(t):.1f}-{max(t):.1f})"
        if v and v[0][1] is not None:
            cell += f", {statistics.median(x[1] for x in v):.1f} tok/s"
        cells.append(cell)
    print(f"| {label} | " + " | ".join(cells) + " |")
PYEOF
