"""One HTTP exchange and the SophonzError it turns a failure into, shared by the /v1
`Client` and the agent clients so both report failures the same way (standard library only)."""
from __future__ import annotations

import email.utils
import http.client
import json
import math
import socket
import time
import urllib.error
import urllib.request
from datetime import timezone
from email.message import Message
from typing import Any, Dict, Optional, Tuple

from .errors import SophonzError


def exchange(method: str, url: str, headers: Dict[str, str], data: Optional[bytes],
             timeout: float) -> Tuple[int, Message, Any]:
    """Send one request; return (status, headers, parsed body) for any answer, 2xx or not.
    Raises SophonzError with status 0 only when no answer arrived (network error, timeout)."""
    req = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        try:
            with urllib.request.urlopen(req, timeout=timeout) as res:
                status, res_headers, raw = res.status, res.headers, res.read()
        except urllib.error.HTTPError as exc:  # a non-2xx answer
            with exc:
                status, res_headers, raw = exc.code, exc.headers, exc.read()
    except (socket.timeout, TimeoutError) as exc:
        raise SophonzError(0, "Timeout", f"No answer from {url} within {timeout} s") from exc
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, (socket.timeout, TimeoutError)):
            raise SophonzError(0, "Timeout", f"No answer from {url} within {timeout} s") from exc
        raise SophonzError(0, "Network error", f"Cannot reach {url}: {reason}") from exc
    except (OSError, http.client.HTTPException) as exc:
        raise SophonzError(0, "Network error", f"Cannot reach {url}: {exc!r}") from exc
    return status, res_headers, parse_body(raw)


def parse_body(raw: bytes) -> Any:
    """The parsed JSON, the text when it is not JSON, None when empty."""
    text = raw.decode("utf-8", errors="replace")
    try:
        return json.loads(text) if text.strip() else None
    except ValueError:
        return text


def error_for(status: int, headers: Message, parsed: Any, what: str) -> SophonzError:
    """The SophonzError for a non-2xx answer, from the server's {"error", "message", "field"}
    body; `what` ("GET /applications") names the request when the body has no message."""
    err = parsed if isinstance(parsed, dict) else {}
    retry_after = retry_after_seconds(headers.get("Retry-After"))
    if retry_after is None and isinstance(err.get("retry_after_seconds"), int):
        retry_after = err["retry_after_seconds"]
    error = err.get("error") or http.client.responses.get(status, "HTTP error")
    message = err.get("message") or (parsed.strip()[:500] if isinstance(parsed, str) else "")
    return SophonzError(status, str(error), str(message or f"{what} answered {status}"),
                        field=err.get("field"), retry_after=retry_after, body=parsed)


def retry_after_seconds(value: Optional[str]) -> Optional[int]:
    """Retry-After as whole seconds: delta-seconds or an HTTP date."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return int(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0, math.ceil(when.timestamp() - time.time()))
