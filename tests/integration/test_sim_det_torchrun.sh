#!/bin/bash
# --deterministic under torchrun (docs/simulate.md "Deterministic mode"):
# the rendezvous store is hosted by torchrun's agent, a process outside the
# session. det_gloo.py, three workers of `torchrun --nproc_per_node 3`
# under a session started by `unictl start --deterministic`:
#   - recorded once, replayed twice with --compute-from (the same session
#     name and MASTER_PORT): no thread waits outside the turn (UNI_DET_DEBUG
#     says each one that does; before session 19 the store's reads and the
#     connect's poll did, every time), every thread followed the recording
#     to its end, the two replays' traces are the same file byte for byte,
#     and every rank printed the recording's results and virtual times;
#   - the results are right;
#   - det_store_nowait.py: a read with MSG_DONTWAIT of a connection to the
#     agent's store returns EAGAIN at once (it waited in turn for a write
#     to the store before session 20).
#   test_sim_det_torchrun.sh UNICTL UNITRACE UNISHIM
set -euo pipefail
. "$(dirname "$0")/lib.sh"
UNICTL=$1
UNITRACE=$2
SHIM=$3
det_session sdtr 3 300
S=sdtr-$$
PORT=$(free_port)
trap 'set +e; "$UNICTL" stop --session "$S" >/dev/null 2>&1; rm -rf "$T"' EXIT
run() { # NAME [unictl start options]
	local name=$1
	shift
	"$UNICTL" start --session "$S" --config "$T/c.yaml" --trace "$T/$name.unitrace" "$@" >"$T/$name.start" 2>&1 ||
		{ cat "$T/$name.start"; fail "$name: unictl start"; }
	UNI_DET_DEBUG=1 UNI_SESSION=$S LD_PRELOAD=$SHIM timeout 240 $PY -m torch.distributed.run --redirects 1 --tee 1 \
		--log_dir "$T/logs-$name" --nproc_per_node 3 --master_port "$PORT" "$HERE/${PROG:-det_gloo.py}" \
		>"$T/$name.log" 2>&1 || { cat "$T/$name.log"; fail "$name: torchrun"; }
	"$UNICTL" stop --session "$S" >"$T/$name.stop" 2>&1 || { cat "$T/$name.stop"; fail "$name: unictl stop"; }
}
out() { grep -oE '(rank [0-9]: sum.*|times: .*)' "$T/$1.log" | sort; }

run rec --deterministic
for x in a b; do
	run $x --deterministic --compute-from "$T/rec.unitrace"
	"$UNITRACE" summary "$T/$x.unitrace" >"$T/$x.sum"
	det_followed $x "$T/$x.sum" 15
	cmp <(out rec) <(out $x) || fail "run $x printed other results or virtual times than the recording"
done
for x in rec a b; do
	det_in_turn $x "$T/$x.log"
	[ "$(out $x | grep -c '^rank [0-9]: sum 162.0 gather \[0.0, 1.0, 2.0\] bcast 0.0 recv')" = 3 ] ||
		{ cat "$T/$x.log"; fail "$x: the results"; }
done
cmp "$T/a.unitrace" "$T/b.unitrace" || fail "two deterministic replays under torchrun wrote different traces"
echo "det_gloo.py under torchrun (3 workers, the store in the agent): two replays: the same trace ($(stat -c %s "$T/a.unitrace") bytes), 15 threads followed"
# A read with MSG_DONTWAIT of a connection to the agent's store: EAGAIN
# at once, in turn (det_store_nowait.py). Counted where they are, not by
# line: torchrun's tee may put the three ranks' lines on one ("[default1]:
# rank 1: ... EAGAIN[default0]:rank 0: ..."; one CI run failed so).
PROG=det_store_nowait.py run nowait --deterministic
[ "$(grep -o 'rank [0-9]: recv MSG_DONTWAIT on the store: EAGAIN' "$T/nowait.log" | sort -u | wc -l)" = 3 ] ||
	{ cat "$T/nowait.log"; fail "a read with MSG_DONTWAIT of the store's connection"; }
det_in_turn nowait "$T/nowait.log"
echo "a read with MSG_DONTWAIT of the store's connection: EAGAIN in every rank, in turn"
ok "deterministic mode under torchrun"
