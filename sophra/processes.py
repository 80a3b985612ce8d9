"""Child processes of `sophra up`: started in their own session (a terminal Ctrl-C reaches
only the supervisor, which then stops them in order) and bound to the supervisor's life
(PR_SET_PDEATHSIG), so no child outlives it even if it is killed outright."""
import ctypes
import os
import signal
import subprocess

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:  # not Linux: the supervisor's own shutdown path still stops children
        pass


def spawn(args: list[str], *, log_path: os.PathLike | None = None, env: dict | None = None) -> subprocess.Popen:
    out = open(log_path, "ab") if log_path else None
    try:
        return subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT if out else None, env=env,
                                start_new_session=True, preexec_fn=_die_with_parent)
    finally:
        if out:
            out.close()


def terminate(proc: subprocess.Popen | None, timeout: float = 30) -> int | None:
    """SIGTERM, wait up to `timeout`, then SIGKILL. Idempotent; returns the exit code."""
    if proc is None:
        return None
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode
