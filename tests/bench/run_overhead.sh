#!/usr/bin/env bash
# What the shim costs calls it does not model (docs/benchmarks.md).
#
#   tests/bench/run_overhead.sh BUILD_DIR [RUNS [CALLS]]
#
# Runs BUILD_DIR/tests/bench/bench_overhead (RUNS x CALLS, default
# 10 x 1000000) three ways:
#   no shim          plain, no LD_PRELOAD
#   pass-through     LD_PRELOAD=libunishim.so, no RANK: the shim stays
#                    pass-through (a launcher, a helper process)
#   attached rank    LD_PRELOAD=libunishim.so, RANK=0 WORLD_SIZE=1 and a live
#                    record-mode session started here: the process attaches
#                    as rank 0, but /dev/null and the pipe are not modelled
#                    connections, so every call takes the wrapper's fast path
# and prints a markdown table with the differences to "no shim".
# ROUNDS=N in the environment repeats the three, interleaved, N times and
# reports the median of the N medians (default 1). UNI_BENCH_CLOCK=cpu is
# passed on to bench_overhead (thread CPU time instead of wall-clock time:
# steadier on a shared machine).
set -euo pipefail

if [ $# -lt 1 ] || [ ! -d "$1" ]; then
	echo "usage: $0 BUILD_DIR [RUNS [CALLS]]" >&2
	exit 64
fi
B=$(cd "$1" && pwd)
RUNS=${2:-10}
CALLS=${3:-1000000}
ROUNDS=${ROUNDS:-1}
BENCH=$B/tests/bench/bench_overhead
SHIM=$B/shim/libunishim.so
UNICTL=$B/tools/unictl
for f in "$BENCH" "$SHIM" "$UNICTL"; do
	[ -e "$f" ] || { echo "$0: $f is missing (build first: ninja -C $B)" >&2; exit 1; }
done

SESSION=bench-$$
TMP=$(mktemp -d "${TMPDIR:-/tmp}/uni-bench.XXXXXX")
started=0
cleanup() {
	if [ "$started" = 1 ]; then
		env -u LD_PRELOAD "$UNICTL" stop --session "$SESSION" >/dev/null 2>&1 || true
	fi
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

env -u LD_PRELOAD "$UNICTL" start --session "$SESSION" --mode record \
	--trace "$TMP/bench.unitrace" >"$TMP/start.log" 2>&1 ||
	{ cat "$TMP/start.log" >&2; exit 1; }
started=1

# run CONFIG ROUND: one bench run, output in $TMP/CONFIG.ROUND
run() {
	local cfg=$1 round=$2 out=$TMP/$1.$2
	case $cfg in
	none) env -u LD_PRELOAD -u RANK -u WORLD_SIZE "$BENCH" "$RUNS" "$CALLS" >"$out" ;;
	pass) env -u RANK -u WORLD_SIZE -u UNI_STRICT LD_PRELOAD="$SHIM" "$BENCH" "$RUNS" "$CALLS" >"$out" ;;
	rank) env RANK=0 WORLD_SIZE=1 UNI_SESSION="$SESSION" UNI_STRICT=1 LD_PRELOAD="$SHIM" \
		"$BENCH" "$RUNS" "$CALLS" >"$out" ;;
	esac
	# The run must have been under the shim exactly when it was meant to be.
	local where
	where=$(sed -n 's/^write resolves to: //p' "$out")
	case $cfg:$where in
	none:*libunishim*) echo "$0: the 'no shim' run resolved write to $where" >&2; exit 1 ;;
	pass:*libunishim* | rank:*libunishim* | none:*) ;;
	*) echo "$0: the '$cfg' run resolved write to '$where', not the shim" >&2; exit 1 ;;
	esac
}

for ((r = 1; r <= ROUNDS; r++)); do
	for cfg in none pass rank; do
		run "$cfg" "$r"
	done
done

# The attached run really attached: rank 0 exists and reported events.
status=$(env -u LD_PRELOAD "$UNICTL" status --session "$SESSION" --json)
if ! printf '%s' "$status" | grep -q '"rank":0,'; then
	echo "$0: rank 0 never attached to session $SESSION: $status" >&2
	exit 1
fi

# value CONFIG NAME: median over rounds of the ns figure on line NAME
value() {
	cat "$TMP/$1".* | awk -v name="$2" -F': ' '$1 == name { split($2, a, " "); print a[1] }' |
		sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) exit 1;
			if (NR % 2) printf "%.1f", v[(NR + 1) / 2];
			else printf "%.1f", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

echo "bench_overhead, $(sed -n 's/^clock: //p' "$TMP/none.1"), median of $RUNS x $CALLS calls$([ "$ROUNDS" -gt 1 ] && echo ", median of $ROUNDS interleaved rounds"); ns per call (per pair for write+read)"
echo
echo "| call | no shim | shim, pass-through | diff | shim, attached rank | diff |"
echo "|---|---:|---:|---:|---:|---:|"
for name in "write(/dev/null, 1 B)" "read(pipe, 1 B)" "write+read(pipe, 1 B)" \
	"clock_gettime(MONOTONIC)" "pthread_mutex lock+unlock"; do
	n=$(value none "$name")
	p=$(value pass "$name")
	k=$(value rank "$name")
	awk -v name="$name" -v n="$n" -v p="$p" -v k="$k" 'BEGIN {
		printf "| %s | %.1f | %.1f | %+.1f | %.1f | %+.1f |\n", name, n, p, p - n, k, k - n }'
done
