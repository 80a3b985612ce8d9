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

from .metric_bounds import BUILTIN, CUSTOM, MAX_FINITE

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
# Values a metric can take (pipeline/metric_bounds.py); a prediction is clamped into them.
BOUNDS = BUILTIN


_MAX = MAX_FINITE


@dataclass(frozen=True)
class Fit:
    """The line, computed on the values scaled by 2**-exp (exactly: a power of two) so
    that no sum or square overflows whatever finite values come in."""
    slope_s: float  # per second, scaled
    intercept_s: float  # value at t_mean, scaled
    t_mean: float
    sxx: float
    residual_sd_s: float
    n: int
    exp: int

    @property
    def slope(self) -> float:
        return _unscale(self.slope_s, self.exp)

    @property
    def intercept(self) -> float:
        return _unscale(self.intercept_s, self.exp)

    @property
    def residual_sd(self) -> float:
        return _unscale(self.residual_sd_s, self.exp)

    def at(self, t: float) -> float:
        """The line's value at t, within the finite floats."""
        return _unscale(self.intercept_s + self.slope_s * (t - self.t_mean), self.exp)

    def prediction_sd_s(self, t: float) -> float:
        return self.residual_sd_s * math.sqrt(1 + 1 / self.n + (t - self.t_mean) ** 2 / self.sxx)

    def prediction_sd(self, t: float) -> float:
        """Standard deviation of a new bucket mean at t (the OLS prediction interval)."""
        return _unscale(self.prediction_sd_s(t), self.exp)


def _unscale(x: float, exp: int) -> float:
    try:
        return max(-_MAX, min(math.ldexp(x, exp), _MAX))
    except OverflowError:
        return _MAX if x > 0 else -_MAX


def fit(points: list[tuple[int, float]]) -> Fit | None:
    """Ordinary least squares of value on time over (epoch seconds, value) points;
    None below MIN_BUCKETS finite points."""
    points = [(t, y) for t, y in points if y is not None and math.isfinite(y)]
    n = len(points)
    if n < MIN_BUCKETS:
        return None
    exp = math.frexp(max(abs(y) for _, y in points))[1]
    points = [(t, math.ldexp(y, -exp)) for t, y in points]  # now |y| < 1
    t_mean = sum(t for t, _ in points) / n
    y_mean = sum(y for _, y in points) / n
    sxx = sum((t - t_mean) ** 2 for t, _ in points)
    if sxx == 0:  # every point at one time: no line
        return None
    slope = sum((t - t_mean) * (y - y_mean) for t, y in points) / sxx
    sse = sum((y - (y_mean + slope * (t - t_mean))) ** 2 for t, y in points)
    return Fit(slope, y_mean, t_mean, sxx, math.sqrt(sse / (n - 2)), n, exp)


def confidence(f: Fit, t: float, predicted: float) -> float:
    """P(|actual - predicted| <= TOLERANCE * |predicted|) for a normal with the fit's
    prediction spread; 1.0 for a perfect fit, 0.0 when the predicted value is 0 and the
    data scatter."""
    sd = f.prediction_sd_s(t)
    band = math.ldexp(TOLERANCE * abs(predicted), -f.exp)
    if sd == 0:
        return 1.0
    return math.erf(band / (sd * math.sqrt(2)))


def predict(metric: str, horizon: str, history: list[tuple[int, float]], now_s: int) -> list[dict]:
    """Predictions for the buckets after the current one, `horizon` ahead; empty when the
    history has fewer than MIN_BUCKETS buckets with data. Every value is finite."""
    h = HORIZONS[horizon]
    f = fit(history)
    if f is None:
        return []
    lo, hi = BOUNDS.get(metric, CUSTOM)
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
