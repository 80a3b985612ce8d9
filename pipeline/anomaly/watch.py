"""One subject's series watched for anomalies (an application's metrics, an agent's
vitals): per-minute means fed to the detector (detector.py), and episodes, what an
insight reports (docs/insights.md).

Two states, so the hot path stays cheap: `minutes` (small: each series' open minute as
[start ms, sum, count]) changes with every point; `series` (a detector state of a few kB
per series, and its episode) changes only when a minute closes. How the worker keeps
and saves them so that a crash loses no minute and feeds none twice (the `fed` mark):
worker/anomalies.py.

Time is the data's: a minute closes when a point of a later minute of the same series
arrives; points for a minute already closed are late and counted, not fed. A subject
watches at most MAX_SERIES series (the first ones it sends); others are counted.

An episode opens, on a side of the expected band that is bad for the series (DIRECTION),
when the detector scores a minute OPEN_SCORE or more, or after SUSTAIN minutes in a row
beyond the band (EXTREME_RUN when far beyond it); it is updated while its minutes stay
beyond the band on the same side (at most every UPDATE_MS, or at once when its severity
rises), and resolves after CLOSE_AFTER minutes that are not. Each change is an `Episode`
for the caller to word.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

from . import detector

MINUTE_MS = 60_000
MAX_SERIES = 32
CLOSE_AFTER = 5          # minutes inside the band that end an episode
UPDATE_MS = 15 * MINUTE_MS  # an open episode's figures are re-published at most this often
# A minute opens an episode from this detector score: the threshold NAB's optimiser picks
# for it (standard profile, bench/nab.py: 0.85). The detector's own `unusual` (above 0.5)
# is every alarm it ranks, which NAB's threshold then mostly discards. Its score rewards
# one early alarm per anomaly (as NAB does) and it holds quiet for a day after an alarm,
# even one below this threshold; a person also wants to hear of a lasting break, hence
# SUSTAIN.
OPEN_SCORE = 0.85
# The detector learns part of what it sees, so after an episode the series' return to its
# old level can sit beyond the (moved) band on the other side for a while: not a new
# anomaly while it is inside the last band it was calm in before the episode.
ECHO_MS = 2 * 3_600_000
SUSTAIN = 10  # minutes in a row beyond the band on a bad side, one of them scoring OPEN_SCORE, open an episode too
EXTREME_RUN = 3  # and so do this many in a row each scoring HIGH_SCORE (some 5 half-bands beyond it)
TOGETHER_MS = 10 * MINUTE_MS  # episodes of one subject that started this close moved together
HIGH_SCORE = 0.98        # from this peak score an episode is high severity (a deviation ~3x the usual daily worst)

# Which way is bad. Lower response times and error rates are good news; for the rest a
# move either way is worth a look (a drop in throughput or token use can mean an outage).
DIRECTION = {"response_time": "up", "error_rate": "up", "hallucinationRate": "up", "loopCount": "up",
             "conflictCount": "up"}


@dataclass(frozen=True)
class Episode:
    series: str
    status: str        # open | resolved
    started_at: int    # minute start, ms
    ended_at: int | None
    at: int            # data time of this version (a minute start, ms)
    observed: float    # the minute's mean that this version reports (the peak's while open)
    expected: float
    low: float
    high: float
    score: float       # the episode's peak score
    severity: str      # medium | high
    others: tuple      # the subject's other series whose episodes started within TOGETHER_MS: (series, started_at)
    now_expected: float  # what the detector expects now (at a resolution: a new level when far from `expected`)


def new_minutes() -> dict:
    return {"acc": {}, "late": 0, "dropped": 0}


def new_series() -> dict:
    return {}


def accumulate(minutes: dict, points) -> list[tuple[str, int, float]]:
    """Add (series, value, timestamp ms) points; the (series, minute, mean)s they closed,
    in time order per series."""
    acc, closed = minutes["acc"], []
    for name, value, t in sorted(points, key=lambda p: p[2]):
        m = t - t % MINUTE_MS
        a = acc.get(name)
        if a is None:
            if len(acc) >= MAX_SERIES:
                minutes["dropped"] += 1
                continue
            acc[name] = [m, value, 1]
        elif m == a[0]:
            a[1] += value
            a[2] += 1
        elif m > a[0]:
            closed.append((name, a[0], a[1] / a[2]))
            acc[name] = [m, value, 1]
        else:
            minutes["late"] += 1
    return closed


def fed_up_to(series: dict, name: str) -> int:
    """The last minute fed to the series' detector (-1: none)."""
    s = series.get(name)
    return -1 if s is None else s["fed"]


def _side(way: str, x: float, r: detector.Result) -> str | None:
    """Which side of the band x is on, if it is beyond it on a side `way` allows."""
    if x > r.expected_high and way != "down":
        return "up"
    if x < r.expected_low and way != "up":
        return "down"
    return None


def band_score(x: float, r: detector.Result) -> float:
    """How far beyond the band, on the detector's scale: 0 inside it, 0.5 at its edge,
    towards 1 with each further half-band (0.98 about 4 half-bands beyond)."""
    half = (r.expected_high - r.expected_low) / 2
    excess = abs(x - r.expected) / half - 1 if half > 0 else math.inf
    return 0.0 if excess <= 0 else 1.0 - 0.5 * math.exp(-excess)


def observe(series: dict, name: str, minute: int, mean: float) -> list[Episode]:
    """Feed one closed minute of one series; the episode changes it made."""
    s = series.get(name)
    if s is None:
        s = series[name] = {"fed": -1, "det": detector.new_state(), "ep": None}
    if minute <= s["fed"]:
        return []  # fed before (a batch read again after a crash)
    s["fed"] = minute
    r = detector.update(s["det"], minute / 1000.0, mean)
    score = max(r.score, band_score(mean, r))
    seen = {"x": mean, "exp": r.expected, "lo": r.expected_low, "hi": r.expected_high, "score": score}
    ep = s["ep"]
    if ep is None:
        side = _side(DIRECTION.get(name, "both"), mean, r)
        echo = s.get("echo")
        if side and echo and minute < echo["until"] and echo["lo"] <= mean <= echo["hi"]:
            side = None  # back where it was before the last episode: the detector's echo of it
        if side is None and r.expected_low <= mean <= r.expected_high:
            s["calm"] = [r.expected_low, r.expected_high]
        run = s.get("run")
        if side is None or (run and run["way"] != side):
            run = s["run"] = None
        if side and r.score >= OPEN_SCORE:
            return _open(series, name, s, minute, minute, side, seen, r.expected)
        if side:  # beyond the band while the detector is quiet: a lasting break opens after SUSTAIN minutes
            if run is None:
                run = s["run"] = {"way": side, "start": minute, "n": 0, "peak": seen, "low": score}
            run["n"] += 1
            run["low"] = min(run["low"], score)
            if score > run["peak"]["score"]:
                run["peak"] = seen
            if (run["n"] >= SUSTAIN and run["peak"]["score"] >= OPEN_SCORE) or (
                    run["n"] >= EXTREME_RUN and run["low"] >= HIGH_SCORE):
                return _open(series, name, s, run["start"], minute, side, run["peak"], r.expected)
        return []
    # it lasts while it stays on its side of the band: a spike the detector partly learnt
    # leaves values below the raised expectation, which is not this episode any more
    if _side(ep["way"], mean, r):
        ep["normal"] = 0
        if score > ep["score"]:  # the peak: what the insight reports while it lasts
            was_high = ep["score"] >= HIGH_SCORE
            ep.update(seen)
            if ep["score"] >= HIGH_SCORE and not was_high:
                ep["at"] = minute
                return [_episode(name, ep, "open", minute, None, r.expected)]
        if minute - ep["at"] >= UPDATE_MS:
            ep["at"] = minute
            return [_episode(name, ep, "open", minute, None, r.expected)]
        return []
    ep["normal"] += 1
    if ep["normal"] < CLOSE_AFTER:
        return []
    s["ep"] = None
    if ep.get("calm"):
        s["echo"] = {"until": minute + ECHO_MS, "lo": ep["calm"][0], "hi": ep["calm"][1]}
    return [_episode(name, ep, "resolved", minute, minute - (CLOSE_AFTER - 1) * MINUTE_MS, r.expected)]


def _open(series: dict, name: str, s: dict, start: int, minute: int, way: str, peak: dict, now: float) -> list:
    s["ep"] = ep = {"start": start, "at": minute, **peak, "normal": 0, "with": [], "way": way,
                    "calm": s.get("calm")}
    s["run"] = None
    for other, o in series.items():  # moving together: each names the other, for good
        if other != name and o["ep"] and abs(o["ep"]["start"] - start) <= TOGETHER_MS:
            ep["with"].append([other, o["ep"]["start"]])
            o["ep"]["with"].append([name, start])
    return [_episode(name, ep, "open", minute, None, now)]


def _episode(name: str, ep: dict, status: str, at: int, ended: int | None, now: float) -> Episode:
    others = tuple(sorted((n, start) for n, start in ep["with"]))
    return Episode(name, status, ep["start"], ended, at, ep["x"], ep["exp"], ep["lo"], ep["hi"], ep["score"],
                   "high" if ep["score"] >= HIGH_SCORE else "medium", others, now)


def refresh(series: dict, ep: Episode) -> Episode:
    """`ep` with the links its episode has now: a series that became unusual later in the
    same batch names it, and it names that series."""
    s = series.get(ep.series)
    if s and s["ep"] and s["ep"]["start"] == ep.started_at:
        return replace(ep, others=tuple(sorted((n, start) for n, start in s["ep"].get("with", ()))))
    return ep
