"""Forecasting one evenly spaced series: seasonal profiles (the same phase over the past
days or weeks) with a smoothed level correction, chosen per series by a rolling-origin
backtest over its own history, with intervals calibrated on that backtest's errors.

The rules (docs/predictions.md):
- Candidates, for a series of n values forecast `steps` ahead, s the daily season and
  w the weekly one when given:
  - `naive` (the last value repeated) when n < s + 1: the only one;
  - `seasonal_naive` (the value one season earlier);
  - when n >= 2·s + steps, the profiles `median(s x K)` and `mean(s x K)` for K in
    DAILY_SEASONS (the median or mean of the same phase over the last K seasons, fewer
    where the history has fewer), and `logmedian(s x 7)` (the same median on
    log(y - min + LOG_OFFSET·mean(y - min)), for series whose daily swing grows with
    their level); when n >= 2·w + steps, `median(w x 3)` and `logmedian(w x 3)`.
  Each profile is corrected by the level: r_t, the exponential smoothing (alpha from
  ALPHAS) of the residuals y_t - profile_t (the profile the lead reads: from
  ceil(h / s) seasons back), added to the lead-h forecast times b_h in [0, 1] (least
  squares per lead: how much of today's offset persists h buckets on); alpha minimises
  the mean absolute error over the history.
- Backtest: every candidate forecasts every lead from every origin of the history, each
  from the values up to that origin only (a profile at a phase uses the values a whole
  number of seasons before it; nothing after the origin). The score is the mean
  absolute error over the last SELECT_SHARE of the origins; the lowest wins
  (seasonal naive on ties, the simpler model), and the mean of the best two replaces
  it when that scores lower still (a combination, named `a+b`).
- Interval: the chosen forecast's backtest errors at the same lead, each divided by
  the error scale of its target's phase (mean absolute error, all leads, of the targets
  within SCALE_SPAN of a season of that phase, at least a bucket either way, plus
  SCALE_FLOOR of the overall mean), their (1 - LEVEL)/2 and (1 + LEVEL)/2 empirical
  quantiles times the predicted bucket's phase scale, added to the forecast. Errors of
  profiles that averaged fewer than CALIBRATE_SEASONS seasons (the history's start) are
  left out of the quantiles unless the forecast itself reads fewer.

The arithmetic runs on the values scaled by a power of two that brings them below 1, so
that no difference overflows whatever finite values come in; the answer is unscaled and
clamped to the finite floats.
"""
import math
import warnings
from dataclasses import dataclass

import numpy as np
from scipy.signal import lfilter

LEVEL = 0.8  # probability that a bucket's value lands inside [lower, upper]
DAILY_SEASONS = (7, 28)  # the daily profiles' reach, in seasons (at most)
WEEKLY_SEASONS = 3
LOG_SEASONS = 7
LOG_OFFSET = 0.1  # of the mean distance to the minimum, so that zeros have a logarithm
ALPHAS = (0.05, 0.15, 0.4, 1.0)  # level-correction smoothing tried
SELECT_SHARE = 0.25  # the backtest scores the last quarter of the history's origins
CALIBRATE_SEASONS = 2
SCALE_SPAN = 1 / 24  # of a season each side: the phase's error scale reads an hour either way
SCALE_FLOOR = 0.1  # of the mean scale, added to every phase's
_MAX = float(np.finfo(float).max)


@dataclass(frozen=True)
class Forecast:
    mean: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    method: str  # naive, seasonal_naive, <profile>(<season>x<seasons>) or two of them joined by +


@dataclass
class _Candidate:
    errors: np.ndarray  # [origin t, lead h - 1]: y[t + h] - the forecast made at t; NaN if unknown
    mean: np.ndarray  # the forecast from the end of the history
    thin: np.ndarray  # [t, h - 1]: the profile averaged too few seasons to calibrate on


def _naive(y: np.ndarray, steps: int) -> Forecast:
    # beyond the history's span, the errors of the longest lead it has
    errors = [y[k:] - y[:-k] for k in (min(h, len(y) - 1) for h in range(1, steps + 1))]
    mean = np.full(steps, y[-1])
    bands = np.array([np.quantile(e, [(1 - LEVEL) / 2, (1 + LEVEL) / 2]) for e in errors])
    return Forecast(mean, np.minimum(mean + bands[:, 0], mean), np.maximum(mean + bands[:, 1], mean), "naive")


def _profile(Y: np.ndarray, season: int, k: int, agg: str) -> tuple[np.ndarray, np.ndarray]:
    """(profile, seasons averaged) at every index τ of Y: the median or mean of
    Y[τ - j·season] for j = 1 .. k that exist (NaN where none does). The profile the
    lead-h forecast reads, seasons m = ceil(h / season) .. m + k - 1 back, is this one
    at τ - (m - 1)·season."""
    L = len(Y)
    out, count = np.full(L, np.nan), np.zeros(L)
    if season >= L:
        return out, count
    stack = np.full((k, L - season), np.nan)
    for j in range(1, k + 1):
        if j * season < L:
            stack[j - 1, (j - 1) * season:] = Y[:L - j * season]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # all-NaN columns: beyond the history
        out[season:] = np.nanmedian(stack, axis=0) if agg == "median" else np.nanmean(stack, axis=0)
    count[season:] = np.isfinite(stack).sum(axis=0)
    return out, count


def _candidate(y: np.ndarray, season: int, k: int, agg: str, steps: int, correct: bool = True) -> _Candidate:
    """A profile's forecast from every origin (errors) and from the end (mean)."""
    n = len(y)
    p, c = _profile(np.concatenate([y, np.full(season, np.nan)]), season, k, agg)
    Y = np.concatenate([y, np.full(steps, np.nan)])
    leads = np.arange(1, steps + 1)
    back = (-(-leads // season) - 1) * season  # (m - 1)·season for the lead's m = ceil(h / season)
    target = np.arange(n)[:, None] + leads[None, :]
    base, count = p[target - back], c[target - back]
    z = Y[target] - base  # the profile's errors before the level correction
    thin = count < np.minimum(count[n - 1], CALIBRATE_SEASONS)
    if not correct:
        return _Candidate(z, base[n - 1], thin)
    shifts = np.unique(back)
    best = None
    for a in ALPHAS:
        x = np.full((n, steps), np.nan)  # r_t: the smoothed residuals y_t - the profile lead h reads at t
        for d in shifts:
            t0 = int(d) + season  # the first residual
            if t0 < n:
                e = y[t0:] - p[t0 - d:n - d]
                x[t0:, back == d] = lfilter([a], [1, a - 1], e, zi=[(1 - a) * e[0]])[0][:, None]
        ok = np.isfinite(z) & np.isfinite(x)
        xz, zz = np.where(ok, x, 0.0), np.where(ok, z, 0.0)
        b = np.clip((xz * zz).sum(axis=0) / np.maximum((xz * xz).sum(axis=0), 1e-300), 0.0, 1.0)
        errors = z - b * x
        score = float(np.nanmean(np.abs(errors)))
        if best is None or score < best[0]:
            mean = base[n - 1] + b * np.where(np.isfinite(x[n - 1]), x[n - 1], 0.0)
            best = (score, errors, mean)
    return _Candidate(best[1], best[2], thin)


def _logged(y: np.ndarray, season: int, k: int, steps: int) -> _Candidate | None:
    """The median profile on log(y - min + offset), its forecasts and errors back in y's units."""
    low = float(np.min(y))
    offset = LOG_OFFSET * float(np.mean(y - low))
    if not offset > 0:
        return None  # a constant series
    g = np.log(y - low + offset)
    c = _candidate(g, season, k, "median", steps)
    n = len(y)
    target = np.arange(n)[:, None] + np.arange(1, steps + 1)[None, :]
    Y, G = (np.concatenate([a, np.full(steps, np.nan)]) for a in (y, g))
    with np.errstate(all="ignore"):
        errors = Y[target] - (np.exp(G[target] - c.errors) + low - offset)
        mean = np.exp(c.mean) + low - offset
    return _Candidate(errors, mean, c.thin)


def candidates(y: np.ndarray, seasons: tuple[int, ...], steps: int) -> dict[str, _Candidate]:
    """The models y can be fitted with, seasonal naive first; none below a season and one."""
    n, daily = len(y), seasons[0]
    if n < daily + 1:
        return {}
    out = {"seasonal_naive": _candidate(y, daily, 1, "mean", steps, correct=False)}
    if n >= 2 * daily + steps:
        reach = max(1, (n + steps - 1) // daily)  # seasons any forecast can read
        for k in sorted({min(k, reach) for k in DAILY_SEASONS}):
            for agg in ("median", "mean"):
                out[f"{agg}({daily}x{k})"] = _candidate(y, daily, k, agg, steps)
        out[f"logmedian({daily}x{min(LOG_SEASONS, reach)})"] = _logged(y, daily, min(LOG_SEASONS, reach), steps)
    for w in seasons[1:]:
        if n >= 2 * w + steps:
            out[f"median({w}x{WEEKLY_SEASONS})"] = _candidate(y, w, WEEKLY_SEASONS, "median", steps)
            out[f"logmedian({w}x{WEEKLY_SEASONS})"] = _logged(y, w, WEEKLY_SEASONS, steps)
    return {name: c for name, c in out.items() if c is not None and np.all(np.isfinite(c.mean))}


def _score(errors: np.ndarray) -> float:
    n, steps = errors.shape
    # the last quarter of the origins whose every lead is known, and the later ones (partly known)
    recent = errors[-(max(1, int(SELECT_SHARE * n)) + steps):]
    ok = np.isfinite(recent)
    return float(np.mean(np.abs(recent[ok]))) if ok.any() else math.inf


def choose(fits: dict[str, _Candidate]) -> tuple[str, _Candidate]:
    """The candidate (or the mean of the best two) with the lowest backtest score."""
    scores = {name: _score(c.errors) for name, c in fits.items()}
    order = sorted(scores, key=lambda name: scores[name])  # stable: seasonal naive first on ties
    best = order[0]
    if len(order) > 1:
        a, b = fits[order[0]], fits[order[1]]
        both = _Candidate((a.errors + b.errors) / 2, (a.mean + b.mean) / 2, a.thin | b.thin)
        if _score(both.errors) < scores[best]:
            return f"{order[0]}+{order[1]}", both
    return best, fits[best]


def _bands(c: _Candidate, season: int) -> np.ndarray:
    """[lead, (low, high)]: the LEVEL interval's offsets from the forecast."""
    n, steps = c.errors.shape
    ok = np.isfinite(c.errors)
    phase = (np.arange(n)[:, None] + np.arange(1, steps + 1)[None, :])[ok] % season
    total = np.bincount(phase, np.abs(c.errors[ok]), season)
    seen = np.bincount(phase, None, season)
    w = max(1, int(season * SCALE_SPAN))
    kernel = np.ones(2 * w + 1)

    def around(a: np.ndarray) -> np.ndarray:  # circular sum over the phases within w
        return np.convolve(np.concatenate([a[-w:], a, a[:w]]), kernel, "valid")

    overall = float(total.sum() / max(seen.sum(), 1))
    near = around(seen)
    # a phase without errors near it (a short history) gets the overall scale
    scale = np.where(near > 0, around(total) / np.maximum(near, 1), overall) + SCALE_FLOOR * overall + 1e-300
    q = [(1 - LEVEL) / 2, (1 + LEVEL) / 2]
    bands = np.zeros((steps, 2))
    for h in range(steps):
        col = c.errors[:, h] / scale[(np.arange(n) + h + 1) % season]
        col = col[np.isfinite(col) & ~c.thin[:, h]]
        if len(col):
            bands[h] = np.quantile(col, q) * scale[(n + h) % season]
        elif h:
            bands[h] = bands[h - 1]  # beyond the history's span: the longest lead it has
    return bands


def forecast(y: np.ndarray, seasons: tuple[int, ...], steps: int) -> Forecast | None:
    """The next `steps` values of y (evenly spaced, finite; seasons[0] the daily season,
    any further ones longer) with LEVEL intervals; None below 3 values."""
    if len(y) < 3:
        return None
    exp = math.frexp(float(np.max(np.abs(y))))[1]
    scaled = np.ldexp(y, -exp)  # now |y| < 1
    fits = candidates(scaled, seasons, steps)
    if not fits:
        f = _naive(scaled, steps)
        mean, lower, upper, method = f.mean, f.lower, f.upper, f.method
    else:
        method, chosen = choose(fits)
        mean = chosen.mean
        bands = _bands(chosen, seasons[0])
        lower = np.minimum(mean + bands[:, 0], mean)
        upper = np.maximum(mean + bands[:, 1], mean)

    def unscale(a: np.ndarray) -> np.ndarray:
        with np.errstate(over="ignore"):
            return np.clip(np.ldexp(a, exp), -_MAX, _MAX)

    return Forecast(unscale(mean), unscale(lower), unscale(upper), method)
