#!/bin/bash
# Sets up uniference on a fresh Debian 12 machine: installs every Debian
# package it needs (only the missing ones, so running it twice is cheap)
# and builds it into build/. Run as root or with sudo available.
#
#   tools/bootstrap.sh            install + configure + build
#   tools/bootstrap.sh --deps     install the packages only
set -euo pipefail

PKGS=(
	meson ninja-build gcc g++ pkg-config   # build
	check                                  # unit tests
	libyaml-dev                            # config files
	libunwind-dev                          # native stacks in deadlock reports
	libgloo-dev                            # Gloo C wrapper (profiler)
	libsqlite3-dev                         # unitrace export --sqlite
	libjson-c-dev                          # unitrace export --merge (PyTorch profiler JSON)
	python3-torch                          # the PyTorch programs we run (Gloo backend)
	iproute2                               # network namespaces for shaped-network tests
	procps psmisc                          # pgrep/kill in tests
	chromium python3-pil                   # tests: render the SVG timeline, read the screenshot
)

missing=()
for p in "${PKGS[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	sudo=""
	[ "$(id -u)" -eq 0 ] || sudo=sudo
	echo "bootstrap: installing ${missing[*]}"
	$sudo apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi
[ "${1:-}" = "--deps" ] && exit 0

cd "$(dirname "$0")/.."
if [ ! -f build/build.ninja ]; then
	meson setup build >/dev/null
fi
ninja -C build >/dev/null
echo "bootstrap: built into $(pwd)/build"
