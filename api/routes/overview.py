"""Reads made for the dashboard's agents overview (docs/dashboard.md), public like every
other route: the dashboard can do nothing a client with the same key could not.

    GET /api/dashboard/agents    every agent with its vitals, a 24 h trend, how often it
                                 usually reports, whether it went quiet, open interventions
    GET /api/health-thresholds   reference 003's health bands (pipeline/health.py)

One request answers for the whole account (four queries run at once, each one read of a
table or rollup), so an account with 2,000 agents costs one round trip, not 2,000.
"""
import asyncio
import time

from fastapi import APIRouter
from pydantic import BaseModel, Field

from pipeline.health import THRESHOLDS, status

from ..auth import Tenant
from ..deps import StoreDep
from ..models import ErrorOut, Health, iso_ms
from .agents import _AGENTS

router = APIRouter(tags=["dashboard"])

TREND_METRIC = "tokenUsagePercent"
TREND_HOURS = 24
STALE_AFTER = 3       # intervals without a report
MIN_INTERVAL_S = 10   # reference 003's rate limit: no agent reports more often
_HOUR_S = 3600
_FIVE_MIN_S = 300

_LATEST = _AGENTS.replace("l.directive_conflicts AS directive_conflicts,",
                          "l.directive_conflicts AS directive_conflicts, l.token_limit AS token_limit,")
assert _LATEST != _AGENTS

# Hourly means of the trend metric over the last 24 hourly buckets, per agent.
_TREND = """
SELECT agent_id, groupArray((t, v)) AS points FROM (
    SELECT agent_id, toUnixTimestamp(bucket) AS t, sum(sum) / sum(count) AS v FROM agent_vitals_1h
    WHERE tenant = %(tenant)s AND metric = %(metric)s AND bucket >= toDateTime(%(since)s, 'UTC')
    GROUP BY agent_id, bucket)
GROUP BY agent_id
"""
# Reports over the last 24 h per agent (any metric has one point per report), and the
# start of the first 5-minute bucket that had one.
_REPORTS = """
SELECT agent_id, sum(count) AS n, toUnixTimestamp(min(bucket)) AS first_bucket FROM agent_vitals_5m
WHERE tenant = %(tenant)s AND metric = 'tokenConsumption' AND bucket >= toDateTime(%(day_ago)s, 'UTC')
GROUP BY agent_id
"""
_OPEN = """
SELECT agent_id, count() AS open FROM ari_interventions FINAL
WHERE tenant = %(tenant)s AND closed_at IS NULL
GROUP BY agent_id
"""


class AgentOverview(BaseModel):
    agent_id: str
    name: str
    status: str = Field(description="active, warning or critical (from overall_health)")
    overall_health: Health
    token_consumption: int
    token_limit: int = Field(description="The limit of the last report (0 for reports from before it was kept)")
    hallucination_rate: float
    loop_frequency: int
    directive_conflicts: int
    last_vitals_at: str
    usual_interval_s: float | None = Field(
        description="Typical seconds between reports over the last 24 h; null with fewer than 2 reports in it")
    stale: bool = Field(description=f"No report for {STALE_AFTER}x the usual interval, or none in the last 24 h")
    open_interventions: int = Field(description="ARI interventions not yet closed")
    trend: list[float | None] = Field(description=f"Hourly mean {TREND_METRIC} of the last {TREND_HOURS} hourly "
                                                  "buckets, oldest first (the last is the current hour), "
                                                  "rounded to 0.01; null for an hour without reports")


class AgentsOverview(BaseModel):
    generated_at: str
    trend_metric: str = TREND_METRIC
    agents: list[AgentOverview]


def usual_interval_s(reports: int, first_bucket_s: int, last_ms: int) -> float | None:
    """Mean seconds between reports, from their count and span. The first report's own
    time is only known to its 5-minute bucket, so the span starts at the bucket's middle."""
    if reports < 2:
        return None
    span_s = last_ms / 1000 - (first_bucket_s + _FIVE_MIN_S / 2)
    return max(span_s / (reports - 1), MIN_INTERVAL_S)


@router.get("/api/dashboard/agents", response_model=AgentsOverview, responses={401: {"model": ErrorOut}})
async def agents_overview(tenant: Tenant, store: StoreDep) -> AgentsOverview:
    now_ms = time.time_ns() // 1_000_000
    now_s = now_ms // 1000
    first_hour = now_s - now_s % _HOUR_S - (TREND_HOURS - 1) * _HOUR_S
    who = {"tenant": tenant}
    latest, trends, reports, open_ = await asyncio.gather(
        store.rows(_LATEST.format(where=""), who),
        store.rows(_TREND, {**who, "metric": TREND_METRIC, "since": first_hour}),
        store.rows(_REPORTS, {**who, "day_ago": now_s - 86_400}),
        store.rows(_OPEN, who))
    # A sparkline needs no more than 0.01 % of precision; full floats would double the answer.
    trend = {r["agent_id"]: {t: round(v, 2) for t, v in r["points"]} for r in trends}
    seen = {r["agent_id"]: (r["n"], r["first_bucket"]) for r in reports}
    opened = {r["agent_id"]: r["open"] for r in open_}
    hours = range(first_hour, first_hour + TREND_HOURS * _HOUR_S, _HOUR_S)
    agents = []
    for r in latest:
        agent = r["agent_id"]
        n, first_bucket = seen.get(agent, (0, 0))
        interval = usual_interval_s(n, first_bucket, r["last_ms"])
        quiet_ms = now_ms - r["last_ms"]
        stale = quiet_ms > 86_400_000 if interval is None else quiet_ms > STALE_AFTER * interval * 1000
        points = trend.get(agent, {})
        agents.append(AgentOverview(
            agent_id=agent, name=r["name"], status=status(r["overall_health"]), overall_health=r["overall_health"],
            token_consumption=r["token_consumption"], token_limit=r["token_limit"],
            hallucination_rate=r["hallucination_rate"], loop_frequency=r["loop_frequency"],
            directive_conflicts=r["directive_conflicts"], last_vitals_at=iso_ms(r["last_ms"]),
            usual_interval_s=interval, stale=stale, open_interventions=opened.get(agent, 0),
            trend=[points.get(h) for h in hours]))
    return AgentsOverview(generated_at=iso_ms(now_ms), agents=agents)


class Band(BaseModel):
    amber: float = Field(description="Amber from this value on (green below)")
    red: float = Field(description="Red above this value (amber up to and including it)")


class HealthThresholds(BaseModel):
    tokenUsagePercent: Band
    hallucinationRate: Band
    loopCount: Band
    conflictCount: Band


@router.get("/api/health-thresholds", response_model=HealthThresholds)
async def health_thresholds() -> HealthThresholds:
    """Reference 003's health bands per metric. Public: the same for every account."""
    return HealthThresholds(**THRESHOLDS)
