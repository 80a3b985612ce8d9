"""Rate limits: the one home of their numbers and rules.

Vitals: one report per agent per VITALS_INTERVAL_S (reference 003). The limiter's
check-and-set happens under a lock, so no two concurrent requests of one process can
both pass: of 50 simultaneous reports for one agent exactly one is accepted.

Each grant carries a token; only its holder can give it back (`release`), which the
route does when the report was not stored, whatever the failure. A grant another
api replica made reaches this one as a `mark` (pipeline/shared_limits.py tails the
stored reports), so the limit holds across replicas except within the sharing lag
(README, "Measured").
"""
import itertools
import math
import threading
import time
from dataclasses import dataclass

VITALS_INTERVAL_S = 10.0


@dataclass(frozen=True)
class Denied:
    retry_after_ms: int

    @property
    def retry_after_seconds(self) -> int:
        return math.ceil(self.retry_after_ms / 1000)


@dataclass(frozen=True)
class Grant:
    key: object
    token: int  # the vitals route uses the report's record id; 0 marks a window opened elsewhere


class IntervalLimiter:
    """At most one grant per key per `interval` seconds."""

    def __init__(self, interval: float, clock=time.monotonic, wall=time.time, prune_every: int = 10_000):
        self.interval, self._clock, self._wall, self._prune_every = interval, clock, wall, prune_every
        self._next: dict[object, tuple[float, int]] = {}  # key -> (earliest time of its next grant, holder's token)
        self._tokens = itertools.count(1)
        self._grants = 0
        self._lock = threading.Lock()  # marks arrive on the tail's thread

    def acquire(self, key, token: int | None = None) -> Grant | Denied:
        """A grant (holding `token`, a fresh one when not given), or how long to wait."""
        with self._lock:
            now = self._clock()
            ready, _ = self._next.get(key, (now, 0))
            if now < ready:
                return Denied(math.ceil((ready - now) * 1000))
            grant = Grant(key, token or next(self._tokens))
            self._next[key] = (now + self.interval, grant.token)
            self._grants += 1
            if self._grants % self._prune_every == 0:  # forget keys whose window has passed
                self._next = {k: v for k, v in self._next.items() if v[0] > now}
            return grant

    def release(self, grant: Grant) -> bool:
        """Undo `grant` (its report was not stored, so it did not count); a no-op, False,
        unless it still holds its key's window."""
        with self._lock:
            held = self._next.get(grant.key)
            if held is None or held[1] != grant.token:
                return False
            del self._next[grant.key]
            return True

    def mark(self, key, granted_at_ms: int, token: int) -> None:
        """A stored report of `key` made at `granted_at_ms` (epoch ms): no grant here until
        its window ends. Its own grant's report (same token) changes nothing; otherwise
        the later window wins."""
        with self._lock:
            now = self._clock()
            until = now + (granted_at_ms / 1000 + self.interval - self._wall())
            held = self._next.get(key)
            if held is not None and held[1] == token:
                return
            if until > now and (held is None or until > held[0]):
                self._next[key] = (until, 0)
