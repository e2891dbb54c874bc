#!/bin/bash
# The shim never calls its own clock and sleep wrappers: inside
# libunishim.so the exported clock_gettime, gettimeofday, time,
# clock_nanosleep, nanosleep and usleep are the program's (in simulate
# mode, outside the shim's bookkeeping, they give the virtual clock and
# charge compute), so the shim's own reads of the real clock must go to
# libc's (uni_real, uni_now_ns under UNI_IN_SHIM). A call through the
# PLT to one of them is how that went wrong once: uni_now_ns read the
# virtual clock and charged compute in the middle of a sleep's
# accounting (docs/simulate.md "Compute from a trace"). Looks at the
# machine code: every call instruction whose target is NAME@plt.
#   test_shim_selfcalls.sh LIBUNISHIM
set -euo pipefail
. "$(dirname "$0")/lib.sh"
SHIM=$1
command -v objdump >/dev/null || fail "objdump (binutils) is needed"
objdump -d "$SHIM" >"${TMPDIR:-/tmp}/selfcalls.$$" || fail "objdump $SHIM"
trap 'rm -f "${TMPDIR:-/tmp}/selfcalls.$$"' EXIT
n=$(grep -c "call.*@plt>" "${TMPDIR:-/tmp}/selfcalls.$$" || true)
[ "$n" -gt 100 ] || fail "found only $n calls through the PLT: not the shim's code?"
bad=0
for f in clock_gettime gettimeofday time clock_nanosleep nanosleep usleep; do
	if grep -q "call.*<$f@plt>" "${TMPDIR:-/tmp}/selfcalls.$$"; then
		echo "libunishim calls its own $f wrapper:"
		awk -v f="<$f@plt>" '/^[0-9a-f]+ <.*>:$/{fn=$2} index($0, f) && /call/{print "  in " fn}' \
			"${TMPDIR:-/tmp}/selfcalls.$$" | sort -u
		bad=1
	fi
done
[ $bad = 0 ] || fail "the shim calls its own clock or sleep wrappers"
echo "PASS: no call from the shim to its own clock and sleep wrappers ($n calls through the PLT looked at)"
