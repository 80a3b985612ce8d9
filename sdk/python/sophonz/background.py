"""BackgroundReporter: reports that never delay, and never break, the agent.

`report_vitals` and `report_event` encode the report, put it on a bounded queue and
return at once; one daemon thread sends the queue in order with the AgentClient's retry
rules. Nothing here raises into the agent: every report that is not delivered is counted
in `drops` under one reason:

    queue_full  the queue held `queue_size` reports already
    invalid     bad input: refused before queueing (not JSON, agent_id not a non-empty
                string), or answered 400 by the server
    refused     any other answer that is not retried (401, 403, 404, 500, ...), or no API key
    gave_up     no success within the retry budget (network errors, 429, 502-504)
    closed      reported after close(), or still queued or in flight when close() ran out of time
"""
from __future__ import annotations

import atexit
import threading
import time
from collections import deque
from typing import Any, Deque, Dict, Optional

from ._backoff import Backoff, retryable
from .agents import AgentClient, Prepared, _Requests
from .errors import SophonzError

DROP_REASONS = ("queue_full", "invalid", "refused", "gave_up", "closed")


class BackgroundReporter:
    """Sends an AgentClient's reports from a bounded queue on a daemon thread.

    queue_size    Reports waiting at most; one more is dropped (counted, queue_full).
    exit_timeout  Seconds the interpreter's exit waits for the queue to drain (atexit),
                  after which what is left is dropped (counted, closed).
    """

    def __init__(self, client: AgentClient, *, queue_size: int = 1000, exit_timeout: float = 5.0):
        if isinstance(queue_size, bool) or not isinstance(queue_size, int) or queue_size < 1:
            raise ValueError("queue_size must be a positive int")
        if isinstance(exit_timeout, bool) or not isinstance(exit_timeout, (int, float)) or not exit_timeout >= 0:
            raise ValueError("exit_timeout must be a non-negative number of seconds")
        self.client = client
        self.queue_size = queue_size
        self.exit_timeout = float(exit_timeout)
        self.sent = 0
        self.last_error: Optional[SophonzError] = None  # the last failure seen, retried or not
        self._drops = dict.fromkeys(DROP_REASONS, 0)
        self._queue: Deque[Prepared] = deque()
        self._in_flight = False
        self._closed = False
        self._lock = threading.Condition()
        self._stop = threading.Event()  # set by close(): ends the thread, cuts a retry wait short
        self._thread = threading.Thread(target=self._run, name="sophonz-background-reporter", daemon=True)
        self._thread.start()
        atexit.register(self._at_exit)

    def __repr__(self) -> str:
        return f"BackgroundReporter(base_url={self.client.base_url!r}, pending={self.pending}, dropped={self.dropped})"

    # -- the agent's side: never blocks, never raises -----------------------------------------

    def report_vitals(self, agent_id: str, metrics: Optional[Dict[str, Any]] = None, *,
                      agent_name: Optional[str] = None, metadata: Optional[Dict[str, Any]] = None) -> bool:
        """Queue POST /api/vitals; True if queued, False if dropped (counted)."""
        return self._put(agent_id, lambda: _Requests.report_vitals(agent_id, metrics, agent_name, metadata))

    def report_event(self, agent_id: str, type: str, details: Optional[str] = None, *,
                     metadata: Optional[Dict[str, Any]] = None) -> bool:
        """Queue POST /api/events; True if queued, False if dropped (counted)."""
        return self._put(agent_id, lambda: _Requests.report_event(agent_id, type, details, metadata))

    def _put(self, agent_id: Any, prepare) -> bool:
        try:
            if not isinstance(agent_id, str) or not agent_id:
                raise ValueError("agent_id must be a non-empty string")
            # Encoded now: what is sent is what the agent reported, even if it changes its
            # dicts afterwards, and bad input is counted here rather than lost later.
            prepared = prepare()
        except Exception:  # noqa: BLE001 - reporting must never raise into the agent
            return self._drop("invalid")
        with self._lock:
            if self._closed:
                self._drops["closed"] += 1
                return False
            if len(self._queue) >= self.queue_size:
                self._drops["queue_full"] += 1
                return False
            self._queue.append(prepared)
            self._lock.notify_all()
        return True

    # -- what happened ----------------------------------------------------------------------

    @property
    def drops(self) -> Dict[str, int]:
        """Reports not delivered so far, by reason (a copy)."""
        with self._lock:
            return dict(self._drops)

    @property
    def dropped(self) -> int:
        """Reports not delivered so far, all reasons."""
        with self._lock:
            return sum(self._drops.values())

    @property
    def pending(self) -> int:
        """Reports queued or being sent."""
        with self._lock:
            return len(self._queue) + self._in_flight

    def flush(self, timeout: Optional[float] = None) -> bool:
        """Wait until every queued report was sent or dropped, at most `timeout` seconds
        (None: as long as it takes). True if nothing is pending any more."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while self._queue or self._in_flight:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._lock.wait(left)
            return True

    def close(self, timeout: Optional[float] = None) -> bool:
        """Stop taking reports, send what is queued for at most `timeout` seconds (None:
        as long as it takes), then stop the thread; what is left is dropped (counted,
        closed). True if everything queued was sent or dropped for its own reason."""
        with self._lock:
            self._closed = True
            self._lock.notify_all()
        drained = self.flush(timeout)
        with self._lock:
            if not drained:
                # An attempt in flight cannot be interrupted; its outcome is not counted
                # again (see _run), so the counts are final when close() returns.
                self._drops["closed"] += len(self._queue) + self._in_flight
                self._queue.clear()
                self._in_flight = False
            self._stop.set()  # under the lock: the thread checks it before each wait
            self._lock.notify_all()
        atexit.unregister(self._at_exit)
        if drained:
            self._thread.join(1)
        return drained

    def _at_exit(self) -> None:
        self.close(self.exit_timeout)

    # -- the daemon thread ----------------------------------------------------------------

    def _drop(self, reason: str) -> bool:
        with self._lock:
            self._drops[reason] += 1
        return False

    def _run(self) -> None:
        while True:
            with self._lock:
                while not self._queue and not self._stop.is_set():
                    self._lock.wait()
                if not self._queue:  # stopped by close()
                    return
                prepared = self._queue.popleft()
                self._in_flight = True
            outcome = self._deliver(prepared)
            with self._lock:
                if self._in_flight:  # else close() gave up on it and counted it already
                    self._in_flight = False
                    if outcome == "sent":
                        self.sent += 1
                    else:
                        self._drops[outcome] += 1
                self._lock.notify_all()

    def _deliver(self, prepared: Prepared) -> str:
        """Send one report with the retry rules: "sent" or the reason it was dropped."""
        backoff = Backoff(self.client.max_retry)
        while True:
            try:
                self.client.attempt(prepared)
                return "sent"
            except SophonzError as err:
                self.last_error = err
                wait = backoff.wait_after(err)
                if wait is None:
                    if retryable(err):
                        return "gave_up"
                    return "invalid" if err.status == 400 else "refused"
            except Exception as exc:  # noqa: BLE001 - a bug here must not kill the thread
                self.last_error = SophonzError(0, "Client error", repr(exc))
                return "refused"
            if self._stop.wait(wait):
                return "closed"
