"""Reading a metric series from a rollup: the one home of the query rules shared by
GET /v1/applications/{id}/metrics and GET /api/agents/{id}/metrics (docs/metrics.md).

Times are ISO 8601 (no offset = UTC) or epoch ms; the range is [start, end); buckets
start at multiples of their length in UTC; the default granularity is the finest whose
buckets cover the range in at most 720 of them; at most 10,000 buckets per answer; every
bucket of the range is present, null (count: 0) when it has no points.
"""
import math
import re
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from fastapi import Response
from pydantic_core import to_json

from pipeline.store.schema import APP_METRICS_ROLLUPS, QUANTILES, QUANTILES_STATE, Table

from .errors import invalid

MAX_BUCKETS = 10_000
DEFAULT_RANGE_MS = 24 * 3_600_000
GRANULARITY_MS = {g: seconds * 1000 for g, (seconds, _) in APP_METRICS_ROLLUPS.items()}
DEFAULT_GRANULARITY = ((6 * 3_600_000, "1m"), (2 * 86_400_000, "5m"), (30 * 86_400_000, "1h"))
_Q = ", ".join(str(q) for q in QUANTILES)
STATS = {
    "mean": "sum(sum) / sum(count)",
    "min": "min(min)",
    "max": "max(max)",
    "sum": "sum(sum)",
    "count": "sum(count)",
    **{f"p{round(q * 100)}": f"quantilesExactInclusiveMerge({_Q})(quantiles)[{i + 1}]" for i, q in enumerate(QUANTILES)},
}
assert QUANTILES_STATE == f"quantilesExactInclusive({_Q})"

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MS = timedelta(milliseconds=1)
MAX_DATETIME_S = 2**32 - 1  # ClickHouse DateTime ends in 2106


def parse_iso(raw: str, field: str, hint: str = "") -> int:
    """Epoch ms of an ISO 8601 time (no offset = UTC), or a 400 naming `field`: the api's
    one ISO 8601 parser."""
    try:
        dt = datetime.fromisoformat(raw)
    except ValueError:
        raise invalid(field, f"{raw[:40]!r} is not an ISO 8601 time{hint}") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return (dt - _EPOCH) // _MS


_EPOCH_MS = re.compile(r"[0-9]{1,16}")  # ASCII digits only (str.isdigit also takes "١٢٣" and "²")
MAX_TIME_CHARS = 64


def query_time(raw: str | None, field: str) -> int | None:
    """A query-string time (ISO 8601 or epoch ms) as epoch ms; None when absent."""
    if raw is None:
        return None
    raw = raw.strip()
    if _EPOCH_MS.fullmatch(raw):
        return int(raw)
    if not raw.isascii() or len(raw) > MAX_TIME_CHARS or raw.isdigit():
        raise invalid(field, "must be an ISO 8601 time (e.g. 2024-01-15T12:00:00Z) or epoch milliseconds "
                             "(at most 16 ASCII digits)")
    # An unencoded "+" in a query string arrives as a space: "12:00:00 01:00" meant "+01:00".
    raw = re.sub(r" (\d\d:?\d\d)$", r"+\1", raw)
    return parse_iso(raw, field, " (e.g. 2024-01-15T12:00:00Z)")


@dataclass(frozen=True)
class Buckets:
    granularity: str
    first: int  # epoch ms of the first bucket's start
    last: int   # epoch ms of the last bucket's start
    step: int

    def starts(self) -> range:
        return range(self.first, self.last + 1, self.step)


def buckets(start: str | None, end: str | None, granularity: str | None, stat: str) -> Buckets:
    """The buckets a query asks for, or a 400 naming the offending parameter."""
    if granularity is not None and granularity not in GRANULARITY_MS:
        raise invalid("granularity", "must be 1m, 5m, 1h or 1d")
    if stat not in STATS:
        raise invalid("stat", f"must be one of {', '.join(STATS)}")
    end_ms = query_time(end, "end")
    start_ms = query_time(start, "start")
    if end_ms is None:
        end_ms = time.time_ns() // 1_000_000
    if start_ms is None:
        start_ms = end_ms - DEFAULT_RANGE_MS
    if start_ms >= end_ms:
        raise invalid("start", "must be before end")
    if start_ms < 0:
        raise invalid("start", "must not be before 1970-01-01T00:00:00Z")
    if end_ms > MAX_DATETIME_S * 1000:
        raise invalid("end", "must not be after 2106-02-07T06:28:15Z")
    if granularity is None:
        span = end_ms - start_ms
        granularity = next((g for limit, g in DEFAULT_GRANULARITY if span <= limit), "1d")
    step = GRANULARITY_MS[granularity]
    first = start_ms - start_ms % step
    n = -(-(end_ms - first) // step)
    if n > MAX_BUCKETS:
        raise invalid("granularity", f"start..end holds {n} buckets of {granularity}, more than "
                                     f"{MAX_BUCKETS}: choose a coarser granularity or a shorter range")
    return Buckets(granularity, first, first + (n - 1) * step, step)


def series_sql(rollup: Table, subject: str, stat: str) -> str:
    """One (t, v) row per bucket with points of one subject's metric; `subject` is the
    rollup's id column (application_id, agent_id), bound as %(subject)s."""
    return (f"SELECT toUnixTimestamp(bucket) AS t, {STATS[stat]} AS v FROM {rollup.name} "
            f"WHERE tenant = %(tenant)s AND {subject} = %(subject)s AND metric = %(metric)s "
            "AND bucket >= toDateTime(%(lo)s, 'UTC') AND bucket <= toDateTime(%(hi)s, 'UTC') "
            "GROUP BY bucket ORDER BY bucket")


async def read(store, rollup: Table, subject: str, params: dict, b: Buckets, stat: str) -> list[float | None]:
    """The value of every bucket of `b`, in order; empty ones are None (0 for count), and
    so are stats that overflow the float range (sums of custom values near 1.8e308)."""
    rows = await store.tuples(series_sql(rollup, subject, stat), {**params, "lo": b.first // 1000, "hi": b.last // 1000})
    values = [0 if stat == "count" else None] * len(b.starts())
    first_s, step_s = b.first // 1000, b.step // 1000
    for t, v in rows:
        values[(t - first_s) // step_s] = v if v is None or math.isfinite(v) else None
    return values


# Every granularity divides a day into whole minutes, so a bucket starts on one of these
# times of day, and a day's buckets are a stride of them.
_CLOCK = tuple(f"T{m // 60:02d}:{m % 60:02d}:00Z" for m in range(1440))
_DAY_MS = 86_400_000


def bucket_times(b: Buckets) -> list[str]:
    """Every bucket start as `2024-01-15T12:30:00Z` (applications.iso_s): one date
    formatted per day, not a datetime per bucket."""
    stride = b.step // 60_000
    out: list[str] = []
    t = b.first
    while t <= b.last:
        day, ms = divmod(t, _DAY_MS)
        date = (_EPOCH + timedelta(days=day)).date().isoformat()
        minute = ms // 60_000
        last = min(1440, minute + (b.last - t) // 60_000 + 1)  # this day's, up to the last bucket
        out += [date + clock for clock in _CLOCK[minute:last:stride]]
        t = (day + 1) * _DAY_MS
    return out


def series_response(head: dict, b: Buckets, values: list[float | None]) -> Response:
    """`{**head, "data": [{"timestamp", "value"}, ...]}` as the route's response model
    would serialize it (the same bytes), without a model per bucket and FastAPI's
    validation pass over them: those cost more than the query (issue 13). pydantic-core
    writes the head and the values (its number format is the model's); the bucket
    objects around them are joined as text, as neither holds anything to escape."""
    numbers = to_json(values).decode()[1:-1].split(",") if values else []  # numbers and nulls: no commas inside
    data = ",".join([f'{{"timestamp":"{ts}","value":{v}}}' for ts, v in zip(bucket_times(b), numbers)])
    return Response(to_json(head)[:-1] + f',"data":[{data}]}}'.encode(), media_type="application/json")
