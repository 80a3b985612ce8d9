"""Predictions (/v1/applications/{id}/predictions, /api/agents/{id}/predictions): the
bucket means of a metric's recent history, forecast by pipeline/forecast.py.

For a horizon H the history is read from the rollup of granularity G over the LOOKBACK
before the current bucket (which is still filling); the buckets after the current one,
up to H, are predicted, each with an interval [lower, upper] that holds the real bucket
mean with probability `confidence` (forecast.LEVEL). Rules and measured figures:
docs/predictions.md.
"""
import math
from dataclasses import dataclass

import numpy as np

from . import forecast as F
from .metric_bounds import BUILTIN, CUSTOM

HOUR_S = 3600
DAY_S = 24 * HOUR_S


@dataclass(frozen=True)
class Horizon:
    granularity: str  # rollup read, and spacing of the predictions
    step_s: int
    lookback_s: int  # history read, ending at the start of the current bucket
    seasons: tuple[int, ...]  # in buckets: the daily one first (weekly for 1d buckets), then longer ones

    @property
    def buckets(self) -> int:
        return self.lookback_s // self.step_s


HORIZONS = {
    "1h": Horizon("5m", 300, 4 * DAY_S, (288,)),
    "6h": Horizon("1h", HOUR_S, 28 * DAY_S, (24, 168)),
    "24h": Horizon("1h", HOUR_S, 28 * DAY_S, (24, 168)),
    "7d": Horizon("1d", DAY_S, 16 * 7 * DAY_S, (7,)),
}
HORIZON_S = {"1h": HOUR_S, "6h": 6 * HOUR_S, "24h": DAY_S, "7d": 7 * DAY_S}
MIN_BUCKETS = 3  # below this there is nothing to forecast from
# Values a metric can take (pipeline/metric_bounds.py); a prediction is clamped into them.
BOUNDS = BUILTIN


def usable_buckets(history: list[tuple[int, float | None]]) -> int:
    """Buckets with a finite mean (a custom metric's mean can overflow to inf)."""
    return sum(1 for _, v in history if v is not None and math.isfinite(v))


def series(history: list[tuple[int, float]], first: int, last: int, step_s: int) -> np.ndarray:
    """The finite bucket means of [first, last] as one value per bucket, from the first
    bucket with data to the last; buckets without data in between are interpolated
    linearly (missing data, not zeros)."""
    points = [((t - first) // step_s, v) for t, v in history
              if first <= t <= last and v is not None and math.isfinite(v)]
    if not points:
        return np.empty(0)
    idx = np.array([i for i, _ in points])
    values = np.array([v for _, v in points], dtype=float)
    order = np.argsort(idx)
    idx, values = idx[order], values[order]
    return np.interp(np.arange(idx[0], idx[-1] + 1), idx, values)


def forecast_after(y: np.ndarray, trailing_gap: int, horizon: str) -> F.Forecast | None:
    """The forecast of the buckets after the current one, up to the horizon, from y whose
    last value is `trailing_gap` buckets before the one before the current bucket."""
    h = HORIZONS[horizon]
    steps = HORIZON_S[horizon] // h.step_s
    f = F.forecast(y, h.seasons, trailing_gap + 1 + steps)
    if f is None:
        return None
    return F.Forecast(f.mean[-steps:], f.lower[-steps:], f.upper[-steps:], f.method)


def predict(metric: str, horizon: str, history: list[tuple[int, float]], now_s: int) -> tuple[list[dict], str]:
    """(predictions, method) for the buckets after the current one, `horizon` ahead;
    empty when the history has fewer than MIN_BUCKETS buckets with data (method
    "none"). Every value is finite and within the metric's bounds."""
    h = HORIZONS[horizon]
    first, last = history_range(horizon, now_s)
    usable = [(t, v) for t, v in history if first <= t <= last and v is not None and math.isfinite(v)]
    if len(usable) < MIN_BUCKETS:
        return [], "none"
    y = series(usable, first, last, h.step_s)
    gap = (last - max(t for t, _ in usable)) // h.step_s
    f = forecast_after(y, gap, horizon)
    lo, hi = BOUNDS.get(metric, CUSTOM)
    current = now_s - now_s % h.step_s

    def clamp(x: float) -> float:
        return round(min(max(float(x), lo), hi), 6)

    return [{"timestamp": current + (i + 1) * h.step_s, "predicted_value": clamp(f.mean[i]),
             "confidence": F.LEVEL, "lower": clamp(f.lower[i]), "upper": clamp(f.upper[i])}
            for i in range(len(f.mean))], f.method


def history_range(horizon: str, now_s: int) -> tuple[int, int]:
    """[first, last] bucket starts (epoch seconds) read: the LOOKBACK before the current,
    still filling, bucket."""
    h = HORIZONS[horizon]
    current = now_s - now_s % h.step_s
    return current - h.lookback_s, current - h.step_s
