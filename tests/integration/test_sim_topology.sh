#!/bin/bash
# Simulate mode, the topology model: two switches (tor0: ranks 0, 1; tor1:
# ranks 2, 3; 100 us cables, 1 Gbit/s NICs, rank 3's downlink 400 Mbit/s)
# joined by a 100 Mbit/s, 1 ms link. Rank 0 sends 8 MB to rank 2, rank 1
# 16 MB to rank 3 (both across the link: 50 Mbit/s each, then 100 for the
# one left) and rank 2 16 MB to rank 3 (within tor1: the 350 Mbit/s of
# rank 3's downlink the other flow leaves), at once, with real PyTorch
# (Gloo). The trace's arrivals against an independent fluid max-min
# computation and the closed forms (check_sim_topology.py); the program's
# own clock against the trace; unitrace replay under the same
# configuration ends where the run ended; under nic (no switches) the
# cross traffic does not share a link and ends sooner.
#   test_sim_topology.sh UNIRUN UNITRACE
set -euo pipefail
. "$(dirname "$0")/lib.sh"
UNIRUN=$1 UNITRACE=$2
T=$(mktemp -d /tmp/uni-topo.XXXXXX)
trap 'rm -rf "$T"' EXIT
cat >"$T/c.yaml" <<'YAML'
mode: simulate
network:
  model: topology
  default: { bandwidth: 1Gbit }
  ranks: { 3: { downlink: 400Mbit } }
  topology:
    switches:
      - { name: tor0, ranks: [0, 1], latency: 100us }
      - { name: tor1, ranks: [2, 3], latency: 100us }
    links:
      - { between: [tor0, tor1], bandwidth: 100Mbit, latency: 1ms }
YAML
timeout 300 "$UNIRUN" -n 4 --config "$T/c.yaml" --trace "$T/t.unitrace" -- $PY "$HERE/sim_cross.py" >"$T/log" 2>&1 ||
	{ cat "$T/log"; fail "sim_cross under the topology model"; }
"$UNITRACE" dump --json "$T/t.unitrace" >"$T/dump"
# unirun's summary ends with the most loaded links: the one between the switches first.
grep -A2 '^most loaded links (topology model' "$T/log" | tail -1 | grep -q '^tor0 -> tor1 ' ||
	{ cat "$T/log"; fail "the summary's most loaded link is not tor0 -> tor1"; }
$PY "$HERE/check_sim_topology.py" "$T/dump" || fail "topology times"
# No transfer started late by more than 1 ms (a sender the horizon left
# out while it ran: up to 585 ms on a loaded host before session 10).
$PY - "$T/dump" <<'PYEOF' || { grep -i late "$T/log"; fail "late transfers"; }
import json, sys
end = [r for r in map(json.loads, open(sys.argv[1])) if r["kind"] == "session_end"][0]
print(f"late transfers: {end['conn']}, the latest {max(end['peer'], 0)} us after its stamp")
assert end["conn"] == 0 or end["peer"] <= 1000, end
PYEOF
# The receivers' own clocks: rank 3's receive from rank 1 ends last, after
# about 1.92 s (8 MB at 50 Mbit/s, 8 MB at 100).
$PY - "$T/log" <<'PYEOF' || { cat "$T/log"; fail "the program's clock"; }
import json, re, sys
res = {}
for m in re.findall(r'\{"rank".*?\}\}', open(sys.argv[1]).read()):
    d = json.loads(m)
    res[d["rank"]] = {int(k): v for k, v in d["done_ms"].items()}
print("receives end (ms after the barrier, the program's clock):", res)
assert 0.97 * 1281.2 <= res[2][0] <= 1.03 * 1281.2 + 50, res
assert 0.97 * 1921.2 <= res[3][1] <= 1.03 * 1921.2 + 50, res
assert res[3][2] < 500, res
PYEOF
"$UNITRACE" replay "$T/t.unitrace" --config "$T/c.yaml" --json >"$T/r.json" || fail "replay"
$PY - "$T/r.json" <<'PYEOF' || fail "replay under the recorded configuration"
import json, sys
r = json.load(open(sys.argv[1]))
for k in r["ranks"]:
    print(f"replayed: rank {k['rank']} ends {k['end_ns'] / 1e6:.3f} ms, recorded {k['recorded_end_ns'] / 1e6:.3f} ms")
    assert abs(k["end_ns"] - k["recorded_end_ns"]) <= 0.01 * k["recorded_end_ns"], "not the recording"
PYEOF
# The same run replayed under nic: no link between the switches to share;
# rank 3's two receives share its 400 Mbit/s downlink and end 0.64 s after
# the barrier, not 1.92 s: the makespan is 1.28 s shorter.
"$UNITRACE" replay "$T/t.unitrace" --config "$T/c.yaml" --sweep network.model=nic,topology --json >"$T/s.json" ||
	fail "replay --sweep network.model"
$PY - "$T/s.json" <<'PYEOF' || fail "nic against topology"
import json, sys
runs = json.load(open(sys.argv[1]))["runs"]
assert [r["value"] for r in runs] == ["nic", "topology"], runs
ends = [r["result"]["makespan_ns"] for r in runs]
print("makespan under nic %.3f ms, under topology %.3f ms" % (ends[0] / 1e6, ends[1] / 1e6))
assert ends[1] - ends[0] > 1000e6, ends
PYEOF
# unitrace links: the link between the switches carried the 24 MB at its
# full 100 Mbit/s for the 1.92 s of the cross traffic (the bottleneck,
# listed first); rank 3's downlink the 32 MB in the same time, a third of
# its capacity; a missing --config is a usage error.
"$UNITRACE" links "$T/t.unitrace" >"$T/links.txt" || fail "unitrace links"
cat "$T/links.txt"
"$UNITRACE" links "$T/t.unitrace" --json >"$T/links.json" || fail "unitrace links --json"
$PY - "$T/links.json" <<'PYEOF' || fail "unitrace links"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["model"] == "topology", d["model"]
L = {l["link"]: l for l in d["links"]}
t = L["tor0 -> tor1"]
assert d["links"][0]["link"] == "tor0 -> tor1", "the most loaded link is not the one between the switches"
assert abs(t["bytes"] - 24e6) < 4096, t
assert abs(t["busy_ns"] - 1920e6) < 0.01 * 1920e6, t
assert abs(t["rate_while_busy_bps"] - 100e6) < 1e6, t
assert abs(t["load_ns"] - 1920e6) < 0.001 * 1920e6, t
r3 = L["tor1 -> rank 3"]
assert abs(r3["bytes"] - 32e6) < 4096 and abs(r3["busy_ns"] - 1920e6) < 0.01 * 1920e6, r3
assert r3["capacity_bps"] == 400e6, r3
u2 = L["rank 2 -> tor1"]
assert abs(u2["busy_ns"] - 365.7e6) < 0.01 * 365.7e6, u2
print("links: ok")
PYEOF
# unitrace plot --from/--to: the three data transfers begin within a few
# ms of each other; a 10 ms window there draws their bars (and nothing of
# the other transfers, 48-byte notices aside, which plot leaves out), a
# window in the first millisecond none.
a0=$($PY -c '
import json, sys
print(min(json.loads(l)["a"] for l in open(sys.argv[1]) if json.loads(l)["kind"] == "send" and json.loads(l)["len"] > 1000000) / 1e6)' "$T/dump")
"$UNITRACE" plot "$T/t.unitrace" -o "$T/w.svg" --from "$($PY -c "print($a0 - 5)")" --to "$($PY -c "print($a0 + 5)")" ||
	fail "plot --from --to"
n=$(grep -c 'fill="#3b7dd8"' "$T/w.svg" || true)
[ "$n" = 3 ] || fail "plot of the window around the cross traffic: $n bars, want 3"
"$UNITRACE" plot "$T/t.unitrace" -o "$T/w0.svg" --from 0 --to 1 || fail "plot --from 0 --to 1"
n=$(grep -c 'fill="#3b7dd8"' "$T/w0.svg" || true)
[ "$n" = 0 ] || fail "plot of the first ms: $n bars, want 0"
set +e
"$UNITRACE" links "$T/t.unitrace" --config "$T/missing.yaml" 2>"$T/err"
rc=$?
set -e
[ $rc = 64 ] && grep -q "missing.yaml: cannot open" "$T/err" || { cat "$T/err"; fail "links with a missing config: exit $rc"; }
ok "topology: flows across a shared switch-to-switch link and beside it take the max-min fluid times; replay agrees"
