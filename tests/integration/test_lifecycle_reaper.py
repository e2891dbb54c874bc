#!/usr/bin/env python3
"""Run a command under a parent that adopts its orphans (a child subreaper).

  test_lifecycle_reaper.py --never|--prompt CMD [ARGS...]

Makes this process a child subreaper (prctl PR_SET_CHILD_SUBREAPER), runs CMD
and exits with its status.  A daemon that CMD starts in the background (unid,
after unictl exits) is adopted by this process instead of init, so the test
decides what happens when it dies:

  --prompt  every child is reaped as soon as it dies (like systemd as init):
            a killed unid vanishes at once.
  --never   adopted children are not reaped: a killed unid stays a zombie,
            as for a while under a slow init and forever under a container
            PID 1 that does not reap.  The command can ask for a reap: write
            a pid to $UNI_TEST_REAPER_DIR/reap.pid and send SIGUSR1 to
            $UNI_TEST_REAPER_PID; this process reaps that pid and writes
            $UNI_TEST_REAPER_DIR/reaped ("reaped PID" or "error ...").

On exit every remaining zombie child is reaped; live ones are left to init.
"""

import ctypes
import os
import signal
import subprocess
import sys
import tempfile

PR_SET_CHILD_SUBREAPER = 36


def main():
    if len(sys.argv) < 3 or sys.argv[1] not in ("--never", "--prompt"):
        print("usage: test_lifecycle_reaper.py --never|--prompt CMD [ARGS...]", file=sys.stderr)
        return 99
    prompt = sys.argv[1] == "--prompt"
    cmd = sys.argv[2:]
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        print(f"prctl(PR_SET_CHILD_SUBREAPER): {os.strerror(ctypes.get_errno())}", file=sys.stderr)
        return 99
    d = tempfile.mkdtemp(prefix="reaper.")

    def on_usr1(_sig, _frame):
        try:
            with open(os.path.join(d, "reap.pid")) as f:
                pid = int(f.read().strip())
            os.waitpid(pid, 0)
            res = "reaped %d\n" % pid
        except Exception as e:  # noqa: BLE001 - reported to the test
            res = "error %s\n" % e
        with open(os.path.join(d, "reaped.tmp"), "w") as f:
            f.write(res)
        os.replace(os.path.join(d, "reaped.tmp"), os.path.join(d, "reaped"))

    env = dict(os.environ, UNI_TEST_REAPER_PID=str(os.getpid()), UNI_TEST_REAPER_DIR=d,
               UNI_TEST_REAPER_MODE=sys.argv[1][2:])
    if prompt:
        pid = os.fork()
        if pid == 0:
            try:
                os.execvpe(cmd[0], cmd, env)
            finally:
                os._exit(127)
        while True:  # reap every child as it dies, until CMD itself ends
            got, status = os.wait()
            if got == pid:
                rc = os.waitstatus_to_exitcode(status)
                break
    else:
        signal.signal(signal.SIGUSR1, on_usr1)
        p = subprocess.Popen(cmd, env=env)
        rc = p.wait()
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid == 0:
            break
    for name in ("reap.pid", "reaped", "reaped.tmp"):
        try:
            os.unlink(os.path.join(d, name))
        except FileNotFoundError:
            pass
    os.rmdir(d)
    return 128 - rc if rc < 0 else rc


if __name__ == "__main__":
    sys.exit(main())
