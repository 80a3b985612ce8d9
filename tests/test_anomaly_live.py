"""Anomaly insights through the real worker, broker, sink and engine: an application's
series and an agent's vitals with two quiet days, then an anomaly just after a
deployment (an agent event); the insights read back from the api are exactly what the
watch's own code derives from the same points (pipeline/anomaly/watch.py), with the
deployment or event named as the likely cause, open while it lasts and resolved after."""
import math
import random
import time

import pytest
from confluent_kafka import Consumer

from pipeline.topics import AGENT_EVENTS, AGENT_VITALS, APP_DEPLOYMENTS
from pipeline.worker.anomalies import Delivered, step
from schemas import codec

from .conftest import eventually
from .dashboard_seed import Topics, vital
from .test_insights import DAY, T0, noise
from .test_v1_deployments import Worker, send_points

pytestmark = pytest.mark.integration
MIN = 60_000


def expected(scope: str, batches: list[list]) -> dict:
    """insight id -> its last record, as the worker's own step derives it from these
    batches of (key, kind, record)s."""
    watch, detectors, out = {}, Delivered(), {}
    for batch in batches:
        w, d, found = step(scope, watch.get, detectors.get, batch, detectors.confirmed, detectors.saving)
        watch.update(w)
        detectors.save(d)
        out.update({rec["id"]: rec for _, rec in found.values()})
    return out


def metric_batch(tenant, app_id, points) -> dict:
    return {"tenant": tenant, "application_id": app_id, "id": 0, "received_at": 0,
            "points": [{"metric": m, "value": v, "timestamp": t} for m, v, t in points]}


def as_api(rec: dict) -> dict:
    def iso(ms):
        return None if ms is None else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ms // 1000))
    out = {k: rec[k] for k in ("id", "type", "severity", "title", "description", "recommendation", "metric",
                               "status", "observed", "expected", "expected_low", "expected_high", "score", "cause")}
    out.update(timestamp=iso(rec["timestamp"]), started_at=iso(rec["started_at"]), ended_at=iso(rec["ended_at"]))
    return {k: v for k, v in out.items() if v is not None}


def deployment_record(settings, dep_id: str) -> dict:
    """The deployment's first record on app.deployments (its started_at in ms: the api answers seconds)."""
    c = Consumer({"bootstrap.servers": settings.kafka_bootstrap_servers, "group.id": f"t-{dep_id}",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    c.subscribe([settings.topic(APP_DEPLOYMENTS.name)])
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            msg = c.poll(0.5)
            if msg is not None and not msg.error():
                _, record = codec.decode(msg.value())
                if record["id"] == dep_id:
                    return record
        raise AssertionError("deployment record not found")
    finally:
        c.close()


def by_metric(insights: list[dict]) -> dict:
    return {i["metric"]: i for i in insights if i["type"] != "deployment"}


@pytest.fixture
def live(running_api):
    """(api, its tenant, this minute, the start of two days before it), with a worker running."""
    api = running_api()
    worker = Worker(api.settings, "127.0.0.0/8")
    now = int(time.time() * 1000)
    minute = now - now % MIN
    yield api, api.app.state.keys.book.authenticate(api.key).tenant, minute, minute - 2 * DAY * MIN
    worker.stop()


def test_an_application_anomaly_after_a_deployment(live):
    api, tenant, minute, start = live
    rng = random.Random(11)
    history = [pt for i in range(2 * DAY) for pt in (("response_time", 200 + rng.gauss(0, 4), start + i * MIN),
                                                     ("error_rate", 0.01 + rng.gauss(0, 0.001), start + i * MIN))]
    with api.client() as http:
        app_id = http.post("/v1/applications", json={"name": "shop"}).json()["id"]
        send_points(api, tenant, app_id, history, batch_id=start * 10)
        dep = http.post(f"/v1/applications/{app_id}/deployments", json={"version": "v2.0"}).json()
        assert eventually(lambda: (http.get(f"/v1/applications/{app_id}/deployments").json()["deployments"]
                                   or [{}])[0].get("status") == "in_progress", 60)
        spike_at = minute + 2 * MIN
        # twelve anomalous minutes (whatever the detector makes of them, they last), and one more that closes them
        onset = [pt for i in range(13) for pt in (("response_time", 400.0 if i < 12 else 200.0, spike_at + i * MIN),
                                                  ("error_rate", 0.08 if i < 12 else 0.01, spike_at + i * MIN))]
        send_points(api, tenant, app_id, onset, batch_id=(start + 1) * 10)
        deployment = deployment_record(api.settings, dep["id"])
        changes = [["deployment v2.0", deployment["started_at"]]]
        key = f"{tenant}/{app_id}".encode()
        batches = [[(key, "app_metric_batch", metric_batch(tenant, app_id, history))],
                   [(key, "app_deployment", deployment)], [(key, "app_metric_batch", metric_batch(tenant, app_id, onset))]]
        want = expected("application", batches)
        assert sorted((r["metric"], r["status"]) for r in want.values()) == [
            ("error_rate", "open"), ("response_time", "open")]

        def listed(status):
            got = by_metric(http.get(f"/v1/applications/{app_id}/insights").json()["insights"])
            return got if len(got) == 2 and all(i["status"] == status for i in got.values()) else None
        seen = eventually(lambda: listed("open"), 90)
        assert seen == {r["metric"]: as_api(r) for r in want.values()}
        assert seen["response_time"]["cause"] == (
            f"deployment v2.0 at {time.strftime('%H:%M UTC', time.gmtime(changes[0][1] // 1000))}, "
            f"{(spike_at - changes[0][1]) // MIN} min before it started; "
            f"unusual at the same time: error_rate (since {time.strftime('%H:%M UTC', time.gmtime(spike_at // 1000))})")
        assert (seen["response_time"]["type"], seen["error_rate"]["type"]) == ("performance", "reliability")

        calm = [pt for i in range(13, 20) for pt in (("response_time", 200.0, spike_at + i * MIN),
                                                     ("error_rate", 0.01, spike_at + i * MIN))]
        send_points(api, tenant, app_id, calm, batch_id=(start + 2) * 10)
        batches.append([(key, "app_metric_batch", metric_batch(tenant, app_id, calm))])
        want = expected("application", batches)
        seen = eventually(lambda: listed("resolved"), 60)
        assert seen == {r["metric"]: as_api(r) for r in want.values()}
        assert seen["error_rate"]["ended_at"] == time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                               time.gmtime((spike_at + 12 * MIN) // 1000))
    with api.client(api.new_key()) as other:
        assert other.get(f"/v1/applications/{app_id}/insights").status_code == 404


def test_an_agent_vital_anomaly_after_an_event(live):
    api, tenant, minute, start = live
    rng = random.Random(12)
    key = f"{tenant}/bot-1".encode()
    topics = Topics(api.settings)

    def report(i, at, tokens):
        return vital(tenant, "bot-1", "support bot", at, i + 1, tokens=tokens, hallucination=0.01, loops=0,
                     conflicts=0)
    quiet = [report(i, start + i * MIN + 7_000, int(1000 + rng.gauss(0, 30))) for i in range(2 * DAY)]
    spike_at = minute
    event = {"tenant": tenant, "id": 1, "agent_id": "bot-1", "event_type": "model_switch",
             "details": "gpt-x to gpt-y", "metadata": "{}", "recorded_at": spike_at - 2 * MIN + 5_000}
    after = [report(2 * DAY + i, spike_at + i * MIN + 7_000, 9000 if i < 12 else 1000) for i in range(22)]
    for v in quiet:
        topics.send(AGENT_VITALS, "agent_vital", key, v)
    topics.send(AGENT_EVENTS, "agent_event", key, event)
    topics.flush()
    time.sleep(1.0)  # the event is read before the spike: they come from two topics
    for v in after:
        topics.send(AGENT_VITALS, "agent_vital", key, v)
    topics.flush()
    want = expected("agent", [[(key, "agent_vital", v) for v in quiet], [(key, "agent_event", event)],
                              [(key, "agent_vital", v) for v in after]])
    assert [(r["metric"], r["status"]) for r in want.values()] == [("tokenConsumption", "resolved")]
    with api.client() as http:
        def listed():
            got = http.get("/api/agents/bot-1/insights").json().get("insights", [])
            return got if got and got[0]["status"] == "resolved" else None
        seen = eventually(listed, 90)
        assert seen == [as_api(r) for r in want.values()]
        assert seen[0]["cause"] == (f"event model_switch at "
                                    f"{time.strftime('%H:%M UTC', time.gmtime(event['recorded_at'] // 1000))}, "
                                    f"{(next(iter(want.values()))['started_at'] - event['recorded_at']) // MIN} min "
                                    f"before it started")
        assert (seen[0]["type"], seen[0]["observed"]) == ("anomaly", 9000.0)
        assert http.get("/api/agents/nobody/insights").status_code == 404
    with api.client(api.new_key()) as other:
        assert other.get("/api/agents/bot-1/insights").status_code == 404


def test_the_made_up_series_through_the_real_worker(live):
    """test_insights.py's four series (a flat healthy one, a spike, a level shift, a
    seasonal one with a broken day) as one application's custom metrics: the worker
    raises exactly what the watch's own code derives, and nothing for the flat one."""
    api, tenant, _, _ = live
    spike, shift = noise(3), noise(3, seed=8)
    spike[2 * DAY] = 130.0
    shift[2 * DAY:] = [v + 20 for v in shift[2 * DAY:]]
    rng = random.Random(5)
    seasonal = [100 + 50 * math.sin(2 * math.pi * (i % DAY) / DAY) + rng.gauss(0, 2) for i in range(8 * DAY)]
    broken = 7 * DAY + 360
    seasonal[broken:broken + 360] = [100 + rng.gauss(0, 2) for _ in range(360)]
    series = {"flat_ms": noise(3, seed=9), "spike_ms": spike, "shift_ms": shift, "seasonal_ms": seasonal}
    points = [(name, v, T0 + i * MIN) for name, values in series.items() for i, v in enumerate(values)]
    points += [(name, values[-1], T0 + len(values) * MIN) for name, values in series.items()]  # closes the last
    batches = [points[i:i + 10_000] for i in range(0, len(points), 10_000)]
    with api.client() as http:
        app_id = http.post("/v1/applications", json={"name": "made-up"}).json()["id"]
        key = f"{tenant}/{app_id}".encode()
        for n, batch in enumerate(batches):
            send_points(api, tenant, app_id, batch, batch_id=T0 * 10 + n)
        want = expected("application", [[(key, "app_metric_batch", metric_batch(tenant, app_id, b))] for b in batches])
        starts = sorted((r["metric"], (r["started_at"] - T0) // MIN, r["status"]) for r in want.values())
        assert starts == [("seasonal_ms", broken, "resolved"), ("shift_ms", 2 * DAY, "resolved"),
                          ("spike_ms", 2 * DAY, "resolved")]

        def listed():
            got = http.get(f"/v1/applications/{app_id}/insights").json()["insights"]
            return got if len(got) == 3 and all(i["status"] == "resolved" for i in got) else None
        seen = eventually(listed, 120)
        assert sorted(seen, key=lambda i: i["id"]) == sorted((as_api(r) for r in want.values()), key=lambda i: i["id"])
