"""Predictions of a metric's bucket means: GET /v1/applications/{id}/predictions
(reference 000) and GET /api/agents/{id}/predictions (beyond reference 003, the same for
an agent's vitals).

The history comes from the rollups (bucket means, the same query as the metric series),
the forecast and its intervals from pipeline/predictions.py. Rules: docs/predictions.md.
"""
import asyncio
import time
from typing import Annotated

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from pipeline import forecast as F
from pipeline import predictions as P
from pipeline.store.schema import AGENT_VITALS_ROLLUPS

from .. import series
from ..auth import Tenant
from ..deps import StoreDep
from ..errors import invalid
from ..models import ErrorOut
from .agents import NOT_FOUND, _check_metric, require_agent
from .app_metrics import check_metric_name, series_sql
from .applications import iso_s, require_application

router = APIRouter(tags=["predictions"])
LEVEL_PCT = round(F.LEVEL * 100)


class Prediction(BaseModel):
    timestamp: str = Field(examples=["2024-01-15T13:00:00Z"], description="Start of the predicted bucket (UTC)")
    predicted_value: float = Field(description="The forecast of that bucket's mean")
    confidence: float = Field(description=f"Probability that the bucket's mean lands in [lower, upper]: "
                                          f"{F.LEVEL} for every prediction (measured coverage: docs/predictions.md)")
    lower: float = Field(description=f"Lower end of the {LEVEL_PCT} % prediction interval")
    upper: float = Field(description=f"Upper end of the {LEVEL_PCT} % prediction interval")


class Basis(BaseModel):
    granularity: str = Field(description="Rollup read, and spacing of the predictions")
    start: str = Field(description="First bucket of the history read")
    end: str = Field(description="Last bucket of the history read (the one before the current bucket)")
    buckets: int = Field(description="Buckets of the history that have data; below 3 there are no predictions")
    method: str = Field(description="Model chosen: naive, seasonal_naive, a level-corrected seasonal profile "
                                    "median|mean|logmedian(<season in buckets>x<seasons>), or two profiles "
                                    "averaged (a+b); none without predictions")


class Predictions(BaseModel):
    metric: str
    horizon: str
    predictions: list[Prediction]
    basis: Basis


class AgentPredictions(Predictions):
    agent_id: str


Horizon = Annotated[str, Query(description="1h, 6h, 24h or 7d")]


def _check_horizon(horizon: str) -> None:
    if horizon not in P.HORIZONS:
        raise invalid("horizon", "must be 1h, 6h, 24h or 7d")


async def _predict(store, rollup_sql: str, params: dict, metric: str, horizon: str) -> dict:
    now_s = time.time_ns() // 1_000_000_000
    first, last = P.history_range(horizon, now_s)
    rows = await store.rows(rollup_sql, {**params, "metric": metric, "lo": first, "hi": last})
    history = [(r["t"], r["v"]) for r in rows]
    points, method = P.predict(metric, horizon, history, now_s)
    return dict(metric=metric, horizon=horizon,
                predictions=[Prediction(**{**p, "timestamp": iso_s(p["timestamp"] * 1000)}) for p in points],
                basis=Basis(granularity=P.HORIZONS[horizon].granularity, start=iso_s(first * 1000),
                            end=iso_s(last * 1000), buckets=P.usable_buckets(history), method=method))


@router.get("/v1/applications/{app_id}/predictions", response_model=Predictions,
            responses={400: {"model": ErrorOut}, 401: {"model": ErrorOut}, 404: {"model": ErrorOut}})
async def predictions(
    app_id: str, request: Request, tenant: Tenant, store: StoreDep,
    metric: Annotated[str, Query(description="response_time, error_rate, throughput or a custom name")] = "response_time",
    horizon: Horizon = "24h",
) -> Predictions:
    """One prediction per bucket over the horizon (1h: 12 of 5 min; 6h: 6 of 1 h; 24h: 24
    of 1 h; 7d: 7 of 1 day), empty when the history has fewer than 3 buckets with data."""
    require_application(request, tenant, app_id)
    check_metric_name(metric, "metric")
    _check_horizon(horizon)
    granularity = P.HORIZONS[horizon].granularity
    return Predictions(**await _predict(store, series_sql(granularity, "mean"),
                                        {"tenant": tenant, "subject": app_id}, metric, horizon))


@router.get("/api/agents/{agent_id}/predictions", response_model=AgentPredictions,
            responses={400: {"model": ErrorOut}, **NOT_FOUND})
async def agent_predictions(
    agent_id: str, tenant: Tenant, store: StoreDep,
    metric: Annotated[str, Query(description="tokenConsumption, hallucinationRate, loopCount, conflictCount, "
                                             "tokenUsagePercent or a custom numeric metric")] = "tokenConsumption",
    horizon: Horizon = "24h",
) -> AgentPredictions:
    """The predictions of GET /v1/applications/{id}/predictions for an agent's vital,
    read from the agent vitals rollups."""
    _check_metric(metric)
    _check_horizon(horizon)
    rollup = AGENT_VITALS_ROLLUPS[P.HORIZONS[horizon].granularity][1]
    body, _ = await asyncio.gather(
        _predict(store, series.series_sql(rollup, "agent_id", "mean"),
                 {"tenant": tenant, "subject": agent_id}, metric, horizon),
        require_agent(store, tenant, agent_id))
    return AgentPredictions(agent_id=agent_id, **body)
