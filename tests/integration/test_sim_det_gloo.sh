#!/bin/bash
# --deterministic with Gloo (docs/simulate.md "Deterministic mode"): an
# unmodified torch.distributed program on the Gloo backend, three ranks
# (det_gloo.py: init_process_group env://, all_reduce of 1 MB, all_gather,
# broadcast, send/recv):
#   - recorded once, replayed twice with --compute-from: every thread (the
#     main threads, the store's daemons, Gloo's loop threads, the process
#     group's workers: 16) followed the recorded run to its end, the two
#     traces are the same file byte for byte, and every rank printed the
#     same results and the same virtual times as in the recording;
#   - the results are right (sum, gather, broadcast, recv);
#   - the turn does not change the prediction: the three timed all_reduces
#     take within 3% of what a run without the turn predicts (the ring's
#     closed form dominates: 1 MB at 100 Mbit/s), nobody says the turn
#     was given up and no thread waited outside it.
# MODEL (default alpha-beta): the network model (nic: the network moves
# in steps the turn asks for, "The network in turn"), TOL the prediction's
# tolerance (default 0.03).
#   test_sim_det_gloo.sh UNIRUN [MODEL [TOL]]
set -euo pipefail
. "$(dirname "$0")/lib.sh"
UNIRUN=$1 MODEL=${2:-alpha-beta} TOL=${3:-0.03}
det_session sdg 3 120
sed -i "s/model: alpha-beta/model: $MODEL/" "$T/c.yaml"
run() { UNI_DET_DEBUG=1 det_run "$@"; }
out() { grep -E '^(rank [0-9]: sum|times: )' "$T/$1.log" | sort; }

run plain -- $PY "$HERE/det_gloo.py"
run rec --deterministic -- $PY "$HERE/det_gloo.py"
for x in a b; do
	run $x --deterministic --compute-from "$T/rec.unitrace" -- $PY "$HERE/det_gloo.py"
	det_followed $x "$T/$x.log" 16
	cmp <(out rec) <(out $x) || fail "run $x printed other results or virtual times than the recording"
done
cmp "$T/a.unitrace" "$T/b.unitrace" || fail "two deterministic replays wrote different traces"
for x in plain rec a b; do
	det_in_turn $x "$T/$x.log"
	[ "$(grep -c '^rank [0-9]: sum 162.0 gather \[0.0, 1.0, 2.0\] bcast 0.0 recv' "$T/$x.log")" = 3 ] ||
		{ cat "$T/$x.log"; fail "$x: the results"; }
	grep -q '^rank 1: .* recv 4950.0$' "$T/$x.log" || { cat "$T/$x.log"; fail "$x: the recv"; }
done
$PY - "$T/plain.log" "$T/rec.log" "$TOL" "$MODEL" <<'PY' || fail "the turn changed the prediction"
import sys
def ar(path):
    return [int(l.split()[4]) for l in open(path) if l.startswith("times: ")]
p, d = ar(sys.argv[1]), ar(sys.argv[2])
assert len(p) == len(d) == 3, (p, d)
for a, b in zip(sorted(p), sorted(d)):
    assert abs(b - a) <= float(sys.argv[3]) * a, (a, b)
print(f"{sys.argv[4]}: three all_reduces of 1 MB: {min(p) / 1e6:.3f}-{max(p) / 1e6:.3f} ms without the turn, "
      f"{min(d) / 1e6:.3f}-{max(d) / 1e6:.3f} ms with it")
PY
echo "det_gloo.py (3 ranks, Gloo, $MODEL): two replays: the same trace ($(stat -c %s "$T/a.unitrace") bytes), the recording's results and virtual times, 16 threads followed"
ok "deterministic mode with Gloo"
