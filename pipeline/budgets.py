"""Token budgets (issue 16): which reports a budget counts, its periods, its usage, and
when it runs out at the current pace (the exhaustion forecast).

One home for the rules the worker (pipeline/worker/budgets.py) and the api
(api/budgets.py) share; semantics and numbers: docs/budgets.md.

A budget counts `token_consumption` of the vitals of its scope (one agent, the agents
whose metadata tag `tag` equals `tag_value`, or the whole account) recorded at or after
its creation, per period: a calendar day, ISO week (from Monday) or month in UTC, or a
rolling window counted in 60 buckets of window/60 each.

Counting is by record time (`recorded_at`), never wall time, so the worker re-reading a
batch after a restart derives the same counts. The worker keeps one partial count per
budget and vitals partition (a budget's agents spread over partitions), and publishes it
as a cumulative figure: the api sums the latest partial of each partition, so a partial
produced twice changes nothing.
"""
import json
import math
from datetime import datetime, timedelta, timezone

import numpy as np

from .forecast import forecast

LONG_MAX = 2**63 - 1  # an Avro long: crafted reports (2^53 tokens each) could pass it; a count stops there
SCOPES = ("agent", "group", "account")
PERIODS = ("day", "week", "month", "rolling")
BUCKETS = 60  # a rolling window is counted in this many buckets
DAY_MS = 86_400_000


def _utc(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, timezone.utc)


def _ms(dt: datetime) -> int:
    return int(dt.timestamp() * 1000)


def bucket_ms(budget: dict) -> int:
    return budget["window_ms"] // BUCKETS


def slot(budget: dict, t: int) -> int:
    """Start of the period (calendar) or bucket (rolling) holding time `t`, epoch ms."""
    period = budget["period"]
    if period == "rolling":
        b = bucket_ms(budget)
        return t - t % b
    day = t - t % DAY_MS
    if period == "day":
        return day
    if period == "week":
        return day - _utc(day).weekday() * DAY_MS
    return _ms(_utc(day).replace(day=1))  # month


def next_period(budget: dict, start: int) -> int | None:
    """End of the calendar period starting at `start`; None for a rolling window."""
    period = budget["period"]
    if period == "day":
        return start + DAY_MS
    if period == "week":
        return start + 7 * DAY_MS
    if period == "month":
        d = _utc(start)
        return _ms(d.replace(year=d.year + d.month // 12, month=d.month % 12 + 1))
    return None


def first_counted(budget: dict, now: int) -> int:
    """The oldest slot start counted at `now`: the current period, or the window's oldest bucket."""
    if budget["period"] == "rolling":
        b = bucket_ms(budget)
        return slot(budget, now) - (BUCKETS - 1) * b
    return slot(budget, now)


def since(budget: dict, now: int) -> int:
    """From when the figures at `now` count: the period's (or window's) start, or the
    budget's creation if that is later."""
    return max(first_counted(budget, now), budget["created_at"])


def kept_from(budget: dict, newest: int) -> int:
    """The oldest slot a partial keeps once it counted a report at `newest`: the current
    and the previous period, or every bucket the window can still reach. Older slots can
    no longer be read, so they are dropped (deterministically: by record time)."""
    if budget["period"] == "rolling":
        return slot(budget, newest) - BUCKETS * bucket_ms(budget)
    current = slot(budget, newest)
    return slot(budget, current - 1)


def covers(budget: dict, agent_id: str, metadata: dict | None) -> bool:
    scope = budget["scope"]
    if scope == "account":
        return True
    if scope == "agent":
        return budget["agent_id"] == agent_id
    value = (metadata or {}).get(budget["tag"])
    return isinstance(value, str) and value == budget["tag_value"]


def metadata_of(record: dict) -> dict:
    try:
        found = json.loads(record.get("metadata") or "{}")
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}


def count(partial: dict | None, budget: dict, recorded_at: int, tokens: int) -> dict:
    """A budget's partial ({"counts": {slot: used}, "through": newest recorded_at}) after one
    report. A report older than the slots the partial keeps is past every figure: not counted."""
    partial = {"counts": dict((partial or {}).get("counts", {})), "through": (partial or {}).get("through", 0)}
    newest = max(partial["through"], recorded_at)
    oldest = kept_from(budget, newest)
    at = slot(budget, recorded_at)
    if at >= oldest:
        key = str(at)  # JSON object keys: the table's values are JSON
        partial["counts"][key] = min(LONG_MAX, partial["counts"].get(key, 0) + tokens)
    partial["counts"] = {k: v for k, v in partial["counts"].items() if int(k) >= oldest}
    partial["through"] = newest
    return partial


def used(budget: dict, counts: list[dict], now: int) -> int:
    """Tokens counted at `now` from slot counts [{start, used}] (any number of partials)."""
    lo = first_counted(budget, now)
    hi = slot(budget, now)
    return sum(c["used"] for c in counts if lo <= c["start"] <= hi)


def figures(budget: dict, partials: list[dict], now: int, ahead: bool = True) -> dict:
    """used, remaining, percent_used, exhausted, since, resets_at, as_of and the exhaustion
    forecast (unless not `ahead`: None) of a budget from the latest partial of each
    partition (budget_usage records)."""
    counts = [c for p in partials for c in p["counts"]]
    total = used(budget, counts, now)
    limit = budget["limit"]
    through = max((p["counted_through"] for p in partials), default=None)
    ahead = exhaustion(budget, counts, now) if ahead else None
    return {"used": total, "remaining": max(0, limit - total), "percent_used": round(total * 100 / limit, 2),
            "exhausted": total >= limit, "since": since(budget, now),
            "resets_at": next_period(budget, slot(budget, now)), "as_of": through,
            "forecast_exhaustion_at": ahead and ahead["at"], "forecast_exhaustion_lower": ahead and ahead["lower"],
            "forecast_exhaustion_upper": ahead and ahead["upper"]}


MIN_HISTORY = 3  # complete buckets pipeline/forecast.py needs; below, the average pace


def pace(budget: dict, counts: list[dict], now: int) -> tuple:
    """The current pace as (tokens, per ms), with its interval's ends (None without one);
    kept as a ratio so that whole figures give exact times.

    A rolling window's complete buckets since `since` are a series: pipeline/forecast.py
    forecasts its next bucket with its LEVEL interval (with at most 59 buckets that is its
    naive rule: the last bucket, the spread of bucket-to-bucket changes). A calendar
    period holds one count, so its pace is the average since `since`, without interval."""
    start = since(budget, now)
    if budget["period"] == "rolling":
        b = bucket_ms(budget)
        first = -(-start // b) * b  # the bucket holding `since` may be partly before it
        starts = range(first, slot(budget, now), b)
        if len(starts) >= MIN_HISTORY:
            by_start = {}
            for c in counts:
                by_start[c["start"]] = by_start.get(c["start"], 0) + c["used"]
            f = forecast(np.array([float(by_start.get(s, 0)) for s in starts]), (BUCKETS,), 1)
            return (f.mean[0], b), (f.lower[0], b), (f.upper[0], b)
    return (used(budget, counts, now), now - start), None, None


def reach(budget: dict, counts: list[dict], now: int, rate: tuple | None) -> int | None:
    """When the figures reach the limit if tokens keep coming at `rate` (tokens, per ms) from `now`:
    before the calendar period resets, or within the next window (as it slides, the oldest
    buckets leave the figures); None if not."""
    if rate is None or rate[0] <= 0 or rate[1] <= 0:
        return None
    tokens, per = rate
    limit, current = budget["limit"], slot(budget, now)
    if budget["period"] != "rolling":
        at = now + math.ceil((limit - used(budget, counts, now)) * per / tokens)
        return at if at < next_period(budget, current) else None
    b = bucket_ms(budget)
    for k in range(BUCKETS):  # bucket k ahead: the window holds the counts from its start - 59 buckets
        begins = current + k * b
        known = sum(c["used"] for c in counts if begins - (BUCKETS - 1) * b <= c["start"] <= current)
        at = now + math.ceil((limit - known) * per / tokens)
        if at < begins + b:
            return max(at, now)
    return None


def exhaustion(budget: dict, counts: list[dict], now: int) -> dict | None:
    """{"at", "lower", "upper"} (epoch ms) of exhaustion at the current pace: `at` from the
    pace, `lower` from its interval's fast end, `upper` from its slow end (None when at
    that pace it does not exhaust). None when the budget is exhausted already or will not
    be at the current pace (no consumption, or not before the reset or within the window)."""
    if used(budget, counts, now) >= budget["limit"]:
        return None
    rate, low, high = pace(budget, counts, now)
    at = reach(budget, counts, now, rate)
    if at is None:
        return None
    return {"at": at, "lower": reach(budget, counts, now, high), "upper": reach(budget, counts, now, low)}
