"""Operator endpoints (docs/operations.md), outside the public API's schema.

    GET /healthz   liveness: the process answers (nothing else is checked)
    GET /readyz    readiness: Kafka answers, ClickHouse answers, and the sink is alive and
                   less than SOPHRA_READY_MAX_SINK_LAG records behind; 200 or 503, with
                   each check's result
    GET /metrics   Prometheus exposition of this process (api/observability.py); with
                   SOPHRA_METRICS_TOKEN set, only for `Authorization: Bearer <token>`
"""
import asyncio
import secrets
import time

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

router = APIRouter(tags=["operations"])

CHECK_TIMEOUT_S = 10.0  # above the sum of a check's admin calls (2 s each), so a slow broker is seen as slow


@router.get("/healthz", include_in_schema=False)
async def healthz():
    return {"ok": True}


async def _check(fn, *args) -> dict:
    started = time.perf_counter()
    try:
        value = await asyncio.wait_for(fn(*args), CHECK_TIMEOUT_S)
        out = {"ok": True}
        if value is not None:
            out.update(value)
    except asyncio.TimeoutError:
        out = {"ok": False, "error": f"no answer within {CHECK_TIMEOUT_S:g} s"}
    except Exception as exc:
        out = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:300]}
    out["ms"] = round((time.perf_counter() - started) * 1000, 1)
    return out


@router.get("/readyz", include_in_schema=False)
async def readyz(request: Request) -> Response:
    state = request.app.state
    obs, store, sink = state.observability, state.store, state.sink
    max_lag = state.settings.ready_max_sink_lag

    async def kafka():
        return {"partitions": await asyncio.to_thread(obs.kafka_answers)}

    async def clickhouse():
        await store.rows("SELECT 1 AS one")

    async def sink_lag():
        if sink is not None and not sink.alive:
            raise RuntimeError("the embedded sink is not running")
        lag = await asyncio.to_thread(obs.sink_lag)
        if lag > max_lag:
            raise RuntimeError(f"{lag} records behind, more than {max_lag}")
        return {"records_behind": lag}

    checks = dict(zip(("kafka", "clickhouse", "sink"),
                      await asyncio.gather(_check(kafka), _check(clickhouse), _check(sink_lag))))
    ready = all(c["ok"] for c in checks.values())
    return JSONResponse({"ready": ready, "checks": checks}, status_code=200 if ready else 503,
                        headers={"Cache-Control": "no-store"})


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    token = request.app.state.settings.metrics_token
    if token:
        given = request.headers.get("authorization", "")
        if not secrets.compare_digest(given.encode(), f"Bearer {token}".encode()):
            return PlainTextResponse("metrics need the operator's token (SOPHRA_METRICS_TOKEN)", status_code=401,
                                     headers={"WWW-Authenticate": "Bearer"})
    body = await asyncio.to_thread(generate_latest, request.app.state.observability.registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
