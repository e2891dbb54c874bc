#!/bin/bash
# Simulate mode, alpha-beta, 4 real PyTorch ranks: Gloo's ring all_gather
# (8 MB per rank) and ring all_reduce (16 MB). The message pattern is
# Gloo's, and every rank's completion is within 1% of a reference model of
# the loops and TCP protocol Gloo ran (check_sim_ring.py), as are the times
# the program measures with its own clock. Compute is made negligible
# (slowdown 0.001) so that the comparison is about communication: a network
# where bandwidth dominates, and one where latency stalls the pipeline.
# The last trace is also exported with `unitrace export --chrome` and
# checked against its dump (check_chrome.py), exported with --sqlite and
# compared with the dump, and the SVG timeline unirun
# drew is rendered in headless Chromium (render_svg.py).
#   test_sim_ring.sh UNIRUN UNITRACE
set -euo pipefail
. "$(dirname "$0")/lib.sh"
UNIRUN=$1 UNITRACE=$2
T=$(mktemp -d /tmp/uni-simring.XXXXXX)
trap 'rm -rf "$T"' EXIT
for net in "1ms 100Mbit 1e6 1e8" "20ms 1Gbit 2e7 1e9"; do
	set -- $net
	cat >"$T/c.yaml" <<YAML
mode: simulate
network:
  model: alpha-beta
  default: { latency: $1, bandwidth: $2 }
devices:
  default: { slowdown: 0.001 }
YAML
	timeout 300 "$UNIRUN" -n 4 --config "$T/c.yaml" --trace "$T/t.unitrace" -- \
		$PY "$HERE/sim_ring.py" >"$T/log" 2>&1 || { cat "$T/log"; fail "sim_ring under unirun ($1, $2)"; }
	"$UNITRACE" dump --json "$T/t.unitrace" >"$T/dump.jsonl"
	$PY "$HERE/check_sim_ring.py" "$T/dump.jsonl" "$T/log" --latency-ns $3 --bandwidth-bps $4 ||
		fail "ring collectives ($1, $2)"
	ok "alpha-beta $1 $2: all_gather and all_reduce follow Gloo's ring within 1%"
done
# The same (real, 4-rank) trace exported for Perfetto / chrome://tracing.
"$UNITRACE" export "$T/t.unitrace" --chrome "$T/t.json" || fail "export --chrome"
$PY "$HERE/check_chrome.py" "$T/t.json" "$T/dump.jsonl" || fail "chrome export"
ok "export --chrome of a 4-rank trace"
"$UNITRACE" export "$T/t.unitrace" --sqlite "$T/t.db" || fail "export --sqlite"
$PY - "$T/t.db" "$T/dump.jsonl" <<'EOF' || fail "sqlite export differs from the dump"
import collections, json, sqlite3, sys
db = sqlite3.connect(sys.argv[1])
dump = [json.loads(l) for l in open(sys.argv[2])]
for kind in ("send", "recv"):
    want = sorted((r["rank"], r["tid"], r["peer"], r["conn"], r["t0"], r["t1"], r["off"], r["len"], r["a"])
                  for r in dump if r["kind"] == kind)
    got = sorted(db.execute(f"select rank, tid, peer, conn, t0_ns, t1_ns, offset, bytes, "
                            f"{'leave_ns' if kind == 'send' else 'arrival_ns'} from {kind}").fetchall())
    assert got == want, kind
kinds = collections.Counter(r["kind"] for r in dump)
for table in ("rank_attach", "rank_exit", "thread", "conn", "thread_end"):
    n = db.execute(f"select count(*) from {table}").fetchone()[0]
    assert n == kinds[table], (table, n, kinds[table])
assert db.execute("select value from meta where key='time'").fetchone() == ("virtual",)
print("sqlite export: sends, recvs and per-kind counts equal the dump")
EOF
ok "export --sqlite of a 4-rank trace"
# The picture unirun drew beside that trace, as a browser shows it.
$PY "$HERE/render_svg.py" "$T/t.svg" 4 "$T/t.png" || fail "the SVG timeline rendered in headless Chromium"
ok "SVG timeline renders in headless Chromium: 4 rank rows and transfer bars"

