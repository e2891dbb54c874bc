#!/bin/bash
# Simulate mode: a rank that ends while its last bytes are still on their
# way (rank 0 writes 1 MB, which fits in the socket buffers, and exits) must not stop the network for the
# others: rank 1 reads them all, at latency + 1 MB / bandwidth, under
# nic and alpha-beta, within the time-out (it read for ever under nic
# once: the horizon was 0 as soon as fewer ranks than the world were live).
#   test_sim_early_exit.sh UNIRUN
set -euo pipefail
. "$(dirname "$0")/lib.sh"
UNIRUN=$1
T=$(mktemp -d /tmp/uni-early.XXXXXX)
trap 'rm -rf "$T"' EXIT
for model in nic alpha-beta; do
	printf 'mode: simulate\nnetwork: { model: %s, default: { latency: 1ms, bandwidth: 100Mbit } }\n' "$model" >"$T/c.yaml"
	timeout 60 "$UNIRUN" -n 2 --config "$T/c.yaml" --trace "$T/t.unitrace" -- $PY "$HERE/sim_early_exit.py" >"$T/log" 2>&1 ||
		{ cat "$T/log"; fail "early exit under $model"; }
	$PY - "$T/log" "$model" <<'PYEOF' || { cat "$T/log"; fail "early exit under $1"; }
import json, re, sys
text = open(sys.argv[1]).read()
r = json.loads(re.findall(r'\{"got".*?\}', text)[0])
w = json.loads(re.findall(r'\{"send_ms".*?\}', text)[0])
took = r["end_ms"] - w["send_ms"]
want = 1 + 1e6 * 8 / 1e8 * 1e3  # ms
print(f"{sys.argv[2]}: {r['got']} bytes, the last {took:.3f} ms after the write began (latency + size/bandwidth {want:.3f} ms)")
sys.exit(not (r["got"] == 1000000 and want * 0.99 <= took <= want * 1.02))
PYEOF
done
ok "a rank that exits with its bytes in flight: the other reads them all, in time (nic, alpha-beta)"
