"""Agent reads, answered from ClickHouse and always filtered by the caller's tenant."""
import json
from typing import Annotated

from fastapi import APIRouter, Query

from pipeline.health import status

from ..auth import Tenant
from ..deps import StoreDep
from ..errors import ApiError
from ..models import AgentOut, AgentsList, ErrorOut, EventOut, EventsList, VitalRecord, VitalsList, iso_ms

router = APIRouter(tags=["agents"])

Limit = Annotated[int, Query(ge=1, le=500, description="Number of records to return. Default 50, max 500.")]
NOT_FOUND = {404: {"model": ErrorOut}, 401: {"model": ErrorOut}}

_AGENTS = """
SELECT l.agent_id AS agent_id, if(n.name = '', l.agent_id, n.name) AS name, l.overall_health AS overall_health,
       l.token_consumption AS token_consumption, l.hallucination_rate AS hallucination_rate,
       l.loop_frequency AS loop_frequency, l.directive_conflicts AS directive_conflicts,
       toUnixTimestamp64Milli(l.recorded_at) AS last_ms
FROM (SELECT * FROM agent_latest FINAL WHERE tenant = %(tenant)s) AS l
LEFT JOIN (SELECT agent_id, name FROM agent_names FINAL WHERE tenant = %(tenant)s) AS n USING (agent_id)
{where}
ORDER BY l.recorded_at DESC, l.agent_id
SETTINGS join_use_nulls = 0
"""

_VITALS = """
SELECT id, agent_id, token_consumption, token_limit, hallucination_rate, loop_frequency,
       directive_conflicts, overall_health, metadata, toUnixTimestamp64Milli(recorded_at) AS recorded_ms
FROM agent_vitals FINAL
WHERE tenant = %(tenant)s AND agent_id = %(agent)s
ORDER BY recorded_at DESC, id DESC
LIMIT %(limit)s
"""

_EVENTS = """
SELECT id, agent_id, event_type, details, metadata, toUnixTimestamp64Milli(recorded_at) AS recorded_ms
FROM agent_events FINAL
WHERE tenant = %(tenant)s AND agent_id = %(agent)s
ORDER BY recorded_at DESC, id DESC
LIMIT %(limit)s
"""


def _agent(r: dict) -> AgentOut:
    at = iso_ms(r["last_ms"])  # an agent changes only by reporting, so both times are its last report
    return AgentOut(agent_id=r["agent_id"], name=r["name"], status=status(r["overall_health"]),
                    overall_health=r["overall_health"], token_consumption=r["token_consumption"],
                    hallucination_rate=r["hallucination_rate"], loop_frequency=r["loop_frequency"],
                    directive_conflicts=r["directive_conflicts"], last_vitals_at=at, updated_at=at)


async def _require_agent(store, tenant: str, agent_id: str) -> None:
    rows = await store.rows(_AGENTS.format(where="WHERE l.agent_id = %(agent)s"), {"tenant": tenant, "agent": agent_id})
    if not rows:
        raise ApiError(404, "Agent not found", f"No agent {agent_id!r} for this API key")


@router.get("/api/agents", response_model=AgentsList, responses={401: {"model": ErrorOut}})
async def list_agents(tenant: Tenant, store: StoreDep) -> AgentsList:
    rows = await store.rows(_AGENTS.format(where=""), {"tenant": tenant})
    return AgentsList(agents=[_agent(r) for r in rows])


@router.get("/api/agents/{agent_id}/vitals", response_model=VitalsList, responses=NOT_FOUND)
async def agent_vitals(agent_id: str, tenant: Tenant, store: StoreDep, limit: Limit = 50) -> VitalsList:
    await _require_agent(store, tenant, agent_id)
    rows = await store.rows(_VITALS, {"tenant": tenant, "agent": agent_id, "limit": limit})
    return VitalsList(vitals=[
        VitalRecord(
            id=r["id"], agent_id=r["agent_id"], token_consumption=r["token_consumption"],
            token_limit=r["token_limit"], hallucination_rate=r["hallucination_rate"],
            loop_frequency=r["loop_frequency"], directive_conflicts=r["directive_conflicts"],
            overall_health=r["overall_health"], metadata=json.loads(r["metadata"]),
            recorded_at=iso_ms(r["recorded_ms"]),
        ) for r in rows
    ])


@router.get("/api/agents/{agent_id}/events", response_model=EventsList, responses=NOT_FOUND)
async def agent_events(agent_id: str, tenant: Tenant, store: StoreDep, limit: Limit = 50) -> EventsList:
    """Events of an agent, newest first (beyond the reference: its 'agent detail view')."""
    rows = await store.rows(_EVENTS, {"tenant": tenant, "agent": agent_id, "limit": limit})
    if not rows:
        await _require_agent(store, tenant, agent_id)
    return EventsList(events=[
        EventOut(id=r["id"], agent_id=r["agent_id"], event_type=r["event_type"], details=r["details"],
                 metadata=json.loads(r["metadata"]), recorded_at=iso_ms(r["recorded_ms"])) for r in rows
    ])
