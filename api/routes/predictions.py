"""GET /v1/applications/{id}/predictions?metric&horizon: reference 000's predictions.

The history comes from the metric rollups (bucket means, the same query as the metric
series), the trend and confidences from pipeline/predictions.py. Rules:
docs/predictions.md.
"""
import math
import time
from typing import Annotated

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from pipeline import predictions as P

from ..auth import Tenant
from ..deps import StoreDep
from ..errors import invalid
from ..models import ErrorOut
from .app_metrics import check_metric_name, series_sql
from .applications import iso_s, require_application

router = APIRouter(prefix="/v1", tags=["predictions"])


class Prediction(BaseModel):
    timestamp: str = Field(examples=["2024-01-15T13:00:00Z"], description="Start of the predicted bucket (UTC)")
    predicted_value: float = Field(description="The trend's value for that bucket's mean")
    confidence: float = Field(description="Probability (0..1) that the real bucket mean lands within 10 % of "
                                          "predicted_value, under the fit's residual spread")


class Basis(BaseModel):
    granularity: str = Field(description="Rollup fitted, and spacing of the predictions")
    start: str = Field(description="First bucket of the fitted history")
    end: str = Field(description="Last bucket of the fitted history (the one before the current bucket)")
    buckets: int = Field(description="Buckets of the history that have data; below 3 there are no predictions")
    method: str = "linear least squares over bucket means"


class Predictions(BaseModel):
    metric: str
    horizon: str
    predictions: list[Prediction]
    basis: Basis


@router.get("/applications/{app_id}/predictions", response_model=Predictions,
            responses={400: {"model": ErrorOut}, 401: {"model": ErrorOut}, 404: {"model": ErrorOut}})
async def predictions(
    app_id: str, request: Request, tenant: Tenant, store: StoreDep,
    metric: Annotated[str, Query(description="response_time, error_rate, throughput or a custom name")] = "response_time",
    horizon: Annotated[str, Query(description="1h, 6h, 24h or 7d")] = "24h",
) -> Predictions:
    """One prediction per bucket over the horizon (1h: 12 of 5 min; 6h: 6 of 1 h; 24h: 24
    of 1 h; 7d: 7 of 1 day), empty when the history has fewer than 3 buckets with data."""
    require_application(request, tenant, app_id)
    check_metric_name(metric, "metric")
    if horizon not in P.HORIZONS:
        raise invalid("horizon", "must be 1h, 6h, 24h or 7d")
    now_s = time.time_ns() // 1_000_000_000
    first, last = P.history_range(horizon, now_s)
    granularity = P.HORIZONS[horizon].granularity
    rows = await store.rows(series_sql(granularity, "mean"),
                            {"tenant": tenant, "subject": app_id, "metric": metric, "lo": first, "hi": last})
    # a custom metric's bucket mean can overflow to inf (values near 1.8e308): it is not fitted
    history = [(r["t"], r["v"]) for r in rows if r["v"] is not None and math.isfinite(r["v"])]
    return Predictions(
        metric=metric, horizon=horizon,
        predictions=[Prediction(**{**p, "timestamp": iso_s(p["timestamp"] * 1000)})
                     for p in P.predict(metric, horizon, history, now_s)],
        basis=Basis(granularity=granularity, start=iso_s(first * 1000), end=iso_s(last * 1000), buckets=len(history)))
