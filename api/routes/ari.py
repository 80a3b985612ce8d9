"""GET /api/agents/{id}/ari: what the drift engine derived for an agent (docs/ari.md)."""
import json
from typing import Annotated

from fastapi import APIRouter, Query

from pipeline.ari.rules import MIN_SNAPSHOTS, PROTOCOL_NAMES

from ..auth import Tenant
from ..deps import StoreDep
from ..errors import ApiError
from ..models import AriOut, AriStats, ErrorOut, InterventionOut, iso_ms

router = APIRouter(tags=["ari"])

_STATUS = """
SELECT snapshots, checkups FROM ari_status FINAL WHERE tenant = %(tenant)s AND agent_id = %(agent)s
"""
_VITALS_SEEN = """
SELECT count() AS n FROM agent_vitals FINAL WHERE tenant = %(tenant)s AND agent_id = %(agent)s
"""
_STATS = """
SELECT countIf(opened_at >= toStartOfDay(now64(3, 'UTC'))) AS today, sum(tokens_saved) AS saved,
       countIf(protocol = 2 AND closed_at IS NOT NULL) AS resolved,
       coalesce(sum(tokens_saved_measured), 0) AS saved_measured
FROM ari_interventions FINAL WHERE tenant = %(tenant)s AND agent_id = %(agent)s
"""
_INTERVENTIONS = """
SELECT intervention_id, protocol, severity, description, tokens_saved, details,
       toUnixTimestamp64Milli(opened_at) AS opened_ms, toUnixTimestamp64Milli(closed_at) AS closed_ms,
       outcome, outcome_details, tokens_saved_measured
FROM ari_interventions FINAL WHERE tenant = %(tenant)s AND agent_id = %(agent)s
ORDER BY opened_at DESC, intervention_id DESC
LIMIT %(limit)s
"""


@router.get("/api/agents/{agent_id}/ari", response_model=AriOut,
            responses={401: {"model": ErrorOut}, 404: {"model": ErrorOut}})
async def agent_ari(agent_id: str, tenant: Tenant, store: StoreDep,
                    limit: Annotated[int, Query(ge=1, le=500, description="Interventions to return, newest first")] = 50,
                    ) -> AriOut:
    who = {"tenant": tenant, "agent": agent_id}
    status = await store.rows(_STATUS, who)
    snapshots = status[0]["snapshots"] if status else (await store.rows(_VITALS_SEEN, who))[0]["n"]
    if snapshots == 0:
        raise ApiError(404, "Agent not found", f"No agent {agent_id!r} for this API key")
    if snapshots < MIN_SNAPSHOTS:
        return AriOut(agent_id=agent_id, ready=False, snapshots=snapshots,
                      message=f"ARI starts after {MIN_SNAPSHOTS} snapshots; this agent has {snapshots} so far",
                      stats=AriStats(interventions_today=0, tokens_saved=0, conflicts_resolved=0),
                      checkups={}, interventions=[])
    stats = (await store.rows(_STATS, who))[0]
    rows = await store.rows(_INTERVENTIONS, {**who, "limit": limit})
    return AriOut(
        agent_id=agent_id, ready=True, snapshots=snapshots,
        stats=AriStats(interventions_today=stats["today"], tokens_saved=stats["saved"],
                       conflicts_resolved=stats["resolved"], tokens_saved_measured=stats["saved_measured"]),
        checkups=json.loads(status[0]["checkups"]) if status else {},
        interventions=[InterventionOut(
            id=r["intervention_id"], protocol=r["protocol"], name=PROTOCOL_NAMES[r["protocol"]],
            description=r["description"], severity=r["severity"], tokens_saved=r["tokens_saved"],
            status="closed" if r["closed_ms"] is not None else "open", created_at=iso_ms(r["opened_ms"]),
            closed_at=iso_ms(r["closed_ms"]) if r["closed_ms"] is not None else None,
            details=json.loads(r["details"]), outcome=r["outcome"],
            outcome_details=json.loads(r["outcome_details"]) if r["outcome_details"] is not None else None,
            tokens_saved_measured=r["tokens_saved_measured"]) for r in rows],
    )
