#!/bin/bash
# Fuzzes unitrace (every command) with libFuzzer + ASan + UBSan for a
# bounded time, starting from traces written by mktrace (good, truncated,
# without end, mismatched, unknown kind), then the config parser for a
# third of that from the test and example configs.
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
clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
	-D_GNU_SOURCE -Dmain=unitrace_main -Iengine/include -Ibuild -Itools \
	-Iengine tools/unitrace.c tools/unitrace_sqlite.c tools/unitrace_compare.c tools/unitrace_critical.c \
	tools/unitrace_replay.c tools/unitrace_merge.c engine/trace.c engine/trace_write.c engine/nic.c engine/config.c engine/common.c \
	tests/fuzz/fuzz_unitrace.c $(pkg-config --cflags --libs yaml-0.1 json-c) -lsqlite3 -lm -o "$W/fuzz_unitrace"
# The config parser, from the test configs (good and bad) and the examples.
mkdir "$W/cfg"
cp tests/unit/configs/*.yaml examples/configs/*.yaml "$W/cfg/"
clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
	-D_GNU_SOURCE -Iengine/include -Ibuild \
	engine/config.c tests/fuzz/fuzz_config.c $(pkg-config --cflags --libs yaml-0.1) -lm -o "$W/fuzz_config"
cd "$W"
./fuzz_unitrace -max_total_time="$secs" -rss_limit_mb=2048 -print_final_stats=1 corpus 2>&1 | tail -15
echo "fuzz: unitrace survived ${secs} s of libFuzzer"
./fuzz_config -max_total_time="$((secs / 3 + 1))" -rss_limit_mb=2048 -print_final_stats=1 cfg 2>&1 | tail -8
echo "fuzz: the config parser survived $((secs / 3 + 1)) s of libFuzzer"
