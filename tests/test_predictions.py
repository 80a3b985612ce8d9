"""Predictions: the forecaster's rules on made-up histories with known answers, and the
routes (/v1 applications, /api agents) on the real broker and engine."""
import math
import time

import numpy as np
import pytest

from pipeline import forecast as F
from pipeline import predictions as P

from .conftest import clear_of_the_hour_end, eventually

H = 3600
DAY = 24 * H
NOW = 1_795_464_000 + 1234  # 2026-11-23T20:20:34Z
HOUR = NOW - NOW % H


def pattern(t: int) -> float:
    """A daily shape: 320 at midnight, down to 200 at noon, back up (integers: exact)."""
    return 200.0 + 10 * abs(12 - t % DAY // H)


def test_a_pure_daily_pattern_is_forecast_exactly_with_an_interval_that_holds_it():
    first, last = P.history_range("24h", NOW)
    history = [(t, pattern(t)) for t in range(first, last + 1, H)]
    out, method = P.predict("response_time", "24h", history, NOW)
    # every candidate is exact on a noiseless pattern: the tie goes to seasonal naive
    assert method == "seasonal_naive"
    assert [p["timestamp"] for p in out] == [HOUR + i * H for i in range(1, 25)]
    for p in out:
        # exactly the pattern, in an interval of no width that holds it
        assert (p["predicted_value"], p["lower"], p["upper"], p["confidence"]) == (pattern(p["timestamp"]),) * 3 + (0.8,)


def noisy_daily(n: int, seed: int = 3) -> np.ndarray:
    t = np.arange(n)
    return 100 + 20 * np.sin(2 * np.pi * t / 24) + np.random.default_rng(seed).normal(0, 5, n)


def test_a_noisy_daily_pattern_is_forecast_better_than_copying_yesterday():
    y = noisy_daily(28 * 24 + 24)
    history, future = y[:-24], y[-24:]
    f = F.forecast(history, (24, 168), 24)
    truth = 100 + 20 * np.sin(2 * np.pi * np.arange(28 * 24, 29 * 24) / 24)
    naive = history[-24:]
    # the median and the mean of the same hour over the 28 days (the best two by backtest), averaged
    assert f.method == "median(24x28)+mean(24x28)"
    # a seasonal profile averaged over 4 weeks is much nearer the pattern than yesterday's noisy value
    assert round(float(np.mean(np.abs(f.mean - truth))), 3) == 0.752
    assert round(float(np.mean(np.abs(naive - truth))), 3) == 4.061
    assert int(np.sum((f.lower <= future) & (future <= f.upper))) == 18  # of 24, for an 80 % interval
    # the noise is N(0, 5): an 80 % interval of a value is about 2 * 1.28 * 5 = 12.8 wide
    assert round(float(np.mean(f.upper - f.lower)), 2) == 13.02


def test_the_interval_is_wider_at_the_hours_whose_errors_are_larger():
    # noise N(0, 10) from midnight to noon, N(0, 1) after: the phase's error scale
    # follows it, instead of one width for every hour
    t = np.arange(28 * 24 + 24)
    noise = np.random.default_rng(5).normal(0, 1, len(t)) * np.where(t % 24 < 12, 10, 1)
    y = 100 + 20 * np.sin(2 * np.pi * t / 24) + noise
    f = F.forecast(y[:-24], (24, 168), 24)  # from midnight
    width = f.upper - f.lower
    assert f.method == "mean(24x28)"
    # 80 % of N(0, 10) is 25.6 wide and of N(0, 1) 2.6 (plus the profile's own error, and
    # the quiet hours' scale reads an hour into the noisy ones either side, and a tenth of the mean)
    assert (round(float(np.mean(width[:12])), 2), round(float(np.mean(width[12:])), 2)) == (22.89, 4.35)
    assert int(np.sum((f.lower <= y[-24:]) & (y[-24:] <= f.upper))) == 17


def test_the_level_correction_keeps_up_with_a_steady_rise():
    # a daily pattern on a steady rise: a profile of the past week lags it by a constant
    # (half a week of rise), which the level correction adds back at every lead
    t = np.arange(28 * 24)
    y = 100 + 0.5 * t + 20 * np.sin(2 * np.pi * t / 24)
    f = F.forecast(y, (24, 168), 25)
    ahead = 100 + 0.5 * np.arange(28 * 24, 28 * 24 + 25) + 20 * np.sin(2 * np.pi * np.arange(28 * 24, 28 * 24 + 25) / 24)
    assert f.method == "mean(24x7)"
    # exact up to rounding, 25 hours ahead too (it reads the profile two days back); seasonal naive is 12 behind
    assert float(np.max(np.abs(f.mean - ahead))) < 1e-9
    assert round(float(np.max(np.abs(y[-24:] - ahead[:24]))), 9) == 12.0
    # the interval comes from the backtest's errors, which include the first week's (a
    # profile of fewer days lags by less, and the correction catches up): not of no width
    assert round(float(np.max(f.upper - f.lower)), 3) == 9.129


def test_a_short_history_falls_back_to_seasonal_naive():
    # 1h horizon on 5-minute buckets: a day is 288 buckets; 300 < 2 days + 13 is too few to fit
    first, last = P.history_range("1h", NOW)
    start = last - 299 * 300
    history = [(t, float((t - start) // 300)) for t in range(start, last + 1, 300)]  # 0, 1, ..., 299
    assert list(F.candidates(np.arange(300.0), (288,), 13)) == ["seasonal_naive"]
    assert list(F.candidates(np.arange(589.0), (288,), 13))[:2] == ["seasonal_naive", "median(288x2)"]
    out, method = P.predict("response_time", "1h", history, NOW)
    assert method == "seasonal_naive"
    # the bucket a day before each predicted one (index 300 + 1 + i - 288), and every
    # in-sample seasonal difference is exactly 288, so the interval is [v + 288, v + 288]
    current = NOW - NOW % 300
    assert [(p["timestamp"], p["predicted_value"], p["lower"], p["upper"]) for p in out] == [
        (current + i * 300, float(12 + i), float(12 + i), float(12 + i + 288)) for i in range(1, 13)]


def test_less_than_a_day_repeats_the_last_value_with_the_spread_of_its_changes():
    now = 2 * H + 1800  # half way through the bucket of hour 2; 6h history starts 48 h before
    history = [(-3 * H, 1.0), (-2 * H, 2.0), (-H, 3.0), (0, 4.0), (H, 5.0)]
    out, method = P.predict("response_time", "6h", history, now)
    assert method == "naive"
    # lead 2 (the bucket after the current one) moved +2 in the history, lead 3 +3, then +4
    assert [(p["timestamp"], p["predicted_value"], p["lower"], p["upper"]) for p in out] == [
        (3 * H, 5.0, 5.0, 7.0), (4 * H, 5.0, 5.0, 8.0), (5 * H, 5.0, 5.0, 9.0),
        (6 * H, 5.0, 5.0, 9.0), (7 * H, 5.0, 5.0, 9.0), (8 * H, 5.0, 5.0, 9.0)]
    assert P.predict("response_time", "6h", history[:2], now) == ([], "none")  # two buckets: nothing


def test_gaps_are_interpolated_and_bounded_metrics_are_clamped():
    assert list(P.series([(0, 1.0), (3 * H, 4.0), (4 * H, math.inf)], 0, 5 * H, H)) == [1.0, 2.0, 3.0, 4.0]
    rising = [(i * 300, 0.5 + 0.2 * i) for i in range(3)]  # error rate +0.2 per 5 min
    out, _ = P.predict("error_rate", "1h", rising, 900 + 10)
    assert len(out) == 12 and out[0]["timestamp"] == 1200
    assert {(p["predicted_value"], p["lower"], p["upper"]) for p in out} == {(0.9, 0.9, 1.0)}


def test_history_ranges_end_before_the_current_bucket():
    assert P.history_range("1h", NOW) == (NOW - 1234 + 1200 - 4 * DAY, NOW - 1234 + 900)
    assert P.history_range("24h", NOW) == (HOUR - 28 * DAY, HOUR - H)
    day = NOW - NOW % DAY
    assert P.history_range("7d", NOW) == (day - 112 * DAY, day - DAY)


@pytest.mark.parametrize("values", [
    [1e200, -1e200, 1e200],
    [1.7976931348623157e308, -1.7976931348623157e308, 1.7976931348623157e308],
    [1.7e308, 1.7e308, -1.7e308, 5e-324],
    [0.0, 0.0, 0.0],
])
def test_extreme_histories_give_finite_predictions(values):
    history = [(i * H, v) for i, v in enumerate(values)]
    out, _ = P.predict("balance", "24h", history, len(values) * H)
    assert len(out) == 24
    for p in out:
        assert all(math.isfinite(p[k]) for k in ("predicted_value", "lower", "upper"))
        assert p["lower"] <= p["predicted_value"] <= p["upper"]
    assert all(p["lower"] >= 0 for p in P.predict("response_time", "24h", history, len(values) * H)[0])


def test_the_forecast_is_exact_under_its_scaling():
    y = noisy_daily(28 * 24)
    a, b = F.forecast(y, (24, 168), 25), F.forecast(y * 2.0**600, (24, 168), 25)
    assert a.method == b.method
    assert list(a.mean * 2.0**600) == list(b.mean) and list(a.upper * 2.0**600) == list(b.upper)


@pytest.mark.integration
def test_predictions_route_forecasts_the_rollup_means(running_api):
    api = running_api()
    clear_of_the_hour_end(30)  # the expected buckets are counted from the current hour
    now = int(time.time())
    hour = now - now % H
    iso = lambda t: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))  # noqa: E731
    with api.client() as http:
        app_id = http.post("/v1/applications", json={"name": "shop"}).json()["id"]
        # hourly means 100, 110, ..., 150 over the 6 hours before the current one (two points each)
        points = [{"metric": "response_time", "value": 100 + 10 * i + d, "timestamp": (hour - (6 - i) * H + 60) * 1000}
                  for i in range(6) for d in (-5, 5)]
        assert http.post(f"/v1/applications/{app_id}/metrics", json={"points": points}).status_code == 202
        body = eventually(lambda: (b := http.get(f"/v1/applications/{app_id}/predictions",
                                                  params={"metric": "response_time", "horizon": "6h"}).json())
                          ["basis"]["buckets"] == 6 and b)
        assert body["metric"] == "response_time" and body["horizon"] == "6h"
        assert body["basis"] == {"granularity": "1h", "start": iso(hour - 28 * DAY), "end": iso(hour - H),
                                 "buckets": 6, "method": "naive"}
        # less than a day of history: the last mean, with the spread of its changes 2..6 hours on
        assert body["predictions"] == [
            {"timestamp": iso(hour + i * H), "predicted_value": 150.0, "confidence": 0.8, "lower": 150.0,
             "upper": 150.0 + 10 * min(i + 1, 5)} for i in range(1, 7)]
        default = http.get(f"/v1/applications/{app_id}/predictions").json()  # response_time over 24h
        assert (default["horizon"], len(default["predictions"]), default["predictions"][0]["predicted_value"]) == (
            "24h", 24, 150.0)
        empty = http.get(f"/v1/applications/{app_id}/predictions", params={"metric": "error_rate"}).json()
        assert (empty["predictions"], empty["basis"]["buckets"], empty["basis"]["method"]) == ([], 0, "none")
        bad = http.get(f"/v1/applications/{app_id}/predictions", params={"horizon": "2h"})
        assert (bad.status_code, bad.json()["field"], bad.json()["message"]) == (400, "horizon",
                                                                                  "horizon: must be 1h, 6h, 24h or 7d")
        assert http.get(f"/v1/applications/{app_id}/predictions", params={"metric": "Bad!"}).json()["field"] == "metric"
    with api.client(api.new_key()) as other:
        assert other.get(f"/v1/applications/{app_id}/predictions").status_code == 404


@pytest.mark.integration
def test_agent_predictions_forecast_the_vitals_rollups(running_api):
    from .test_agent_metrics import account, produce_vitals, vital
    api = running_api()
    clear_of_the_hour_end(30)
    now = int(time.time())
    hour = now - now % H
    iso = lambda t: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))  # noqa: E731
    key, tenant = account(api)
    # two days and one hour of hourly reports before the current hour: tokens follow the
    # hour of the day (1000 + 10 * hour), so yesterday's same hour is exact
    starts = [hour - i * H for i in range(49, 0, -1)]
    produce_vitals(api.settings, [vital(tenant, "agent-p", t * 1000 + 60_000, tokens=1000 + 10 * (t % DAY // H))
                                  for t in starts])
    with api.client(key) as http:
        body = eventually(lambda: (b := http.get("/api/agents/agent-p/predictions",
                                                  params={"metric": "tokenConsumption", "horizon": "6h"}).json())
                          .get("basis", {}).get("buckets") == 49 and b, timeout=30)
        assert body["agent_id"] == "agent-p" and (body["metric"], body["horizon"]) == ("tokenConsumption", "6h")
        assert body["basis"] == {"granularity": "1h", "start": iso(hour - 28 * DAY), "end": iso(hour - H),
                                 "buckets": 49, "method": "seasonal_naive"}
        assert body["predictions"] == [
            {"timestamp": iso(hour + i * H), "predicted_value": float(1000 + 10 * ((hour + i * H) % DAY // H)),
             "confidence": 0.8, "lower": float(1000 + 10 * ((hour + i * H) % DAY // H)),
             "upper": float(1000 + 10 * ((hour + i * H) % DAY // H))} for i in range(1, 7)]
        bad = http.get("/api/agents/agent-p/predictions", params={"horizon": "2d"})
        assert (bad.status_code, bad.json()["field"]) == (400, "horizon")
        bad = http.get("/api/agents/agent-p/predictions", params={"metric": "no spaces"})
        assert (bad.status_code, bad.json()["field"]) == (400, "metric")
        assert http.get("/api/agents/nobody/predictions").status_code == 404
    with api.client(api.new_key()) as other:
        res = other.get("/api/agents/agent-p/predictions")
        assert (res.status_code, res.json()["error"]) == (404, "Agent not found")
