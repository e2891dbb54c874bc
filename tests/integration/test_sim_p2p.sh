#!/bin/bash
# Simulate mode, alpha-beta: one send of S bytes (1 KB .. 64 MB) between two
# real PyTorch ranks arrives at send time + latency + S/bandwidth within 0.5%
# (check_sim_p2p.py), with data intact; under two different networks.
#   test_sim_p2p.sh UNIRUN UNITRACE
set -euo pipefail
. "$(dirname "$0")/lib.sh"
UNIRUN=$1 UNITRACE=$2
T=$(mktemp -d /tmp/uni-simp2p.XXXXXX)
trap 'rm -rf "$T"' EXIT
SIZES=1024,65536,1048576,16777216,67108864
for net in "2ms 100Mbit 2000000 1e8" "350us 1Gbit 350000 1e9"; do
	set -- $net
	cat >"$T/c.yaml" <<YAML
mode: simulate
network:
  model: alpha-beta
  default: { latency: $1, bandwidth: $2 }
YAML
	timeout 300 "$UNIRUN" -n 2 --config "$T/c.yaml" --trace "$T/t.unitrace" -- \
		$PY "$HERE/sim_p2p.py" --sizes $SIZES >"$T/log" 2>&1 || { cat "$T/log"; fail "sim_p2p under unirun ($1, $2)"; }
	"$UNITRACE" dump --json "$T/t.unitrace" |
		$PY "$HERE/check_sim_p2p.py" --sizes $SIZES --latency-ns $3 --bandwidth-bps $4 ||
		fail "closed form ($1, $2)"
	ok "alpha-beta $1 $2: every size within 0.5% of latency + S/bandwidth"
	# The picture unirun drew beside the trace: well-formed SVG, a row per
	# rank, a bar (with its tooltip) per data chunk sent, lines to the receiver
	# (while there are at most 400 chunks).
	grep -q "unirun: picture written to $T/t.svg" "$T/log" || fail "unirun did not say where the picture is"
	$PY - "$T/t.svg" "$T/t.unitrace" "$UNITRACE" <<'PYEOF' || fail "picture"
import json, subprocess, sys
import xml.etree.ElementTree as ET
svg, trace, unitrace = sys.argv[1:4]
root = ET.parse(svg).getroot()
ns = "{http://www.w3.org/2000/svg}"
texts = [t.text for t in root.iter(ns + "text")]
rows = [t for t in texts if t and t.startswith("rank ")]
assert rows == ["rank 0", "rank 1"], rows
dump = [json.loads(l) for l in subprocess.run([unitrace, "dump", "--json", trace], capture_output=True, text=True, check=True).stdout.splitlines()]
data = [r for r in dump if r["kind"] == "send" and r["len"] > 48]
bars = [r for r in root.iter(ns + "rect") if r.find(ns + "title") is not None]
assert len(bars) == len(data), (len(bars), len(data))
# A line per data chunk while they stay readable (at most 400: how writes
# split depends on the host, a loaded one splits a 64 MB send into more).
nlines = len(list(root.iter(ns + "line")))
legend = "line: to the receiver" in "".join(texts)
if len(data) <= 400:
    assert legend and nlines == len(data) + 11, f"arrival lines missing: {nlines} lines for {len(data)} data chunks (+ 11 grid lines)"
else:
    assert not legend and nlines == 11, f"{nlines} lines for {len(data)} data chunks (over 400: the grid's 11 only)"
print("picture: %d rank rows, %d transfer bars, %d lines" % (len(rows), len(bars), nlines))
PYEOF
done
