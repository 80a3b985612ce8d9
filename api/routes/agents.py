"""Agent reads, answered from ClickHouse and always filtered by the caller's tenant."""
import json
from typing import Annotated

from fastapi import APIRouter, Query

from ..auth import Tenant
from ..deps import StoreDep
from ..errors import ApiError
from ..models import ErrorOut, VitalRecord, VitalsList, iso_ms

router = APIRouter(tags=["agents"])

_VITALS = """
SELECT id, agent_id, token_consumption, token_limit, hallucination_rate, loop_frequency,
       directive_conflicts, overall_health, metadata, toUnixTimestamp64Milli(recorded_at) AS recorded_ms
FROM agent_vitals FINAL
WHERE tenant = %(tenant)s AND agent_id = %(agent)s
ORDER BY recorded_at DESC, id DESC
LIMIT %(limit)s
"""


@router.get("/api/agents/{agent_id}/vitals", response_model=VitalsList,
            responses={400: {"model": ErrorOut}, 401: {"model": ErrorOut}, 404: {"model": ErrorOut}})
async def agent_vitals(agent_id: str, tenant: Tenant, store: StoreDep,
                       limit: Annotated[int, Query(ge=1, le=500, description="Default 50, max 500")] = 50) -> VitalsList:
    rows = await store.rows(_VITALS, {"tenant": tenant, "agent": agent_id, "limit": limit})
    if not rows:
        raise ApiError(404, "Agent not found", f"No agent {agent_id!r} for this API key")
    return VitalsList(vitals=[
        VitalRecord(
            id=r["id"], agent_id=r["agent_id"], token_consumption=r["token_consumption"],
            token_limit=r["token_limit"], hallucination_rate=r["hallucination_rate"],
            loop_frequency=r["loop_frequency"], directive_conflicts=r["directive_conflicts"],
            overall_health=r["overall_health"], metadata=json.loads(r["metadata"]),
            recorded_at=iso_ms(r["recorded_ms"]),
        ) for r in rows
    ])
