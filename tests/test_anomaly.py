"""pipeline/anomaly on made-up series with known answers, and the NAB scorer on a tiny
hand-computed example."""

import json
import math

import numpy as np
import pytest

from bench import nab_scoring
from pipeline import anomaly

T0 = 1704067200  # 2024-01-01 00:00 UTC, a Monday
STEP = 300  # 5-minute samples
DAY = 86400 // STEP


def noise(n: int, seed: int = 7) -> np.ndarray:
    return np.random.default_rng(seed).normal(0.0, 1.0, n).round(3)


def run(xs, state=None, start=0):
    state = anomaly.new_state() if state is None else state
    return [anomaly.update(state, T0 + (start + i) * STEP, float(x)) for i, x in enumerate(xs)]


def alarms(results) -> list[int]:
    return [i for i, r in enumerate(results) if r.unusual]


def episodes(results) -> list[int]:
    """First alarm of each episode. Within an episode (a day of data after its first
    alarm) the detector speaks again only for a deviation stronger than the episode's
    peak so far: those later alarms must score higher each time."""
    out, last_start, last_score = [], None, 0.0
    for i in alarms(results):
        if last_start is not None and i - last_start < DAY:
            assert results[i].score > last_score
        else:
            out.append(i)
            last_start = i
        last_score = results[i].score
    return out


def seasonal(days: int) -> list[float]:
    e = noise(4000)
    return [100 + 20 * math.sin(2 * math.pi * i / DAY) + e[i % 4000] for i in range(DAY * days)]


def test_flat_healthy_series_raises_nothing():
    results = run(100 + noise(2000))
    assert alarms(results) == []
    assert max(r.score for r in results) < anomaly.detector.ALARM


def test_level_shift_is_flagged_at_its_first_point():
    xs = 100 + noise(2000)
    xs[1000:] += 10
    results = run(xs)
    assert episodes(results) == [1000]
    r = results[1000]
    assert r.expected_low < 100 < r.expected_high < 110


def test_spike_is_flagged_once():
    xs = 100 + noise(2000)
    xs[1000] = 150
    results = run(xs)
    assert alarms(results) == [1000]
    assert results[1000].score > 0.98


def test_clean_seasonal_series_raises_nothing():
    assert alarms(run(seasonal(10))) == []


def test_broken_day_in_a_seasonal_series_is_flagged_where_it_breaks():
    xs = seasonal(10)
    e = noise(4000)
    start = 8 * DAY + 36  # day 8, 03:00: the daily peak is replaced by the mean level
    for i in range(start, start + 72):
        xs[i] = 100 + e[i % 4000]
    results = run(xs)
    assert episodes(results) == [start]
    # the expected value at the break is the daily pattern's, not the flat level
    assert results[start].expected == pytest.approx(100 + 20 * math.sin(2 * math.pi * 36 / DAY), abs=2)


def test_state_stays_bounded():
    state = anomaly.new_state()
    e = noise(100_000)
    run(100 + e[:3000], state)  # 10 days: the list of the last 7 days' maxima is full
    leaves_3k = len(json.dumps(state).split(","))
    run(100 + e[3000:], state, start=3000)
    assert state["n"] == 100_000
    assert len(json.dumps(state).split(",")) == leaves_3k
    assert len(json.dumps(state)) < 10_000


def test_state_survives_a_json_round_trip_mid_series():
    xs = seasonal(6)
    xs[1200] += 60
    whole = run(xs)
    state = anomaly.new_state()
    run(xs[:700], state)
    state = json.loads(json.dumps(state))
    rest = run(xs[700:], state, start=700)
    assert [r.score for r in rest] == [r.score for r in whole[700:]]
    assert alarms(whole) == [1200]


def test_nab_scorer_on_a_hand_computed_example():
    # 10 rows: probation floor(0.15 * 10) = 1 row; one window, rows 4..6 (width 3).
    # Detections at rows 5 (in the window) and 8 (after it).
    f = nab_scoring.prepare([0, 0, 0, 0, 0, 1, 0, 0, 1, 0], [(4, 6)])

    def sigma(x):
        return 2 / (1 + math.exp(5 * x)) - 1

    # At threshold 1: TP at relative position -(6 - 5 + 1) / 3, FP at (8 - 6) / (3 - 1).
    tp = sigma(-2 / 3) / sigma(-1)
    raw = tp + 0.11 * sigma(1.0)
    assert raw == pytest.approx(0.8352146884012095, rel=1e-12)
    # At threshold 0 every row detects: the window's first row scores 1, rows 1-3 are FPs
    # with no preceding window (-1 each), rows 7-9 FPs at 0.5, 1, 1.5 widths after it.
    assert 1 + 0.11 * (-3 + sigma(0.5) + sigma(1) + sigma(1.5)) == pytest.approx(0.35828283810813943)
    r = nab_scoring.score_corpus([f], {"tpWeight": 1.0, "fpWeight": 0.11, "fnWeight": 1.0})
    assert r["threshold"] == 1.0
    assert r["raw"] == pytest.approx(0.8352146884012095, rel=1e-12)
    # null -1, perfect +1
    assert r["score"] == pytest.approx(91.76073442006047, rel=1e-12)


def test_nab_probation_rule():
    assert nab_scoring.probationary_length(4032) == 604
    assert nab_scoring.probationary_length(15902) == 750


def _burst(xs, i, value):
    # a one-point burst between points exactly at the level, so its contexts repeat exactly
    xs[i - 2] = xs[i - 1] = xs[i + 1] = 100.0
    xs[i] = value


def test_a_familiar_burst_inside_the_quiet_time_stays_quiet_a_new_one_speaks():
    xs = 100 + noise(3000)
    _burst(xs, 700, 125)  # day 2 (too early to alarm for its size): its contexts are learnt
    _burst(xs, 2000, 125)  # a familiar burst (day 6): an alarm all the same, a quiet time starts
    _burst(xs, 2050, 135)  # stronger, but the same quantised levels around it: contexts seen
    _burst(xs, 2100, 400)  # a level never seen: new contexts
    results = run(xs)
    assert alarms(results) == [2000, 2100]
    assert results[2100].score > results[2000].score
    # the burst at 1050 is stronger than the episode's peak (so without the novelty rule it
    # would speak) and it falls inside the quiet time
    assert results[2050].score == 0.0
    state = anomaly.new_state()
    run(xs[:2050], state)
    assert state["t"] < state["hold"]
    assert abs(135 - results[2050].expected) > 1.05 * abs(125 - results[2000].expected)


def test_the_first_days_ask_for_a_larger_deviation():
    # the same burst ranks lower on day 4 (3 days' maxima known) than on day 9 (7 known):
    # the reference is 1 + 2 * (7 - 3) / 7 times the median of the daily maxima on day 4
    def burst_score(day):
        xs = 100 + noise(DAY * 10)
        i = day * DAY + 100
        xs[i] = 108
        return run(xs)[i].score

    early, late = burst_score(3), burst_score(8)
    assert 0.5 < early < 0.97
    assert late > 0.99
