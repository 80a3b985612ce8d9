"""One subject's series watched for anomalies (an application's metrics, an agent's
vitals): per-minute means fed to the detector (detector.py), and episodes, what an
insight reports (docs/insights.md).

Two states, so the hot path stays cheap: `minutes` (small: each series' open minute as
[start ms, sum, count]) changes with every point; `series` (a detector state of a few kB
per series, and its episode) changes only when a minute closes, i.e. once a minute per
series. The worker writes `series` before `minutes` and waits for it (worker/anomalies.py):
so a saved `minutes` never holds a minute closed past the saved `series`, and a minute
fed twice (a batch read again after a crash) is skipped by its `fed` mark.

Time is the data's: a minute closes when a point of a later minute of the same series
arrives; points for a minute already closed are late and counted, not fed. A subject
watches at most MAX_SERIES series (the first ones it sends); others are counted.

An episode opens when a minute scores OPEN_SCORE or more in a direction that is bad for
the series (DIRECTION), is updated while its minutes stay beyond the expected band on the
same side (at most every UPDATE_MS, or at once when its severity rises), and resolves
after CLOSE_AFTER minutes that are not. Each change is an `Episode` for the caller to word.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from . import detector

MINUTE_MS = 60_000
MAX_SERIES = 32
CLOSE_AFTER = 5          # minutes inside the band that end an episode
UPDATE_MS = 15 * MINUTE_MS  # an open episode's figures are re-published at most this often
# A minute opens an episode from this score: about the threshold NAB's optimiser picks for
# the detector (standard profile, bench/nab.py: 0.91). The detector's own `unusual`
# (above 0.5) is every alarm it ranks, which NAB's threshold then mostly discards.
OPEN_SCORE = 0.9
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


def _outside(way: str, x: float, r: detector.Result) -> bool:
    return (x > r.expected_high and way != "down") or (x < r.expected_low and way != "up")


def fed_up_to(series: dict, name: str) -> int:
    """The last minute fed to the series' detector (-1: none)."""
    s = series.get(name)
    return -1 if s is None else s["fed"]


def observe(series: dict, name: str, minute: int, mean: float) -> list[Episode]:
    """Feed one closed minute of one series; the episode changes it made."""
    s = series.get(name)
    if s is None:
        s = series[name] = {"fed": -1, "det": detector.new_state(), "ep": None}
    if minute <= s["fed"]:
        return []  # fed before (a batch read again after a crash)
    s["fed"] = minute
    r = detector.update(s["det"], minute / 1000.0, mean)
    ep, out = s["ep"], []
    if ep is None:
        if r.score >= OPEN_SCORE and _outside(DIRECTION.get(name, "both"), mean, r):
            s["ep"] = ep = {"start": minute, "at": minute, "x": mean, "exp": r.expected, "lo": r.expected_low,
                            "hi": r.expected_high, "score": r.score, "normal": 0, "with": [],
                            "way": "up" if mean > r.expected else "down"}
            for other, o in series.items():  # moving together: each names the other, for good
                if other != name and o["ep"] and abs(o["ep"]["start"] - minute) <= TOGETHER_MS:
                    ep["with"].append([other, o["ep"]["start"]])
                    o["ep"].setdefault("with", []).append([name, minute])
            out.append(_episode(series, name, ep, "open", minute, None, r.expected))
        return out
    # it lasts while it stays on its side of the band: a spike the detector partly learnt
    # leaves values below the raised expectation, which is not this episode any more
    if _outside(ep.get("way", "both"), mean, r):
        ep["normal"] = 0
        rises = r.score > ep["score"]
        if rises:  # the peak: what the insight reports while it lasts
            was_high = ep["score"] >= HIGH_SCORE
            ep.update(x=mean, exp=r.expected, lo=r.expected_low, hi=r.expected_high, score=r.score)
            if ep["score"] >= HIGH_SCORE and not was_high:
                ep["at"] = minute
                return [_episode(series, name, ep, "open", minute, None, r.expected)]
        if minute - ep["at"] >= UPDATE_MS:
            ep["at"] = minute
            out.append(_episode(series, name, ep, "open", minute, None, r.expected))
        return out
    ep["normal"] += 1
    if ep["normal"] >= CLOSE_AFTER:
        ended = minute - (CLOSE_AFTER - 1) * MINUTE_MS
        out.append(_episode(series, name, ep, "resolved", minute, ended, r.expected))
        s["ep"] = None
    return out


def _episode(series: dict, name: str, ep: dict, status: str, at: int, ended: int | None, now: float) -> Episode:
    others = tuple(sorted((n, start) for n, start in ep.get("with", ())))
    return Episode(name, status, ep["start"], ended, at, ep["x"], ep["exp"], ep["lo"], ep["hi"], ep["score"],
                   "high" if ep["score"] >= HIGH_SCORE else "medium", others, now)


def refresh(series: dict, ep: Episode) -> Episode:
    """`ep` with the links its episode has now: a series that became unusual later in the
    same batch names it, and it names that series."""
    s = series.get(ep.series)
    if s and s["ep"] and s["ep"]["start"] == ep.started_at:
        return replace(ep, others=tuple(sorted((n, start) for n, start in s["ep"].get("with", ()))))
    return ep
