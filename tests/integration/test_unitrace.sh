#!/bin/sh
# Integration test for tools/unitrace, on synthetic traces written by
# tests/unit/mktrace (see its top comment for what the trace holds).
#
#   test_unitrace.sh UNITRACE MKTRACE
#
# Checks: summary text (per-rank lines, byte totals, consistency line),
# summary --json (valid, and the same numbers), dump and dump --json (one
# line per record, each line valid JSON), a truncated trace (message, exit
# 0), a trace without a session end, a byte mismatch, an unknown record
# kind, JSON escaping of an odd session name, and the error paths (garbage
# and missing file: exit 2 with one line on stderr; usage errors: exit 64;
# links of a record-mode trace: exit 2), plot's window (--from, --to) and
# its errors.
# Builds nothing. Exit 0 pass, 1 fail, 77 skip (no python3), 99 bad usage.
set -u

if [ $# -ne 2 ]; then
	echo "usage: $0 UNITRACE MKTRACE" >&2
	exit 99
fi
UNITRACE=$1
MKTRACE=$2
if ! command -v python3 >/dev/null 2>&1; then
	echo "SKIP: python3 not found (needed to check JSON)"
	exit 77
fi

T=$(mktemp -d "${TMPDIR:-/tmp}/test_unitrace.XXXXXX") || exit 99
trap 'rm -rf "$T"' EXIT

failures=0
checks=0

fail() {
	echo "FAIL: $*" >&2
	failures=$((failures + 1))
}

ok() {
	checks=$((checks + 1))
}

# check FAILURE-MESSAGE CMD...: CMD must succeed.
check() {
	msg=$1
	shift
	if "$@"; then
		ok
	else
		fail "$msg"
	fi
}

# expect_rc WANT DESCRIPTION CMD...: runs CMD, output in $T/out and $T/err.
expect_rc() {
	want=$1
	what=$2
	shift 2
	"$@" >"$T/out" 2>"$T/err"
	rc=$?
	if [ "$rc" -ne "$want" ]; then
		fail "$what: exit $rc, want $want"
		sed 's/^/  | /' "$T/err" >&2
	else
		ok
	fi
}

# contains FILE TEXT: fixed-string match.
contains() {
	if grep -qF -- "$2" "$1"; then
		ok
	else
		fail "$(basename "$1") lacks: $2"
		sed 's/^/  | /' "$1" >&2
	fi
}

lacks() {
	if grep -qF -- "$2" "$1"; then
		fail "$(basename "$1") should not contain: $2"
	else
		ok
	fi
}

# pycheck FILE EXPR...: each EXPR is a Python expression over j, the JSON
# object in FILE, that must be true.
pycheck() {
	f=$1
	shift
	if python3 - "$f" "$@" <<'EOF'
import json, sys
with open(sys.argv[1]) as fh:
    j = json.load(fh)
bad = [e for e in sys.argv[2:] if not eval(e)]
for e in bad:
    print("  json check failed: " + e, file=sys.stderr)
sys.exit(1 if bad else 0)
EOF
	then
		ok
	else
		fail "JSON checks on $(basename "$f")"
	fi
}

# json_lines FILE N: every line is one JSON object, N lines in all.
json_lines() {
	if python3 - "$1" "$2" <<'EOF'
import json, sys
n = 0
with open(sys.argv[1]) as fh:
    for line in fh:
        obj = json.loads(line)
        assert isinstance(obj, dict), line
        for k in ("kind", "rank", "tid", "peer", "conn", "t0", "t1",
                  "off", "len", "a", "flags"):
            assert k in obj, (k, line)
        n += 1
if n != int(sys.argv[2]):
    print("  %d JSON lines, want %s" % (n, sys.argv[2]), file=sys.stderr)
    sys.exit(1)
EOF
	then
		ok
	else
		fail "dump --json of $(basename "$1")"
	fi
}

# --- a complete trace -------------------------------------------------------
good=$T/run/good.trace
expect_rc 0 "mktrace" "$MKTRACE" "$good"
n=$(cat "$T/out")
check "mktrace wrote $n records, want 21" [ "$n" = 21 ]

expect_rc 0 "summary" "$UNITRACE" summary "$good"
cp "$T/out" "$T/summary.txt"
S=$T/summary.txt
contains "$S" "session    demo-run"
contains "$S" "mode       record (times: real time"
contains "$S" "ranks      2 (world size 2)"
contains "$S" "rank 0: pid 1000, detached cleanly, 2 threads"
contains "$S" "rank 1: pid 1001, died, 1 thread"
contains "$S" "transfers 0.100 .. 0.900 ms (span 0.800 ms, real time)"
contains "$S" "sends 3, recvs 1, bytes sent 7096, bytes received 2048"
contains "$S" "sends 2, recvs 2, bytes sent 2048, bytes received 7096"
contains "$S" "totals     sends 5, recvs 3, bytes sent 9144, bytes received 9144"
contains "$S" "bytes sent == bytes received on every connection"
lacks "$S" "warning"
check "summary wrote to stderr" [ ! -s "$T/err" ]

expect_rc 0 "summary --json" "$UNITRACE" summary --json "$good"
cp "$T/out" "$T/summary.json"
check "summary --json is not valid JSON" python3 -m json.tool "$T/summary.json" /dev/null
pycheck "$T/summary.json" \
	'j["session"] == "demo-run"' 'j["mode"] == "record"' \
	'j["truncated"] is False' 'j["complete"] is True' \
	'j["records"] == 21' 'j["nranks"] == 2' 'j["consistent"] is True' \
	'j["totals"]["bytes_sent"] == 9144' \
	'j["totals"]["bytes_received"] == 9144' \
	'[r["rank"] for r in j["ranks"]] == [0, 1]' \
	'j["ranks"][0]["end"] == "clean" and j["ranks"][1]["end"] == "died"' \
	'j["ranks"][0]["threads"] == 2' \
	'j["ranks"][0]["per_peer"] == [{"peer": 1, "sends": 3, "recvs": 1, "bytes_sent": 7096, "bytes_received": 2048}]' \
	'j["ranks"][1]["per_peer"][0]["bytes_received"] == 7096' \
	'len(j["top_transfers"]) == 5' \
	'[t["duration_ms"] for t in j["top_transfers"]] == sorted([t["duration_ms"] for t in j["top_transfers"]], reverse=True)' \
	'sorted(t["bytes"] for t in j["top_transfers"]) == [512, 1000, 1536, 2000, 4096]'
contains "$S" "longest transfers (the send calls, real):"

# --json may come first.
expect_rc 0 "summary --json FILE order" "$UNITRACE" summary "$good" --json
check "--json position changes output" cmp -s "$T/out" "$T/summary.json"

expect_rc 0 "dump --json" "$UNITRACE" dump --json "$good"
cp "$T/out" "$T/dump.jsonl"
json_lines "$T/dump.jsonl" 21
head -n 1 "$T/dump.jsonl" >"$T/first.json"
check "first dump record is not session_start" \
	grep -q '^{"kind":"session_start",' "$T/first.json"

expect_rc 0 "dump" "$UNITRACE" dump "$good"
nrec=$(grep -vc '^#' "$T/out")
check "dump printed $nrec record lines, want 21" [ "$nrec" = 21 ]

# --- truncated: the daemon was killed mid-write ------------------------------
cut=$T/cut.trace
expect_rc 0 "mktrace --truncate" "$MKTRACE" "$cut" --truncate
n=$(cat "$T/out")
expect_rc 0 "summary of a truncated trace" "$UNITRACE" summary "$cut"
cp "$T/out" "$T/cut.txt"
contains "$T/cut.txt" "trace ends inside a record after $n records: was the daemon killed?"
contains "$T/cut.txt" "session did not end cleanly (no session-end record)"
contains "$T/cut.txt" "rank 1: pid 1001, still running or unknown"
contains "$T/cut.txt" "bytes sent 9144, bytes received 9144"
expect_rc 0 "summary --json of a truncated trace" "$UNITRACE" summary --json "$cut"
cp "$T/out" "$T/cut.json"
pycheck "$T/cut.json" 'j["truncated"] is True' 'j["complete"] is False' \
	"j['records'] == $n" 'j["session_end"] is None'
expect_rc 0 "dump --json of a truncated trace" "$UNITRACE" dump --json "$cut"
cp "$T/out" "$T/cut.jsonl"
json_lines "$T/cut.jsonl" "$n"
contains "$T/err" "ends inside a record after $n records"

expect_rc 0 "export --chrome of a truncated trace" "$UNITRACE" export "$cut" --chrome "$T/cut.chrome.json"
contains "$T/err" "ends inside a record after $n records"
pycheck "$T/cut.chrome.json" 'j["otherData"]["mode"] == "record"' \
	'isinstance(j["traceEvents"], list) and len(j["traceEvents"]) > 0'

# --- export --chrome ------------------------------------------------------------
expect_rc 0 "export --chrome" "$UNITRACE" export "$good" --chrome "$T/good.chrome.json"
check "export --chrome wrote to stdout" [ ! -s "$T/out" ]
# 5 sends and 3 recvs (mktrace): one slice each on the thread that made
# them, a process per rank, and an arrow from each send to the read that
# ends at the same byte.
pycheck "$T/good.chrome.json" \
	'len([e for e in j["traceEvents"] if e["ph"] == "X" and e["cat"] == "send"]) == 5' \
	'len([e for e in j["traceEvents"] if e["ph"] == "X" and e["cat"] == "recv"]) == 3' \
	'sorted(e["args"]["name"] for e in j["traceEvents"] if e["name"] == "process_name") == ["rank 0 (pid 1000)", "rank 1 (pid 1001)"]' \
	'all(e["ts"] >= 0 and e.get("dur", 0) >= 0 for e in j["traceEvents"] if "ts" in e)' \
	'{e["id"] for e in j["traceEvents"] if e["ph"] == "f"} <= {e["id"] for e in j["traceEvents"] if e["ph"] == "s"}'

# --- export --sqlite -----------------------------------------------------------
# sqlcheck DB EXPR...: each EXPR (Python, with q(sql) -> rows) must hold.
sqlcheck() {
	f=$1
	shift
	if python3 - "$f" "$@" <<'EOF'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
q = lambda sql: db.execute(sql).fetchall()
bad = [e for e in sys.argv[2:] if not eval(e)]
for e in bad:
    print("  sql check failed: " + e, file=sys.stderr)
sys.exit(1 if bad else 0)
EOF
	then
		ok
	else
		fail "sql checks on $(basename "$f")"
	fi
}
expect_rc 0 "export --sqlite" "$UNITRACE" export "$good" --sqlite "$T/good.db"
sqlcheck "$T/good.db" 'q("select count(*), sum(bytes) from send") == [(5, 9144)]' \
	'q("select count(*), sum(bytes) from recv") == [(3, 9144)]' \
	'q("select value from meta where key = \"mode\"") == [("record",)]' \
	'q("select value from meta where key = \"truncated\"") == [("0",)]' \
	'q("select rank, how from rank_exit order by rank") == [(0, "clean"), (1, "died")]' \
	'q("select rank, peer, sum(bytes) from send group by rank, peer") == [(0, 1, 7096), (1, 0, 2048)]'
# exporting again replaces the database (no rows twice)
expect_rc 0 "export --sqlite again" "$UNITRACE" export "$good" --sqlite "$T/good.db"
sqlcheck "$T/good.db" 'q("select count(*) from send") == [(5,)]'
expect_rc 0 "export --sqlite of a truncated trace" "$UNITRACE" export "$cut" --sqlite "$T/cut.db"
contains "$T/err" "ends inside a record after $n records"
sqlcheck "$T/cut.db" 'q("select value from meta where key = \"truncated\"") == [("1",)]' \
	"q('select value from meta where key = \"records\"') == [('$n',)]"

# --- no session end ----------------------------------------------------------
noend=$T/noend.trace
expect_rc 0 "mktrace --no-end" "$MKTRACE" "$noend" --no-end
expect_rc 0 "summary without session end" "$UNITRACE" summary "$noend"
contains "$T/out" "session did not end cleanly (no session-end record)"
lacks "$T/out" "ends inside a record"

# --- bytes lost -------------------------------------------------------------
mis=$T/mismatch.trace
expect_rc 0 "mktrace --mismatch" "$MKTRACE" "$mis" --mismatch
expect_rc 0 "summary with a mismatch" "$UNITRACE" summary "$mis"
contains "$T/out" "1 -> 0: sent 2048, received 2000"
lacks "$T/out" "bytes sent == bytes received"
expect_rc 0 "summary --json with a mismatch" "$UNITRACE" summary --json "$mis"
cp "$T/out" "$T/mis.json"
pycheck "$T/mis.json" 'j["consistent"] is False' \
	'j["mismatches"] == [{"from": 1, "to": 0, "sent": 2048, "received": 2000}]'

# --- a kind from a newer minor version ----------------------------------------
unk=$T/unknown.trace
expect_rc 0 "mktrace --unknown" "$MKTRACE" "$unk" --unknown
expect_rc 0 "summary with an unknown kind" "$UNITRACE" summary "$unk"
contains "$T/out" "bytes sent == bytes received on every connection"
contains "$T/out" "skipped 1 record of unknown kinds"
expect_rc 0 "dump --json with an unknown kind" "$UNITRACE" dump --json "$unk"
cp "$T/out" "$T/unk.jsonl"
json_lines "$T/unk.jsonl" 22
contains "$T/unk.jsonl" '"kind":"?","kind_id":200,'

# --- escaping -------------------------------------------------------------
odd=$T/odd.trace
name='we"ird\name	x'
expect_rc 0 "mktrace --session" "$MKTRACE" "$odd" --session "$name"
expect_rc 0 "summary --json, odd session name" "$UNITRACE" summary --json "$odd"
cp "$T/out" "$T/odd.json"
pycheck "$T/odd.json" 'j["session"] == "we\"ird\\name\tx"'

# --- errors ------------------------------------------------------------------
garbage=$T/garbage.trace
head -c 1000 /dev/urandom >"$garbage"
for cmd in summary dump; do
	expect_rc 2 "$cmd of garbage" "$UNITRACE" "$cmd" "$garbage"
	lines=$(wc -l <"$T/err")
	check "$cmd of garbage: $lines lines on stderr, want 1" [ "$lines" -eq 1 ]
	contains "$T/err" "unitrace: $garbage: "
	check "$cmd of garbage wrote to stdout" [ ! -s "$T/out" ]
done
expect_rc 2 "export of garbage" "$UNITRACE" export "$garbage" --chrome "$T/garbage.json"
check "export of garbage created its output" [ ! -e "$T/garbage.json" ]
expect_rc 2 "export --sqlite of garbage" "$UNITRACE" export "$garbage" --sqlite "$T/garbage.db"
check "export --sqlite of garbage created its output" [ ! -e "$T/garbage.db" ]
expect_rc 64 "export with two formats" "$UNITRACE" export "$good" --sqlite "$T/x.db" --chrome "$T/x.json"
expect_rc 64 "export without a format" "$UNITRACE" export "$good"
contains "$T/err" "export needs a format"
expect_rc 0 "plot with a window" "$UNITRACE" plot "$good" --from 0 --to 1
contains "$T/out" "0.000 to 1.000 ms shown"
check "plot with a window is SVG" grep -q '</svg>' "$T/out"
expect_rc 64 "plot with an empty window" "$UNITRACE" plot "$good" --from 5 --to 1
contains "$T/err" "is empty"
expect_rc 64 "plot with a bad --from" "$UNITRACE" plot "$good" --from soon
contains "$T/err" "--from and --to want a time in ms"
expect_rc 64 "--from on summary" "$UNITRACE" summary "$good" --from 1
contains "$T/err" "choose the window of a plot"
"$MKTRACE" "$T/late.trace" --simulate --late >/dev/null
expect_rc 0 "summary of a run with late transfers" "$UNITRACE" summary "$T/late.trace"
contains "$T/out" "late:      3 transfers started after their stamp, the latest 2.500 ms after it"
expect_rc 0 "summary --json of a run with late transfers" "$UNITRACE" summary "$T/late.trace" --json
contains "$T/out" '"late_transfers": 3, "late_max_ms": 2.500'
expect_rc 0 "summary of a run without" "$UNITRACE" summary "$good"
lacks "$T/out" "late:"
"$MKTRACE" "$T/nccl.trace" --simulate --nccl >/dev/null
expect_rc 0 "summary of a trace with NCCL operations" "$UNITRACE" summary "$T/nccl.trace"
contains "$T/out" "NCCL communicators: 1: 000000001234abcd (2 ranks)"
contains "$T/out" "       2.500 ms  rank 1 all_reduce 4194304 B float32 ring, busbw 13.422 Gbit/s, comm 000000001234abcd (2 ranks), at 1.000 ms"
contains "$T/out" "  by kind: all_reduce 2 (4.500 ms)"
expect_rc 0 "summary --json with NCCL operations" "$UNITRACE" summary "$T/nccl.trace" --json
pycheck "$T/out" 'j["nccl_comms"] == [{"id": "000000001234abcd", "nranks": 2, "ranks_seen": 2}]' \
	'j["nccl_ops"] == {"all_reduce": {"count": 2, "total_ms": 4.5}}' \
	'[o["rank"] for o in j["top_nccl_ops"]] == [1, 0] and j["top_nccl_ops"][0]["algorithm"] == "ring"' \
	'[o["busbw_bps"] for o in j["top_nccl_ops"]] == [13421772800, 16777216000]'
expect_rc 0 "dump names the NCCL records" "$UNITRACE" dump "$T/nccl.trace"
contains "$T/out" "nccl_op"
contains "$T/out" "nccl_comm"
expect_rc 0 "chrome export of NCCL operations" "$UNITRACE" export "$T/nccl.trace" --chrome "$T/nccl.json"
contains "$T/nccl.json" '"cat":"nccl","name":"nccl all_reduce"'
expect_rc 0 "plot of NCCL operations" "$UNITRACE" plot "$T/nccl.trace" -o "$T/nccl.svg"
contains "$T/nccl.svg" "orange: NCCL operations"
contains "$T/nccl.svg" "<title>rank 1: nccl all_reduce 4194304 B float32 ring, 1.000 .. 3.500 ms</title>"
expect_rc 0 "export --sqlite of NCCL operations" "$UNITRACE" export "$T/nccl.trace" --sqlite "$T/nccl.db"
sqlcheck "$T/nccl.db" 'q("select rank, op, type, algorithm, bytes, t1_ns - t0_ns, comm, comm_rank, nranks from nccl_op order by rank") == [(0, "all_reduce", "float32", "ring", 4194304, 2000000, "000000001234abcd", 0, 2), (1, "all_reduce", "float32", "ring", 4194304, 2500000, "000000001234abcd", 1, 2)]' \
	'q("select count(*), min(nranks) from nccl_comm") == [(2, 2)]'
expect_rc 0 "export --sqlite of late transfers" "$UNITRACE" export "$T/late.trace" --sqlite "$T/late.db"
sqlcheck "$T/late.db" 'q("select late_transfers, late_max_us from session_end") == [(3, 2500)]'
"$MKTRACE" "$T/far.trace" --simulate --far-peer >/dev/null
printf 'mode: simulate\n' >"$T/ab.yaml"
expect_rc 0 "links of a trace with a send to rank 65535" "$UNITRACE" links "$T/far.trace" --config "$T/ab.yaml"
contains "$T/err" "1 transfers to no rank from 0 to 255 left out"
contains "$T/out" "rank 0 -> rank 1"
expect_rc 0 "links --top 1" "$UNITRACE" links "$T/far.trace" --config "$T/ab.yaml" --top 1
check "links --top 1 prints one link" [ "$(grep -c '^rank ' "$T/out")" = 1 ]
expect_rc 64 "links --top 0" "$UNITRACE" links "$T/far.trace" --config "$T/ab.yaml" --top 0
expect_rc 64 "links with a config that is no file" "$UNITRACE" links "$T/far.trace" --config /dev/null
contains "$T/err" "not a regular file"
expect_rc 0 "summary of a simulate trace whose config is gone" "$UNITRACE" summary "$T/far.trace"
check "summary without the config has no links section" sh -c "! grep -q 'most loaded links' '$T/out'"
expect_rc 64 "links with the trace's missing config" "$UNITRACE" links "$T/far.trace"
contains "$T/err" "give the configuration the run used with --config"
expect_rc 2 "links of a record-mode trace" "$UNITRACE" links "$good"
contains "$T/err" "links needs a simulate-mode trace"
expect_rc 2 "links of garbage" "$UNITRACE" links "$garbage"
expect_rc 64 "links without a file" "$UNITRACE" links
expect_rc 2 "missing file" "$UNITRACE" summary "$T/nope.trace"
contains "$T/err" "unitrace: $T/nope.trace: "

expect_rc 64 "no arguments" "$UNITRACE"
contains "$T/err" "usage: unitrace"
expect_rc 64 "unknown command" "$UNITRACE" frobnicate "$good"
expect_rc 64 "no file" "$UNITRACE" summary
expect_rc 64 "two files" "$UNITRACE" dump "$good" "$good"
expect_rc 64 "unknown option" "$UNITRACE" summary --frob "$good"
contains "$T/err" "usage: unitrace"
expect_rc 0 "--help" "$UNITRACE" --help
contains "$T/out" "usage: unitrace"
expect_rc 0 "--version" "$UNITRACE" --version
check "--version output" grep -q '^unitrace [0-9]' "$T/out"

if [ "$failures" -ne 0 ]; then
	echo "test_unitrace: $failures of $((checks + failures)) checks failed" >&2
	exit 1
fi
echo "test_unitrace: all $checks checks passed"
exit 0
