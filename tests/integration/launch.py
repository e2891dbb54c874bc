#!/usr/bin/env python3
"""Tiny torch.distributed launcher for tests (no torchrun, no C launcher).

  launch.py -n N [--port P] [--timeout S] -- CMD [ARGS...]

Starts N copies of CMD with RANK, LOCAL_RANK, WORLD_SIZE, LOCAL_WORLD_SIZE,
MASTER_ADDR=127.0.0.1 and MASTER_PORT set (a free port unless --port).
Waits for all of them.  If one exits non-zero, prints
"rank R exited with status S", kills the rest and exits with S (128+signal
for a rank killed by a signal).  After --timeout seconds (default 300) it
kills everything and exits 124.
"""

import argparse
import os
import signal
import socket
import subprocess
import sys
import time


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def parse_args(argv):
    if "--" in argv:
        i = argv.index("--")
        opts, cmd = argv[:i], argv[i + 1:]
    else:
        opts, cmd = argv, []
    p = argparse.ArgumentParser(usage="%(prog)s -n N [--port P] [--timeout S] -- CMD...")
    p.add_argument("-n", "--nproc", type=int, required=True, help="number of ranks")
    p.add_argument("--port", type=int, default=0, help="MASTER_PORT (default: a free port)")
    p.add_argument("--timeout", type=float, default=300.0,
                   help="kill everything and exit 124 after this many seconds (default 300)")
    args = p.parse_args(opts)
    if not cmd:
        p.error("missing command after --")
    if args.nproc < 1:
        p.error("-n must be >= 1")
    return args, cmd


def status_of(rc):
    """Exit status to report/propagate for a Popen returncode."""
    return 128 - rc if rc < 0 else rc


def kill_all(procs, grace=5.0):
    """SIGTERM every still-running rank's process group, SIGKILL after grace."""
    live = [p for p in procs if p.poll() is None]
    for p in live:
        try:
            os.killpg(p.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + grace
    for p in live:
        try:
            p.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
    for p in live:
        # SIGKILL whatever is left, including children that outlived the rank
        # itself (the group id stays valid while any member is alive).
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        p.wait()


def main(argv=None):
    args, cmd = parse_args(sys.argv[1:] if argv is None else argv)
    port = args.port or free_port()

    procs = []

    def on_signal(signum, _frame):
        kill_all(procs)
        sys.exit(128 + signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    for r in range(args.nproc):
        env = dict(os.environ)
        env.update({
            "RANK": str(r),
            "LOCAL_RANK": str(r),
            "WORLD_SIZE": str(args.nproc),
            "LOCAL_WORLD_SIZE": str(args.nproc),
            "GROUP_RANK": "0",
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
        })
        # Own session/process group per rank so that killing a rank also
        # kills anything it spawned (e.g. when CMD is a shell wrapper).
        procs.append(subprocess.Popen(cmd, env=env, start_new_session=True))

    deadline = time.monotonic() + args.timeout
    remaining = set(range(args.nproc))
    while remaining:
        for r in sorted(remaining):
            rc = procs[r].poll()
            if rc is None:
                continue
            remaining.discard(r)
            if rc != 0:
                st = status_of(rc)
                print(f"rank {r} exited with status {st}"
                      + (f" (signal {-rc})" if rc < 0 else ""), file=sys.stderr, flush=True)
                kill_all(procs)
                return st
        if not remaining:
            break
        if time.monotonic() >= deadline:
            print(f"launch.py: timeout after {args.timeout:g} s, killing ranks "
                  + " ".join(str(r) for r in sorted(remaining)), file=sys.stderr, flush=True)
            kill_all(procs)
            return 124
        time.sleep(0.02)
    return 0


if __name__ == "__main__":
    sys.exit(main())
