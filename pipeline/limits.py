"""Rate limits: the one home of their numbers and rules.

Vitals: one report per agent per VITALS_INTERVAL_S (reference 003). The limiter's
check-and-set is synchronous, so on one event loop no two concurrent requests can both
pass: of 50 simultaneous reports for one agent exactly one is accepted. The window is
per api process (state in memory); a report whose write then fails gives its slot back.
"""
import math
import time
from dataclasses import dataclass

VITALS_INTERVAL_S = 10.0


@dataclass(frozen=True)
class Denied:
    retry_after_ms: int

    @property
    def retry_after_seconds(self) -> int:
        return math.ceil(self.retry_after_ms / 1000)


class IntervalLimiter:
    """At most one grant per key per `interval` seconds."""

    def __init__(self, interval: float, clock=time.monotonic, prune_every: int = 10_000):
        self.interval, self._clock, self._prune_every = interval, clock, prune_every
        self._next: dict[object, float] = {}  # key -> earliest time of its next grant
        self._grants = 0

    def acquire(self, key) -> Denied | None:
        now = self._clock()
        ready = self._next.get(key, now)
        if now < ready:
            return Denied(math.ceil((ready - now) * 1000))
        self._next[key] = now + self.interval
        self._grants += 1
        if self._grants % self._prune_every == 0:  # forget keys whose window has passed
            self._next = {k: t for k, t in self._next.items() if t > now}
        return None

    def release(self, key) -> None:
        """Undo the last grant of `key` (its write failed, so it did not count)."""
        self._next.pop(key, None)
