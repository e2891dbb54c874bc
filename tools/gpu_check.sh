#!/bin/bash
# The GPU checks of docs/nccl.md ("On a GPU") as one script, for a session
# lent a machine with an NVIDIA GPU (the device tool; its image has the
# CUDA toolkit and PyTorch with NCCL and CUPTI from pip, but none of this
# project's build dependencies):
#
#   here:   ninja -C build && tools/gpu_kit.sh
#   there:  run(command="bash tools/gpu_check.sh", carry=[".gpukit"], timeout_s=480)
#
# Every step says PASS, FAIL or SKIP and the script goes on (each step has
# its own time limit: 60 s for the C checks, 120 s for PyTorch; 7 minutes
# at the most in all); logs, traces and a summary land in $OUT (else
# /tmp/gpu-check). Steps: the device-buffer and stream-work checks of
# tests/nccl/nccl_check.c against the real CUDA runtime (record mode; and
# simulate mode, CUPTI starting through the driver's injection hook),
# PyTorch with backend="nccl" on 2 ranks sharing the GPU (record and
# simulate mode, and deterministic mode; tests/gpu/torch_nccl.py; the
# shim must have handled its NCCL calls) with the first kernels CUPTI
# names, and the NCCL functions
# PyTorch's libraries import that the shim does not export.
set -u
cd "$(dirname "$0")/.."
K=$PWD/.gpukit
O=${OUT:-/tmp/gpu-check}
mkdir -p "$O"

# The Python that has torch (the image's python3 normally).
PY=${PY:-}
for p in ${PY:-python3 /opt/torch/.venv/bin/python3 python}; do
	if "$p" -c 'import torch' 2>/dev/null; then
		PY=$p
		break
	fi
done

main() {
	[ -x "$K/tools/unirun" ] || { echo "gpu_check: no $K: make it here with tools/gpu_kit.sh and carry it"; return 2; }
	[ -n "$PY" ] || { echo "gpu_check: no python with torch here (set PY)"; return 2; }
	local passed=0 failed=0 skipped=0
	step() {
		local name=$1
		shift
		echo "=== $name"
		"$@"
		case $? in
		0) echo "PASS: $name"; passed=$((passed + 1)) ;;
		77) echo "SKIP: $name"; skipped=$((skipped + 1)) ;;
		*) echo "FAIL: $name"; failed=$((failed + 1)) ;;
		esac
	}
	nvidia-smi -L || echo "(no nvidia-smi)"
	local sp
	sp=$("$PY" -c 'import os, nvidia; print(os.path.dirname(list(nvidia.__path__)[0]))' 2>/dev/null)
	lib_of() { find "$sp/nvidia" -name "$1" 2>/dev/null | sort | head -1; }
	CUDART=$(lib_of 'libcudart.so.1[23]*')
	CUPTI=$(lib_of 'libcupti.so.1[23]*')
	NCCL=$(lib_of 'libnccl.so.2*')
	echo "python $PY; site-packages $sp; cudart $CUDART; cupti $CUPTI; nccl $NCCL"
	[ -n "$CUDART" ] && [ -n "$NCCL" ] || { echo "gpu_check: no CUDA runtime or NCCL in $PY's nvidia packages"; return 2; }
	# The kit's libraries last: the image's own (newer) ones first.
	export LD_LIBRARY_PATH=$(dirname "$NCCL"):$(dirname "$CUDART")${CUPTI:+:$(dirname "$CUPTI")}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}:$K/lib
	export UNI_CUPTI_DEBUG=2
	T=$(mktemp -d)
	printf 'mode: record\n' >"$T/rec.yaml"
	printf 'mode: simulate\nnetwork: { default: { latency: 5us, bandwidth: 100Gbit } }\n' >"$T/sim.yaml"

	# nccl_check MODE on N ranks: every rank must pass.
	ranks() {
		local n=$1 cfg=$2 name=$3
		shift 3
		rm -f "$T/id"
		NCCL_CHECK_ID=$T/id timeout 60 "$K/tools/unirun" -n "$n" --config "$cfg" --trace "$O/$name.unitrace" -- \
			"$K/tests/nccl/nccl_check" "$@" >"$O/$name.log" 2>&1
		local rc=$?
		grep -v '^ ' "$O/$name.log" | grep -v '^$' | head -40
		[ "$rc" = 0 ] && [ "$(grep -c 'checks passed' "$O/$name.log")" = "$n" ]
	}
	step "device buffers, every collective, the real runtime (record mode, 2 ranks)" ranks 2 "$T/rec.yaml" device device "$CUDART"
	step "stream work behind a held stream, the real runtime (record mode, 2 ranks)" ranks 2 "$T/rec.yaml" stream stream "$CUDART"
	step "device buffers in simulate mode, CUPTI through the injection hook (2 ranks)" ranks 2 "$T/sim.yaml" device-sim device "$CUDART"

	# PyTorch, backend nccl: every rank prints "ok": true, and the trace
	# holds the communicator and operations (the shim was PyTorch's NCCL).
	torch_job() {
		local name=$1 cfg=$2
		shift 2
		timeout 120 "$K/tools/unirun" -n 2 --config "$cfg" "$@" --trace "$O/$name.unitrace" -- \
			"$PY" tests/gpu/torch_nccl.py >"$O/$name.log" 2>&1
		local rc=$?
		grep -v '^ ' "$O/$name.log" | grep -v '^$' | head -60
		"$K/tools/unitrace" summary "$O/$name.unitrace" >"$O/$name.summary" 2>&1
		grep -E 'NCCL communicators|all_reduce' "$O/$name.summary" | head -5
		[ "$rc" = 0 ] && [ "$(grep -c '"ok": true' "$O/$name.log")" = 2 ] &&
			grep -q 'NCCL communicators: [1-9]' "$O/$name.summary"
	}
	step "PyTorch backend=nccl, 2 ranks on one GPU (record mode)" torch_job torch-rec "$T/rec.yaml"
	step "PyTorch backend=nccl, 2 ranks on one GPU (simulate mode)" torch_job torch-sim "$T/sim.yaml"
	# In turn: device buffers on the synchronous path, CUDA's own threads
	# the device's (a line "deterministic: ... went on without it" says
	# where the turn did not follow).
	step "PyTorch backend=nccl, 2 ranks on one GPU (deterministic mode)" torch_job torch-det "$T/sim.yaml" --deterministic

	# The NCCL functions PyTorch's libraries import that the shim lacks.
	imports() {
		command -v nm >/dev/null || { echo "no nm (binutils) here"; return 77; }
		local lib
		lib=$(dirname "$("$PY" -c 'import torch; print(torch.__file__)')")/lib
		for f in "$lib"/*.so*; do nm -D --undefined-only "$f" 2>/dev/null; done | awk '{print $NF}' |
			sed 's/@.*//' | grep -E '^p?nccl' | sort -u >"$T/imports"
		nm -D --defined-only "$K/shim/libunishim.so" | awk '{print $NF}' | sed 's/@.*//' | sort -u >"$T/exports"
		cp "$T/imports" "$O/torch-nccl-imports.txt"
		local n missing
		n=$(wc -l <"$T/imports")
		missing=$(comm -23 "$T/imports" "$T/exports" | tr '\n' ' ')
		echo "$lib: $n NCCL functions imported; not in the shim: ${missing:-none}"
		[ "$n" -gt 0 ] || { echo "no NCCL import found: is NCCL loaded with dlopen? (the shim would not replace it)"; return 1; }
		[ -z "$missing" ]
	}
	step "PyTorch's NCCL imports all in the shim" imports
	echo "gpu_check: $passed passed, $failed failed, $skipped skipped (logs in $O)"
	[ "$failed" = 0 ]
}
main 2>&1 | tee "$O/gpu_check.log"
exit "${PIPESTATUS[0]}"
