#!/bin/bash
# Makes .gpukit/ in the repository's root: what tools/gpu_check.sh needs on
# a machine with an NVIDIA GPU (docs/nccl.md, "On a GPU"): this build's
# programs in the build's own layout (unirun finds unid and the shim next
# to it) and the shared libraries they need that a CUDA image may lack.
# Built here, run there: x86-64 both, and the GPU image's C library is
# newer than Debian 12's. .gpukit/ is ignored by git (.git/info/exclude).
#
#   tools/gpu_kit.sh [BUILD_DIR]     (default: build)
set -eu
cd "$(dirname "$0")/.."
B=${1:-build}
K=.gpukit
for f in tools/unirun tools/unictl tools/unitrace engine/unid shim/libunishim.so tests/nccl/nccl_check; do
	[ -e "$B/$f" ] || { echo "gpu_kit: $B/$f is missing: build first (ninja -C $B)" >&2; exit 1; }
done
rm -rf "$K"
mkdir -p "$K/tools" "$K/engine" "$K/shim" "$K/tests/nccl" "$K/lib"
cp "$B/tools/unirun" "$B/tools/unictl" "$B/tools/unitrace" "$K/tools/"
cp "$B/engine/unid" "$K/engine/"
cp "$B/shim/libunishim.so" "$K/shim/"
cp "$B/tests/nccl/nccl_check" "$K/tests/nccl/"
# Every library they load but the C and C++ runtimes (the image has newer
# ones) and NCCL and CUDA (the image's own are used).
for lib in $(ldd "$K"/tools/* "$K/engine/unid" "$K/shim/libunishim.so" "$K/tests/nccl/nccl_check" |
	awk '/=> \// {print $3}' | sort -u); do
	case $(basename "$lib") in
	libc.so* | libm.so* | libdl.so* | libpthread.so* | librt.so* | libgcc_s.so* | libstdc++.so* | ld-linux*) ;;
	libnccl* | libcuda* | libcupti*) ;;
	*) cp -L "$lib" "$K/lib/" ;;
	esac
done
grep -qx '/.gpukit/' .git/info/exclude 2>/dev/null || echo '/.gpukit/' >>.git/info/exclude
echo "gpu_kit: $K ($(du -sh "$K" | cut -f1)): $(ls "$K/lib" | tr '\n' ' ')"
