"""The agent clients' retry rules, the JavaScript agent SDK's (sdk/sophra-sdk.js) in seconds.

Retried: no answer (network error, timeout) and 429, 502, 503, 504. Any other answer is
final: other 4xx mean the request itself is wrong, and a 500 may already have stored it.
Waits are exponential with full jitter (random up to 0.5 s, 1 s, 2 s, ... capped at 8 s),
never shorter than what the server asked for (Retry-After, or the body's retry_after_ms),
and no retry starts later than `max_retry` seconds after the first attempt: when the
server's wait ends past that budget, the client gives up at once instead of sleeping only
to be refused again. A retry after a network error can store a report twice if the first
attempt reached the server; for monitoring data that beats losing it.
"""
from __future__ import annotations

import math
import random
import time
from typing import Optional

from .errors import SophonzError

RETRYABLE_STATUS = frozenset({429, 502, 503, 504})
BACKOFF_BASE = 0.5
BACKOFF_CAP = 8.0
# Spread added on top of a server-mandated wait, so clients told the same Retry-After do
# not all come back in the same millisecond.
RETRY_AFTER_SPREAD = 0.25


def server_wait(err: SophonzError) -> Optional[float]:
    """The least wait the server asked for, in seconds: the larger of Retry-After and the
    body's retry_after_ms; None when it asked for none."""
    waits = []
    if err.retry_after is not None:
        waits.append(float(err.retry_after))
    body = err.body if isinstance(err.body, dict) else {}
    ms = body.get("retry_after_ms")
    if isinstance(ms, (int, float)) and not isinstance(ms, bool) and math.isfinite(ms):
        waits.append(max(0.0, ms / 1000))
    return max(waits) if waits else None


def retryable(err: SophonzError) -> bool:
    # status 0 is "no answer" only when the error is a network one, not a missing key
    return err.status in RETRYABLE_STATUS or (err.status == 0 and err.error in ("Network error", "Timeout"))


class Backoff:
    """The retry budget of one request, from its first attempt on."""

    def __init__(self, max_retry: float):
        self.deadline = time.monotonic() + max_retry
        self.tries = 0

    def wait_after(self, err: SophonzError) -> Optional[float]:
        """Seconds to wait before trying again after `err`, or None to give up with it."""
        if not retryable(err):
            return None
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            return None
        wait = random.random() * min(BACKOFF_CAP, BACKOFF_BASE * 2 ** self.tries)
        minimum = server_wait(err)
        if minimum is not None:
            if minimum > remaining:
                return None
            wait = max(wait, minimum + random.random() * RETRY_AFTER_SPREAD)
            wait = max(minimum, min(wait, remaining))
        else:
            wait = min(wait, remaining)
        self.tries += 1
        return wait
