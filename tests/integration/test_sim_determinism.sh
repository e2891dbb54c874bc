#!/bin/bash
# --compute-from TRACE (docs/simulate.md "Compute from a trace"): a live
# run that takes its compute from an earlier trace instead of measuring it.
# sim_determinism.py (two ranks, one thread each, a program's own TCP
# connection, compute before every message):
#   - recorded once (compute measured); then twice with --compute-from that
#     trace, the same session name and config: the two traces are the same
#     file byte for byte, both threads followed the recorded run to their
#     end, and the canonical trace re-times (unitrace replay) to the ends
#     the live run gave;
#   - with --compute-from and slowdown 3: every compute stretch takes
#     exactly its recorded CPU ns x 3 (the recorded ones took x 1);
#   - the program changed (one message 5000 bytes shorter): the runs part
#     where the message is read, and the summary says the threads left the
#     recorded run (their compute measured from there);
#   - unitrace diff says the two replays are the same (exit 0) and where
#     the changed program's threads part from the recording (exit 1);
#   - refused with one line naming the problem: a file that is not there,
#     a record-mode trace, --compute-from in record mode.
#   test_sim_determinism.sh UNIRUN UNITRACE
set -euo pipefail
. "$(dirname "$0")/lib.sh"
UNIRUN=$1 UNITRACE=$2
T=$(mktemp -d /tmp/uni-det.XXXXXX)
trap 'rm -rf "$T"' EXIT
[ -n "${KEEP:-}" ] && trap 'echo "kept $T"' EXIT
cat >"$T/c1.yaml" <<YAML
mode: simulate
network: { model: alpha-beta, default: { latency: 2ms, bandwidth: 100Mbit } }
devices: { default: { slowdown: 1.0 } }
YAML
sed 's/slowdown: 1.0/slowdown: 3.0/' "$T/c1.yaml" >"$T/c3.yaml"
PROG="$HERE/sim_determinism.py"
# The port rank 0 listens on (a free one; MASTER_PORT + 1 was once taken).
PORT=$($PY -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
run() { # NAME CONFIG [unirun options...] -- [program args]
	local name=$1 cfg=$2
	shift 2
	timeout 300 "$UNIRUN" -n 2 --session "det-$$" --config "$cfg" --trace "$T/$name.unitrace" "$@" >"$T/$name.log" 2>&1 ||
		{ cat "$T/$name.log"; fail "$name: unirun"; }
}
run rec "$T/c1.yaml" -- $PY "$PROG" $PORT
grep -q "compute:   replayed" "$T/rec.log" && fail "a run without --compute-from says it replayed"
run a "$T/c1.yaml" --compute-from "$T/rec.unitrace" -- $PY "$PROG" $PORT
run b "$T/c1.yaml" --compute-from "$T/rec.unitrace" -- $PY "$PROG" $PORT
grep -F "threads: 2 followed the recorded run to their end, 0 left it" "$T/a.log" ||
	{ cat "$T/a.log"; fail "run a did not follow the recorded run"; }
cmp "$T/a.unitrace" "$T/b.unitrace" || fail "two runs with --compute-from wrote different traces"
echo "two runs with --compute-from: the same trace, byte for byte ($(stat -c %s "$T/a.unitrace") bytes)"
"$UNITRACE" replay "$T/a.unitrace" --config "$T/c1.yaml" --json >"$T/rep.json"
"$UNITRACE" summary "$T/a.unitrace" --json >"$T/sum.json"
$PY - "$T/rec.unitrace" "$T/a.unitrace" "$T/rep.json" "$T/sum.json" <<'PY' || fail "replayed compute"
import json, struct, sys
REC = struct.Struct('<HHiiiIIQQQQQ')
def load(p):
    d = open(p, 'rb').read()
    hs = struct.unpack_from('<I', d, 12)[0]
    return d[:hs], [REC.unpack_from(d, o) for o in range(hs, len(d) - 63, 64)]
_, rec = load(sys.argv[1])
hdr, a = load(sys.argv[2])
assert struct.unpack_from('<QQ', hdr, 24) == (0, 0), "canonical: epochs kept"
def compute(rs):  # (rank, thread key, seq) -> (cpu ns, virtual ns)
    key = {(r[2], r[3]): r[9] for r in rs if r[0] == 4}
    return {(r[2], key[(r[2], r[3])], r[6]): (r[9], r[8] - r[7]) for r in rs if r[0] == 12}
cr, ca = compute(rec), compute(a)
assert cr.keys() == ca.keys(), "compute stretches at other events"
assert all(ca[k][0] == cr[k][0] and ca[k][1] == cr[k][0] for k in cr), "replayed compute is not the recorded CPU ns x 1"
print(f"{len(cr)} compute stretches replayed, each its recorded CPU ns")
rep = json.load(open(sys.argv[3]))
live = {r["rank"]: r for r in json.load(open(sys.argv[4]))["ranks"]}
for r in rep["ranks"]:
    print(f"rank {r['rank']}: live end {live[r['rank']]['end_ns']} ns, replayed {r['end_ns']} ns")
    assert r["end_ns"] == live[r["rank"]]["end_ns"], "the canonical trace re-times to other ends"
PY
run s3 "$T/c3.yaml" --compute-from "$T/rec.unitrace" -- $PY "$PROG" $PORT
grep -qF "threads: 2 followed the recorded run to their end, 0 left it" "$T/s3.log" ||
	{ cat "$T/s3.log"; fail "run s3 did not follow the recorded run"; }
$PY - "$T/rec.unitrace" "$T/s3.unitrace" <<'PY' || fail "slowdown 3 over replayed compute"
import struct, sys
REC = struct.Struct('<HHiiiIIQQQQQ')
def compute(p):
    d = open(p, 'rb').read()
    hs = struct.unpack_from('<I', d, 12)[0]
    rs = [REC.unpack_from(d, o) for o in range(hs, len(d) - 63, 64)]
    key = {(r[2], r[3]): r[9] for r in rs if r[0] == 4}
    return {(r[2], key[(r[2], r[3])], r[6]): (r[9], r[8] - r[7]) for r in rs if r[0] == 12}
cr, c3 = compute(sys.argv[1]), compute(sys.argv[2])
assert cr.keys() == c3.keys()
bad = [k for k in cr if c3[k] != (cr[k][0], int(cr[k][0] * 3.0))]
assert not bad, f"{len(bad)} stretches not recorded CPU x 3, e.g. {bad[0]}: {cr[bad[0]]} -> {c3[bad[0]]}"
tr, t3 = sum(v[1] for v in cr.values()), sum(v[1] for v in c3.values())
print(f"slowdown 3: compute {tr / 1e6:.3f} ms -> {t3 / 1e6:.3f} ms, every stretch exactly x3")
PY
run other "$T/c1.yaml" --compute-from "$T/rec.unitrace" -- $PY "$PROG" $PORT other
grep -F "threads: 0 followed the recorded run to their end, 2 left it" "$T/other.log" ||
	{ cat "$T/other.log"; fail "a changed program was not found to leave the recorded run"; }
echo "a changed program: both threads left the recorded run"
# unitrace diff: the two replays are the same; the changed program parts
# from the recording where the shorter message is written and read.
"$UNITRACE" diff "$T/a.unitrace" "$T/b.unitrace" >"$T/diff-ab" || { cat "$T/diff-ab"; fail "diff of the two replays"; }
grep -q "^the same, event for event and time for time$" "$T/diff-ab" || { cat "$T/diff-ab"; fail "diff of the two replays says"; }
rc=0
"$UNITRACE" diff "$T/rec.unitrace" "$T/other.unitrace" --json >"$T/diff-other.json" || rc=$?
[ $rc = 1 ] || { cat "$T/diff-other.json"; fail "diff of a changed program: exit status $rc, not 1"; }
$PY - "$T/diff-other.json" <<'PY' || fail "diff of a changed program"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["same"] is False, d
th = {t["rank"]: t for t in d["threads"]}
assert sorted(th) == [0, 1], th
for r, t in th.items():
    # rank 0 writes the shorter message (send), rank 1 reads it (recv)
    assert t["part_at"] is not None and {t["kind_a"], t["kind_b"]} <= {"send", "recv", "compute"}, t
    print(f"unitrace diff: rank {r} parts at event {t['part_at']} ({t['kind_a']} / {t['kind_b']})")
PY
# Refusals.
expect_refusal() { # WANT unirun options...
	local want=$1
	shift
	if timeout 60 "$UNIRUN" -n 1 --session "det-$$" --trace "$T/x.unitrace" "$@" -- $PY -c pass >"$T/x.log" 2>&1; then
		cat "$T/x.log"
		fail "unirun $* did not fail"
	fi
	grep -F -- "$want" "$T/x.log" || { cat "$T/x.log"; fail "unirun $*: no '$want'"; }
}
expect_refusal "--compute-from $T/none.unitrace: cannot open it" --config "$T/c1.yaml" --compute-from "$T/none.unitrace"
timeout 120 "$UNIRUN" -n 1 --session "det-$$" --mode record --trace "$T/recmode.unitrace" -- $PY -c pass >/dev/null 2>&1
expect_refusal "not a simulate-mode trace" --config "$T/c1.yaml" --compute-from "$T/recmode.unitrace"
expect_refusal "--compute-from needs simulate mode" --mode record --compute-from "$T/rec.unitrace"
echo "PASS"
