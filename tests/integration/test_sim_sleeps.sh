#!/bin/bash
# Sleeps and timed waits in simulate mode (docs/simulate.md, "The
# program's clock"), the cases a review found broken:
# - sleepprobe (C, one rank): nanosleep({LONG_MAX, 0}) is "for ever"
#   (interrupted by a signal: -1 EINTR, the clock not moved back); a
#   thread whose first call into the shim is a 300 ms sleep is seen by
#   unid (the main thread's 5 s sleep ends after it); a condition wait
#   with a deadline 3 s away times out after 3000 ms (its 1 s slices used
#   to move the deadline on);
# - sim_sleeps.py (two ranks): a 0.3 s sleep under a SIGALRM every 50 ms
#   ends after 300 ms; a 2 s sleep while the other rank computes takes
#   2000 ms (its slices are not compute); a 1 s socket time-out that ends
#   before the other rank's 3 s sleep is not passed by ending that sleep
#   early.
#   test_sim_sleeps.sh UNIRUN SLEEPPROBE
set -euo pipefail
. "$(dirname "$0")/lib.sh"
UNIRUN=$1 PROBE=$2
T=$(mktemp -d /tmp/uni-sleeps.XXXXXX)
trap 'rm -rf "$T"' EXIT
# The number on FILE's line "NAME MS" goes into ms; true when LO <= ms < HI.
ms_in() {
	ms=$(sed -n "s/^$2 \([0-9.]*\)\$/\1/p" "$1")
	$PY -c "import sys; sys.exit(0 if $3 <= ${ms:--1} < $4 else 1)"
}
printf 'mode: simulate\nnetwork: { model: alpha-beta, default: { latency: 1ms, bandwidth: 1Gbit } }\n' >"$T/c.yaml"
for k in forever first condslice; do
	timeout 60 "$UNIRUN" -n 1 --config "$T/c.yaml" --trace "$T/$k.unitrace" -- "$PROBE" $k >"$T/$k.log" 2>&1 ||
		{ cat "$T/$k.log"; fail "sleepprobe $k under unirun"; }
	grep "^$k" "$T/$k.log"
done
read -r _ rc err before after < <(grep "^forever" "$T/forever.log")
[ "$rc" = -1 ] && [ "$err" = EINTR ] || fail "nanosleep(LONG_MAX) returned $rc $err, not -1 EINTR"
$PY -c "import sys; sys.exit(0 if $after >= $before else 1)" || fail "nanosleep(LONG_MAX) moved the clock back"
grep -q "^first 1$" "$T/first.log" || fail "the main thread's sleep ended before a new thread's shorter first sleep"
read -r _ rc ms < <(grep "^condslice" "$T/condslice.log")
[ "$rc" = ETIMEDOUT ] || fail "the 3 s timed condition wait returned $rc"
$PY -c "import sys; sys.exit(0 if 3000 <= $ms < 3005 else 1)" || fail "the 3 s timed condition wait took $ms ms"
ok "sleepprobe: a sleep for ever, a new thread's first sleep, a timed wait over 1 s"

# A rank blocked where the shim does not see it (sigtimedwait) holds a
# sleeping rank back until unid leaves it out, 250 ms on: unirun says
# virtual time stood still (since session 29; before, only unid's debug
# log, UNI_DEBUG_NIC, named the threads it left out).
S=outside.$$
rm -f /tmp/uni.$S.log
timeout 60 "$UNIRUN" -n 2 --session $S --config "$T/c.yaml" -- "$PROBE" outside >"$T/outside.log" 2>&1 ||
	{ cat "$T/outside.log"; fail "sleepprobe outside under unirun"; }
[ "$(grep -c '^outside [01]$' "$T/outside.log")" = 2 ] || { cat "$T/outside.log"; fail "sleepprobe outside: not both ranks"; }
grep -q '^unirun: virtual time stood still while wall time passed: once (\(0\.[2-9]\|[1-9]\)[0-9.]* s in all) until threads that held the horizon' "$T/outside.log" ||
	{ cat "$T/outside.log" /tmp/uni.$S.log; fail "sleepprobe outside: unirun did not say virtual time stood still once, 0.2 s or more"; }
grep -q 'stood still 1 time, .* the first time: rank 0 thread' /tmp/uni.$S.log ||
	{ cat /tmp/uni.$S.log; fail "sleepprobe outside: unid's log does not name rank 0's thread"; }
rm -f /tmp/uni.$S.log
ok "a rank blocked outside the shim: unirun and unid's log say virtual time stood still, and how long, naming the thread"

timeout 120 "$UNIRUN" -n 2 --config "$T/c.yaml" --trace "$T/s.unitrace" -- $PY "$HERE/sim_sleeps.py" "$T" >"$T/s.log" 2>&1 ||
	{ cat "$T/s.log"; fail "sim_sleeps.py under unirun"; }
cat "$T/rank0.txt" "$T/rank1.txt"
ms_in "$T/rank0.txt" alarm 300 302 || fail "a 0.3 s sleep under signals took $ms ms"
ms_in "$T/rank0.txt" busy 2000 2000.5 || fail "a 2 s sleep took $ms ms (its slices charged?)"
grep -q "^recv timeout$" "$T/rank1.txt" || fail "a socket time-out was passed: a sleep ended early before it"
ok "sleeps under signals, beside compute, and before another rank's time-out"

# Sleeps and connects in causal order (sim_causal.py): rank 1 is ten times
# faster than the host (slowdown 0.1), so a second of its CPU is 100 ms.
printf 'mode: simulate\nnetwork: { model: alpha-beta, default: { latency: 1ms, bandwidth: 1Gbit } }\ndevices: { ranks: { 1: { slowdown: 0.1 } } }\n' >"$T/f.yaml"
rm -f "$T/port" "$T/port2"
timeout 120 "$UNIRUN" -n 2 --config "$T/f.yaml" --trace "$T/f.unitrace" -- $PY "$HERE/sim_causal.py" "$T" >"$T/f.log" 2>&1 ||
	{ cat "$T/f.log"; fail "sim_causal.py under unirun"; }
grep -E "^(poll|pollwait|accept|connect|store) " "$T/f.log"
# The byte leaves at 100 ms and arrives 1 ms later; the poll that sees it
# ends at most 10 ms after that.
ms_in "$T/f.log" poll 100 112 ||
	fail "a poll with 10 ms sleeps saw a byte sent after 100 ms of virtual compute at $ms ms (its sleeps ended by the real clock?)"
# Rank 0 listens 300 ms after the poll ends (about when rank 1 starts its
# 100 ms of compute): about 200 ms after that.
ms_in "$T/f.log" connect 290 330 ||
	fail "a connect 100 ms after the poll to a listener that listens 300 ms after it took $ms ms"
ms_in "$T/f.log" pollwait 100 112 ||
	fail "poll() with 10 ms time-outs saw a byte sent after 100 ms of virtual compute at $ms ms"
# Rank 1 looks for the port (10 ms sleeps) and computes 100 ms first;
# rank 0 starts its count a little after it published the port (its
# compute between, a millisecond or so on a loaded host: 98.8 ms was
# seen, and a host loaded otherwise may stretch that compute further);
# accepted at once it would be about 0, so the lower bound is loose.
ms_in "$T/f.log" accept 50 140 ||
	fail "an accept returned $ms ms after it began for a connection made about 100 ms later"
# Rank 0 listens on MASTER_PORT 300 ms after it sent what rank 1 waited
# for (1 ms away): about 299 ms after rank 1 first tries.
ms_in "$T/f.log" store 290 330 ||
	fail "a connect to the rendezvous store 300 ms before it listened took $ms ms (refused, then torch's 1 s retry?)"
ok "a poll loop's sleeps, poll time-outs, a connect, an accept and a connect to the store wait for a rank that computes faster than the host"

# A wait for a rank that computes without entering the shim gives up after
# 10 s of real time, and unirun says so.
timeout 120 "$UNIRUN" -n 2 --config "$T/c.yaml" --trace "$T/g.unitrace" -- $PY "$HERE/sim_holdcap.py" >"$T/g.log" 2>&1 ||
	{ cat "$T/g.log"; fail "sim_holdcap.py under unirun"; }
grep -E "^slept|stopped waiting" "$T/g.log"
ms_in "$T/g.log" slept 10 10.5 || fail "a 10 ms sleep that gave up waiting took $ms ms"
grep -q "^unirun: 1 sleep or connect stopped waiting for the other ranks to reach its virtual time after 10 s" "$T/g.log" ||
	fail "unirun did not say a sleep gave up waiting"
ok "a sleep gives up waiting for a rank that computes for ever outside the shim, and unirun says so"

# A sleep waits for the other ranks, not for its own rank's threads: a
# thread computing 3 s in pure Python (holding the GIL) beside the main
# thread's 50 ms polls.
timeout 120 "$UNIRUN" -n 1 --config "$T/c.yaml" --trace "$T/gil.unitrace" -- $PY "$HERE/sim_gilsleep.py" >"$T/gil.log" 2>&1 ||
	{ cat "$T/gil.log"; fail "sim_gilsleep.py under unirun"; }
read -r _ n ms < <(grep "^sleeps" "$T/gil.log")
echo "sleeps $n $ms"
[ "$n" -ge 20 ] || fail "the main thread slept $n times beside a thread computing 3 s (it waited for that thread's clock?)"
ok "a sleep does not wait for a thread of its own rank that computes"
