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
done
