"""POST /api/vitals: validate, score health, produce the record, answer once Kafka has it;
with the agent's budget state beside the reference's fields when a budget covers it
(the throttle signal, api/budgets.py)."""
import json
import time

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from pipeline import health
from pipeline.limits import VITALS_INTERVAL_S, Denied
from pipeline.topics import AGENT_VITALS

from ..auth import Tenant
from ..budgets import signal
from ..errors import ApiError, invalid
from ..models import ErrorOut, RateLimited, VitalCreated, VitalOut, VitalsIn, iso_ms
from ..publish import publish

router = APIRouter(tags=["vitals"])


@router.post("/api/vitals", response_model=VitalCreated,
             responses={400: {"model": ErrorOut}, 401: {"model": ErrorOut}, 429: {"model": RateLimited},
                        503: {"model": ErrorOut}})
async def report_vitals(body: VitalsIn, tenant: Tenant, request: Request) -> VitalCreated:
    record = await store_vitals(request.app.state, tenant, body)
    m = body.metrics
    answer = VitalCreated(health=record["overall_health"], vital=VitalOut(
        id=record["id"], agent_id=body.agentId, token_consumption=m.tokenConsumption,
        hallucination_rate=m.hallucinationRate, loop_frequency=m.loopCount,
        directive_conflicts=m.conflictCount, overall_health=record["overall_health"],
        recorded_at=iso_ms(record["recorded_at"]),
    ), budget=signal(request.app.state, record))
    # an agent no budget covers gets the reference's answer exactly, without a `budget` key
    return JSONResponse(answer.model_dump(exclude={"budget"} if answer.budget is None else None))


async def store_vitals(state, tenant: str, body: VitalsIn) -> dict:
    """Score, rate-limit and produce one validated report; the record once Kafka has it.
    The one write path of vitals: POST /api/vitals and OTLP ingest (api/otlp/) use it."""
    # The app's objects straight from its state: each dependency FastAPI solves costs
    # more per request than the attribute read it stands for (api/deps.py).
    settings, producer, ids, limiter = state.settings, state.producer, state.ids, state.vitals_limiter
    m = body.metrics
    try:  # custom metrics first, so the explicit metadata object wins on a shared key
        metadata = {**m.custom(), **(body.metadata or {})}
    except ValueError as exc:
        field, _, why = str(exc).partition(" must ")
        raise invalid(field, "must " + why) from None
    overall = health.score(token_consumption=m.tokenConsumption, token_limit=m.tokenLimit,
                           hallucination_rate=m.hallucinationRate, loop_count=m.loopCount,
                           conflict_count=m.conflictCount)
    record = {
        "tenant": tenant,
        "id": ids.next_id(),
        "agent_id": body.agentId,
        "agent_name": body.agentName,
        "token_consumption": m.tokenConsumption,
        "token_limit": m.tokenLimit,
        "hallucination_rate": m.hallucinationRate,
        "loop_frequency": m.loopCount,
        "directive_conflicts": m.conflictCount,
        "overall_health": overall,
        "metadata": json.dumps(metadata, separators=(",", ":"), ensure_ascii=False),
        "recorded_at": time.time_ns() // 1_000_000,
    }
    grant = limiter.acquire((tenant, body.agentId), token=record["id"])
    if isinstance(grant, Denied):
        raise ApiError(429, "Rate limit exceeded",
                       f"One vitals report per agent per {VITALS_INTERVAL_S:g} s; retry in {grant.retry_after_seconds} s",
                       headers={"Retry-After": str(grant.retry_after_seconds)},
                       retry_after_ms=grant.retry_after_ms, retry_after_seconds=grant.retry_after_seconds)
    stored = False
    try:
        await publish(producer, settings.topic(AGENT_VITALS.name), "agent_vital", record)
        stored = True
    finally:
        if not stored:  # whatever failed (or was cancelled), nothing was stored: the report does not count
            limiter.release(grant)
    return record
