#!/bin/bash
# --deterministic (docs/simulate.md "Deterministic mode"): one rank thread
# of the session runs at a time, the least (virtual clock, rank, key).
# detprobe (two ranks, three workers each racing for a mutex, a main
# thread waiting on a condition variable with a time-out, sleeps, joins):
#   - without the turn, two runs with --compute-from of one recording: the
#     order of the mutex takes is the host's (said, not asserted: it may
#     agree by chance);
#   - with the turn: recorded once, replayed three times with
#     --compute-from, the third with the host's timing shaken
#     (UNI_DET_FUZZ=2000): the three traces are the same file byte for byte, every
#     thread followed the recorded run to its end, the program printed the
#     same order of takes as the recorded run, and in every run the takes
#     came in the order of the clocks (a logged clock steps back at most by
#     the compute between the lock and the clock read, 20 us);
#   - det_threads.py (Python threads meeting through threading.Lock,
#     queue.Queue, threading.Condition and sleeps, and the GIL) with the
#     turn: recorded and replayed twice, the same trace and order;
#   - sim_determinism.py (a program's own TCP connection, compute before
#     every message) with the turn: recorded and replayed twice, the same;
#   - det_sock.py (a burst of writes, a reader with a large buffer) with
#     the turn: the reads return what arrived by the reader's clock (many
#     small reads at 100 Mbit/s, not the burst the kernel holds), the same
#     sizes and trace in the recording and two replays;
#   - det_sock.py reading with recvmsg, and with readv into two buffers:
#     the same, recorded and replayed;
#   - det_epoll.py (an epoll loop serving two clients and a pipe, replies
#     on a non-blocking socket) with the turn: recorded and replayed twice,
#     the same events, reads and trace; the reply in parts of the turn's
#     socket buffer;
#   - det_edge.py sndtimeo: a send with SO_SNDTIMEO of 300 ms to a reader
#     asleep for 2 s returns after 300 ms of virtual time with what went;
#   - det_edge.py: both ranks send 600 kB before reading (more than the
#     turn's socket buffer): it goes through, the same trace in two
#     replays; a writer whose peer closed gets the kernel's error;
#   - a Gloo program (2-rank all_reduce) with the turn: the turn holds
#     (replays: test_sim_det_gloo.sh), and the program's result is right;
#   - det_edge.py select: select in turn (a virtual time-out, what a
#     read in turn finds; two replays the same);
#   - detloop (Gloo's pair teardown against its event loop: the loop's
#     trylock finds the pair's mutex busy while its holder waits for the
#     loop's next tick; it hung for ever before session 24) with the
#     turn: it ends, recorded and replayed twice, the same trace; and
#     a condition wait with a deadline past "for ever" waits in turn
#     (before session 24 in the kernel, holding the turn until the watch
#     passed it over);
#   - detloop relisten: a port the turn gave a listener, taken by another
#     socket meanwhile: the listen succeeds on the next one, said; a
#     port the program chose itself keeps the kernel's error;
#   - unictl status --threads during a deterministic run: who holds the
#     turn, each rank's thread RUN or READY;
#   - refused with one line: --deterministic in record mode (under nic:
#     test_sim_det_nic.sh).
#   test_sim_det.sh UNIRUN UNITRACE DETPROBE DETLOOP
set -euo pipefail
. "$(dirname "$0")/lib.sh"
UNIRUN=$1 UNITRACE=$2 PROBE=$3 LOOP=$4
det_session sdet 2 60
run() { det_run "$@"; }
orders() { grep '^order:' "$T/$1.log" | sort; }

# Without the turn: the host decides.
run nrec -- "$PROBE"
run na --compute-from "$T/nrec.unitrace" -- "$PROBE"
run nb --compute-from "$T/nrec.unitrace" -- "$PROBE"
if cmp -s <(orders na) <(orders nb); then
	echo "without the turn: the two replays took the mutex in the same order (by chance)"
else
	echo "without the turn: the two replays took the mutex in different orders (the host's scheduling)"
fi

# With the turn.
run rec --deterministic -- "$PROBE"
for x in a b c; do
	# (c with the host's timing shaken: UNI_DET_FUZZ, docs/simulate.md)
	UNI_DET_FUZZ=$([ $x = c ] && echo 2000 || echo 0) run $x --deterministic --compute-from "$T/rec.unitrace" -- "$PROBE"
	det_followed $x "$T/$x.log" 8
	cmp <(orders rec) <(orders $x) || fail "run $x took the mutex in another order than the recorded run"
done
cmp "$T/a.unitrace" "$T/b.unitrace" || fail "two deterministic replays wrote different traces"
cmp "$T/a.unitrace" "$T/c.unitrace" || fail "a deterministic replay with the host's timing shaken (UNI_DET_FUZZ=2000) wrote another trace"
echo "three deterministic replays (one with the host's timing shaken): the same trace, byte for byte ($(stat -c %s "$T/a.unitrace") bytes), the recorded order of takes"
for x in rec a b c; do
	$PY - "$T/$x.log" <<'PY' || fail "$x: the takes are not in clock order"
import sys
n = 0
for line in open(sys.argv[1]):
    if line.startswith("in clock order:"):
        back = int(line.split()[-1])
        assert back <= 20000, line
        n += 1
assert n == 2, "a rank printed no result"
PY
done
echo "every run took the mutex in the order of the clocks"

# An event loop's trylock of a mutex whose holder waits for the loop.
run lrec --deterministic -- "$LOOP"
for x in la lb; do
	run $x --deterministic --compute-from "$T/lrec.unitrace" -- "$LOOP"
	det_followed "detloop: $x" "$T/$x.log" 6
done
for x in lrec la lb; do
	[ "$(grep -c '^teardown: done' "$T/$x.log")" = 2 ] || { cat "$T/$x.log"; fail "detloop: run $x"; }
done
cmp "$T/la.unitrace" "$T/lb.unitrace" || fail "detloop: two deterministic replays differ"
echo "detloop (a trylock's holder waits for the loop): ended, the same trace twice; $(grep -m1 '^teardown' "$T/lrec.log")"
# A condition wait "for ever" (a deadline past the shim's limit) waits in
# turn, untimed: no thread waits in the kernel holding the turn.
UNI_DET_DEBUG=1 run lfor --deterministic -- "$LOOP" forever
[ "$(grep -c '^forever: woken' "$T/lfor.log")" = 2 ] || { cat "$T/lfor.log"; fail "detloop forever"; }
! grep -E "went on without it" "$T/lfor.log" || fail "detloop forever: the turn went on without a thread"
det_in_turn "detloop forever" "$T/lfor.log"
# Without the turn: the same wait, untimed (its deadline does not fit 64
# bits of nanoseconds), ends.
run lforp -- "$LOOP" forever
[ "$(grep -c '^forever: woken' "$T/lforp.log")" = 2 ] || { cat "$T/lforp.log"; fail "detloop forever without the turn"; }

# Python threads (threading.Lock, queue.Queue, threading.Condition, sleeps:
# semaphores and condition variables underneath, and the GIL).
run prec --deterministic -- $PY "$HERE/det_threads.py"
for x in pa pb; do
	run $x --deterministic --compute-from "$T/prec.unitrace" -- $PY "$HERE/det_threads.py"
	det_followed "det_threads.py: $x" "$T/$x.log" 10
	cmp <(orders prec) <(orders $x) || fail "det_threads.py: run $x took the items in another order"
done
cmp "$T/pa.unitrace" "$T/pb.unitrace" || fail "det_threads.py: two deterministic replays differ"
echo "det_threads.py (Python threads): the same trace twice, the recorded order"

# A program's own TCP connection, one thread a rank.
PORT=$(free_port)
run srec --deterministic -- $PY "$HERE/sim_determinism.py" $PORT
run sa --deterministic --compute-from "$T/srec.unitrace" -- $PY "$HERE/sim_determinism.py" $PORT
run sb --deterministic --compute-from "$T/srec.unitrace" -- $PY "$HERE/sim_determinism.py" $PORT
grep -qF "threads: 2 followed the recorded run to their end, 0 left it" "$T/sa.log" ||
	{ cat "$T/sa.log"; fail "sim_determinism.py did not follow the recorded run"; }
cmp "$T/sa.unitrace" "$T/sb.unitrace" || fail "sim_determinism.py: two deterministic replays differ"
echo "sim_determinism.py with the turn: the same trace twice"

# How many bytes a read returns: what arrived by the reader's clock.
PORT=$(free_port)
run krec --deterministic -- $PY "$HERE/det_sock.py" $PORT
for x in ka kb; do
	run $x --deterministic --compute-from "$T/krec.unitrace" -- $PY "$HERE/det_sock.py" $PORT
	det_followed "det_sock.py: $x" "$T/$x.log" 2
	cmp <(grep '^reads:' "$T/krec.log") <(grep '^reads:' "$T/$x.log") ||
		fail "det_sock.py: run $x read other sizes than the recorded run"
done
cmp "$T/ka.unitrace" "$T/kb.unitrace" || fail "det_sock.py: two deterministic replays differ"
$PY - "$T/krec.log" <<'PY' || fail "det_sock.py: the reads"
import sys
reads = [int(x) for x in next(l for l in open(sys.argv[1]) if l.startswith("reads:")).split()[1:]]
assert sum(reads) == 3 * (3000 + 40000 + 700 + 120000 + 9000 + 20000 + 1), sum(reads)
# At 100 Mbit/s a burst (193 kB) takes 15 ms to arrive: a reader that
# computes after each read finds part of it each time, not the whole
# burst the kernel holds (without the turn: 2 to 6 reads in all).
assert len(reads) >= 8, reads
print(f"det_sock.py: {len(reads)} reads, median {sorted(reads)[len(reads) // 2]} bytes")
PY
echo "det_sock.py: the reads return what arrived in virtual time, the same sizes and trace in every run"
# The same with a time-out on the reader's socket: Python polls before
# each read (poll in turn).
run trec --deterministic -- $PY "$HERE/det_sock.py" $PORT timeout
run ta --deterministic --compute-from "$T/trec.unitrace" -- $PY "$HERE/det_sock.py" $PORT timeout
run tb --deterministic --compute-from "$T/trec.unitrace" -- $PY "$HERE/det_sock.py" $PORT timeout
det_followed "det_sock.py timeout: tb" "$T/tb.log" 2
cmp "$T/ta.unitrace" "$T/tb.unitrace" || fail "det_sock.py timeout: two deterministic replays differ"
[ "$(grep -c '^reads:' "$T/ta.log")" = 1 ] && cmp <(grep '^reads:' "$T/trec.log") <(grep '^reads:' "$T/ta.log") ||
	fail "det_sock.py timeout: other read sizes"
[ "$(grep '^reads:' "$T/ta.log" | wc -w)" -ge 9 ] || fail "det_sock.py timeout: the reads took what the kernel had"
echo "det_sock.py with a socket time-out (poll in turn): the same sizes and trace in every run"
# recvmsg and readv (into two buffers) are clamped as recv is.
for m in recvmsg readv; do
	run "${m}rec" --deterministic -- $PY "$HERE/det_sock.py" $PORT $m
	run "${m}a" --deterministic --compute-from "$T/${m}rec.unitrace" -- $PY "$HERE/det_sock.py" $PORT $m
	det_followed "det_sock.py $m: ${m}a" "$T/${m}a.log" 2
	cmp <(grep '^reads:' "$T/${m}rec.log") <(grep '^reads:' "$T/${m}a.log") || fail "det_sock.py $m: other read sizes"
	[ "$(grep '^reads:' "$T/${m}a.log" | wc -w)" -ge 9 ] || fail "det_sock.py $m: the reads took what the kernel had"
done
echo "det_sock.py with recvmsg and readv: clamped, the recorded sizes in the replay"

# epoll in turn (det_epoll.py): rank 0's event loop serves two clients and
# a pipe its own thread writes; the same events, reads and trace in the
# recording and two replays; the reply (256 kB on a non-blocking socket)
# goes out in parts of the turn's socket buffer (128 kB first: the host's
# kernel took it all at once).
EPORT=$(free_port)
for x in erec ea eb; do
	cf=""
	[ $x = erec ] || cf="--compute-from $T/erec.unitrace"
	timeout 300 "$UNIRUN" -n 3 --session "sdet-$$" --config "$T/c.yaml" --trace "$T/$x.unitrace" --deterministic $cf \
		-- $PY "$HERE/det_epoll.py" "$EPORT" pipe >"$T/$x.log" 2>&1 || { cat "$T/$x.log"; fail "det_epoll.py: run $x"; }
done
for x in ea eb; do
	det_followed "det_epoll.py: $x" "$T/$x.log" 4
	cmp <(grep -E '^(events|clocks|reply)' "$T/erec.log" | sort) <(grep -E '^(events|clocks|reply)' "$T/$x.log" | sort) ||
		fail "det_epoll.py: run $x handled other events than the recorded run"
done
cmp "$T/ea.unitrace" "$T/eb.unitrace" || fail "det_epoll.py: two deterministic replays differ"
$PY - "$T/erec.log" <<'PY' || fail "det_epoll.py: the events"
import sys
ev = next(l for l in open(sys.argv[1]) if l.startswith("events:")).split()[1:]
assert ev.count("accept") == 2 and ev.count("pipe") >= 1, ev
w = [int(e[1:]) for e in ev if e.startswith("w")]
assert sum(w) == 2 * 256 * 1024 and max(w) == 131072 and len(w) >= 4, w
print(f"det_epoll.py: {len(ev)} events, the reply in {len(w)} writes of at most 128 kB")
PY
echo "det_epoll.py: epoll in turn, the same events and trace in every run"

# The turn's socket buffer must not deadlock what the host's buffers let
# through (both ranks send 600 kB before they read: exit 97 once), nor
# wait for room from a peer that closed (it hung).
XPORT=$(free_port)
run xa --deterministic -- $PY "$HERE/det_edge.py" $XPORT exchange 600000
[ "$(grep -c 'sent 600000 got 600000' "$T/xa.log")" = 2 ] || { cat "$T/xa.log"; fail "det_edge.py exchange"; }
run xb --deterministic --compute-from "$T/xa.unitrace" -- $PY "$HERE/det_edge.py" $XPORT exchange 600000
run xc --deterministic --compute-from "$T/xa.unitrace" -- $PY "$HERE/det_edge.py" $XPORT exchange 600000
cmp "$T/xb.unitrace" "$T/xc.unitrace" || fail "det_edge.py exchange: two deterministic replays differ"
run pc --deterministic -- $PY "$HERE/det_edge.py" $XPORT peerclose
grep -qE 'rank 0: sendall: (Connection reset by peer|Broken pipe)' "$T/pc.log" || { cat "$T/pc.log"; fail "det_edge.py peerclose"; }
# A send time-out (SO_SNDTIMEO) bounds the wait for the turn's buffer in
# virtual time: a 4 MB send to a reader asleep for 2 s stops after 300 ms
# with what fitted (before session 19 it waited for the reader).
run st --deterministic -- $PY "$HERE/det_edge.py" $XPORT sndtimeo
$PY - "$T/st.log" <<'PY' || { cat "$T/st.log"; fail "det_edge.py sndtimeo: the send time-out"; }
import re, sys
log = open(sys.argv[1]).read()
sent, n, ms = re.search(r"rank 0: send: (\d+) of (\d+) after ([\d.]+) ms", log).groups()
got = re.search(r"rank 1: got (\d+)", log).group(1)
assert 0 < int(sent) < int(n) and int(got) == int(sent), (sent, n, got)
assert 300 <= float(ms) < 400, ms
print(f"det_edge.py sndtimeo: {sent} of {n} bytes went, the send returned after {ms} ms of virtual time")
PY
echo "det_edge.py: a two-way exchange past the turn's buffer goes through (the same trace twice); a closed peer's error comes back; a send time-out is virtual"
# select in turn (since session 20; it waited outside the turn): its
# time-out is virtual, it says what a read in turn finds, and two replays
# write the same trace.
for x in sla slb slc; do
	cf=
	[ $x = sla ] || cf="--compute-from $T/sla.unitrace"
	UNI_DET_DEBUG=1 run $x --deterministic $cf -- $PY "$HERE/det_edge.py" $XPORT select
	det_in_turn $x "$T/$x.log"
	grep -q 'rank 0: got 160000 in' "$T/$x.log" || { cat "$T/$x.log"; fail "det_edge.py select: $x"; }
	ms=$(sed -n 's/^rank 0: select timed out after \([0-9.]*\) ms$/\1/p' "$T/$x.log")
	$PY -c "import sys; assert 50 <= float(sys.argv[1]) < 60" "${ms:-0}" ||
		{ cat "$T/$x.log"; fail "det_edge.py select: the time-out ($ms ms)"; }
done
cmp "$T/slb.unitrace" "$T/slc.unitrace" || fail "det_edge.py select: two deterministic replays differ"
echo "det_edge.py select: in turn, a 50 ms time-out after $ms ms of virtual time, two replays the same"

# Gloo: the turn holds, the program is right.
cat >"$T/ar.py" <<'PY'
import torch, torch.distributed as dist
dist.init_process_group("gloo")
t = torch.ones(1000) * (dist.get_rank() + 1)
for _ in range(3):
    dist.all_reduce(t)
import sys
sys.stdout.write(f"sum {float(t[0])}\n")  # one write: the ranks share stdout
sys.stdout.flush()
dist.destroy_process_group()
PY
run g --deterministic -- $PY "$T/ar.py"
[ "$(grep -c '^sum 12.0$' "$T/g.log")" = 2 ] || { cat "$T/g.log"; fail "the Gloo program's result under --deterministic"; }
! grep -q "goes on without the turn" "$T/g.log" || { cat "$T/g.log"; fail "the turn given up with Gloo"; }
echo "a Gloo program: the turn holds, the result right"

# A port the turn gave a socket, taken by another socket (SO_REUSEADDR,
# as Gloo's listeners) that listens first, as a deterministic session
# beside it may: the listen succeeds on the rank's next port ("Address
# already in use" before session 24: two det runs side by side failed so).
run rl --deterministic -- "$LOOP" relisten
[ "$(grep -cE '^relisten: [0-9]+ -> [0-9]+, accepted; an explicit port: Address already in use$' "$T/rl.log")" = 2 ] ||
	{ cat "$T/rl.log"; fail "detloop relisten"; }
grep -q "it listens on the rank's next one" "$T/rl.log" || { cat "$T/rl.log"; fail "detloop relisten: not said"; }
echo "a taken port of the turn's: $(grep -m1 '^relisten' "$T/rl.log")"

# unictl status --threads while a deterministic run goes: who has the
# turn, a line for each rank's thread (two ranks, 3 s of compute each).
"$UNIRUN" -n 2 --session "$DET_S-st" --config "$T/c.yaml" --deterministic --trace "$T/st.unitrace" -- \
	$PY -c 'import time
t = time.process_time()
while time.process_time() - t < 3: pass' >"$T/st.log" 2>&1 &
stp=$!
seen=0
for _ in $(seq 300); do
	kill -0 $stp 2>/dev/null || break
	if "$(dirname "$UNIRUN")/unictl" status --session "$DET_S-st" --threads >"$T/st.status" 2>&1 &&
		grep -q "^  the turn: held by" "$T/st.status" &&
		[ "$(grep -cE '^  [0-9]+ +[01] +python3 +[RS] +(RUN|READY) ' "$T/st.status")" = 2 ]; then
		seen=1
		break
	fi
	sleep 0.1
done
for _ in $(seq 600); do kill -0 $stp 2>/dev/null || break; sleep 0.1; done
if kill -TERM $stp 2>/dev/null; then # (unirun stops its ranks and session)
	sleep 10
	kill -KILL $stp 2>/dev/null || :
	fail "unictl status --threads: the run did not end within a minute"
fi
wait $stp || { cat "$T/st.log"; fail "unictl status --threads: the run"; }
[ $seen = 1 ] || { cat "$T/st.status"; fail "unictl status --threads: the turn and each rank's thread"; }
echo "unictl status --threads: the turn's holder and each rank's thread"

# Refusals.
if "$UNIRUN" -n 1 --mode record --deterministic -- true >"$T/r2.log" 2>&1; then fail "record mode accepted"; fi
grep -q -- "--deterministic needs simulate mode" "$T/r2.log" || { cat "$T/r2.log"; fail "record: message"; }
echo "refused: record mode"
ok "deterministic mode"
