"""Forecasting one evenly spaced series: seasonal naive, or a seasonal decomposition with
a damped trend, chosen by a short backtest, with empirical prediction intervals.

The rules (docs/predictions.md):
- Candidates: `seasonal_naive` (the value one season earlier) and, for each season s
  (daily, and weekly when given) with at least 2·s + BACKTEST_ORIGINS·steps values,
  `decomposition(s)`: statsmodels' classical additive decomposition with period s (the
  seasonal profile: per-phase mean of the detrended series), and statsmodels' damped
  Holt exponential smoothing of the seasonally adjusted series (level and trend).
  Forecast = Holt's forecast + the seasonal profile at that phase.
- Choice: each candidate forecasts the last BACKTEST_ORIGINS·steps values, `steps` at a
  time from the values before them (Holt's parameters fitted once, on the whole series);
  the lowest mean absolute error wins, seasonal naive on ties (the simpler model). With a history too short for any decomposition the answer is seasonal naive;
  with less than one season plus one value it is the last value repeated (`naive`).
- Interval: the chosen model's in-sample errors at the same lead (every origin of the
  history, lead h forecast against the value h later), their (1 - LEVEL)/2 and
  (1 + LEVEL)/2 empirical quantiles added to the forecast.

The arithmetic runs on the values scaled by a power of two that brings them below 1, so
that no difference overflows whatever finite values come in; the answer is unscaled and
clamped to the finite floats.
"""
import math
import warnings
from dataclasses import dataclass

import numpy as np
from statsmodels.tsa.holtwinters import Holt
from statsmodels.tsa.seasonal import seasonal_decompose

LEVEL = 0.8  # probability that a bucket's value lands inside [lower, upper]
MEDIAN_CYCLES = 7  # seasons a seasonal median looks back over, at most
BACKTEST_ORIGINS = 2  # the backtest holds out 2·steps values beyond the 2 seasons a model needs
_MAX = float(np.finfo(float).max)


@dataclass(frozen=True)
class Forecast:
    mean: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    method: str  # naive, seasonal_naive or decomposition(<season>)


def _naive(y: np.ndarray, steps: int) -> tuple[np.ndarray, list[np.ndarray]]:
    # beyond the history's span, the errors of the longest lead it has
    errors = [y[k:] - y[:-k] for k in (min(h, len(y) - 1) for h in range(1, steps + 1))]
    return np.full(steps, y[-1]), errors


def _seasonal_naive(y: np.ndarray, season: int, steps: int) -> tuple[np.ndarray, list[np.ndarray]]:
    n = len(y)
    mean = np.array([y[n - season + (h - 1) % season] for h in range(1, steps + 1)])
    diffs = y[season:] - y[:-season]  # the error at any lead up to a season
    return mean, [diffs] * steps


def _seasonal_median(y: np.ndarray, season: int, steps: int) -> tuple[np.ndarray, list[np.ndarray]]:
    n = len(y)
    k = min(MEDIAN_CYCLES, n // season - 1)  # leaves at least a season of in-sample errors
    mean = np.median(y[n - k * season:].reshape(k, season), axis=0)[(np.arange(steps)) % season]
    # in-sample: every value against the median of the same phase in the k seasons before it
    past = np.stack([y[(k - j) * season:n - j * season] for j in range(1, k + 1)])
    errors = y[k * season:] - np.median(past, axis=0)  # the error at any lead up to a season
    return mean, [errors] * steps


def _decomposition(y: np.ndarray, season: int, steps: int, params: dict | None = None):
    """(forecast, errors by lead, Holt's parameters); Holt's parameters are fitted
    unless given (the backtest reuses those of the whole history: one optimisation per
    request)."""
    n = len(y)
    seasonal = seasonal_decompose(y, period=season, extrapolate_trend="period").seasonal
    profile = seasonal[n - season:]  # phases of the last season; the profile is periodic
    adjusted = y - seasonal
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence chatter on flat or tiny series
        model = Holt(adjusted, damped_trend=True, initialization_method="heuristic")
        fit = model.fit() if params is None else model.fit(**params, optimized=False)
    phi = fit.params["damping_trend"]
    damp = np.cumsum(phi ** np.arange(1, steps + 1))  # phi + phi^2 + ... + phi^h
    mean = fit.level[-1] + damp * fit.trend[-1] + np.array([profile[(h - 1) % season] for h in range(1, steps + 1)])
    # lead-h forecast from every origin t: level_t + damp_h·trend_t + seasonal_{t+h}
    errors = [adjusted[h:] - (fit.level[:-h] + damp[h - 1] * fit.trend[:-h]) for h in range(1, steps + 1)]
    if not (np.all(np.isfinite(mean)) and all(np.all(np.isfinite(e)) for e in errors)):
        return None
    return mean, errors, {"smoothing_level": fit.params["smoothing_level"],
                          "smoothing_trend": fit.params["smoothing_trend"], "damping_trend": phi}


def _fit(method: tuple[str, int], y: np.ndarray, steps: int, params: dict | None = None):
    """(forecast, errors by lead, parameters or None), or None when it went non-finite."""
    kind, season = method
    if kind == "naive":
        return (*_naive(y, steps), None)
    if kind == "seasonal_naive":
        return (*_seasonal_naive(y, season, steps), None)
    if kind == "seasonal_median":
        return (*_seasonal_median(y, season, steps), None)
    return _decomposition(y, season, steps, params)


def candidates(n: int, seasons: tuple[int, ...], steps: int) -> list[tuple[str, int]]:
    """The models a series of n values can be fitted with; the first is the fallback."""
    daily = seasons[0]
    if n < daily + 1:
        return [("naive", 0)]
    out = [("seasonal_naive", daily)]
    enough = [s for s in seasons if n >= 2 * s + BACKTEST_ORIGINS * steps]
    out += [("seasonal_median", s) for s in enough]
    out += [("decomposition", s) for s in enough[:1]]  # the daily one: a weekly Holt fit costs too much
    return out


def choose(y: np.ndarray, fits: dict, steps: int) -> tuple[str, int]:
    """Of the candidates fitted on the whole of y (`fits`, in candidates' order), the one
    with the lowest backtest error: mean absolute error of its forecasts of the last
    BACKTEST_ORIGINS·steps values, `steps` at a time, each from the values before them."""
    options = list(fits)
    if len(options) == 1:
        return options[0]
    best, best_mae = options[0], math.inf
    for option in options:
        errors = []
        for k in range(BACKTEST_ORIGINS, 0, -1):
            train, test = y[:len(y) - k * steps], y[len(y) - k * steps:len(y) - (k - 1) * steps]
            fitted = _fit(option, train, steps, fits[option][2])
            if fitted is None:
                break
            errors.append(np.abs(fitted[0] - test))
        else:
            mae = float(np.mean(errors))
            if mae < best_mae:
                best, best_mae = option, mae
    return best


def forecast(y: np.ndarray, seasons: tuple[int, ...], steps: int) -> Forecast | None:
    """The next `steps` values of y (evenly spaced, finite; seasons[0] the daily season,
    any further ones longer) with LEVEL intervals; None below 3 values."""
    if len(y) < 3:
        return None
    exp = math.frexp(float(np.max(np.abs(y))))[1]
    scaled = np.ldexp(y, -exp)  # now |y| < 1
    fits = {c: f for c in candidates(len(y), seasons, steps) if (f := _fit(c, scaled, steps)) is not None}
    method = choose(scaled, fits, steps)
    mean, errors, _ = fits[method]
    q = [(1 - LEVEL) / 2, (1 + LEVEL) / 2]
    bands = np.array([np.quantile(e, q) for e in errors])
    lower = np.minimum(mean + bands[:, 0], mean)
    upper = np.maximum(mean + bands[:, 1], mean)

    def unscale(a: np.ndarray) -> np.ndarray:
        with np.errstate(over="ignore"):
            return np.clip(np.ldexp(a, exp), -_MAX, _MAX)

    name = method[0] if method[0] in ("naive", "seasonal_naive") else f"{method[0]}({method[1]})"
    return Forecast(unscale(mean), unscale(lower), unscale(upper), name)
