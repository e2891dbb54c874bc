#!/bin/bash
# The GPU checks of docs/nccl.md ("On a GPU") as one script, for a session
# lent a machine with an NVIDIA GPU (the device tool; its image has the
# CUDA toolkit and PyTorch with NCCL and CUPTI from pip, but none of this
# project's build dependencies):
#
#   here:   ninja -C build && tools/gpu_kit.sh
#   there:  run(command="bash tools/gpu_check.sh", carry=[".gpukit"], timeout_s=420)
#
# Every step says PASS or FAIL and the script goes on; logs, traces and a
# summary land in $OUT (else /tmp/gpu-check). Steps: the device-buffer and
# stream-work checks of tests/nccl/nccl_check.c against the real CUDA
# runtime (record mode; and simulate mode, CUPTI starting through the
# driver's injection hook), PyTorch with backend="nccl" on 2 ranks sharing
# the GPU (record and simulate mode; tests/gpu/torch_nccl.py) with the
# first kernels CUPTI names, and the NCCL symbols libtorch_cuda imports that
# the shim does not export.
set -u
cd "$(dirname "$0")/.."
K=$PWD/.gpukit
O=${OUT:-/tmp/gpu-check}
mkdir -p "$O"
exec > >(tee "$O/gpu_check.log") 2>&1
PY=${PY:-python3}
[ -x "$K/tools/unirun" ] || { echo "gpu_check: no $K: make it here with tools/gpu_kit.sh and carry it"; exit 2; }
passed=0 failed=0
step() {
	local name=$1
	shift
	echo "=== $name"
	if "$@"; then
		echo "PASS: $name"
		passed=$((passed + 1))
	else
		echo "FAIL: $name"
		failed=$((failed + 1))
	fi
}
nvidia-smi -L || echo "(no nvidia-smi)"
SP=$($PY -c 'import os, nvidia; print(os.path.dirname(list(nvidia.__path__)[0]))' 2>/dev/null)
lib_of() { find "$SP/nvidia" -name "$1" 2>/dev/null | sort | head -1; }
CUDART=$(lib_of 'libcudart.so.1[23]*')
CUPTI=$(lib_of 'libcupti.so.1[23]*')
NCCL=$(lib_of 'libnccl.so.2*')
echo "site-packages $SP; cudart $CUDART; cupti $CUPTI; nccl $NCCL"
[ -n "$CUDART" ] && [ -n "$NCCL" ] || { echo "gpu_check: no CUDA runtime or NCCL from pip here"; exit 2; }
export LD_LIBRARY_PATH=$K/lib:$(dirname "$NCCL"):$(dirname "$CUDART")${CUPTI:+:$(dirname "$CUPTI")}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export UNI_CUPTI_DEBUG=2
T=$(mktemp -d)
printf 'mode: record\n' >"$T/rec.yaml"
printf 'mode: simulate\nnetwork: { default: { latency: 5us, bandwidth: 100Gbit } }\n' >"$T/sim.yaml"

# nccl_check MODE on N ranks: every rank must pass.
ranks() {
	local n=$1 cfg=$2 name=$3
	shift 3
	rm -f "$T/id"
	NCCL_CHECK_ID=$T/id timeout 180 "$K/tools/unirun" -n "$n" --config "$cfg" --trace "$O/$name.unitrace" -- \
		"$K/tests/nccl/nccl_check" "$@" >"$O/$name.log" 2>&1
	local rc=$?
	grep -v '^ ' "$O/$name.log" | grep -v '^$' | head -40
	[ "$rc" = 0 ] && [ "$(grep -c 'checks passed' "$O/$name.log")" = "$n" ]
}
step "device buffers, every collective, the real runtime (record mode, 2 ranks)" ranks 2 "$T/rec.yaml" device device "$CUDART"
step "stream work behind a held stream, the real runtime (record mode, 2 ranks)" ranks 2 "$T/rec.yaml" stream stream "$CUDART"
step "device buffers in simulate mode, CUPTI through the injection hook (2 ranks)" ranks 2 "$T/sim.yaml" device-sim device "$CUDART"

# PyTorch, backend nccl: every rank prints "ok": true.
torch_job() {
	local name=$1 cfg=$2
	timeout 240 "$K/tools/unirun" -n 2 --config "$cfg" --trace "$O/$name.unitrace" -- \
		"$PY" tests/gpu/torch_nccl.py >"$O/$name.log" 2>&1
	local rc=$?
	grep -v '^ ' "$O/$name.log" | grep -v '^$' | head -60
	[ "$rc" = 0 ] && [ "$(grep -c '"ok": true' "$O/$name.log")" = 2 ]
}
step "PyTorch backend=nccl, 2 ranks on one GPU (record mode)" torch_job torch-rec "$T/rec.yaml"
step "PyTorch backend=nccl, 2 ranks on one GPU (simulate mode)" torch_job torch-sim "$T/sim.yaml"
"$K/tools/unitrace" summary "$O/torch-sim.unitrace" >"$O/torch-sim.summary" 2>&1 || true

# The NCCL functions this PyTorch's libtorch_cuda imports that the shim lacks.
imports() {
	local tc
	tc=$(find "$($PY -c 'import os, torch; print(os.path.dirname(torch.__file__))')" -name 'libtorch_cuda.so' | head -1)
	[ -n "$tc" ] && command -v nm >/dev/null || { echo "no libtorch_cuda.so or no nm"; return 1; }
	nm -D --undefined-only "$tc" | awk '{print $NF}' | sed 's/@.*//' | grep -E '^p?nccl' | sort -u >"$T/imports"
	nm -D --defined-only "$K/shim/libunishim.so" | awk '{print $NF}' | sed 's/@.*//' | sort -u >"$T/exports"
	local missing
	missing=$(comm -23 "$T/imports" "$T/exports" | tr '\n' ' ')
	echo "libtorch_cuda ($tc) imports $(wc -l <"$T/imports") NCCL functions; not in the shim: ${missing:-none}"
	cp "$T/imports" "$O/libtorch_cuda-nccl-imports.txt"
	[ -z "$missing" ]
}
step "libtorch_cuda's NCCL imports all in the shim" imports
echo "gpu_check: $passed passed, $failed failed (logs in $O)"
[ "$failed" = 0 ]
