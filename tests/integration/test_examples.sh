#!/bin/bash
# The example programs beside the main job (examples/torch, docs/examples.md)
# under unirun in simulate mode with the default config:
# - pp_infer.py as a 4-stage pipeline and as 2 stages x 2 tensor-parallel
#   ranks: every request's tokens equal the unsharded model's (--check),
#   and the traffic is the schedule's: the activations go stage to stage
#   (at least the bytes the schedule sends, rank to the next stage's
#   counterpart), tokens from the last stage back to the first, the
#   all_reduces only within a stage, nothing else but the barriers' notices;
# - pp_infer.py --blocking-sends: the stages wait on each other in a cycle
#   (each blocking send waits for the next stage's receive): unirun ends it
#   with the deadlock report (exit 97) naming, for every rank, the send to
#   the next stage it waits for; the trace's rank ends stay real times
#   (a stack string's text once counted as a rank's last time);
# - voltage_infer.py (Voltage) and --overlap (Kilovolts): the unsharded
#   model's tokens, one all_gather per layer and token on every rank;
# - llama_infer.py (GQA, RoPE, SwiGLU, a KV cache): the unsharded model's
#   tokens without the cache, the collectives of prefill and decode;
# - clip_infer.py (a tower per group of ranks): the unsharded model's
#   classes and logits, the traffic within and between the groups.
#   test_examples.sh UNIRUN UNITRACE
set -euo pipefail
. "$(dirname "$0")/lib.sh"
UNIRUN=$1 UNITRACE=$2
T=$(mktemp -d /tmp/uni-examples.XXXXXX)
trap 'rm -rf "$T"' EXIT
EX=$ROOT/examples/torch
CFG=$ROOT/examples/configs/default.yaml
TOK=4 REQ=3
run() { # NAME ARGS...: runs an example, checks "check: ok"
	local name=$1
	shift
	timeout 300 "$UNIRUN" -n 4 --config "$CFG" --trace "$T/$name.unitrace" -- $PY "$@" --check >"$T/$name.log" 2>&1 ||
		{ cat "$T/$name.log"; fail "$name under unirun"; }
	grep -q "^check: ok" "$T/$name.log" || { cat "$T/$name.log"; fail "$name: predictions differ from the unsharded model"; }
	grep "^time " "$T/$name.log"
	"$UNITRACE" summary "$T/$name.unitrace" --json >"$T/$name.json" || fail "$name: summary"
}
run pp "$EX/pp_infer.py" --tokens $TOK --requests $REQ
run pptp "$EX/pp_infer.py" --tokens $TOK --requests $REQ --tp 2
$PY - "$T" $TOK $REQ <<'PYEOF' || fail "pipeline traffic"
import json, sys
d, tok, req = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
T0, D = 16, 256
act = sum(req * (T0 + s) * D * 4 for s in range(tok))  # activation bytes per stage link
def sent(name):
    j = json.load(open(f"{d}/{name}.json"))
    return {(r["rank"], p["peer"]): p["bytes_sent"] for r in j["ranks"] for p in r["per_peer"]}
small = 8192  # barrier notices, tokens, the predictions' hand-over
for name, links, heavy in (("pp", {(0, 1), (1, 2), (2, 3)}, set()),
                           ("pptp", {(0, 2), (1, 3)}, {(0, 1), (1, 0), (2, 3), (3, 2)})):
    b = sent(name)
    print(name, " ".join(f"{a}->{p}:{n}" for (a, p), n in sorted(b.items())))
    for (a, p), n in b.items():
        if (a, p) in links:
            assert act <= n <= act * 1.02 + small, f"{name}: {a}->{p} carried {n} B, the schedule sends {act}"
        elif (a, p) in heavy:
            assert n > act, f"{name}: {a}->{p} (a stage's all_reduces) carried only {n} B"
        else:
            assert n < small, f"{name}: {a}->{p} carried {n} B: not a link of the schedule"
    for l in links | heavy:
        assert l in b, f"{name}: nothing went {l}"
PYEOF
ok "pipeline (4 stages; 2 stages x 2 TP): the unsharded model's tokens, the schedule's traffic"

set +e
timeout 120 "$UNIRUN" -n 4 --config "$CFG" --trace "$T/dl.unitrace" -- $PY "$EX/pp_infer.py" --tokens 2 --blocking-sends \
	>"$T/dl.log" 2>&1
rc=$?
set -e
[ "$rc" = 97 ] || { tail -30 "$T/dl.log"; fail "pipeline with blocking sends: exit status $rc, not 97 (deadlock)"; }
for r in 0 1 2 3; do
	grep -q "waits to send to rank $(((r + 1) % 4)) (connection [0-9]*): 1 Gloo send posted that rank $(((r + 1) % 4)) has not posted" \
		"$T/dl.unitrace.deadlock.txt" || { cat "$T/dl.unitrace.deadlock.txt"; fail "the report does not say rank $r waits to send to the next stage"; }
done
grep -q "SendWork4wait" "$T/dl.unitrace.deadlock.txt" || fail "the report's stacks do not show the blocking send"
"$UNITRACE" summary "$T/dl.unitrace" --json | $PY -c '
import json, sys
j = json.load(sys.stdin)
ends = [r["end_ns"] for r in j["ranks"]]
print("rank ends (virtual ns):", ends)
assert all(e is not None and 0 < e < 600e9 for e in ends), "a rank end is not a time of this run"
' || fail "rank ends after the deadlock"
ok "pipeline with blocking sends: deadlock report with the cycle of sends, exit 97"

run voltage "$EX/voltage_infer.py" --tokens $TOK
run kilovolts "$EX/voltage_infer.py" --tokens $TOK --overlap
for name in voltage kilovolts; do
	$PY - "$T/$name.json" $TOK <<'PYEOF' || fail "$name: collectives"
import json, sys
j, tok = json.load(open(sys.argv[1])), int(sys.argv[2])
n = j["collectives"].get("all_gather", {}).get("count", 0)
print(f"all_gathers: {n}")
assert n == 4 * 4 * tok, f"{n} all_gathers, not 4 layers x {tok} tokens x 4 ranks"
PYEOF
done
ok "position-wise (Voltage, Kilovolts): the unsharded model's tokens, an all_gather per layer and token"

# The Llama-style model with a KV cache: the unsharded model's tokens
# decoded without the cache (--check: the cache and the sharding alike);
# per step two all_reduces a layer and one all_gather, the prefill's of
# the whole prompt; its time to first token above its time per output
# token (the prompt's 32 tokens against one).
run llama "$EX/llama_infer.py" --tokens $TOK
$PY - "$T/llama.json" "$T/llama.log" $TOK <<'PYEOF' || fail "llama: collectives"
import json, re, sys
j, log, tok = json.load(open(sys.argv[1])), open(sys.argv[2]).read(), int(sys.argv[3])
ar = j["collectives"].get("all_reduce", {}).get("count", 0)
ag = j["collectives"].get("all_gather", {}).get("count", 0)
print(f"all_reduces {ar}, all_gathers {ag}")
assert ar == 4 * 2 * 4 * tok, f"{ar} all_reduces, not 4 ranks x 2 x 4 layers x {tok} steps"
assert ag == 4 * tok, f"{ag} all_gathers, not 4 ranks x {tok} steps"
ttft = float(re.search(r"time to first token: ([0-9.]+) ms", log).group(1))
tpot = float(re.search(r"time per output token: ([0-9.]+) ms", log).group(1))
assert ttft > tpot > 0, (ttft, tpot)
PYEOF
ok "Llama-style (GQA, RoPE, SwiGLU, KV cache): the unsharded model's tokens, the collectives per step, prefill then decode"

# CLIP-style zero-shot classification, a tower per half of the world: the
# unsharded model's classes and logits; two all_reduces a layer per batch
# within each tower's group (2 image batches, the prompts once); traffic
# within the groups (0-1, 2-3), the class embeddings from rank 2 to rank 0,
# nothing else but barrier notices.
run clip "$EX/clip_infer.py" --batches 2
$PY - "$T/clip.json" <<'PYEOF' || fail "clip: collectives and traffic"
import json, sys
j = json.load(open(sys.argv[1]))
ar = j["collectives"].get("all_reduce", {}).get("count", 0)
print(f"all_reduces {ar}")
assert ar == 2 * 2 * 4 * 2 + 2 * 4 * 2, f"{ar} all_reduces, not (2 image batches + 1 text batch) x 4 layers x 2 x 2 ranks"
b = {(r["rank"], p["peer"]): p["bytes_sent"] for r in j["ranks"] for p in r["per_peer"]}
print(" ".join(f"{a}->{p}:{n}" for (a, p), n in sorted(b.items())))
for (a, p), n in b.items():
    if {a, p} in ({0, 1}, {2, 3}):
        assert n > 100000, f"{a}->{p}: {n} B, a tower's all_reduces carry more"
    elif (a, p) == (2, 0):
        assert 10 * 128 * 4 <= n < 10 * 128 * 4 + 8192, f"2->0: {n} B, not the class embeddings"
    else:
        assert n < 8192, f"{a}->{p}: {n} B between the towers"
PYEOF
ok "CLIP-style (a tower per group, each tensor-parallel): the unsharded model's classes, the collectives within the groups, the class embeddings to rank 0"

# Serving Poisson arrivals (continuous batching). At 0.01 requests per
# second the server idles about 100 s (virtual) before each request: each
# of those sleeps ends at once in real time (nothing else in the session
# can happen first) with the same virtual time (the run's virtual length
# exceeds the last arrival; unirun counts every idle sleep as ended
# early, and maybe others: a rank that tried the rendezvous store before
# rank 0 listened in virtual time sleeps torch's 1 s before it retries,
# and that sleep may end early too). At 100 per second requests queue and
# are batched.
timeout 120 "$UNIRUN" -n 4 --config "$CFG" --trace "$T/serve.unitrace" -- $PY "$EX/serve_poisson.py" --requests 3 --rate 0.01 \
	--tokens 2 --check >"$T/serve.log" 2>&1 || { cat "$T/serve.log"; fail "serve_poisson.py (rate 0.01) under unirun"; }
grep -q "^check: ok" "$T/serve.log" || { cat "$T/serve.log"; fail "serve_poisson.py: tokens differ from the unsharded model"; }
grep "^served\|^delay\|^throughput\|^idle\|sleeps* ended early" "$T/serve.log"
idle=$(sed -n 's/^idle: \([0-9]*\) sleeps.*/\1/p' "$T/serve.log")
[ "${idle:-0}" -ge 1 ] || fail "serve_poisson.py at 0.01/s never idled"
warps=$(sed -n 's/^unirun: \([0-9]*\) sleeps* ended early.*/\1/p' "$T/serve.log")
[ "${warps:-0}" -ge "$idle" ] || { cat "$T/serve.log"; fail "not every idle sleep ($idle) ended early (${warps:-0} did)"; }
$PY - "$T/serve.log" <<'PYEOF' || fail "serving: virtual time"
import re, sys
log = open(sys.argv[1]).read()
span = float(re.search(r"over ([0-9.]+) s", log).group(1))
last = float(re.search(r"last arrival at ([0-9.]+) s", log).group(1))
print(f"decoding span {span:.3f} s (virtual), last arrival {last:.3f} s")
assert last > 100 and span > last, "the served span does not cover the arrivals"
PYEOF
timeout 120 "$UNIRUN" -n 4 --config "$CFG" --trace "$T/serve2.unitrace" -- $PY "$EX/serve_poisson.py" --requests 6 --rate 100 \
	--tokens 2 --check >"$T/serve2.log" 2>&1 || { cat "$T/serve2.log"; fail "serve_poisson.py (rate 100) under unirun"; }
grep -q "^check: ok" "$T/serve2.log" || { cat "$T/serve2.log"; fail "serve_poisson.py (rate 100): tokens differ"; }
grep "^served" "$T/serve2.log"
$PY -c 'import re, sys; b = float(re.search(r"mean batch ([0-9.]+)", open(sys.argv[1]).read()).group(1)); assert b > 1.5, b' "$T/serve2.log" ||
	fail "serving at 100/s: requests were not batched"
ok "serving Poisson arrivals: the unsharded model's tokens, idle sleeps ended early in wall time only, batching under load"
