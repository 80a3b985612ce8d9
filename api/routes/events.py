"""POST /api/events: discrete agent events, produced like vitals and landed by the sink."""
import json
import time

from fastapi import APIRouter

from pipeline.topics import AGENT_EVENTS

from ..auth import Tenant
from ..deps import IdsDep, ProducerDep, SettingsDep
from ..models import ErrorOut, EventCreated, EventIn, EventOut, iso_ms
from ..publish import publish

router = APIRouter(tags=["events"])


@router.post("/api/events", response_model=EventCreated,
             responses={400: {"model": ErrorOut}, 401: {"model": ErrorOut}, 503: {"model": ErrorOut}})
async def report_event(body: EventIn, tenant: Tenant, settings: SettingsDep,
                       producer: ProducerDep, ids: IdsDep) -> EventCreated:
    metadata = body.metadata or {}
    record = {
        "tenant": tenant,
        "id": ids.next_id(),
        "agent_id": body.agentId,
        "event_type": body.type,
        "details": body.details,
        "metadata": json.dumps(metadata, separators=(",", ":"), ensure_ascii=False),
        "recorded_at": time.time_ns() // 1_000_000,
    }
    await publish(producer, settings.topic(AGENT_EVENTS.name), "agent_event", record)
    return EventCreated(event=EventOut(id=record["id"], agent_id=body.agentId, event_type=body.type,
                                       details=body.details, metadata=metadata,
                                       recorded_at=iso_ms(record["recorded_at"])))
