"""The one exception the client raises for a failed request."""
from __future__ import annotations

from typing import Any, Optional


class SophonzError(Exception):
    """A request that did not get a 2xx answer, or got no answer at all.

    status       HTTP status (400, 401, 403, 404, 429, 500, 503, ...); 0 when no answer
                 arrived (connection refused, DNS failure, timeout).
    error        The server's short, stable error text ("Invalid request", "Not found",
                 "Rate limit exceeded", ...); "Network error" or "Timeout" when status is 0.
    message      What went wrong and what to do, as the server said it.
    field        The offending input ("name", "points[3].value", ...) on a 400, else None.
    retry_after  Seconds to wait before trying again, from the Retry-After header (429
                 and 503 answers), else None. The client never retries by itself.
    body         The parsed JSON error body (a dict), or the raw text, or None.
    """

    def __init__(self, status: int, error: str, message: str, *, field: Optional[str] = None,
                 retry_after: Optional[int] = None, body: Any = None):
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message
        self.field = field
        self.retry_after = retry_after
        self.body = body

    def __str__(self) -> str:
        where = f" (field: {self.field})" if self.field else ""
        return f"{self.status} {self.error}: {self.message}{where}"

    def __repr__(self) -> str:
        return (f"SophonzError(status={self.status!r}, error={self.error!r}, message={self.message!r}, "
                f"field={self.field!r}, retry_after={self.retry_after!r})")
