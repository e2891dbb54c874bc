#!/bin/bash
# unitrace export --chrome --merge (issue 5, item 8): a PyTorch profiler
# trace of a rank folded into the Chrome export, aligned on that rank's
# timeline. Checked on a real run (2 ranks, simulate mode): the profiler's
# events come out under the rank's process on their own threads; its Gloo
# spans start where the trace's collectives of that rank began (trace 1.3
# `coll` records: barrier, all_reduce, broadcast, barrier; the profiled two
# in the middle); the matmul lies before the first collective; bad input
# gives one-line errors.
#   test_merge.sh UNIRUN UNITRACE
set -euo pipefail
. "$(dirname "$0")/lib.sh"
UNIRUN=$1
UNITRACE=$2
T=$(mktemp -d /tmp/uni-merge.XXXXXX)
trap 'rm -rf "$T"' EXIT
printf 'mode: simulate\nnetwork: { model: alpha-beta, default: { latency: 1ms, bandwidth: 100Mbit } }\n' >"$T/c.yaml"
timeout 300 "$UNIRUN" -n 2 --config "$T/c.yaml" --trace "$T/t.unitrace" -- $PY "$HERE/sim_profile.py" "$T" \
	>"$T/log" 2>&1 || { cat "$T/log"; fail "profiled run"; }
for r in 0 1; do
	"$UNITRACE" export "$T/t.unitrace" --chrome "$T/m$r.json" --merge "$T/profile-$r.json" --merge-rank $r \
		2>"$T/err$r" || { cat "$T/err$r"; fail "merge rank $r"; }
	grep -q "aligned on its Gloo spans (2 anchors)" "$T/err$r" || { cat "$T/err$r"; fail "alignment message"; }
done
"$UNITRACE" dump "$T/t.unitrace" --json >"$T/dump.json"
$PY - "$T" <<'PYEOF' || fail "merged events"
import json, sys
T = sys.argv[1]
recs = [json.loads(l) for l in open(f"{T}/dump.json") if l.startswith("{")]
for r in (0, 1):
    ev = json.load(open(f"{T}/m{r}.json"))["traceEvents"]
    torch_ev = [e for e in ev if e.get("cat") == "torch"]
    assert torch_ev and all(e["pid"] == r for e in torch_ev), "profiler events not on the rank's process"
    names = [e["name"] for e in sorted(torch_ev, key=lambda e: e["ts"])]
    gloo = [e for e in sorted(torch_ev, key=lambda e: e["ts"]) if e["name"].startswith("gloo:")]
    assert [g["name"] for g in gloo] == ["gloo:all_reduce", "gloo:broadcast"], [g["name"] for g in gloo]
    colls = sorted((x["t0"], x["a"] >> 56) for x in recs if x["kind"] == "op" and x["rank"] == r and x["a"] >> 56)
    kinds = [k for _, k in colls]
    assert kinds == [7, 4, 6, 7], kinds  # barrier, all_reduce, broadcast, barrier
    for g, (t, k) in zip(gloo, colls[1:3]):
        start = g["ts"] * 1e3
        print(f"rank {r}: {g['name']} starts at {start/1e6:.3f} ms; the trace's collective (kind {k}) at {t/1e6:.3f} ms")
        assert abs(start - t) <= 1000, "span not on its collective"
    # Where each operation began, with its call stack (trace.stacks).
    ops = [e for e in ev if e.get("cat") == "op" and e["pid"] == r]
    assert [o["name"] for o in sorted(ops, key=lambda e: e["ts"])] == ["gloo barrier", "gloo all_reduce", "gloo broadcast", "gloo barrier"], [o["name"] for o in ops]
    for o in ops:
        assert "libgloo" in o["args"]["stack"] and "\n" in o["args"]["stack"], o["args"]
    mm = [e for e in torch_ev if e["name"] == "aten::mm"][0]
    assert mm["ts"] + mm["dur"] <= gloo[0]["ts"] + 1, "the matmul does not come before the first collective"
    assert any(e.get("ph") == "M" and e.get("pid") == r and "torch profiler" in e.get("args", {}).get("name", "") for e in ev)
PYEOF
# The summary's collectives (trace 1.3 op records): 2 barriers, an
# all_reduce and a broadcast on each of the 2 ranks, each of some duration.
"$UNITRACE" summary "$T/t.unitrace" --json >"$T/sum.json"
$PY - "$T/sum.json" <<'PYEOF' || fail "summary collectives"
import json, sys
s = json.load(open(sys.argv[1]))
c = s["collectives"]
print("collectives:", {k: v["count"] for k, v in c.items()}, "longest:", [(o["kind"], round(o["duration_ms"], 1)) for o in s["top_collectives"]])
assert {k: v["count"] for k, v in c.items()} == {"barrier": 4, "all_reduce": 2, "broadcast": 2}, c
assert all(o["duration_ms"] > 0 for o in s["top_collectives"]) and len(s["top_collectives"]) == 5
PYEOF
# Bad input.
"$UNITRACE" export "$T/t.unitrace" --merge "$T/profile-0.json" >"$T/out" 2>&1 && fail "--merge without --chrome"
echo '{"not": "a profile"}' >"$T/bad.json"
"$UNITRACE" export "$T/t.unitrace" --chrome "$T/x.json" --merge "$T/bad.json" >"$T/out" 2>&1 && fail "bad profile accepted"
grep -q "no profiler events" "$T/out" || { cat "$T/out"; fail "bad profile message"; }
echo '[{"name": "aten::add", "ph": "X", "ts": 5, "dur": 3, "tid": 1, "pid": "CPU functions"}]' >"$T/nogloo.json"
"$UNITRACE" export "$T/t.unitrace" --chrome "$T/x.json" --merge "$T/nogloo.json" >"$T/out" 2>&1 && fail "unalignable profile accepted"
grep -q "cannot align" "$T/out" || { cat "$T/out"; fail "unalignable message"; }
echo 'garbage' >"$T/garbage.json"
"$UNITRACE" export "$T/t.unitrace" --chrome "$T/x.json" --merge "$T/garbage.json" >"$T/out" 2>&1 && fail "garbage accepted"
grep -q "not a JSON file" "$T/out" || { cat "$T/out"; fail "garbage message"; }
ok "a PyTorch profiler trace merged into the Chrome export, aligned on the rank's timeline"
