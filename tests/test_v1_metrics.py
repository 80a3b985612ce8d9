"""/v1/applications/{id}/metrics on the real broker and engine: a generated series comes
back with exact bucket values at every granularity and stat, empty buckets are null,
bad input is a 400 naming the field, a 10,000-point batch lands exactly once, and
neither a retried insert nor a batch re-read after a crash counts twice in the rollups."""
import json
import math
import random
import statistics
import time
from datetime import datetime, timedelta, timezone
from fractions import Fraction

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from api.series import DEFAULT_GRANULARITY
from pipeline.sink.consumer import Sink
from pipeline.sink.steps import Batch, insert_batch, to_row, to_rows
from pipeline.store.clickhouse import connect
from pipeline.store.migrate import migrate
from pipeline.topics import APP_METRICS, ensure_topics, entity_key
from schemas import codec

from .conftest import eventually

pytestmark = pytest.mark.integration

STEP_S = {"1m": 60, "5m": 300, "1h": 3600, "1d": 86400}
STATS = ("mean", "p50", "p95", "p99", "min", "max", "sum", "count")
DAY_MS = 86_400_000


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def percentile(values: list[float], q: float) -> float:
    """The documented definition: linear interpolation between the two nearest ranks
    (numpy's default), evaluated with the same floating-point steps as ClickHouse's
    quantileExactInclusive so the comparison can be exact."""
    v = sorted(values)
    h = q * (len(v) - 1) + 1
    n = int(h)
    if n >= len(v):
        return v[-1]
    return v[n - 1] + (h - n) * (v[n] - v[n - 1])


def linear_exact(values: list[float], q: float) -> Fraction:
    """numpy's default percentile in exact rational arithmetic (the definition itself)."""
    v = sorted(Fraction(x) for x in values)
    h = Fraction(q).limit_denominator(1000) * (len(v) - 1)
    lo = math.floor(h)
    return v[lo] if lo + 1 >= len(v) else v[lo] + (h - lo) * (v[lo + 1] - v[lo])


def expected_series(points: list[tuple[int, float]], start_ms: int, end_ms: int, granularity: str, stat: str):
    step = STEP_S[granularity] * 1000
    buckets: dict[int, list[float]] = {}
    for ts, value in points:
        buckets.setdefault(ts - ts % step, []).append(value)
    first = start_ms - start_ms % step
    out = []
    for b in range(first, end_ms, step):
        vs = buckets.get(b)
        if not vs:
            value = 0 if stat == "count" else None
        else:
            value = {"mean": lambda: sum(vs) / len(vs), "min": lambda: min(vs), "max": lambda: max(vs),
                     "sum": lambda: sum(vs), "count": lambda: len(vs), "p50": lambda: percentile(vs, 0.5),
                     "p95": lambda: percentile(vs, 0.95), "p99": lambda: percentile(vs, 0.99)}[stat]()
        out.append({"timestamp": iso(b), "value": value})
    return out


@pytest.fixture
def api(running_api):
    return running_api()


def new_app(http) -> str:
    res = http.post("/v1/applications", json={"name": "metrics test"})
    assert res.status_code == 201, res.text
    return res.json()["id"]


def landed_count(http, app_id, metric, start_ms, end_ms) -> int:
    res = http.get(f"/v1/applications/{app_id}/metrics", params={
        "metric": metric, "stat": "count", "granularity": "1d", "start": iso(start_ms), "end": iso(end_ms)})
    return sum(d["value"] for d in res.json()["data"])


def generated_series(t0: int) -> list[tuple[int, float]]:
    """Two days of response times: busy minutes, lone points, bucket edges, empty hours.
    Values are multiples of 1/4, so every sum (and so every mean) is exact in binary."""
    rnd = random.Random(5)
    points = []
    for day in (0, 1):
        for hour, minutes in ((0, (0, 1, 2, 4, 5, 59)), (7, (30,)), (13, (0, 14, 15, 16)), (23, (59,))):
            for minute in minutes:
                base = t0 + day * DAY_MS + hour * 3_600_000 + minute * 60_000
                n = rnd.choice((1, 2, 3, 7, 20, 41))
                for i in range(n):
                    at = base + (0 if i == 0 else 59_999 if i == 1 else rnd.randrange(60_000))
                    points.append((at, rnd.randrange(0, 4000) / 4))
    return points


def test_rollups_are_exact_at_every_granularity_and_stat(api):
    now = int(time.time() * 1000)
    t0 = now - now % DAY_MS - 3 * DAY_MS  # two whole days, in the past
    points = generated_series(t0)
    with api.client() as http:
        app_id = new_app(http)
        other = new_app(http)
        # Split over batches and both timestamp forms; noise in other metrics and another app.
        body = [{"metric": "response_time", "value": v,
                 "timestamp": ts if i % 2 else datetime.fromtimestamp(ts / 1000, timezone.utc)
                 .astimezone(timezone(timedelta(hours=2))).isoformat(timespec="milliseconds")}
                for i, (ts, v) in enumerate(points)]
        noise = [{"metric": "error_rate", "value": 0.5, "timestamp": ts} for ts, _ in points[:50]]
        half = len(body) // 2
        for batch in ({"points": body[:half] + noise}, body[half:]):
            res = http.post(f"/v1/applications/{app_id}/metrics", json=batch)
            assert res.status_code == 202, res.text
        assert http.post(f"/v1/applications/{other}/metrics", json=[
            {"metric": "response_time", "value": 1e6, "timestamp": points[0][0]}]).status_code == 202
        start, end = t0, t0 + 2 * DAY_MS
        assert eventually(lambda: landed_count(http, app_id, "response_time", start, end) == len(points), 15)

        for granularity in STEP_S:
            for stat in STATS:
                res = http.get(f"/v1/applications/{app_id}/metrics", params={
                    "start": iso(start), "end": iso(end), "granularity": granularity, "stat": stat})
                assert res.status_code == 200, res.text
                assert res.json() == {"metric": "response_time", "granularity": granularity,
                                      "data": expected_series(points, start, end, granularity, stat)}, (granularity, stat)

        # The default stat is the mean, and the documented percentile is numpy's linear one.
        day = [v for ts, v in points if ts < t0 + DAY_MS]
        got = http.get(f"/v1/applications/{app_id}/metrics", params={
            "start": iso(start), "end": iso(end), "granularity": "1d"}).json()["data"]
        assert got[0]["value"] == sum(day) / len(day)
        p95 = http.get(f"/v1/applications/{app_id}/metrics", params={
            "start": iso(start), "end": iso(end), "granularity": "1d", "stat": "p95"}).json()["data"][0]["value"]
        assert p95 == pytest.approx(float(linear_exact(day, 0.95)), abs=1e-9)
        assert p95 == pytest.approx(statistics.quantiles(day, n=100, method="inclusive")[94], abs=1e-9)


def test_throughput_is_requests_per_minute_averaged_over_the_bucket(api):
    now = int(time.time() * 1000)
    hour = now - now % 3_600_000 - 2 * 3_600_000
    reports = [(hour, 120), (hour + 30_000, 180), (hour + 60_000, 600), (hour + 5 * 60_000, 60)]
    with api.client() as http:
        app_id = new_app(http)
        res = http.post(f"/v1/applications/{app_id}/metrics",
                        json={"points": [{"metric": "throughput", "value": v, "timestamp": iso(ts) if ts % 1000 == 0
                                          else ts} for ts, v in reports]})
        assert res.status_code == 202
        assert eventually(lambda: landed_count(http, app_id, "throughput", hour, hour + 3_600_000) == 4, 15)
        get = lambda g: [d for d in http.get(f"/v1/applications/{app_id}/metrics", params={
            "metric": "throughput", "granularity": g, "start": iso(hour), "end": iso(hour + 3_600_000)}).json()["data"]
            if d["value"] is not None]
        assert get("1m") == [{"timestamp": iso(hour), "value": 150.0}, {"timestamp": iso(hour + 60_000), "value": 600.0},
                             {"timestamp": iso(hour + 300_000), "value": 60.0}]
        assert get("5m") == [{"timestamp": iso(hour), "value": 300.0}, {"timestamp": iso(hour + 300_000), "value": 60.0}]
        assert get("1h") == [{"timestamp": iso(hour), "value": 240.0}]


def test_empty_buckets_defaults_and_granularity_by_range(api):
    with api.client() as http:
        app_id = new_app(http)
        before = int(time.time() * 1000)
        res = http.get(f"/v1/applications/{app_id}/metrics")
        after = int(time.time() * 1000)
        assert res.status_code == 200
        body = res.json()
        assert (body["metric"], body["granularity"]) == ("response_time", "5m")  # 24 h by default
        data = body["data"]
        assert all(d["value"] is None for d in data) and len(data) in (288, 289)
        first = datetime.fromisoformat(data[0]["timestamp"]).timestamp() * 1000
        last = datetime.fromisoformat(data[-1]["timestamp"]).timestamp() * 1000
        assert before - DAY_MS - 300_000 < first <= after - DAY_MS  # the bucket holding now - 24 h
        assert before - 300_000 < last <= after  # ... to the bucket holding now
        assert [d["timestamp"] for d in data] == [iso(int(first) + i * 300_000) for i in range(len(data))]

        count = http.get(f"/v1/applications/{app_id}/metrics", params={"stat": "count", "metric": "error_rate"}).json()
        assert {d["value"] for d in count["data"]} == {0} and count["metric"] == "error_rate"

        t = 1_790_000_000_000 - 1_790_000_000_000 % DAY_MS
        for span, granularity in ((6 * 3_600_000, "1m"), (6 * 3_600_000 + 1, "5m"), (2 * DAY_MS, "5m"),
                                  (2 * DAY_MS + 1, "1h"), (30 * DAY_MS, "1h"), (30 * DAY_MS + 1, "1d")):
            res = http.get(f"/v1/applications/{app_id}/metrics", params={"start": str(t), "end": str(t + span)})
            assert res.json()["granularity"] == granularity, span
            assert len(res.json()["data"]) == -(-span // (STEP_S[granularity] * 1000))
        assert [g for _, g in DEFAULT_GRANULARITY] == ["1m", "5m", "1h"]

        # An end on a bucket edge excludes that bucket; an unaligned start includes the bucket holding it.
        res = http.get(f"/v1/applications/{app_id}/metrics", params={
            "start": "2026-01-15T12:03:00Z", "end": "2026-01-15T12:15:00+00:00", "granularity": "5m"}).json()
        assert [d["timestamp"] for d in res["data"]] == ["2026-01-15T12:00:00Z", "2026-01-15T12:05:00Z",
                                                        "2026-01-15T12:10:00Z"]
        # "+01:00" sent unencoded in a query string arrives as " 01:00": still read as +01:00.
        res = http.get(f"/v1/applications/{app_id}/metrics?start=2026-01-15T13:00:00+01:00"
                       f"&end=2026-01-15T12:02:00Z&granularity=1m").json()
        assert [d["timestamp"] for d in res["data"]] == ["2026-01-15T12:00:00Z", "2026-01-15T12:01:00Z"]


def test_write_validation_names_the_field(api):
    now = int(time.time() * 1000)
    ok = {"metric": "response_time", "value": 12.5, "timestamp": now}
    cases = [
        ({"points": []}, "points", "must hold at least one point"),
        ({}, "points", "is required"),
        ({"points": {"a": 1}}, "points", "must be an array"),
        ({"points": [ok], "app": 1}, "app", "unknown field"),
        ("hello", "body", "must be"),
        ([ok, 5], "points[1]", "must be an object"),
        ([ok, {**ok, "metric": "Latency"}], "points[1].metric", "must be response_time, error_rate"),
        ([{**ok, "metric": "x" * 65}], "points[0].metric", "custom name"),
        ([{**ok, "metric": 3}], "points[0].metric", "must be"),
        ([ok, ok, ok, {**ok, "value": "12"}], "points[3].value", "must be a number"),
        ([{**ok, "value": True}], "points[0].value", "must be a number"),
        ([{**ok, "value": None}], "points[0].value", "must be a number"),
        ([{**ok, "value": -1}], "points[0].value", "must be between 0 and 1e+15 for response_time (milliseconds)"),
        ([{**ok, "metric": "error_rate", "value": 1.5}], "points[0].value", "between 0 and 1 for error_rate"),
        ([{**ok, "metric": "throughput", "value": -3}], "points[0].value", "between 0 and 1e+15 for throughput"),
        ([{**ok, "metric": "queue.depth", "value": 10**400}], "points[0].value", "finite"),
        ([{"metric": "response_time", "timestamp": now}], "points[0].value", "is required"),
        ([{**ok, "unit": "ms"}], "points[0].unit", "unknown field"),
        ([{**ok, "timestamp": "yesterday"}], "points[0].timestamp", "is not an ISO 8601 time"),
        ([{**ok, "timestamp": 1.7e12}], "points[0].timestamp", "epoch milliseconds"),
        ([{**ok, "timestamp": now + 6 * 60_000}], "points[0].timestamp", "5 minutes in the future"),
        ([{**ok, "timestamp": iso(now - 401 * DAY_MS)}], "points[0].timestamp", "400 days old"),
        ([ok] * 10_001, "points", "at most 10000 points"),
    ]
    with api.client() as http:
        app_id = new_app(http)
        for body, field, message in cases:
            res = http.post(f"/v1/applications/{app_id}/metrics", json=body)
            assert res.status_code == 400, (body, res.text)
            err = res.json()
            assert (err["success"], err["error"], err["field"]) == (False, "Invalid request", field), err
            assert err["message"].startswith(f"{field}: ") and message in err["message"], err["message"]
        # NaN is not JSON, but Python's json (and so the api's parser) reads it.
        res = http.post(f"/v1/applications/{app_id}/metrics", content=b'[{"metric":"x","value":NaN,"timestamp":1}]',
                        headers={"Content-Type": "application/json"})
        assert (res.status_code, res.json()["field"]) == (400, "points[0].value")
        res = http.post(f"/v1/applications/{app_id}/metrics", content=b"{not json",
                        headers={"Content-Type": "application/json"})
        assert (res.status_code, res.json()["field"]) == (400, "body")
        # The body cap of this route is 2 MiB (64 KiB elsewhere).
        res = http.post(f"/v1/applications/{app_id}/metrics", content=b" " * (2 * 1024 * 1024 + 1),
                        headers={"Content-Type": "application/json"})
        assert (res.status_code, res.json()["field"]) == (400, "body")
        assert "2097152 bytes" in res.json()["message"]
        assert http.post("/v1/applications", content=b" " * (65 * 1024),
                         headers={"Content-Type": "application/json"}).json()["field"] == "body"
        # A batch is taken whole or not at all: nothing of the rejected ones landed.
        res = http.get(f"/v1/applications/{app_id}/metrics", params={"stat": "count", "granularity": "1d",
                                                                     "start": iso(now - 2 * DAY_MS)})
        assert {d["value"] for d in res.json()["data"]} == {0}


def test_read_validation_names_the_parameter(api):
    with api.client() as http:
        app_id = new_app(http)
        for params, field in [
            ({"start": "2026-01-02T00:00:00Z", "end": "2026-01-01T00:00:00Z"}, "start"),
            ({"start": "2026-01-01T00:00:00Z", "end": "2026-01-01T00:00:00Z"}, "start"),
            ({"start": "last tuesday"}, "start"), ({"end": "2026-13-01"}, "end"),
            ({"granularity": "2m"}, "granularity"), ({"stat": "p90"}, "stat"),
            ({"metric": "Response Time"}, "metric"), ({"start": "1969-12-31T00:00:00Z"}, "start"),
            ({"start": "2026-01-01T00:00:00Z", "end": "2026-01-08T00:00:00Z", "granularity": "1m"}, "granularity"),
        ]:
            res = http.get(f"/v1/applications/{app_id}/metrics", params=params)
            assert (res.status_code, res.json()["field"]) == (400, field), (params, res.text)
        # 10,000 buckets is the most one answer holds.
        assert http.get(f"/v1/applications/{app_id}/metrics", params={
            "start": "2026-01-01T00:00:00Z", "end": "2026-01-07T22:40:00Z", "granularity": "1m"}).status_code == 200


def test_another_accounts_application_is_not_found(api):
    now = int(time.time() * 1000)
    with api.client() as owner, api.client(api.new_key()) as intruder:
        app_id = new_app(owner)
        point = [{"metric": "response_time", "value": 1, "timestamp": now}]
        for http, status in ((intruder, 404), (owner, 202)):
            assert http.post(f"/v1/applications/{app_id}/metrics", json=point).status_code == status
        res = intruder.get(f"/v1/applications/{app_id}/metrics")
        assert (res.status_code, res.json()["error"]) == (404, "Not found")
        assert owner.get("/v1/applications/app_0000000000000000/metrics").status_code == 404
        assert owner.post("/v1/applications/app_0000000000000000/metrics", json=point).status_code == 404
        with api.client(None) as anonymous:
            assert anonymous.get(f"/v1/applications/{app_id}/metrics").status_code == 401


def test_a_batch_of_ten_thousand_points_lands_exactly_once(api):
    now = int(time.time() * 1000)
    name = "c" + "x" * 63  # the longest custom name: the largest Kafka record a request can make
    points = [{"metric": name, "value": float(i), "timestamp": iso(now - 60_000 - i * 1000)[:-1] + ".123+00:00"}
              for i in range(10_000)]
    with api.client() as http:
        app_id = new_app(http)
        body = json.dumps({"points": points}, indent=1).encode()
        assert 1024 * 1024 < len(body) < 2 * 1024 * 1024
        res = http.post(f"/v1/applications/{app_id}/metrics", content=body, headers={"Content-Type": "application/json"})
        assert res.status_code == 202, res.text
        assert res.json()["accepted"] == 10_000 and 0 < res.json()["batch_id"] < 2**53
        start = now - 60_000 - 10_000 * 1000
        assert eventually(lambda: landed_count(http, app_id, name, start - DAY_MS, now + 60_000) == 10_000, 20)

    s = api.settings
    ch = connect(s.clickhouse_dsn, s.clickhouse_database)
    assert ch.query("SELECT count(), uniqExact(idx), min(value), max(value), sum(value) FROM app_metrics "
                    "WHERE application_id = %(a)s", {"a": app_id}).result_rows == [(10_000, 10_000, 0, 9999, 49995000)]
    assert ch.query("SELECT toUnixTimestamp64Milli(max(timestamp)) FROM app_metrics WHERE application_id = %(a)s",
                    {"a": app_id}).result_rows[0][0] == (now - 60_000) // 1000 * 1000 + 123
    for g in STEP_S:
        assert ch.query(f"SELECT sum(count) FROM app_metrics_{g} WHERE application_id = %(a)s",
                        {"a": app_id}).result_rows == [(10_000,)], g


def test_summary_of_the_last_24_hours(api):
    now = int(time.time() * 1000)
    minute = now - now % 60_000
    with api.client() as http:
        app_id = new_app(http)
        assert http.get(f"/v1/applications/{app_id}").json()["metrics"] == {
            "uptime": None, "response_time": None, "error_rate": None}
        points = [
            # three minutes where some requests failed, one where all did: 75 % uptime
            *({"metric": "error_rate", "value": v, "timestamp": minute - m * 60_000}
              for m, v in ((50, 0.0), (40, 0.25), (40, 0.75), (30, 0.125), (20, 1.0))),
            *({"metric": "response_time", "value": v, "timestamp": minute - m * 60_000}
              for m, v in ((50, 100), (40, 300), (2, 200))),
            # older than the window: ignored
            {"metric": "error_rate", "value": 1.0, "timestamp": now - 25 * 3_600_000},
            {"metric": "response_time", "value": 5000, "timestamp": now - 25 * 3_600_000},
        ]
        assert http.post(f"/v1/applications/{app_id}/metrics", json=points).status_code == 202
        metrics = eventually(lambda: (m := http.get(f"/v1/applications/{app_id}").json()["metrics"])["uptime"]
                             is not None and m["response_time"] is not None and m, 15)
        assert metrics == {"uptime": 75.0, "response_time": 200.0, "error_rate": 2.125 / 5}


# -- the sink: deduplication of rollups ---------------------------------------------------
@pytest.fixture
def env(make_settings):
    s = make_settings()
    ensure_topics(s.kafka_bootstrap_servers, s.topic_prefix)
    migrate(s.clickhouse_dsn, s.clickhouse_database)
    return s, s.kafka_bootstrap_servers, connect(s.clickhouse_dsn, s.clickhouse_database)


def batch_record(batch_id: int, n: int, t: int) -> dict:
    return {"tenant": "t_m", "application_id": "app_1", "id": batch_id, "received_at": t,
            "points": [{"metric": "response_time", "value": float(i), "timestamp": t + i * 1000} for i in range(n)]}


def rollup_counts(ch) -> list[int]:
    return [ch.query(f"SELECT sum(count) FROM app_metrics_{g}").result_rows[0][0] for g in STEP_S]


def test_a_retried_insert_is_not_counted_twice_in_the_rollups(env):
    _, _, ch = env
    t = int(time.time() * 1000) - 3_600_000
    batch = Batch()
    for offset in range(3):
        batch.track("topic", 0, offset)
        batch.add(to_rows(codec.encode("app_metric_batch", batch_record(100 + offset, 40, t)), 0, offset))
    assert batch.size == 120
    insert_batch(ch, batch)
    insert_batch(ch, batch)  # ClickHouse took the first, but its answer was lost
    assert ch.query("SELECT count() FROM app_metrics").result_rows == [(120,)]  # no FINAL: one copy
    assert rollup_counts(ch) == [120] * 4
    assert ch.query("SELECT partition, max(offset) FROM app_metrics_landed GROUP BY partition").result_rows == [(0, 2)]
    assert to_row(codec.encode("app_metric_batch", batch_record(1, 2, t))).reason.endswith("use to_rows")


def test_a_view_that_missed_an_insert_takes_it_on_the_retry(env):
    """ClickHouse failed after the raw rows and some views had the block: the retry (same
    token) completes the view that missed it and changes nothing elsewhere."""
    _, _, ch = env
    batch = Batch()
    batch.track("topic", 0, 0)
    batch.add(to_rows(codec.encode("app_metric_batch", batch_record(7, 30, int(time.time() * 1000) - 3_600_000)), 0, 0))
    ch.command("DETACH TABLE app_metrics_1h_mv")
    try:
        insert_batch(ch, batch)
    finally:
        ch.command("ATTACH TABLE app_metrics_1h_mv")
    assert rollup_counts(ch) == [30, 30, 0, 30]
    insert_batch(ch, batch)
    assert rollup_counts(ch) == [30] * 4
    assert ch.query("SELECT count() FROM app_metrics").result_rows == [(30,)]


def test_a_batch_re_read_after_a_crash_is_not_counted_twice(env):
    """The sink inserted some records, then died before committing their offsets; its
    successor re-reads them together with new ones (another batch, another dedup token)."""
    s, bootstrap, ch = env
    topic = s.topic(APP_METRICS.name)
    t = int(time.time() * 1000) - 3_600_000
    delivered = []
    p = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all"})
    for i in range(12):
        p.produce(topic, key=entity_key("t_m", "app_1"), value=codec.encode("app_metric_batch", batch_record(i, 10, t)),
                  partition=0 if i < 8 else 1, on_delivery=lambda err, msg: delivered.append(msg))
    assert p.flush(10) == 0 and len(delivered) == 12
    crashed = Batch()  # what the sink that crashed had landed: the first 5 records of partition 0
    for msg in sorted(delivered, key=lambda m: (m.partition(), m.offset()))[:5]:
        crashed.track(topic, msg.partition(), msg.offset())
        crashed.add(to_rows(msg.value(), msg.partition(), msg.offset()))
    insert_batch(ch, crashed)
    assert rollup_counts(ch) == [50] * 4

    sink = Sink(s, bootstrap).start()
    try:
        def committed():
            c = Consumer({"bootstrap.servers": bootstrap, "group.id": s.sink_group})
            offsets = c.committed([TopicPartition(topic, i) for i in range(APP_METRICS.partitions)], timeout=10)
            c.close()
            return sum(max(tp.offset, 0) for tp in offsets)
        assert eventually(lambda: committed() == 12, 20)
    finally:
        sink.stop()
    assert sink.skipped == 5 and sink.inserted_rows == 70
    assert ch.query("SELECT count() FROM app_metrics").result_rows == [(120,)]
    assert rollup_counts(ch) == [120] * 4
    assert ch.query("SELECT count(), uniqExact(batch_id, idx) FROM app_metrics").result_rows == [(120, 120)]


def test_the_migration_keeps_raw_points_and_rollups_as_long_as_the_api_accepts_them(env):
    from api.routes.app_metrics import RETENTION_DAYS
    s, _, ch = env
    for table in ("app_metrics", *(f"app_metrics_{g}" for g in STEP_S)):
        engine = ch.query("SELECT engine_full FROM system.tables WHERE database = %(d)s AND name = %(t)s",
                          {"d": s.clickhouse_database, "t": table}).result_rows[0][0]
        assert f"toIntervalDay({RETENTION_DAYS})" in engine, (table, engine)
