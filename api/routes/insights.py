"""Insights: reference 000's AI insights of an application (GET /v1/applications/{id}/insights)
and, beyond the references, an agent's (GET /api/agents/{id}/insights); newest first.

The worker derives them: anomaly episodes of every series (pipeline/anomaly/watch.py) and
failed deployments, worded by pipeline/insights.py (docs/insights.md); the sink lands
them in `app_insights`, one row per insight id (its latest version, read with FINAL).
"""
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from ..auth import Tenant
from ..deps import StoreDep
from ..models import ErrorOut
from .agents import require_agent
from .applications import iso_s, require_application

router = APIRouter(tags=["insights"])


class Insight(BaseModel):
    id: str = Field(examples=["insight_5f0c2a9e81d4b7c3"])
    type: Literal["performance", "reliability", "traffic", "anomaly", "deployment"]
    severity: Literal["medium", "high"]
    title: str
    description: str
    recommendation: str
    timestamp: str = Field(examples=["2024-01-15T12:30:00Z"], description="Data time of the detection (UTC)")
    # an anomaly episode's figures (null for a deployment's insight)
    metric: str | None = Field(None, description="The series: a metric or vital name")
    status: Literal["open", "resolved"] | None = None
    started_at: str | None = Field(None, description="Its first unusual minute")
    ended_at: str | None = Field(None, description="The first minute of the run back inside the band that resolved it")
    observed: float | None = Field(None, description="The episode's peak minute mean")
    expected: float | None = None
    expected_low: float | None = None
    expected_high: float | None = None
    score: float | None = Field(None, description="How unusual, in (0.5, 1]")
    cause: str | None = Field(None, description="Likely cause, where one is known")


class InsightList(BaseModel):
    insights: list[Insight]


_LIST = """
SELECT id, type, severity, title, description, recommendation, toUnixTimestamp64Milli(timestamp) AS ms,
       metric, status, toUnixTimestamp64Milli(started_at) AS started_ms, toUnixTimestamp64Milli(ended_at) AS ended_ms,
       observed, expected, expected_low, expected_high, score, cause
FROM app_insights FINAL
WHERE tenant = %(tenant)s AND {subject}
ORDER BY timestamp DESC, id DESC
LIMIT %(limit)s
"""
_APP = _LIST.format(subject="application_id = %(subject)s")
_AGENT = _LIST.format(subject="application_id = '' AND agent_id = %(subject)s")

Limit = Annotated[int, Query(ge=1, le=200, description="Default 50, max 200")]
_ERRORS = {400: {"model": ErrorOut}, 401: {"model": ErrorOut}, 404: {"model": ErrorOut}}


def _insight(r: dict) -> Insight:
    return Insight(**{k: r[k] for k in ("id", "type", "severity", "title", "description", "recommendation", "metric",
                                        "status", "observed", "expected", "expected_low", "expected_high", "score",
                                        "cause")},
                   timestamp=iso_s(r["ms"]), started_at=r["started_ms"] and iso_s(r["started_ms"]),
                   ended_at=r["ended_ms"] and iso_s(r["ended_ms"]))


@router.get("/v1/applications/{app_id}/insights", response_model=InsightList, response_model_exclude_none=True,
            responses=_ERRORS)
async def list_insights(app_id: str, request: Request, tenant: Tenant, store: StoreDep, limit: Limit = 50
                        ) -> InsightList:
    require_application(request, tenant, app_id)
    rows = await store.rows(_APP, {"tenant": tenant, "subject": app_id, "limit": limit})
    return InsightList(insights=[_insight(r) for r in rows])


@router.get("/api/agents/{agent_id}/insights", response_model=InsightList, response_model_exclude_none=True,
            responses=_ERRORS)
async def agent_insights(agent_id: str, tenant: Tenant, store: StoreDep, limit: Limit = 50) -> InsightList:
    """An agent's anomaly insights, one per episode of one vital (beyond reference 003)."""
    rows = await store.rows(_AGENT, {"tenant": tenant, "subject": agent_id, "limit": limit})
    if not rows:
        await require_agent(store, tenant, agent_id)
    return InsightList(insights=[_insight(r) for r in rows])
