"""Application metrics: write a batch of points, read one metric at a granularity.

    POST /v1/applications/{id}/metrics   {"points": [{"metric", "value", "timestamp"}]} (or a bare array)
    GET  /v1/applications/{id}/metrics   ?start&end&metric&granularity&stat

A write is validated here with a lean checker (no model per point: 10,000 points cost
a few tens of milliseconds), produced as ONE `app_metric_batch` record, and answered
202 once Kafka acknowledged it. The sink lands it as one ClickHouse row per point;
materialized views roll the rows up into 1m, 5m, 1h and 1d buckets, and reads only
ever touch the rollup of the requested granularity. Definitions: docs/metrics.md.
"""
import asyncio
import math
import re
import time
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field, RootModel, SkipValidation

from pipeline.metric_bounds import BUILTIN, CUSTOM
from pipeline.store.schema import APP_METRICS_ROLLUPS
from pipeline.topics import APP_METRICS, entity_key
from schemas import codec

from .. import series
from ..auth import Tenant
from ..deps import IdsDep, ProducerDep, SettingsDep, StoreDep
from ..errors import invalid
from ..models import ErrorOut
from ..publish import send
from ..series import parse_iso
from .applications import require_application

router = APIRouter(prefix="/v1", tags=["metrics"])

# -- limits and definitions (docs/metrics.md) -------------------------------------------
MAX_POINTS = 10_000
MAX_FUTURE_MS = 5 * 60_000
RETENTION_DAYS = 400  # the TTL of app_metrics and of every rollup (migration 0005)
THREAD_ABOVE = 500  # points; smaller batches are checked on the event loop
METRIC_NAME = re.compile(r"^[a-z][a-z0-9_.]{0,63}$")
# The values each metric accepts (inclusive) are in pipeline/metric_bounds.py. Bounds are
# finite, so one comparison also refuses infinities (and NaN, which fails every one).
UNITS = {"response_time": "milliseconds", "error_rate": "a fraction 0..1", "throughput": "requests per minute"}

_POINT_KEYS = ("metric", "value", "timestamp")


# -- models (documentation of the bodies; the checker below does the validation) --------
class MetricPointIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    metric: str = Field(pattern=METRIC_NAME.pattern, examples=["response_time"],
                        description="response_time (ms, 0..1e15), error_rate (0..1), throughput (requests per "
                                    "minute, 0..1e15), or a custom name (any finite value)")
    value: float = Field(description="A finite JSON number")
    timestamp: str | int = Field(examples=["2024-01-15T12:00:00Z"],
                                 description="ISO 8601 (no offset = UTC) or epoch milliseconds; at most 5 minutes "
                                             f"ahead of the server and at most {RETENTION_DAYS} days old")


class MetricPointsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    points: list[MetricPointIn] = Field(min_length=1, max_length=MAX_POINTS)


class MetricsBody(RootModel):
    """`{"points": [...]}` or the bare array; at most 10,000 points and 2 MiB."""
    root: Annotated[MetricPointsIn | list[MetricPointIn], SkipValidation]


class MetricsAccepted(BaseModel):
    accepted: int = Field(description="Number of points accepted (all of them: a batch is taken whole or not at all)")
    batch_id: int = Field(description="Id of the batch, unique, below 2^53")


class MetricValue(BaseModel):
    timestamp: str = Field(examples=["2024-01-15T12:00:00Z"], description="Start of the bucket (UTC)")
    value: int | float | None = Field(description="The stat over the bucket's points; null when the bucket has "
                                                   "no points (count: 0)")


class MetricSeries(BaseModel):
    metric: str
    granularity: str
    data: list[MetricValue]


def check_metric_name(metric: Any, field: str) -> None:
    """A 400 naming `field` unless `metric` could be a metric's name."""
    if type(metric) is not str or not METRIC_NAME.match(metric):
        raise invalid(field, "must be response_time, error_rate, throughput or a custom name matching "
                             f"{METRIC_NAME.pattern}")


# -- write ------------------------------------------------------------------------------
def _time_ms(raw: Any, field: str) -> int:
    if type(raw) is int:
        return raw
    if type(raw) is str:
        return parse_iso(raw, field)
    raise invalid(field, "must be an ISO 8601 string or epoch milliseconds (an integer)")


def accepted_window(now_ms: int) -> tuple[int, int]:
    """(oldest, newest) epoch ms a point's timestamp may have: the retention, 5 minutes ahead."""
    return now_ms - RETENTION_DAYS * 86_400_000, now_ms + MAX_FUTURE_MS


def check_point(metric: Any, value: Any, ts: Any, ranges: dict, oldest: int, newest: int,
                where: str, i: int) -> dict:
    """One point as an Avro record, or a 400 naming `where[i].<field>`: the one home of
    a point's rules, for this route's batches and for OTLP ingest (api/otlp/). `ranges`
    holds each name's accepted values (start from BUILTIN); custom names join it once
    checked, so a name is matched against the pattern once per batch."""
    bounds = ranges.get(metric) if type(metric) is str else None
    if bounds is None:
        check_metric_name(metric, f"{where}[{i}].metric")
        bounds = ranges[metric] = CUSTOM

    t = type(value)
    if t is int:
        try:
            value = float(value)
        except OverflowError:
            value = math.inf
    elif t is not float:
        raise invalid(f"{where}[{i}].value", "must be a number")
    if not (bounds[0] <= value <= bounds[1]):
        if not math.isfinite(value):
            raise invalid(f"{where}[{i}].value", "must be a finite number")
        lo, hi = bounds
        rule = f"between {lo:g} and {hi:g}"
        raise invalid(f"{where}[{i}].value", f"must be {rule} for {metric} ({UNITS[metric]})")

    ms = ts if type(ts) is int else _time_ms(ts, f"{where}[{i}].timestamp")
    if ms > newest:
        raise invalid(f"{where}[{i}].timestamp", "is more than 5 minutes in the future")
    if ms < oldest:
        raise invalid(f"{where}[{i}].timestamp", f"is more than {RETENTION_DAYS} days old (the retention)")
    return {"metric": metric, "value": value, "timestamp": ms}


def check_points(body: Any, now_ms: int) -> list[dict]:
    """The batch's points as Avro records (timestamps in epoch ms), or a 400 naming the
    first offending field as `points[i].name`."""
    if isinstance(body, dict):
        if "points" not in body:
            raise invalid("points", "is required")
        extra = [k for k in body if k != "points"]
        if extra:
            raise invalid(str(extra[0]), "unknown field; the body is {\"points\": [...]}")
        points = body["points"]
    elif isinstance(body, list):
        points = body
    else:
        raise invalid("body", "must be {\"points\": [...]} or an array of points")
    if not isinstance(points, list):
        raise invalid("points", "must be an array of points")
    if not points:
        raise invalid("points", "must hold at least one point")
    if len(points) > MAX_POINTS:
        raise invalid("points", f"at most {MAX_POINTS} points per request, got {len(points)}")

    oldest, newest = accepted_window(now_ms)
    ranges = dict(BUILTIN)  # metric name -> accepted (lo, hi); custom names join once checked
    out = []
    append = out.append
    for i, p in enumerate(points):
        if type(p) is not dict:
            raise invalid(f"points[{i}]", "must be an object with metric, value and timestamp")
        if len(p) != 3 or "metric" not in p or "value" not in p or "timestamp" not in p:
            for k in _POINT_KEYS:
                if k not in p:
                    raise invalid(f"points[{i}].{k}", "is required")
            extra = next(k for k in p if k not in _POINT_KEYS)
            raise invalid(f"points[{i}].{extra}", "unknown field; a point has metric, value and timestamp")
        append(check_point(p["metric"], p["value"], p["timestamp"], ranges, oldest, newest, "points", i))
    return out


def _prepare(body: Any, record: dict) -> tuple[int, bytes]:
    record["points"] = check_points(body, record["received_at"])
    return len(record["points"]), codec.encode("app_metric_batch", record)


@router.post("/applications/{app_id}/metrics", status_code=202, response_model=MetricsAccepted,
             responses={400: {"model": ErrorOut}, 401: {"model": ErrorOut}, 404: {"model": ErrorOut},
                        503: {"model": ErrorOut}})
async def ingest_metrics(app_id: str, body: MetricsBody, request: Request, tenant: Tenant,
                         settings: SettingsDep, producer: ProducerDep, ids: IdsDep) -> MetricsAccepted:
    """Accept a batch of points (at most 10,000; the body at most 2 MiB), all or none.
    202 once Kafka has the batch; it is readable once the sink landed it (about 250 ms)."""
    require_application(request, tenant, app_id)
    record = {"tenant": tenant, "application_id": app_id, "id": ids.next_id(),
              "received_at": time.time_ns() // 1_000_000, "points": []}
    raw = body.root
    points = raw.get("points") if isinstance(raw, dict) else raw
    if isinstance(points, list) and len(points) > THREAD_ABOVE:
        # A big batch takes tens of milliseconds of CPU: on a thread, the GIL lets the
        # event loop serve other requests in between instead of waiting for all of it.
        n, value = await asyncio.to_thread(_prepare, raw, record)
    else:
        n, value = _prepare(raw, record)
    await send(producer, settings.topic(APP_METRICS.name), entity_key(tenant, app_id), value)
    return MetricsAccepted(accepted=n, batch_id=record["id"])


# -- read -------------------------------------------------------------------------------
def series_sql(granularity: str, stat: str) -> str:
    """The rollup query of one application's metric (subject bound as %(subject)s)."""
    return series.series_sql(APP_METRICS_ROLLUPS[granularity][1], "application_id", stat)


@router.get("/applications/{app_id}/metrics", response_model=MetricSeries,
            responses={400: {"model": ErrorOut}, 401: {"model": ErrorOut}, 404: {"model": ErrorOut}})
async def metric_series(
    app_id: str, request: Request, tenant: Tenant, store: StoreDep,
    start: Annotated[str | None, Query(description="Start time (ISO 8601; no offset = UTC; or epoch ms). "
                                                   "Default: end - 24 h")] = None,
    end: Annotated[str | None, Query(description="End time, exclusive (ISO 8601 or epoch ms). Default: now")] = None,
    metric: Annotated[str, Query(description="response_time, error_rate, throughput or a custom name")] = "response_time",
    granularity: Annotated[str | None, Query(description="1m, 5m, 1h or 1d. Default by range: up to 6 h 1m, "
                                                         "up to 2 d 5m, up to 30 d 1h, longer 1d")] = None,
    stat: Annotated[str, Query(description="mean (default), p50, p95, p99, min, max, sum or count")] = "mean",
) -> Response:
    """One value per bucket, every bucket of the range present (null when it has no points).
    Buckets start at multiples of their length in UTC; the first one holds `start`, the last
    one starts before `end`."""
    require_application(request, tenant, app_id)
    check_metric_name(metric, "metric")
    b = series.buckets(start, end, granularity, stat)
    values = await series.read(store, APP_METRICS_ROLLUPS[b.granularity][1], "application_id",
                               {"tenant": tenant, "subject": app_id, "metric": metric}, b, stat)
    return series.series_response({"metric": metric, "granularity": b.granularity}, b, values)  # a MetricSeries


# -- the 24 h summary of GET /v1/applications/{id} -------------------------------------------
_SUMMARY_MEANS = """
SELECT metric, sum(sum) / sum(count) AS mean FROM app_metrics_1h
WHERE tenant = %(tenant)s AND application_id = %(app)s AND metric IN ('response_time', 'error_rate')
  AND bucket >= toDateTime(%(since)s, 'UTC')
GROUP BY metric
"""
_SUMMARY_UPTIME = """
SELECT countIf(s / c < 1) AS up, count() AS minutes FROM (
    SELECT bucket, sum(sum) AS s, sum(count) AS c FROM app_metrics_1m
    WHERE tenant = %(tenant)s AND application_id = %(app)s AND metric = 'error_rate'
      AND bucket >= toDateTime(%(since)s, 'UTC')
    GROUP BY bucket)
"""


async def summary_24h(request: Request, tenant: str, app_id: str) -> dict:
    """uptime, response_time and error_rate over the last 24 h; null without data.

    The window is the 24 hourly buckets up to and including the current hour (so 23 to
    24 hours of data). response_time and error_rate are the means of every point in it
    (from the 1h rollup); uptime is the percentage of its minutes that have error_rate
    points whose mean is below 1 (from the 1m rollup), among the minutes that have any.
    """
    store = request.app.state.store
    now_s = time.time_ns() // 1_000_000_000
    params = {"tenant": tenant, "app": app_id, "since": now_s - now_s % 3600 - 23 * 3600}
    means, uptime = await asyncio.gather(store.rows(_SUMMARY_MEANS, params), store.rows(_SUMMARY_UPTIME, params))
    by_metric = {r["metric"]: r["mean"] for r in means}
    u = uptime[0] if uptime else {"minutes": 0}
    return {"uptime": 100.0 * u["up"] / u["minutes"] if u["minutes"] else None,
            "response_time": by_metric.get("response_time"), "error_rate": by_metric.get("error_rate")}
