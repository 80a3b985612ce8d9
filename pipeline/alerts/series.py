"""A metric's recent points as BUCKETS buckets of window/60, in data time.

A bucket is [start, sum, count, min, max] and, when a p95 rule reads the series, up to
VALUES_KEPT of its values: all of them while it has no more, past that a uniform sample
(reservoir sampling, Algorithm R, with the slot drawn from a hash of the bucket and the
point's rank, so the same points always keep the same sample). So the state a rule
needs stays bounded whatever the point rate; every aggregation but p95 is exact, and p95
is exact up to VALUES_KEPT points per bucket (docs/alerts.md).
"""
import hashlib
import math

VALUES_KEPT = 64


def new_series() -> dict:
    return {"b": [], "newest": None}


def add(series: dict, t: int, value: float, bucket_ms: int, window_ms: int, keep_values: bool) -> None:
    start = t - t % bucket_ms
    newest = series["newest"]
    if newest is not None and start <= newest - newest % bucket_ms - window_ms:
        return  # older than the window: no evaluation can read it any more
    buckets = series["b"]
    b = next((x for x in reversed(buckets) if x[0] == start), None)  # in-order points hit the last one
    if b is None:
        b = [start, 0.0, 0, value, value] + ([[]] if keep_values else [])
        buckets.append(b)
        buckets.sort(key=lambda x: x[0])
    b[1] += value
    b[2] += 1
    b[3] = min(b[3], value)
    b[4] = max(b[4], value)
    if keep_values:
        if len(b) < 6:  # a p95 rule arrived after this bucket began
            b.append([])
        _keep(b, value)
    if newest is None or t > newest:
        series["newest"] = t
        cut = t - t % bucket_ms - window_ms
        if buckets[0][0] <= cut:
            series["b"] = [x for x in buckets if x[0] > cut]


def _keep(b: list, value: float) -> None:
    vals, n = b[5], b[2]  # n counts this point already
    if len(vals) < VALUES_KEPT:
        vals.append(value)
        return
    slot = int.from_bytes(hashlib.blake2b(f"{b[0]}:{n}".encode(), digest_size=8).digest(), "little") % n
    if slot < VALUES_KEPT:
        vals[slot] = value


def window(series: dict, at: int, bucket_ms: int, window_ms: int) -> list[list]:
    """The buckets of the window ending with the bucket of `at`."""
    end = at - at % bucket_ms
    return [b for b in series["b"] if end - window_ms < b[0] <= end]


def aggregate(buckets: list[list], aggregation: str) -> float | None:
    """The aggregation over the buckets' points; None when they hold none."""
    count = sum(b[2] for b in buckets)
    if not count:
        return None
    if aggregation == "count":
        return float(count)
    if aggregation == "sum":
        return math.fsum(b[1] for b in buckets)
    if aggregation == "mean":
        return math.fsum(b[1] for b in buckets) / count
    if aggregation == "min":
        return min(b[3] for b in buckets)
    if aggregation == "max":
        return max(b[4] for b in buckets)
    if aggregation == "p95":
        return _quantile(buckets, 0.95)
    raise ValueError(f"unknown aggregation {aggregation!r}")


def _quantile(buckets: list[list], q: float) -> float | None:
    """Linear interpolation between order statistics (numpy's default, ClickHouse's
    quantileExactInclusive) over the kept values, each weighted by the points it stands for."""
    weighted = sorted((v, b[2] / len(b[5])) for b in buckets if len(b) > 5 and b[5] for v in b[5])
    if not weighted:
        return None
    if all(abs(w - 1) < 1e-12 for _, w in weighted):
        vals = [v for v, _ in weighted]
        pos = q * (len(vals) - 1)
        lo = math.floor(pos)
        hi = min(lo + 1, len(vals) - 1)
        return vals[lo] + (vals[hi] - vals[lo]) * (pos - lo)
    total = sum(w for _, w in weighted)
    target, seen = q * total, 0.0
    for v, w in weighted:
        seen += w
        if seen >= target:
            return v
    return weighted[-1][0]
