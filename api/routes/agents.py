"""Agent reads, answered from ClickHouse and always filtered by the caller's tenant.

Beyond reference 003 (docs/metrics.md): an agent's vitals as series at any granularity,
read from the agent_vitals rollups (migration 0009) with the rules of the /v1 metrics
(api/series.py), and the names of the metrics it reported.
"""
import asyncio
from typing import Annotated

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, Field

from pipeline.alerts.conditions import AGENT_METRIC_NAME, AGENT_METRICS
from pipeline.health import status
from pipeline.store.schema import AGENT_VITALS_ROLLUPS

from .. import series
from ..auth import Tenant
from ..deps import StoreDep
from ..errors import ApiError, invalid
from ..json_body import stored
from ..models import AgentOut, AgentsList, ErrorOut, EventOut, EventsList, VitalRecord, VitalsList, iso_ms
from .app_metrics import MetricValue

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
  AND recorded_at >= fromUnixTimestamp64Milli(%(lo)s, 'UTC') AND recorded_at < fromUnixTimestamp64Milli(%(hi)s, 'UTC')
ORDER BY recorded_at DESC, id DESC
LIMIT %(limit)s
"""

_METRIC_NAMES = """
SELECT DISTINCT metric FROM agent_vitals_1d
WHERE tenant = %(tenant)s AND agent_id = %(agent)s
  AND bucket >= toStartOfDay(toDateTime(%(lo)s, 'UTC')) AND bucket < toDateTime(%(hi)s, 'UTC')
"""

_FAR_FUTURE_MS = series.MAX_DATETIME_S * 1000


class AgentSeries(BaseModel):
    agent_id: str
    metric: str
    granularity: str
    data: list[MetricValue] = Field(description="One per bucket; value null (count: 0) when empty")


class AgentMetricNames(BaseModel):
    agent_id: str
    metrics: list[str] = Field(description="Built-in metrics first, then custom ones seen in the range, by name")


def _agent(r: dict) -> AgentOut:
    at = iso_ms(r["last_ms"])  # an agent changes only by reporting, so both times are its last report
    return AgentOut(agent_id=r["agent_id"], name=r["name"], status=status(r["overall_health"]),
                    overall_health=r["overall_health"], token_consumption=r["token_consumption"],
                    hallucination_rate=r["hallucination_rate"], loop_frequency=r["loop_frequency"],
                    directive_conflicts=r["directive_conflicts"], last_vitals_at=at, updated_at=at)


_EXISTS = "SELECT 1 AS found FROM agent_latest WHERE tenant = %(tenant)s AND agent_id = %(agent)s LIMIT 1"


async def require_agent(store, tenant: str, agent_id: str) -> None:
    if not await store.rows(_EXISTS, {"tenant": tenant, "agent": agent_id}):
        raise ApiError(404, "Agent not found", f"No agent {agent_id!r} for this API key")


@router.get("/api/agents", response_model=AgentsList, responses={401: {"model": ErrorOut}})
async def list_agents(tenant: Tenant, store: StoreDep) -> AgentsList:
    rows = await store.rows(_AGENTS.format(where=""), {"tenant": tenant})
    return AgentsList(agents=[_agent(r) for r in rows])


@router.get("/api/agents/{agent_id}/vitals", response_model=VitalsList, responses=NOT_FOUND)
async def agent_vitals(agent_id: str, tenant: Tenant, store: StoreDep, limit: Limit = 50) -> VitalsList:
    await require_agent(store, tenant, agent_id)
    rows = await store.rows(_VITALS, {"tenant": tenant, "agent": agent_id, "limit": limit})
    return VitalsList(vitals=[
        VitalRecord(
            id=r["id"], agent_id=r["agent_id"], token_consumption=r["token_consumption"],
            token_limit=r["token_limit"], hallucination_rate=r["hallucination_rate"],
            loop_frequency=r["loop_frequency"], directive_conflicts=r["directive_conflicts"],
            overall_health=r["overall_health"], metadata=stored(r["metadata"]),
            recorded_at=iso_ms(r["recorded_ms"]),
        ) for r in rows
    ])


Start = Annotated[str | None, Query(description="Start time (ISO 8601; no offset = UTC; or epoch ms)")]
End = Annotated[str | None, Query(description="End time, exclusive (ISO 8601 or epoch ms)")]


@router.get("/api/agents/{agent_id}/events", response_model=EventsList, responses=NOT_FOUND)
async def agent_events(agent_id: str, tenant: Tenant, store: StoreDep, limit: Limit = 50,
                       start: Start = None, end: End = None) -> EventsList:
    """Events of an agent, newest first (beyond the reference: its 'agent detail view'),
    optionally only those in [start, end)."""
    lo, hi = _range(start, end)
    rows = await store.rows(_EVENTS, {"tenant": tenant, "agent": agent_id, "limit": limit, "lo": lo, "hi": hi})
    if not rows:
        await require_agent(store, tenant, agent_id)
    return EventsList(events=[
        EventOut(id=r["id"], agent_id=r["agent_id"], event_type=r["event_type"], details=r["details"],
                 metadata=stored(r["metadata"]), recorded_at=iso_ms(r["recorded_ms"])) for r in rows
    ])


def _range(start: str | None, end: str | None) -> tuple[int, int]:
    lo = series.query_time(start, "start") or 0
    hi = series.query_time(end, "end") or _FAR_FUTURE_MS
    if lo >= hi:
        raise invalid("start", "must be before end")
    return lo, min(hi, _FAR_FUTURE_MS)


def _check_metric(metric: str) -> None:
    if not AGENT_METRIC_NAME.match(metric):
        raise invalid("metric", f"must be {', '.join(AGENT_METRICS)} or a custom metric's name "
                                f"matching {AGENT_METRIC_NAME.pattern}")


@router.get("/api/agents/{agent_id}/metrics", response_model=AgentSeries,
            responses={400: {"model": ErrorOut}, **NOT_FOUND})
async def agent_metric_series(
    agent_id: str, tenant: Tenant, store: StoreDep, start: Start = None, end: End = None,
    metric: Annotated[str, Query(description="tokenConsumption, hallucinationRate, loopCount, conflictCount, "
                                             "tokenUsagePercent or a custom numeric metric")] = "tokenConsumption",
    granularity: Annotated[str | None, Query(description="1m, 5m, 1h or 1d. Default by range: up to 6 h 1m, "
                                                         "up to 2 d 5m, up to 30 d 1h, longer 1d")] = None,
    stat: Annotated[str, Query(description="mean (default), p50, p95, p99, min, max, sum or count")] = "mean",
) -> Response:
    """One value per bucket of [start, end) (default: the last 24 h), read from the vitals
    rollups with the same rules as GET /v1/applications/{id}/metrics."""
    _check_metric(metric)
    b = series.buckets(start, end, granularity, stat)
    values, _ = await asyncio.gather(
        series.read(store, AGENT_VITALS_ROLLUPS[b.granularity][1], "agent_id",
                    {"tenant": tenant, "subject": agent_id, "metric": metric}, b, stat),
        require_agent(store, tenant, agent_id))
    return series.series_response({"agent_id": agent_id, "metric": metric, "granularity": b.granularity},
                                  b, values)  # an AgentSeries


@router.get("/api/agents/{agent_id}/metric-names", response_model=AgentMetricNames,
            responses={400: {"model": ErrorOut}, **NOT_FOUND})
async def agent_metric_names(agent_id: str, tenant: Tenant, store: StoreDep,
                             start: Start = None, end: End = None) -> AgentMetricNames:
    """The metrics an agent reported in [start, end) (default: ever): the built-in ones,
    then every custom numeric metric, by name."""
    lo, hi = _range(start, end)
    rows, _ = await asyncio.gather(
        store.rows(_METRIC_NAMES, {"tenant": tenant, "agent": agent_id, "lo": lo // 1000, "hi": -(-hi // 1000)}),
        require_agent(store, tenant, agent_id))
    seen = {r["metric"] for r in rows}
    return AgentMetricNames(agent_id=agent_id, metrics=[m for m in AGENT_METRICS if m in seen]
                            + sorted(seen - set(AGENT_METRICS)))
