"""How the api is served: the one home of its HTTP server settings, shared by `sophra api`,
`sophra up` and the bench's bare baseline app (bench/bare_api.py), so that a comparison
between them measures the app and not the server.

uvloop and httptools (uvicorn[standard]) cost a fraction of asyncio's loop and h11 per
request; the access log is off because a log line per request would cost about as much
as the request (Prometheus counts every answer: api/observability.py).
"""
import asyncio
from typing import Any, Coroutine

import uvicorn
import uvloop


def http_server(app, host: str, port: int, **extra) -> uvicorn.Server:
    return uvicorn.Server(uvicorn.Config(app, host=host, port=port, loop="uvloop", http="httptools",
                                         access_log=False, log_level="warning", **extra))


def run(main: Coroutine[Any, Any, int]) -> int:
    """asyncio.run on uvloop: `Server.serve()` runs on whatever loop is running, so the
    loop setting above takes effect only through this."""
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)
