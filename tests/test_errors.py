"""The one error shape, for the statuses no route raises on purpose."""
import asyncio

import httpx
from fastapi import FastAPI

from api import errors


def test_an_unhandled_error_is_a_500_in_the_error_shape():
    app = FastAPI()
    errors.install(app)

    @app.get("/api/boom")
    async def boom():
        raise RuntimeError("boom")

    async def run():
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            return await http.get("/api/boom"), await http.get("/api/nowhere")

    boom_res, missing = asyncio.run(run())
    assert (boom_res.status_code, boom_res.json()) == (500, {
        "success": False, "error": "Internal server error",
        "message": "The server failed to answer this request; retry later"})
    assert (missing.status_code, missing.json()) == (404, {"success": False, "error": "Not found",
                                                           "message": "Not Found"})
