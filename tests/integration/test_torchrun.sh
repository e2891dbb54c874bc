#!/bin/bash
# The documented user workflow with torchrun:
#
#   unictl start --session S --mode record
#   UNI_SESSION=S LD_PRELOAD=libunishim.so torchrun --nproc_per_node 2 ... collectives.py
#   unictl stop --session S
#
# (torchrun as `python3 -m torch.distributed.run`; with Python 3.11 it needs
# --redirects 1 --tee 1.)  Checks: torchrun exits 0 and both workers say
# "rank R ok"; nothing prints a "uniference:" warning (the agent is not a
# rank and stays silent); the trace has exactly ranks 0 and 1, both detached
# cleanly, neither of them the torchrun agent; every connection between the
# ranks is modelled; bytes sent == bytes received per connection, per peer
# pair and in total, and nonzero between the two ranks; the session ended
# cleanly with nothing dropped; the saved results are bit-identical to a run
# without the shim (tests/integration/launch.py + compare_outputs.py).
#
#   test_torchrun.sh UNICTL UNIRUN UNITRACE UNISHIM
#
# Exit 0 pass, 1 fail, 99 bad usage.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/test_lifecycle_lib.sh"
lc_start "" "$@"
S=tr-$$
cleanup() {
	set +e
	stop_sessions "$S"
	cd /
	rm -rf "$T"
}
trap cleanup EXIT
RUN_TIMEOUT=240

echo "== baseline: launch.py -n 2 without the shim"
run base "$PY" "$HERE/launch.py" -n 2 --timeout 200 -- "$PY" "$HERE/collectives.py" --out "$T/base"
expect_rc base 0
check "baseline wrote rank0.pt and rank1.pt" test -s "$T/base/rank0.pt" -a -s "$T/base/rank1.pt"

echo "== unictl start --session $S --mode record"
run start "$UNICTL" start --session "$S" --mode record --trace "$T/tr.unitrace"
expect_rc start 0
has "$T/start.out" "UNI_SESSION=$S LD_PRELOAD="

echo "== torchrun under the shim"
PORT=$(free_port)
# bash writes its pid, then execs env, which execs torchrun: the agent's pid.
run torchrun bash -c 'echo $$ >"$1"; shift; exec "$@"' _ "$T/agent.pid" \
	env UNI_SESSION="$S" LD_PRELOAD="$SHIM" "$PY" -m torch.distributed.run \
	--redirects 1 --tee 1 --log_dir "$T/tlogs" --nproc_per_node 2 --master_port "$PORT" \
	"$HERE/collectives.py" --out "$T/shim"
expect_rc torchrun 0
AGENT=$(cat "$T/agent.pid")
cat "$T/torchrun.out" "$T/torchrun.err" >"$T/torchrun.all"
occurs "$T/torchrun.all" 'rank 0 ok' 1
occurs "$T/torchrun.all" 'rank 1 ok' 1
occurs "$T/torchrun.all" 'uniference:' 0

run status "$UNICTL" status --session "$S" --json
expect_rc status 0
pycheck "$T/status.out" \
	"sorted(r['rank'] for r in j['ranks']) == [0, 1]" \
	"all(r['state'] == 'exited' for r in j['ranks'])" \
	"all(r['pid'] != $AGENT for r in j['ranks'])" \
	"j['modelled_connections'] >= 2" \
	"j['modelled_connections'] == j['connections']" \
	"j['dropped'] == 0"

echo "== unictl stop"
run stop "$UNICTL" stop --session "$S"
expect_rc stop 0
check "segment removed" seg_gone "$S"

echo "== the trace"
run sum "$UNITRACE" summary "$T/tr.unitrace"
expect_rc sum 0
has "$T/sum.out" "consistency: bytes sent == bytes received on every connection"
run sumj "$UNITRACE" summary "$T/tr.unitrace" --json
expect_rc sumj 0
pycheck "$T/sumj.out" \
	"j['session'] == '$S'" \
	"j['complete'] is True and j['truncated'] is False" \
	"j['nranks'] == 2 and j['world_size'] == 2" \
	"[r['rank'] for r in j['ranks']] == [0, 1]" \
	"all(r['end'] == 'clean' for r in j['ranks'])" \
	"len({r['pid'] for r in j['ranks']}) == 2" \
	"all(r['pid'] != $AGENT for r in j['ranks'])" \
	"j['consistent'] is True and j['mismatches'] == []" \
	"j['totals']['bytes_sent'] == j['totals']['bytes_received'] > 0" \
	"all(r['bytes_sent'] > 0 and r['bytes_received'] > 0 for r in j['ranks'])" \
	"[(p['peer'], p['bytes_sent'] > 0) for p in j['ranks'][0]['per_peer']] == [(1, True)]" \
	"[(p['peer'], p['bytes_sent'] > 0) for p in j['ranks'][1]['per_peer']] == [(0, True)]" \
	"j['ranks'][0]['per_peer'][0]['bytes_sent'] == j['ranks'][1]['per_peer'][0]['bytes_received']" \
	"j['ranks'][1]['per_peer'][0]['bytes_sent'] == j['ranks'][0]['per_peer'][0]['bytes_received']" \
	"j['ranks'][0]['bytes_sent'] + j['ranks'][1]['bytes_sent'] == j['totals']['bytes_sent']" \
	"j['session_end']['dropped'] == 0 and j['session_end']['unmodelled_conns'] == 0" \
	"j['unchecked_external_bytes'] == 0 and j['bad_rank_records'] == 0"
# collectives.py all_reduces 300000 floats (1.2 MB): whatever the algorithm,
# each of the two ranks must send at least half of it.
pycheck "$T/sumj.out" "all(r['bytes_sent'] >= 600000 for r in j['ranks'])"

echo "== results bit-identical to the run without the shim"
run cmp "$PY" "$HERE/compare_outputs.py" "$T/base" "$T/shim"
expect_rc cmp 0
has "$T/cmp.out" "identical:"
count "$T/cmp.out" '^identical: [1-9][0-9]* tensors$' 1

finish test_torchrun
