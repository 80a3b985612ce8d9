"""Refuse request bodies over a fixed cap before they are buffered whole.

Counts the bytes as they arrive (Content-Length can be absent or lie) and answers 400
naming `body` once the cap is passed. The cap is 64 KiB, except for the routes listed in
LARGER_BODIES: a metrics batch of up to 10,000 points may take 2 MiB.
"""
import json
import re

MAX_BODY_BYTES = 64 * 1024
METRICS_BODY_BYTES = 2 * 1024 * 1024

# (method, path pattern, cap in bytes) for routes whose bodies are legitimately larger.
LARGER_BODIES = (
    ("POST", re.compile(r"^/v1/applications/[^/]+/metrics/?$"), METRICS_BODY_BYTES),
)


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
        if declared is not None and declared.isdigit() and int(declared) > max_bytes:
            return await self._refuse(send, max_bytes)
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
        body = json.dumps({"success": False, "error": "Invalid request",
                           "message": f"body: larger than {max_bytes} bytes", "field": "body"}).encode()
        await send({"type": "http.response.start", "status": 400,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


class _TooLarge(Exception):
    pass
