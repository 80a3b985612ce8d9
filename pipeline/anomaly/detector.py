"""A streaming, causal anomaly detector for one series, with a small JSON state.

What it combines, from what the field documents:

- Expected value: three baselines, each with its own running mean absolute error: a
  short-term exponentially weighted level (like Datadog's "agile"), and the long-term
  level plus a seasonal offset by half-hour of day or by hour of week (like Datadog's
  "robust" and the seasonal step of Twitter's seasonal hybrid ESD). The baseline with the
  smallest recent error is used; a seasonal slot counts once seen on SEASON_MIN days or
  weeks, and a baseline once it has BASE_MIN errors of its own.
- Surprise: the residual in that baseline's spread, then, as numenta HTM's "anomaly
  likelihood" does (Ahmad et al. 2017, "Unsupervised real-time anomaly detection for
  streaming data"), its short average compared with its own long-run mean and variance.
  That calibrates alarms across series of any scale or noise.
- Pattern novelty, as NAB's contextOSE detector does (contexts of quantised recent
  values; a context never seen before is surprising): after the first complete day the
  series gets a fixed grid, its origin the long-term level then and its step Q_STEP
  long-run spreads; a value's level is the signed octave of its distance from the origin
  (0 within one step, 1 up to 3 steps, 2 up to 7, ...). The contexts of a point are the
  last 1, 2 and 3 levels (NOV_K); the ones ever seen are remembered in a hashed bit set
  of NOV_BITS bits (a fixed size). Novelty counts once the contexts of at least one
  complete day on the grid have been learnt.
  A point's novelty is the fraction of its contexts not seen before (0, 1/3, 2/3, 1).
- Alarms: a short surprise U_ALARM long-run sds above usual, or, whatever the short
  surprise, a deviation whose rarity r (below) reaches R_EXT (a huge spike on a spiky
  series does not lift the capped surprise far). An alarm scores in (0.5, 1),
  0.5 + 0.5 (1 - e^-r), ranked by how rare its deviation is for this series:
  r = d / m * (NOV_W + novelty), d the distance of the value from the expected one in
  the series' long-run spread, m the median of the last DMAX_DAYS days' largest such
  distances, so a series that spikes every day needs a bigger spike than a quiet one (an
  extreme-value view: compare with the usual daily maximum, not the usual point), and a
  deviation in new contexts ranks up to twice as rare as one in familiar contexts. While
  fewer than DMAX_DAYS daily maxima are known, m is taken up to 1 + SHRINK times larger
  (linearly less as the list fills): the median of two or three days is uncertain. No
  alarm before one complete day. Other points score below 0.5. After an alarm the series
  is quiet (score 0) for SUPPRESS_S of data time, as contextOSE and ARTime hold repeats,
  except that a deviation stronger (higher r) than the episode's peak so far and in at
  least one new context alarms again (an update of the same episode, without extending
  the quiet time): a weak onset then does not hide the anomaly that follows it, while
  familiar repeats of a burst stay quiet.

Per point this is a few dozen float operations and three small hashes; the state is a
dict of about 740 numbers whatever the series length (mostly the 48 + 168 seasonal
slots and the 67 words of the context set), about 8 kB as JSON.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# Global parameters (the same for every series), chosen on NAB (docs/insights.md).
A_LEVEL = 0.03  # short-term level
A_SLOW = 0.01  # long-term level, under the seasonal offsets
A_SEASON = 0.1  # weight of a new day (week) in a daily (weekly) slot
A_ERR = 0.005  # running mean absolute error of each baseline
A_ERR_LONG = 0.002  # long-run spread around the long-term level
A_SHORT = 0.2  # short average of the surprise
A_LONG = 0.002  # long-run mean and variance of the surprise
MIN_POINTS = 50  # no score before this many points
SEASON_MIN = 2  # a seasonal slot is trusted once seen on this many days/weeks
BASE_MIN = 20  # a baseline is trusted once it has this many errors of its own
CLIP = 5.0  # residuals are clipped at this many spreads when learning the spread
ZCAP = 10.0  # one point adds at most this to the surprise
SPREAD_FLOOR = 0.5  # a seasonal baseline may claim at most 2x the level's precision
VAR_MIN = 0.04  # floor on the surprise's long-run variance
U_ALARM = 1.88  # alarm when the short surprise is this many sds above its mean
R_EXT = 5.0  # a deviation of this rarity r (about 5x the usual daily worst) alarms whatever the surprise
NOV_K = 3  # contexts: the last 1..NOV_K quantised values
NOV_BITS = 2048  # size of the memory of contexts seen (a hashed bit set, 31 bits a word)
Q_STEP = 1.0  # quantisation: log2 levels of the deviation from the origin in this many long-run spreads
SHRINK = 2.0  # while fewer than DMAX_DAYS days are known, the reference is up to 1 + SHRINK times larger
RE_NOV = 0.01  # within an episode a stronger deviation speaks again only with this much novelty
NOV_W = 1.0  # an alarm's rarity is multiplied by NOV_W + the novelty of its contexts (0..1)
DMAX_DAYS = 7  # an alarm is ranked against the median of the last this many days' largest deviations
SUPPRESS_S = 86400.0  # quiet time after an alarm (data time)
ALARM = 0.5  # scores above this are alarms
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
        "t": None,
        "dt": 0.0,  # typical sampling interval, s
        "level": 0.0,
        "slow": 0.0,
        "err": [0.0, 0.0, 0.0],  # mean abs error: level, daily, weekly baseline
        "err_n": [0, 0, 0],  # errors each baseline has seen
        "err_long": 0.0,
        "day": [0.0] * DAY_SLOTS,
        "day_seen": [0] * DAY_SLOTS,
        "day_last": [-1] * DAY_SLOTS,  # day number of the slot's last update
        "week": [0.0] * WEEK_SLOTS,
        "week_seen": [0] * WEEK_SLOTS,
        "week_last": [-1] * WEEK_SLOTS,
        "s_short": 0.0,
        "s_mean": 0.0,
        "s_var": 1.0,
        "hold": -1.0,  # data time (s) until which the quiet time after an alarm lasts
        "peak": 0.0,  # largest alarm deviation (ratio) of the current episode
        "day_no": -1,  # day number of the current day
        "day_max": 0.0,  # largest deviation (in the long-run spread) so far today
        "day_maxes": [],  # the last DMAX_DAYS complete days' largest deviations
        "dmax": 0.0,  # their median
        "q0": None,  # quantisation origin and step, fixed after the first complete day
        "qs": 0.0,
        "q_day": -1,  # day the grid was fixed
        "q_last": [],  # the last NOV_K - 1 levels
        "seen": [0] * (NOV_BITS // 31 + 1),  # contexts seen, 31 bits a word
    }


def _normal_cdf(z: float) -> float:
    return 0.5 * math.erfc(-z / math.sqrt(2.0))


def _learn_slot(vals: list, seen: list, last: list, slot: int, period_no: int, off: float, a: float) -> None:
    if last[slot] != period_no:
        last[slot] = period_no
        seen[slot] += 1
    vals[slot] = off if seen[slot] == 1 else vals[slot] + a * (off - vals[slot])


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
    d_slot = int(timestamp_s % 86400 // (86400 / DAY_SLOTS))
    w_slot = int(timestamp_s % 604800 // 3600)

    preds = [
        s["level"],
        s["slow"] + s["day"][d_slot] if s["day_seen"][d_slot] >= SEASON_MIN else None,
        s["slow"] + s["week"][w_slot] if s["week_seen"][w_slot] >= SEASON_MIN else None,
    ]
    err = s["err"]
    best = 0
    for k in (1, 2):
        if preds[k] is not None and s["err_n"][k] >= BASE_MIN and err[k] < err[best]:
            best = k
    expected = preds[best]
    spread = max(err[best], SPREAD_FLOOR * err[0], 1e-6 * (abs(expected) + 1.0))
    a = min(abs(x - expected) / spread, ZCAP)
    distance = abs(x - expected) / max(s["err_long"], EPS)
    day_no = int(timestamp_s // 86400)
    if day_no != s["day_no"]:
        if s["day_no"] >= 0 and n >= MIN_POINTS:
            s["day_maxes"] = (s["day_maxes"] + [s["day_max"]])[-DMAX_DAYS:]
            s["dmax"] = sorted(s["day_maxes"])[len(s["day_maxes"]) // 2]
        s["day_no"] = day_no
        s["day_max"] = 0.0

    # Pattern novelty (contextOSE-style): contexts of quantised recent values never seen.
    nov = 0.0
    new_bits = []
    if s["q0"] is not None:
        z = (x - s["q0"]) / s["qs"]
        az = abs(z)
        lv = (int(math.log2(1.0 + az)) if az < 1e300 else 999) * (1 if z >= 0 else -1)  # 999: inf, nan
        gram = s["q_last"] + [lv]
        keys = [[k] + gram[-k:] for k in range(1, len(gram) + 1)]
        seen = s["seen"]
        for key in keys:
            h = 0
            for l in key:
                h = ((h ^ (l & 0xFFFF)) * 0x9E3779B1) & 0xFFFFFFFF
            b = (h >> 8) % NOV_BITS
            if not (seen[b // 31] >> (b % 31)) & 1:
                new_bits.append(b)
        nov = len(new_bits) / len(keys)
        for b in new_bits:
            seen[b // 31] |= 1 << (b % 31)
        s["q_last"] = gram[-(NOV_K - 1):] if NOV_K > 1 else []
        if day_no < s["q_day"] + 2:  # one complete day of contexts before novelty counts
            nov = 0.0
    elif s["day_maxes"]:
        s["q0"], s["qs"], s["q_day"] = s["slow"], max(Q_STEP * s["err_long"], 1e-6 * (abs(s["slow"]) + 1.0)), day_no

    s["s_short"] += A_SHORT * (a - s["s_short"])
    score = 0.0
    if n >= MIN_POINTS:
        u = (s["s_short"] - s["s_mean"]) / math.sqrt(max(s["s_var"], VAR_MIN))
        # How rare the deviation is for this series: against its usual daily worst.
        # While the list of daily maxima is short, its median is uncertain: ask for more.
        ref = s["dmax"] * (1.0 + SHRINK * (DMAX_DAYS - len(s["day_maxes"])) / DMAX_DAYS)
        ratio = distance / max(ref, EPS)
        # A deviation in contexts never seen before is rarer than one in familiar contexts.
        ratio *= NOV_W + nov
        alarm_score = 0.5 + 0.5 * (1.0 - math.exp(-ratio))
        can_alarm = (u >= U_ALARM or ratio >= R_EXT) and s["day_maxes"]
        if timestamp_s < s["hold"]:
            # Within an episode only a stronger deviation than its peak speaks again (it
            # does not extend the quiet time), so a weak onset does not hide the anomaly.
            if can_alarm and ratio > s["peak"] and nov >= RE_NOV:
                score, s["peak"] = alarm_score, ratio
        elif not can_alarm:
            score = 0.5 * _normal_cdf(u)
        else:
            score, s["peak"] = alarm_score, ratio
            s["hold"] = timestamp_s + SUPPRESS_S
    if n >= MIN_POINTS:  # before, the long-run spread is still near 0 and any distance is huge
        s["day_max"] = max(s["day_max"], distance)
    d = a - s["s_mean"]
    s["s_mean"] += A_LONG * d
    s["s_var"] = (1 - A_LONG) * (s["s_var"] + A_LONG * d * d)

    # Learn each available baseline's error (clipped, so one spike does not widen it).
    for k in range(3):
        if preds[k] is None:
            continue
        e = abs(x - preds[k])
        if n > MIN_POINTS and err[k] > 0:
            e = min(e, CLIP * err[k])
        s["err_n"][k] += 1
        err[k] += max(A_ERR, 1.0 / s["err_n"][k]) * (e - err[k])
    s["err_long"] += (A_ERR_LONG if n > 10 else 0.5) * (abs(x - s["slow"]) - s["err_long"])
    s["level"] += A_LEVEL * (x - s["level"])
    s["slow"] += A_SLOW * (x - s["slow"])
    off = x - s["slow"]
    # A slot's weight is per day (week), not per point: spread it over the slot's points.
    a_day = min(1.0, A_SEASON * s["dt"] / (86400 / DAY_SLOTS)) if s["dt"] else A_SEASON
    a_week = min(1.0, A_SEASON * s["dt"] / 3600) if s["dt"] else A_SEASON
    _learn_slot(s["day"], s["day_seen"], s["day_last"], d_slot, int(timestamp_s // 86400), off, a_day)
    _learn_slot(s["week"], s["week_seen"], s["week_last"], w_slot, int(timestamp_s // 604800), off, a_week)
    s["n"] = n + 1

    half = BAND * 1.25 * spread
    return Result(score, expected, expected - half, expected + half, score > ALARM)
