"""Refuse request bodies over a fixed cap before they are buffered whole.

Counts the bytes as they arrive and answers 400 naming `body` once the cap is passed.
A body with a Content-Length over the cap is refused unread; one without (chunked) is
read here up to the cap before the route runs, so the refusal is this 400 and not a
parse error inside the route. The cap is 64 KiB, except for the routes listed in
LARGER_BODIES: a metrics batch of up to 10,000 points (or an OTLP export) may take 2 MiB.
"""
import re

from .errors import invalid, send_error

MAX_BODY_BYTES = 64 * 1024
METRICS_BODY_BYTES = 2 * 1024 * 1024

# (method, path pattern, cap in bytes) for routes whose bodies are legitimately larger.
LARGER_BODIES = (
    ("POST", re.compile(r"^/v1/applications/[^/]+/metrics/?$"), METRICS_BODY_BYTES),
    # OTLP metrics as sent (compressed or not); api/otlp/body.py bounds the decompressed size
    ("POST", re.compile(r"^/otlp/v1/metrics/?$"), METRICS_BODY_BYTES),
)
_DIGITS = re.compile(rb"[0-9]{1,19}")


class BodyLimit:
    def __init__(self, app, max_bytes: int = MAX_BODY_BYTES, larger=LARGER_BODIES):
        self.app, self.max_bytes, self.larger = app, max_bytes, larger

    def cap(self, scope) -> int:
        for method, path, cap in self.larger:
            if scope["method"] == method and path.match(scope["path"]):
                return cap
        return self.max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        max_bytes = self.cap(scope)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and _DIGITS.fullmatch(declared):
            if int(declared) > max_bytes:
                return await self._refuse(send, max_bytes)
            # the server reads no more than Content-Length; counting still guards a lying one
        elif scope["method"] not in ("GET", "HEAD", "OPTIONS"):
            # No length given (chunked): read it all here, within the cap.
            chunks, seen, more = [], 0, True
            while more:
                message = await receive()
                if message["type"] != "http.request":
                    return
                chunks.append(message.get("body", b""))
                seen += len(chunks[-1])
                if seen > max_bytes:
                    return await self._refuse(send, max_bytes)
                more = message.get("more_body", False)
            receive = _replay(b"".join(chunks), receive)
        seen = 0

        async def limited_receive():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > max_bytes:
                    raise _TooLarge
            return message

        try:
            await self.app(scope, limited_receive, send)
        except _TooLarge:
            await self._refuse(send, max_bytes)

    async def _refuse(self, send, max_bytes: int):
        await send_error(send, invalid("body", f"larger than {max_bytes} bytes"))


def _replay(body: bytes, receive):
    """A receive that gives `body` whole once, then whatever the client sends next."""
    given = False

    async def replay():
        nonlocal given
        if given:
            return await receive()
        given = True
        return {"type": "http.request", "body": body, "more_body": False}
    return replay


class _TooLarge(Exception):
    pass
