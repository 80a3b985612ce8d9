"""Predictions (/v1/applications/{id}/predictions): a linear trend over recent buckets.

For a horizon H the recent history is read from the rollup of granularity G (the
bucket means), over the LOOKBACK before the current bucket; a least-squares line
through those means is extended over H, one prediction per bucket of G. Each
prediction's `confidence` is the probability, under the fit's normal residuals, that
the real bucket mean lands within TOLERANCE (10 %) of the predicted value; it falls as
the prediction gets further from the data. Rules and numbers: docs/predictions.md.
"""
import math
from dataclasses import dataclass

HOUR_S = 3600


@dataclass(frozen=True)
class Horizon:
    granularity: str  # rollup read, and spacing of the predictions
    step_s: int
    lookback_s: int  # history fitted, ending at the start of the current bucket


HORIZONS = {
    "1h": Horizon("5m", 300, 6 * HOUR_S),
    "6h": Horizon("1h", HOUR_S, 48 * HOUR_S),
    "24h": Horizon("1h", HOUR_S, 7 * 24 * HOUR_S),
    "7d": Horizon("1d", 24 * HOUR_S, 28 * 24 * HOUR_S),
}
HORIZON_S = {"1h": HOUR_S, "6h": 6 * HOUR_S, "24h": 24 * HOUR_S, "7d": 7 * 24 * HOUR_S}
MIN_BUCKETS = 3  # a line and its residual spread need at least three points
TOLERANCE = 0.10
# Values a built-in metric can take; a prediction is clamped into them.
BOUNDS = {"response_time": (0.0, math.inf), "error_rate": (0.0, 1.0), "throughput": (0.0, math.inf)}


@dataclass(frozen=True)
class Fit:
    slope: float  # per second
    intercept: float  # value at t = 0 (epoch seconds, centred below)
    t_mean: float
    sxx: float
    residual_sd: float
    n: int

    def at(self, t: float) -> float:
        return self.intercept + self.slope * (t - self.t_mean)

    def prediction_sd(self, t: float) -> float:
        """Standard deviation of a new bucket mean at t (the OLS prediction interval)."""
        return self.residual_sd * math.sqrt(1 + 1 / self.n + (t - self.t_mean) ** 2 / self.sxx)


def fit(points: list[tuple[int, float]]) -> Fit | None:
    """Ordinary least squares of value on time over (epoch seconds, value) points;
    None below MIN_BUCKETS points."""
    n = len(points)
    if n < MIN_BUCKETS:
        return None
    t_mean = sum(t for t, _ in points) / n
    y_mean = sum(y for _, y in points) / n
    sxx = sum((t - t_mean) ** 2 for t, _ in points)
    slope = sum((t - t_mean) * (y - y_mean) for t, y in points) / sxx
    sse = sum((y - (y_mean + slope * (t - t_mean))) ** 2 for t, y in points)
    return Fit(slope, y_mean, t_mean, sxx, math.sqrt(sse / (n - 2)), n)


def confidence(f: Fit, t: float, predicted: float) -> float:
    """P(|actual - predicted| <= TOLERANCE * |predicted|) for a normal with the fit's
    prediction spread; 1.0 for a perfect fit, 0.0 when the predicted value is 0 and the
    data scatter."""
    sd = f.prediction_sd(t)
    band = TOLERANCE * abs(predicted)
    if sd == 0:
        return 1.0
    return math.erf(band / (sd * math.sqrt(2)))


def predict(metric: str, horizon: str, history: list[tuple[int, float]], now_s: int) -> list[dict]:
    """Predictions for the buckets after the current one, `horizon` ahead; empty when the
    history has fewer than MIN_BUCKETS buckets with data."""
    h = HORIZONS[horizon]
    f = fit(history)
    if f is None:
        return []
    lo, hi = BOUNDS.get(metric, (-math.inf, math.inf))
    current = now_s - now_s % h.step_s
    out = []
    for i in range(1, HORIZON_S[horizon] // h.step_s + 1):
        t = current + i * h.step_s
        value = min(max(f.at(t), lo), hi)
        out.append({"timestamp": t, "predicted_value": round(value, 6),
                    "confidence": round(confidence(f, t, value), 4)})
    return out


def history_range(horizon: str, now_s: int) -> tuple[int, int]:
    """[first, last] bucket starts (epoch seconds) whose means are fitted: the LOOKBACK
    before the current, still filling, bucket."""
    h = HORIZONS[horizon]
    current = now_s - now_s % h.step_s
    return current - h.lookback_s, current - h.step_s
