"""Predictions: the trend and confidence rules on made-up histories with known answers,
and the route on the real broker and engine."""
import math
import time

import pytest

from pipeline import predictions as P

from .conftest import clear_of_the_hour_end, eventually

H = 3600


def test_least_squares_line_and_its_prediction_interval():
    # y = 10, 30, 20 at hours 0..2: slope 5/h through (1 h, 20); residuals -5, 10, -5
    f = P.fit([(0, 10.0), (H, 30.0), (2 * H, 20.0)])
    assert (f.slope * H, f.intercept, f.t_mean, f.n) == (5.0, 20.0, H, 3)
    assert f.residual_sd == pytest.approx(150 ** 0.5, rel=1e-12)  # sqrt(SSE / (n - 2))
    assert f.at(3 * H) == 30.0
    # sd * sqrt(1 + 1/3 + (2 h)^2 / (2 h^2)) = sqrt(150) * sqrt(10/3) = sqrt(500)
    assert f.prediction_sd(3 * H) == pytest.approx(500 ** 0.5, rel=1e-12)
    assert P.fit([(0, 1.0), (H, 2.0)]) is None  # two points: no spread to judge a line by


def test_six_hour_horizon_extends_the_trend_hourly_with_falling_confidence():
    now = 2 * H + 1800  # half way through the bucket of hour 2
    out = P.predict("response_time", "6h", [(0, 10.0), (H, 30.0), (2 * H, 20.0)], now)
    assert out == [{"timestamp": 3 * H, "predicted_value": 30.0, "confidence": 0.1067},
                   {"timestamp": 4 * H, "predicted_value": 35.0, "confidence": 0.0942},
                   {"timestamp": 5 * H, "predicted_value": 40.0, "confidence": 0.0851},
                   {"timestamp": 6 * H, "predicted_value": 45.0, "confidence": 0.0787},
                   {"timestamp": 7 * H, "predicted_value": 50.0, "confidence": 0.074},
                   {"timestamp": 8 * H, "predicted_value": 55.0, "confidence": 0.0704}]


def test_a_perfect_trend_is_certain_and_bounded_metrics_are_clamped():
    rising = [(i * 300, 0.5 + 0.2 * i) for i in range(3)]  # +0.2 per 5 min: above 1 at once
    out = P.predict("error_rate", "1h", rising, 900 + 10)
    assert len(out) == 12 and out[0]["timestamp"] == 1200 and out[-1]["timestamp"] == 900 + 12 * 300
    assert {(p["predicted_value"], p["confidence"]) for p in out} == {(1.0, 1.0)}
    falling = [(i * H, 300.0 - 100 * i) for i in range(3)]
    assert [p["predicted_value"] for p in P.predict("response_time", "6h", falling, 2 * H)][:3] == [0.0, 0.0, 0.0]
    # a custom metric has no bounds
    assert [p["predicted_value"] for p in P.predict("balance", "6h", falling, 2 * H)][:3] == [0.0, -100.0, -200.0]


def test_history_ranges_end_before_the_current_bucket():
    now = 1_795_464_000 + 1234  # 2026-11-23T20:20:34Z
    assert P.history_range("1h", now) == (now - 1234 + 1200 - 6 * H, now - 1234 + 900)
    assert P.history_range("24h", now) == (now - 1234 - 7 * 24 * H, now - 1234 - H)
    day = now - now % 86400
    assert P.history_range("7d", now) == (day - 28 * 86400, day - 86400)


@pytest.mark.integration
def test_predictions_route_fits_the_rollup_means(running_api):
    api = running_api()
    clear_of_the_hour_end(30)  # the expected buckets are counted from the current hour
    now = int(time.time())
    hour = now - now % H
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
        assert body["basis"] == {"granularity": "1h", "start": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(hour - 48 * H)),
                                 "end": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(hour - H)), "buckets": 6,
                                 "method": "linear least squares over bucket means"}
        assert [(p["timestamp"], p["predicted_value"], p["confidence"]) for p in body["predictions"]] == [
            (time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(hour + i * H)), 160.0 + 10 * i, 1.0) for i in range(1, 7)]
        default = http.get(f"/v1/applications/{app_id}/predictions").json()  # response_time over 24h
        assert (default["horizon"], len(default["predictions"]), default["predictions"][0]["predicted_value"]) == (
            "24h", 24, 170.0)
        empty = http.get(f"/v1/applications/{app_id}/predictions", params={"metric": "error_rate"}).json()
        assert (empty["predictions"], empty["basis"]["buckets"]) == ([], 0)
        bad = http.get(f"/v1/applications/{app_id}/predictions", params={"horizon": "2h"})
        assert (bad.status_code, bad.json()["field"], bad.json()["message"]) == (400, "horizon",
                                                                                  "horizon: must be 1h, 6h, 24h or 7d")
        assert http.get(f"/v1/applications/{app_id}/predictions", params={"metric": "Bad!"}).json()["field"] == "metric"
    with api.client(api.new_key()) as other:
        assert other.get(f"/v1/applications/{app_id}/predictions").status_code == 404


@pytest.mark.parametrize("values", [
    [1e200, -1e200, 1e200],  # residual squares of 1e200 overflowed before
    [1.7976931348623157e308, -1.7976931348623157e308, 1.7976931348623157e308],
    [1.7e308, 1.7e308, -1.7e308, 5e-324],
    [0.0, 0.0, 0.0],
])
def test_extreme_histories_give_finite_predictions(values):
    history = [(i * H, v) for i, v in enumerate(values)]
    out = P.predict("balance", "24h", history, len(values) * H)
    assert len(out) == 24
    for p in out:
        assert math.isfinite(p["predicted_value"]) and 0.0 <= p["confidence"] <= 1.0
    assert all(p["predicted_value"] >= 0 for p in P.predict("response_time", "24h", history, len(values) * H))


def test_the_fit_is_exact_under_its_scaling_and_skips_non_finite_points():
    # values scaled by a power of two give the very same line, bit for bit
    f = P.fit([(0, 10.0 * 2**600), (H, 30.0 * 2**600), (2 * H, 20.0 * 2**600)])
    assert (f.slope * H, f.intercept) == (5.0 * 2**600, 20.0 * 2**600)
    assert P.fit([(0, 1.0), (H, math.inf), (2 * H, math.nan), (3 * H, 2.0)]) is None  # two finite points left
    g = P.fit([(0, 1.0), (H, math.inf), (2 * H, 3.0), (3 * H, 5.0)])
    assert g.n == 3 and g.slope * H == pytest.approx(9 / 7, rel=1e-15)  # the line through (0, 1), (2, 3), (3, 5)
