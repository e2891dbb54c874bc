#!/bin/bash
# Real PyTorch (Gloo) collectives under the shim, 2 and 4 ranks:
#   - all_reduce, all_gather, broadcast, isend/irecv ring, blocking send/recv
#     and barrier give tensors bit-identical to the same script without the shim;
#   - the record-mode trace holds every rank, the full mesh of Gloo
#     connections (and not the rendezvous store's), and on every connection
#     the bytes written by one end are exactly the bytes read by the other
#     (tests/integration/check_trace.py).
#   test_collectives.sh UNIRUN UNITRACE
set -euo pipefail
. "$(dirname "$0")/lib.sh"
UNIRUN=$1 UNITRACE=$2
T=$(mktemp -d /tmp/uni-coll.XXXXXX)
trap 'rm -rf "$T"' EXIT

for n in 2 4; do
	timeout 300 $PY "$HERE/launch.py" -n $n -- $PY "$HERE/collectives.py" --out "$T/plain$n" >"$T/plain$n.log" 2>&1 ||
		{ cat "$T/plain$n.log"; fail "$n ranks without the shim"; }
	port=$(free_port)
	timeout 300 "$UNIRUN" -n $n --mode record --master-port "$port" --trace "$T/t$n.unitrace" -- \
		$PY "$HERE/collectives.py" --out "$T/shim$n" >"$T/shim$n.log" 2>&1 ||
		{ cat "$T/shim$n.log"; fail "$n ranks under unirun"; }
	grep -q "consistency: bytes sent == bytes received on every connection" "$T/shim$n.log" ||
		{ cat "$T/shim$n.log"; fail "unirun's summary does not report consistent bytes"; }
	$PY "$HERE/compare_outputs.py" "$T/plain$n" "$T/shim$n" || fail "$n ranks: results differ under the shim"
	ok "$n ranks: results bit-identical with and without the shim"
	"$UNITRACE" dump --json "$T/t$n.unitrace" | $PY "$HERE/check_trace.py" --ranks $n --master-port "$port" ||
		fail "$n ranks: trace check"
	ok "$n ranks: trace consistent"
done
