"""Child processes of `sophra up` (the broker, the worker): one home for how they start and stop.

Each child runs in its own session, so a terminal Ctrl-C reaches only the supervisor,
which then stops the children in order; and each is bound to the supervisor's life
(Linux PR_SET_PDEATHSIG), so none outlives it even if it is killed outright. Linux
ties the death signal to the *thread* that forked the child: spawn from a thread that
lives as long as the child (normally the main one).
"""
import ctypes
import os
import signal
import subprocess
import sys

_PR_SET_PDEATHSIG = 1


def _die_with_parent(parent_pid: int):
    if not sys.platform.startswith("linux"):
        return None  # elsewhere the supervisor's own shutdown path still stops children
    libc = ctypes.CDLL(None, use_errno=True)

    def preexec() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
        if os.getppid() != parent_pid:  # the parent died before prctl took effect
            os._exit(1)

    return preexec


def spawn(args: list[str], *, stdout=None, env: dict | None = None, cwd=None) -> subprocess.Popen:
    """Start a child whose output goes to `stdout` (a file object; None = inherit)."""
    return subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=stdout,
                            stderr=subprocess.STDOUT if stdout is not None else None,
                            env=env, cwd=cwd, start_new_session=True, preexec_fn=_die_with_parent(os.getpid()))


def terminate(proc: subprocess.Popen | None, timeout: float = 30) -> int | None:
    """SIGTERM, wait up to `timeout`, then SIGKILL. Idempotent; returns the exit code."""
    if proc is None:
        return None
    if proc.poll() is None:
        try:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.wait()
