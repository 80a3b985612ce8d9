"""Anomaly insights on made-up series with known answers: the watch (pipeline/anomaly/watch.py)
that feeds per-minute means to the detector and keeps episodes, their wording
(pipeline/insights.py), and the worker's step over encoded records
(pipeline/worker/anomalies.py, inside ARI's batch step). Through the real worker: tests/test_v1_deployments.py."""
import json
import math
import random

from pipeline import insights as I
from pipeline.anomaly import watch as W
from pipeline.worker import anomalies
from pipeline.worker.app import apply_batch
from schemas import codec

MIN = 60_000
DAY = 1440  # minutes
T0 = 1_795_392_000_000  # 2026-11-23T00:00:00Z, a Monday


def noise(days: int, level: float = 100.0, sd: float = 2.0, seed: int = 7) -> list[float]:
    rng = random.Random(seed)
    return [level + rng.gauss(0, sd) for _ in range(days * DAY)]


def episodes(name: str, values: list[float]) -> list[W.Episode]:
    """Every episode change for one series reported once a minute from T0 (one more point
    closes the last minute)."""
    minutes, series = W.new_minutes(), W.new_series()
    points = [(name, v, T0 + i * MIN) for i, v in enumerate(values)] + [(name, values[-1], T0 + len(values) * MIN)]
    return [ep for n, m, mean in W.accumulate(minutes, points) for ep in W.observe(series, n, m, mean)]


def brief(eps: list[W.Episode], origin: int = 0) -> list[tuple]:
    """(status, started, ended, at) in minutes from T0 + origin minutes."""
    def rel(ms):
        return None if ms is None else (ms - T0) // MIN - origin
    return [(e.status, rel(e.started_at), rel(e.ended_at), rel(e.at)) for e in eps]


def test_a_flat_healthy_series_and_a_clean_daily_pattern_raise_nothing():
    assert episodes("response_time", noise(3)) == []
    rng = random.Random(3)
    daily = [100 + 50 * math.sin(2 * math.pi * (i % DAY) / DAY) + rng.gauss(0, 2) for i in range(8 * DAY)]
    assert episodes("checkout_ms", daily) == []


def test_a_spike_is_one_episode_opened_at_its_minute_and_resolved_after_five_normal_ones():
    values = noise(3)
    values[2 * DAY] = 130.0  # 15 sd, on the third day
    eps = episodes("response_time", values)
    assert brief(eps, 2 * DAY) == [("open", 0, None, 0), ("resolved", 0, 1, 5)]
    assert [(e.observed, e.severity) for e in eps] == [(130.0, "high"), (130.0, "high")]
    assert eps[0].low < 100 < eps[0].high < 130


def test_a_level_shift_opens_at_the_shift_is_updated_and_settles_at_a_new_level():
    values = noise(3)
    values[2 * DAY:] = [v + 20 for v in values[2 * DAY:]]
    eps = episodes("response_time", values)
    assert [(s, start, end) for s, start, end, _ in brief(eps, 2 * DAY)] == [
        ("open", 0, None), ("open", 0, None), ("resolved", 0, 28)]
    # the detector's onset score stays under 0.85: ten minutes beyond the band open it, from the first
    assert brief(eps, 2 * DAY)[0] == ("open", 0, None, W.SUSTAIN - 1)
    assert eps[0].observed in values[2 * DAY:2 * DAY + W.SUSTAIN] and eps[0].low < 101 < eps[0].high < 110
    assert eps[-1].severity == "medium" and eps[-1].now_expected > eps[-1].high  # learning the new level
    record = I.anomaly_insight("acct", "application", "app_1", eps[-1], {})
    assert record["title"] == "Response time settled at a new level"


def test_a_seasonal_series_with_a_broken_day_opens_when_the_pattern_breaks():
    rng = random.Random(5)
    values = [100 + 50 * math.sin(2 * math.pi * (i % DAY) / DAY) + rng.gauss(0, 2) for i in range(8 * DAY)]
    broken = 7 * DAY + 360  # the eighth day from 06:00, where the pattern peaks, stays flat at its mean
    values[broken:broken + 360] = [100 + rng.gauss(0, 2) for _ in range(360)]
    eps = episodes("checkout_ms", values)
    assert brief(eps, broken)[0] == ("open", 0, None, W.EXTREME_RUN - 1)  # the detector is quiet: it is extreme
    assert all(e.started_at == eps[0].started_at for e in eps)  # one episode, updated
    assert eps[0].expected > 140 and eps[0].observed < 110  # expected the day's peak, saw the mean


def test_which_way_is_bad_depends_on_the_series():
    values = noise(3)
    values[2 * DAY:] = [v - 40 for v in values[2 * DAY:]]
    assert episodes("response_time", values) == []  # faster is good news
    assert episodes("error_rate", [v / 1000 for v in values]) == []
    assert brief(episodes("throughput", values), 2 * DAY)[0] == ("open", 0, None, 0)  # a drop in traffic is not


def test_minutes_close_in_data_time_late_points_are_counted_and_series_capped():
    minutes = W.new_minutes()
    assert W.accumulate(minutes, [("a", 1.0, T0), ("a", 3.0, T0 + 59_999), ("b", 5.0, T0)]) == []
    assert W.accumulate(minutes, [("a", 10.0, T0 + MIN), ("a", 7.0, T0 + 30_000)]) == [("a", T0, 11 / 3)]
    assert W.accumulate(minutes, [("a", 1.0, T0 + 1)]) == [] and minutes["late"] == 1
    W.accumulate(minutes, [(f"m{i}", 1.0, T0) for i in range(W.MAX_SERIES + 5)])
    assert len(minutes["acc"]) == W.MAX_SERIES and minutes["dropped"] == 7


def test_a_minute_fed_twice_is_skipped():
    series = W.new_series()
    W.observe(series, "a", T0, 1.0)
    before = json.dumps(series)
    assert W.observe(series, "a", T0, 5.0) == [] and json.dumps(series) == before


def _episode(**kw) -> W.Episode:
    base = dict(series="error_rate", status="open", started_at=T0 + 12 * 60 * MIN + 3 * MIN, ended_at=None,
                at=T0 + 12 * 60 * MIN + 5 * MIN, observed=0.081, expected=0.01, low=0.004, high=0.016, score=0.9912,
                severity="high", others=(("response_time", T0 + 12 * 60 * MIN + 4 * MIN),), now_expected=0.012)
    return W.Episode(**{**base, **kw})


def test_an_insight_says_what_was_seen_the_band_since_when_how_unusual_and_the_likely_cause():
    context = {"changes": [["deployment v1.9", T0 + 11 * 60 * MIN], ["deployment v2.0", T0 + 12 * 60 * MIN]]}
    record = I.anomaly_insight("acct", "application", "app_1", _episode(), context)
    assert {k: record[k] for k in ("type", "severity", "title", "description", "status", "metric", "timestamp",
                                   "version", "application_id", "agent_id", "cause")} == {
        "type": "reliability", "severity": "high", "title": "Error rate unusually high",
        "description": "error_rate averaged 8.1% a minute at 12:05 UTC, above its expected 0.4% to 1.6% "
                       "(anomaly score 0.99); unusual since 12:03 UTC. Likely cause: deployment v2.0 at 12:00 UTC, "
                       "3 min before it started; unusual at the same time: response_time (since 12:04 UTC)",
        "status": "open", "metric": "error_rate", "timestamp": T0 + 723 * MIN, "version": T0 + 725 * MIN,
        "application_id": "app_1", "agent_id": None,
        "cause": "deployment v2.0 at 12:00 UTC, 3 min before it started; unusual at the same time: "
                 "response_time (since 12:04 UTC)"}
    assert record["id"] == I.insight_id("acct", "app_1", "anomaly/error_rate", str(T0 + 723 * MIN))
    resolved = I.anomaly_insight("acct", "application", "app_1",
                                 _episode(status="resolved", ended_at=T0 + 740 * MIN, at=T0 + 744 * MIN, others=()),
                                 {"changes": [["deployment v1.9", T0 + 11 * 60 * MIN]]})  # 63 min before: not it
    assert (resolved["id"], resolved["title"], resolved["description"], resolved["cause"]) == (
        record["id"], "Error rate back to normal",
        "error_rate was unusually high from 12:03 UTC to 12:20 UTC (17 min): at worst 8.1% a minute against an "
        "expected 0.4% to 1.6% (anomaly score 0.99)", None)


def test_an_agent_vital_is_an_anomaly_insight_of_the_agent():
    ep = _episode(series="tokenConsumption", observed=52_000.0, expected=1_000.0, low=400.0, high=1_600.0,
                  others=())
    record = I.anomaly_insight("acct", "agent", "bot-1", ep, {"changes": [["event model_switch", T0 + 722 * MIN]]})
    assert (record["type"], record["title"], record["application_id"], record["agent_id"], record["cause"]) == (
        "anomaly", "tokenConsumption unusually high", "", "bot-1", "event model_switch at 12:02 UTC, 1 min before it started")


def _vitals(values: list[float], per: int = 1) -> list[tuple]:
    """The agent's vitals, one a minute with these token counts, as ARI's batch step reads
    them: (key, value, (topic, partition, offset)), `per` records a batch."""
    def vital(i, tokens):
        return codec.encode("agent_vital", {
            "tenant": "acct", "id": i + 1, "agent_id": "bot", "agent_name": None, "token_consumption": int(tokens),
            "token_limit": 100_000, "hallucination_rate": 0.0, "loop_frequency": 0, "directive_conflicts": 0,
            "overall_health": "green", "metadata": "{}", "recorded_at": T0 + i * MIN + 5_000})
    records = [(b"acct/bot", vital(i, v), ("p.agent.vitals", 0, i)) for i, v in enumerate(values)]
    return [records[i:i + per] for i in range(0, len(records), per)]


def _run(batches, states, detectors, found, saved=None):
    """ARI's batch step with the anomaly watch, batch after batch, as the worker runs it;
    `saved` (states, detectors) gets JSON copies of what the worker writes to its changelogs."""
    for batch in batches:
        step = apply_batch(states.get, batch, detectors)
        detectors.save(step.detectors)
        states.update(step.states)
        if saved is not None:
            saved[0].update({k: json.loads(json.dumps(v)) for k, v in step.states.items()})
            saved[1].update({k: json.loads(json.dumps(v)) for k, v in step.detectors.items()})
        found.update({rec["id"] + "@" + str(rec["version"]): rec for _, rec in step.insights.values()})


def _tokens() -> list[float]:
    values = noise(3, level=1000, sd=30, seed=9)
    values[2 * DAY + 7:2 * DAY + 10] = [9000.0] * 3
    return values


def test_the_worker_step_derives_each_version_once_even_when_records_are_read_again():
    batches = _vitals(_tokens(), per=3)  # the open and the resolved versions in different batches
    states, detectors, found = {}, anomalies.Delivered(), {}
    _run(batches, states, detectors, found)
    assert [(f["metric"], f["status"], f["started_at"], f["observed"], f["agent_id"]) for f in found.values()] == [
        ("tokenConsumption", "open", T0 + (2 * DAY + 7) * MIN, 9000.0, "bot"),
        ("tokenConsumption", "resolved", T0 + (2 * DAY + 7) * MIN, 9000.0, "bot")]
    # read again after a crash: nothing applied twice, nothing derived again
    again = apply_batch(states.get, [r for b in batches for r in b], detectors)
    assert (again.states, again.detectors, again.insights) == ({}, {}, {})


def test_a_crash_between_detector_saves_loses_nothing_and_changes_nothing():
    """Detectors are saved every SAVE_AFTER minutes, the state with its watch every batch: a
    worker that restarts from what was saved ends exactly where an uninterrupted one does."""
    batches = _vitals(_tokens())
    whole, states, detectors = {}, {}, anomalies.Delivered()
    _run(batches, states, detectors, whole)
    crash_at = 2 * DAY + 12  # the episode is open, and the saved detectors have not seen it begin
    saved, found = ({}, {}), {}
    _run(batches[:crash_at], {}, anomalies.Delivered(), found, saved)
    pending = saved[0][b"acct/bot"][anomalies.WATCH]["pending"]["tokenConsumption"]
    assert (len(pending), pending[0][0]) == (10, T0 + (2 * DAY + 1) * MIN)
    assert saved[1][b"acct/bot"]["tokenConsumption"]["ep"] is None
    _run(batches[crash_at:], saved[0], anomalies.Delivered(saved[1]), found)  # restarted on the saved states only
    assert found == whole and len(whole) == 2
    assert json.dumps(saved[1][b"acct/bot"], sort_keys=True) == json.dumps(detectors[b"acct/bot"], sort_keys=True)
