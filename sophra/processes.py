"""Child processes of `sophra up` (the broker, the worker): one home for how they start,
stop and are restarted (`Supervisor`).

Each child runs in its own session, so a terminal Ctrl-C reaches only the supervisor,
which then stops the children in order; and each is bound to the supervisor's life
(Linux PR_SET_PDEATHSIG), so none outlives it even if it is killed outright. Linux
ties the death signal to the *thread* that forked the child: spawn from a thread that
lives as long as the child (normally the main one).
"""
import ctypes
import hashlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

_PR_SET_PDEATHSIG = 1


def up_worker_instance_id(data_dir: Path) -> str:
    """The static group member id of `sophra up`'s one worker: stable across its restarts,
    distinct for another `sophra up` (host, data folder) sharing a Kafka cluster."""
    return "up-" + hashlib.sha1(f"{socket.gethostname()}:{Path(data_dir).resolve()}".encode()).hexdigest()[:12]


def _die_with_parent(parent_pid: int, sig: int = signal.SIGTERM):
    if not sys.platform.startswith("linux"):
        return None  # elsewhere the supervisor's own shutdown path still stops children
    libc = ctypes.CDLL(None, use_errno=True)

    def preexec() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
        if os.getppid() != parent_pid:  # the parent died before prctl took effect
            os._exit(1)

    return preexec


def spawn(args: list[str], *, stdout=None, env: dict | None = None, cwd=None,
          death_signal: int = signal.SIGTERM) -> subprocess.Popen:
    """Start a child whose output goes to `stdout` (a file object; None = inherit), sent
    `death_signal` if this process dies without stopping it."""
    return subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=stdout,
                            stderr=subprocess.STDOUT if stdout is not None else None, env=env, cwd=cwd,
                            start_new_session=True, preexec_fn=_die_with_parent(os.getpid(), death_signal))


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


class Supervisor:
    """Keeps `sophra up`'s children running: one that exits is started again after a
    backoff (1 s, doubling to 30 s; back to 1 s once it ran a minute), and each restart
    is printed. One thread does every start, restart and stop, so the death signal above
    stays tied to a thread that lives as long as the children; `stop` stops them in
    the reverse order of `add` (the worker still needs the broker to commit)."""

    BASE_S, CAP_S, HEALTHY_S, POLL_S = 1.0, 30.0, 60.0, 0.2

    def __init__(self, out=None):
        self.out = out or sys.stdout
        self._children: list[dict] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="supervisor", daemon=True)
        self.restarts: dict[str, int] = {}

    def run(self, name: str, start, stop, process, timeout: float = 120) -> None:
        """Start a child on the supervisor's thread and keep it running. `start()` starts it
        (returning once it is ready), `stop()` stops it, `process()` is its current
        subprocess.Popen (or None). Raises what a failed first start raised."""
        child = {"name": name, "start": start, "stop": stop, "process": process, "ready": threading.Event(),
                 "error": None, "due": None, "failures": 0, "since": 0.0}
        with self._lock:
            self._children.append(child)
        if not self._thread.is_alive():
            self._thread.start()
        if not child["ready"].wait(timeout):
            raise RuntimeError(f"{name} did not start within {timeout:.0f} s")
        if child["error"] is not None:
            raise child["error"]

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                with self._lock:
                    children = list(self._children)
                for child in children:
                    if not child["ready"].is_set():
                        self._first_start(child)
                    elif child["error"] is None:
                        self._watch(child)
                self._stop.wait(self.POLL_S)
        finally:
            for child in reversed(self._children):
                if child["error"] is None and child["ready"].is_set():
                    try:
                        child["stop"]()
                    except Exception as exc:  # stop the others all the same
                        self._say(f"stopping {child['name']}: {exc}")

    def _first_start(self, child: dict) -> None:
        try:
            child["start"]()
            child["since"] = time.monotonic()
        except BaseException as exc:  # noqa: BLE001 - raised again by run() in its caller
            child["error"] = exc
        child["ready"].set()

    def _watch(self, child: dict) -> None:
        now = time.monotonic()
        if child["due"] is None:
            proc = child["process"]()
            code = proc.poll() if proc is not None else None
            if proc is None or code is None:
                return
            if now - child["since"] >= self.HEALTHY_S:
                child["failures"] = 0
            delay = min(self.BASE_S * 2 ** child["failures"], self.CAP_S)
            child["failures"] += 1
            child["due"] = now + delay
            self._say(f"{child['name']} exited with {code}, restarting in {delay:.0f} s")
            return
        if now < child["due"]:
            return
        child["due"] = None
        try:
            child["stop"]()  # release what the dead one held (the broker's folder lock)
            child["start"]()
        except Exception as exc:
            child["failures"] += 1
            delay = min(self.BASE_S * 2 ** child["failures"], self.CAP_S)
            child["due"] = time.monotonic() + delay
            self._say(f"{child['name']} did not start ({exc}), retrying in {delay:.0f} s")
            return
        child["since"] = time.monotonic()
        self.restarts[child["name"]] = self.restarts.get(child["name"], 0) + 1
        proc = child["process"]()
        self._say(f"{child['name']} restarted (pid {proc.pid if proc else '?'})")
