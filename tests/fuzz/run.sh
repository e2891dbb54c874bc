#!/bin/bash
# Fuzzes unitrace (every command) with libFuzzer + ASan + UBSan for a
# bounded time, starting from traces written by mktrace (good, truncated,
# without end, mismatched, unknown kind), then the config parser for a
# third of that from the test and example configs, and --compute-from's
# readers of a trace (a rank's table, the canonical form) for a third
# from the same traces.
#   tests/fuzz/run.sh SECONDS   (from the repository root; needs clang)
set -euo pipefail
secs=${1:-60}
cd "$(dirname "$0")/../.."
W=$(mktemp -d /tmp/uni-fuzz.XXXXXX)
trap 'rm -rf "$W"' EXIT
[ -x build/tests/unit/mktrace ] || { echo "run.sh: build first (tools/bootstrap.sh)" >&2; exit 1; }
mkdir "$W/corpus"
build/tests/unit/mktrace "$W/corpus/good" >/dev/null
for v in truncate no-end mismatch unknown; do
	build/tests/unit/mktrace "$W/corpus/$v" --$v >/dev/null
done
# A real simulate-mode trace with its event graph (for replay), when
# PyTorch is there: 2 ranks, one iteration of every collective.
if [ -x /usr/bin/python3 ] && /usr/bin/python3 -c 'import torch' 2>/dev/null; then
	printf 'mode: simulate\nnetwork: { default: { latency: 1ms, bandwidth: 1Gbit } }\n' >"$W/sim.yaml"
	timeout 120 build/tools/unirun -n 2 --config "$W/sim.yaml" --trace "$W/corpus/sim" -- \
		/usr/bin/python3 tests/integration/collectives.py --out "$W/simout" --iters 1 >/dev/null 2>&1 ||
		rm -f "$W/corpus/sim"
	rm -f "$W/corpus/sim.svg" "$W/corpus/sim.deadlock.txt"
fi
# And one of the simulated NCCL (where it is built): 2 ranks, every
# collective and a send/recv of 64 kB (nccl_op, delay and credit records).
if [ -x build/tests/nccl/nccl_check ]; then
	printf 'mode: simulate\nnetwork: { default: { latency: 1ms, bandwidth: 1Gbit } }\n' >"$W/nccl.yaml"
	NCCL_CHECK_ID=$W/nccl.id timeout 120 build/tools/unirun -n 2 --config "$W/nccl.yaml" --trace "$W/corpus/nccl" -- \
		build/tests/nccl/nccl_check timing 65536 >/dev/null 2>&1 || rm -f "$W/corpus/nccl"
	rm -f "$W/corpus/nccl.svg" "$W/corpus/nccl.deadlock.txt"
fi
clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
	-D_GNU_SOURCE -Dmain=unitrace_main -Iengine/include -Ibuild -Itools \
	-Iengine tools/unitrace.c tools/unitrace_sqlite.c tools/unitrace_compare.c tools/unitrace_critical.c \
	tools/unitrace_replay.c tools/unitrace_merge.c tools/unitrace_links.c tools/unitrace_diff.c engine/trace.c engine/trace_write.c engine/nic.c engine/config.c engine/common.c \
	tests/fuzz/fuzz_unitrace.c $(pkg-config --cflags --libs yaml-0.1 json-c) -lsqlite3 -lm -o "$W/fuzz_unitrace"
# The config parser, from the test configs (good and bad) and the examples.
mkdir "$W/cfg"
cp tests/unit/configs/*.yaml examples/configs/*.yaml "$W/cfg/"
clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
	-D_GNU_SOURCE -Iengine/include -Ibuild \
	engine/config.c tests/fuzz/fuzz_config.c $(pkg-config --cflags --libs yaml-0.1) -lm -o "$W/fuzz_config"
# --compute-from's readers (the rank's table, the canonical form), from
# the same traces.
clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
	-D_GNU_SOURCE -Iengine/include -Ibuild \
	engine/compute_from.c engine/trace_canon.c tests/fuzz/fuzz_compute_from.c -o "$W/fuzz_compute_from"
cd "$W"
# On a failure: the sanitizer's whole report (libFuzzer's own output is
# mostly progress lines and the commands' messages) and the input that
# did it, base64, so a CI log is enough to reproduce it.
fuzz() { # NAME SECONDS CORPUS
	if ./"$1" -max_total_time="$2" -rss_limit_mb=2048 -print_final_stats=1 \
		-artifact_prefix="$W/" "$3" >"$W/$1.log" 2>&1; then
		tail -6 "$W/$1.log"
		return 0
	fi
	sed -n '/^==[0-9]*==ERROR\|runtime error\|^==[0-9]*== ERROR\|deadly signal/,$p' "$W/$1.log" | head -80
	for a in "$W"/crash-* "$W"/leak-* "$W"/timeout-* "$W"/oom-*; do
		[ -f "$a" ] || continue
		echo "fuzz: $1 failed on $(basename "$a") ($(stat -c %s "$a") bytes), base64:"
		base64 -w 0 "$a" | head -c 200000
		echo
	done
	return 1
}
fuzz fuzz_unitrace "$secs" corpus
echo "fuzz: unitrace survived ${secs} s of libFuzzer"
fuzz fuzz_config "$((secs / 3 + 1))" cfg
echo "fuzz: the config parser survived $((secs / 3 + 1)) s of libFuzzer"
fuzz fuzz_compute_from "$((secs / 3 + 1))" corpus
echo "fuzz: --compute-from's readers survived $((secs / 3 + 1)) s of libFuzzer"
