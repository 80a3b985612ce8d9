"""A streaming, causal anomaly detector for one series, with a small JSON state.

The method combines what NAB's leading detectors and the documented industrial ones do:

- Expected value: three candidate baselines, each with its own recent error: a short-term
  exponentially weighted level (Datadog "agile"-like), and seasonal baselines, the level
  plus a per-slot offset by half-hour of day and by hour of week (Datadog "robust"-like,
  Twitter's seasonal hybrid ESD idea of removing the seasonal component first). The one
  with the smallest recent absolute error is used; a seasonal slot counts once it has
  been seen on a few earlier days/weeks.
- Surprise: the residual scaled by that baseline's mean absolute error (a robust
  spread, updated with clipped residuals so one spike does not widen it), then, as in
  numenta HTM's "anomaly likelihood" (Ahmad et al. 2017, "Unsupervised real-time anomaly
  detection for streaming data"), a short average of the surprise compared with its own
  long-run distribution: the score is the normal probability that this short average is
  not just the series' usual noise. That calibrates scores across series of any scale.
- One alarm per episode: after a score reaches ALARM, later scores are held at 0 for
  SUPPRESS points, as contextOSE and ARTime do, so one anomaly is reported once.

Per point this is a few dozen float operations; the state is about 230 numbers whatever
the series length.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# Global parameters (the same for every series).
A_LEVEL = 0.03  # short-term level weight
A_SLOW = 0.01  # long-term level, under the seasonal offsets
A_SEASON = 0.1  # weight of a new day/week in a seasonal slot
A_ERR = 0.005  # recent error of each baseline
A_SHORT = 0.2  # short average of the surprise
A_LONG = 0.002  # long-run mean/variance of the surprise
MIN_POINTS = 50  # no score before this many points
SEASON_MIN = 2  # a slot is trusted after this many days/weeks in it
CLIP = 5.0  # residual clip, in spreads, when updating spreads
U_ALARM = 1.88  # short surprise this many sds above its usual mean is an alarm ...
ALARM = 0.5  # ... and scores from 0.5 up
STRENGTH = 1
LIK = 1
ZCAP = 10.0
SHORTDIST = 0
BASE_MIN = 20
SUPPRESS_S = 86400.0
MODE = 0
MDECAY = 0.9995
ESCALATE = 99.0
M_SCALE = 20.0
A_ERR_LONG = 0.002
SUPPRESS = 300  # ... after which scores are held at 0 for this many points
SPREAD_FLOOR = 0.5  # a seasonal baseline may claim at most 10x the level's precision
VAR_MIN = 0.04  # floor on the surprise's long-run variance
BAND = 3.0  # expected band: +- BAND * 1.25 * mean abs error (about 3 sigma)

DAY_SLOTS = 48  # half-hours
WEEK_SLOTS = 168  # hours
EPS = 1e-9


@dataclass(frozen=True)
class Result:
    score: float  # in [0, 1]
    expected: float
    expected_low: float
    expected_high: float
    unusual: bool


def new_state() -> dict:
    return {
        "n": 0,
        "level": 0.0,
        "slow": 0.0,
        "err": [0.0, 0.0, 0.0],  # mean abs error: level, daily, weekly
        "err_n": [0, 0, 0],  # points each error has seen
        "day": [0.0] * DAY_SLOTS,
        "day_seen": [0] * DAY_SLOTS,
        "day_last": [-1] * DAY_SLOTS,  # day number of the last update of the slot
        "week": [0.0] * WEEK_SLOTS,
        "week_seen": [0] * WEEK_SLOTS,
        "week_last": [-1] * WEEK_SLOTS,
        "s_short": 0.0,
        "s_mean": 0.0,
        "s_var": 1.0,
        "hold": 0,
        "held": 0.0,
        "mmax": 0.0,
        "err_long": 0.0,
        "t": None,
        "dt": 0.0,  # typical sampling interval, s
    }


def _normal_cdf(z: float) -> float:
    return 0.5 * math.erfc(-z / math.sqrt(2.0))


def update(state: dict, timestamp_s: float, value: float) -> Result:
    """Score `value` at `timestamp_s` against what came before, then learn from it."""
    s = state
    x = float(value)
    n = s["n"]
    if n == 0:
        s["level"] = s["slow"] = x
    if s["t"] is not None and timestamp_s > s["t"]:
        gap = timestamp_s - s["t"]
        s["dt"] = gap if s["dt"] == 0.0 else s["dt"] + 0.05 * (gap - s["dt"])
    s["t"] = timestamp_s
    day_no = int(timestamp_s // 86400)
    week_no = int(timestamp_s // 604800)
    d_slot = int(timestamp_s % 86400 // (86400 / DAY_SLOTS))
    w_slot = int(timestamp_s % 604800 // 3600)

    # Predictions of the three baselines, available ones only.
    preds = [s["level"]]
    if s["day_seen"][d_slot] >= SEASON_MIN:
        preds.append(s["slow"] + s["day"][d_slot])
    else:
        preds.append(None)
    if s["week_seen"][w_slot] >= SEASON_MIN:
        preds.append(s["slow"] + s["week"][w_slot])
    else:
        preds.append(None)
    err = s["err"]
    best = 0
    for k in (1, 2):
        if preds[k] is not None and s["err_n"][k] >= BASE_MIN and err[k] < err[best]:
            best = k
    expected = preds[best]
    spread = max(err[best], SPREAD_FLOOR * err[0], 1e-6 * (abs(expected) + 1.0))
    z = abs(x - expected) / spread

    # Surprise against its own history (anomaly likelihood).
    a = min(z, ZCAP)
    s["s_short"] += A_SHORT * (a - s["s_short"])
    score = 0.0
    if n >= MIN_POINTS:
        sd = math.sqrt(max(s["s_var"], VAR_MIN))
        u = (s["s_short"] - s["s_mean"]) / sd if LIK else a
        if MODE == 1:
            u = abs(x - expected) / max(s["err_long"], EPS) / max(s["mmax"], EPS)
        if s["hold"] > 0:
            s["hold"] -= 1
        if u < U_ALARM:
            if s["hold"] == 0:
                score = 0.5 * _normal_cdf(u)
        else:
            # An alarm: its score ranks it among alarms by how far the value is from
            # the expected one in the series' long-run spread. Within an episode, only an
            # alarm stronger than the one that opened it is reported.
            m = u if STRENGTH == 0 else abs(x - expected) / max(s["err_long"], EPS)
            if STRENGTH == 2:
                m = m / max(s["mmax"], EPS)
            cand = 0.5 + 0.5 * (1.0 - math.exp(-m / M_SCALE))
            if s["hold"] == 0 or m > s["held"] * ESCALATE:
                score = cand
                s["hold"] = SUPPRESS if not SUPPRESS_S else max(1, int(SUPPRESS_S / max(s["dt"], 1.0)))
                s["held"] = m
    mm = abs(x - expected) / max(s["err_long"], EPS)
    if n >= MIN_POINTS:
        s["mmax"] = max(mm, s["mmax"] * MDECAY)
    d = (s["s_short"] if SHORTDIST else a) - s["s_mean"]
    s["s_mean"] += A_LONG * d
    s["s_var"] = (1 - A_LONG) * (s["s_var"] + A_LONG * d * d)

    # Learn: errors of every available baseline, with clipped residuals.
    for k in range(3):
        if preds[k] is None:
            continue
        e = abs(x - preds[k])
        if n > 0:
            lim = CLIP * err[k] if err[k] > 0 else e
            e = min(e, lim) if n > MIN_POINTS else e
        s["err_n"][k] += 1
        err[k] += max(A_ERR, 1.0 / s["err_n"][k]) * (e - err[k])
    e = abs(x - s["slow"])
    s["err_long"] += (A_ERR_LONG if n > 10 else 0.5) * (e - s["err_long"])
    s["level"] += A_LEVEL * (x - s["level"])
    s["slow"] += A_SLOW * (x - s["slow"])
    off = x - s["slow"]
    # A slot's weight is per day/week, not per point: spread it over the slot's points.
    a_day = min(1.0, A_SEASON * s["dt"] / (86400 / DAY_SLOTS)) if s["dt"] else A_SEASON
    a_week = min(1.0, A_SEASON * s["dt"] / 3600) if s["dt"] else A_SEASON
    if s["day_last"][d_slot] != day_no:
        s["day_last"][d_slot] = day_no
        s["day_seen"][d_slot] += 1
    if s["day_seen"][d_slot] == 1:
        s["day"][d_slot] = off
    else:
        s["day"][d_slot] += a_day * (off - s["day"][d_slot])
    if s["week_last"][w_slot] != week_no:
        s["week_last"][w_slot] = week_no
        s["week_seen"][w_slot] += 1
    if s["week_seen"][w_slot] == 1:
        s["week"][w_slot] = off
    else:
        s["week"][w_slot] += a_week * (off - s["week"][w_slot])
    s["n"] = n + 1

    half = BAND * 1.25 * spread
    return Result(score, expected, expected - half, expected + half, score > ALARM)
