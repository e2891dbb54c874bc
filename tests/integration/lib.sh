# Shared bits of the integration tests (sourced).
PY=/usr/bin/python3
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)

fail() { echo "FAIL: $*" >&2; exit 1; }
ok() { echo "ok: $*"; }

free_port() {
	$PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# The deterministic-mode tests' session (test_sim_det*.sh): a temporary
# directory T (kept with KEEP=1) holding c.yaml (simulate, alpha-beta,
# 2 ms, 100 Mbit/s); then `det_run NAME [unirun options...] -- CMD...`
# runs DET_RANKS ranks of one session name (a replay's trace is the same
# file only under the recording's name) writing T/NAME.unitrace and
# T/NAME.log, and fails the test with the log when unirun does.
det_session() { # TAG RANKS TIMEOUT_S
	DET_TAG=$1 DET_RANKS=$2 DET_TIMEOUT=$3 DET_S=$1-$$
	T=$(mktemp -d "/tmp/uni-$DET_TAG.XXXXXX")
	trap 'rm -rf "$T"' EXIT
	[ -n "${KEEP:-}" ] && trap 'echo "kept $T"' EXIT
	cat >"$T/c.yaml" <<YAML
mode: simulate
network: { model: alpha-beta, default: { latency: 2ms, bandwidth: 100Mbit } }
YAML
}
det_run() {
	local name=$1 pid s=$SECONDS
	shift
	UNI_CF_DEBUG=${UNI_CF_DEBUG:-1} "$UNIRUN" -n "$DET_RANKS" --session "$DET_S" --config "$T/c.yaml" \
		--trace "$T/$name.unitrace" "$@" >"$T/$name.log" 2>&1 &
	pid=$!
	while kill -0 $pid 2>/dev/null && ((SECONDS - s < DET_TIMEOUT)); do
		sleep 0.2
	done
	if kill -0 $pid 2>/dev/null; then
		# A run that hangs: what it printed, then where its threads
		# wait and who holds the turn (so that a CI log's tail shows
		# it), before it is stopped.
		{
			tail -40 "$T/$name.log"
			echo "--- run $name still runs after $DET_TIMEOUT s; unid's log, last lines:"
			tail -15 "/tmp/uni.$DET_S.log"
			echo "--- unictl status --threads:"
			"$(dirname "$UNIRUN")/unictl" status --session "$DET_S" --threads 2>&1 | sed -n '/^  deterministic/,$p'
		} || :
		# (unirun stops its ranks, KILL 5 s after TERM, and its session.)
		kill -TERM $pid 2>/dev/null || :
		for _ in $(seq 50); do
			kill -0 $pid 2>/dev/null || break
			sleep 0.2
		done
		kill -KILL $pid 2>/dev/null || :
		"$(dirname "$UNIRUN")/unictl" stop --session "$DET_S" >/dev/null 2>&1 || :
		fail "$name: unirun did not end within $DET_TIMEOUT s"
	fi
	wait $pid || { cat "$T/$name.log"; fail "$name: unirun"; }
}

# det_followed NAME FILE [N]: run NAME's summary (in FILE) says that every
# thread (N of them; any number without N) followed the recorded run to
# its end (else, after the log, what says why, last: the threads that left
# and where (UNI_CF_DEBUG, which det_run sets), the turn's own lines and
# unid's count of turns and steals, so that a CI log's tail shows it).
# det_in_turn NAME LOG: no thread of run NAME left the turn
# (UNI_DET_DEBUG=1 makes the shim say each one that waits outside it).
det_followed() {
	grep -qE "threads: ${3:-[0-9]+} followed the recorded run to their end, 0 left it" "$2" ||
		{
			cat "$2"
			echo "--- why run $1 left the recorded run:"
			{
				grep -E "compute-from:|deterministic:" "$2" | head -20
				grep -h "deterministic: the turn" "/tmp/uni.$DET_S.log" | tail -1
			} 2>/dev/null || :
			fail "run $1 did not follow the recorded run"
		}
}
det_in_turn() {
	! grep -E "waits outside the turn|goes on without the turn" "$2" || fail "$1: a thread left the turn"
}
