"""The worker's per-application watch on the real broker and engine: deployments driven
by data (the application's metrics after a deployment against before it, and its health
check), and the insights it raises from the same data."""
import http.server
import os
import subprocess
import sys
import threading
import time

import pytest
from confluent_kafka import Producer

from pipeline.producer import producer_config
from pipeline.topics import APP_METRICS
from schemas import codec
from sophra.processes import terminate

from .conftest import eventually, free_port

pytestmark = pytest.mark.integration
MIN = 60_000


class Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802
        self.send_response(200 if self.path == "/health" else 503)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def world(running_api):
    api = running_api()
    s = api.settings
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": s.kafka_bootstrap_servers,
           "SOPHRA_TOPIC_PREFIX": s.topic_prefix, "SOPHRA_WORKER_ID": s.worker_id}
    worker = subprocess.Popen([sys.executable, "-m", "sophra", "worker"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield api, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    terminate(worker)


def send_points(api, tenant, app_id, points, batch_id):
    p = Producer(producer_config(api.settings.kafka_bootstrap_servers))
    record = {"tenant": tenant, "application_id": app_id, "id": batch_id, "received_at": int(time.time() * 1000),
              "points": [{"metric": m, "value": v, "timestamp": t} for m, v, t in points]}
    p.produce(api.settings.topic(APP_METRICS.name), key=f"{tenant}/{app_id}".encode(),
              value=codec.encode("app_metric_batch", record))
    assert p.flush(10) == 0


def series(start, minutes, error_rate, response_time):
    return [pt for i in range(minutes) for pt in (("error_rate", error_rate, start + i * MIN),
                                                  ("response_time", response_time, start + i * MIN))]


def deploy_and_watch(api, http, app_id, body, before, after):
    tenant = api.app.state.keys.book.authenticate(api.key).tenant
    now = int(time.time() * 1000)
    send_points(api, tenant, app_id, series(now - 14 * MIN, 14, *before), batch_id=now * 10)
    created = http.post(f"/v1/applications/{app_id}/deployments", json=body)
    assert created.status_code == 201, created.text
    dep = created.json()
    assert (dep["status"], dep["completed_at"], dep["reason"]) == ("pending", None, None)
    started = now + 14 * MIN  # after-data from just past the deployment to beyond the 5 min window
    send_points(api, tenant, app_id, series(int(time.time() * 1000) + 1000, 6, *after), batch_id=started * 10)

    def decided():
        for d in http.get(f"/v1/applications/{app_id}/deployments").json()["deployments"]:
            if d["id"] == dep["id"] and d["status"] not in ("pending", "in_progress"):
                return d
    return eventually(decided, 60)


def test_healthy_deployment_succeeds(world):
    api, site = world
    with api.client() as http:
        app_id = http.post("/v1/applications", json={"name": "shop", "base_url": site}).json()["id"]
        d = deploy_and_watch(api, http, app_id, {"version": "v1.2.5", "changes": ["Fixed payment bug"],
                                                 "config": {"health_check_url": "/health"}},
                             before=(0.01, 200.0), after=(0.012, 210.0))
    assert (d["version"], d["status"], d["reason"], d["changes"]) == ("v1.2.5", "success", None, ["Fixed payment bug"])
    assert d["completed_at"].endswith("Z") and d["config"] == {"rollback_on_error": False, "health_check_url": "/health"}


def test_error_rate_regression_is_rolled_back_with_its_reason(world):
    api, site = world
    with api.client() as http:
        app_id = http.post("/v1/applications", json={"name": "shop"}).json()["id"]
        d = deploy_and_watch(api, http, app_id, {"version": "v2", "config": {"rollback_on_error": True}},
                             before=(0.01, 200.0), after=(0.2, 200.0))
    assert (d["status"], d["reason"]) == ("rolled_back", "error rate rose from 0.01 to 0.2; rolled back (rollback_on_error)")
    with api.client() as http:
        insights = eventually(lambda: http.get(f"/v1/applications/{app_id}/insights").json()["insights"])
    assert [(i["type"], i["severity"], i["title"], i["description"], i["recommendation"]) for i in insights] == [
        ("deployment", "high", "Deployment v2 rolled back", d["reason"],
         "Review the deployment's changes and fix the cause before deploying it again")]
    assert insights[0]["timestamp"] == d["completed_at"]


def test_a_slower_hour_raises_a_performance_insight(world):
    api, _ = world
    tenant = api.app.state.keys.book.authenticate(api.key).tenant
    with api.client() as http:
        app_id = http.post("/v1/applications", json={"name": "shop"}).json()["id"]
        start = int(time.time() * 1000) - 120 * MIN
        points = [("response_time", 200.0 if i < 60 else 280.0, start + i * MIN) for i in range(120)]
        send_points(api, tenant, app_id, points, batch_id=start * 10)
        insights = eventually(lambda: http.get(f"/v1/applications/{app_id}/insights").json()["insights"], 60)
        assert [(i["type"], i["severity"], i["title"], i["description"]) for i in insights] == [
            ("performance", "medium", "Response time increase detected",
             "Average response time increased by 40% in the last hour (200 ms to 280 ms)")]
        assert insights[0]["timestamp"] == time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime((start + 119 * MIN) // 1000))
        assert http.get(f"/v1/applications/{app_id}/insights", params={"limit": 0}).json()["field"] == "limit"
    with api.client(api.new_key()) as other:
        assert other.get(f"/v1/applications/{app_id}/insights").status_code == 404


def test_slow_deployment_without_rollback_fails(world):
    api, site = world
    with api.client() as http:
        app_id = http.post("/v1/applications", json={"name": "shop"}).json()["id"]
        d = deploy_and_watch(api, http, app_id, {"version": "v3"}, before=(0.01, 200.0), after=(0.01, 400.0))
    assert (d["status"], d["reason"]) == ("failed", "response time rose from 200 ms to 400 ms")


def test_failing_health_check_fails_the_deployment(world):
    api, site = world
    with api.client() as http:
        app_id = http.post("/v1/applications", json={"name": "shop", "base_url": site}).json()["id"]
        d = deploy_and_watch(api, http, app_id, {"version": "v4", "config": {"health_check_url": "/ready"}},
                             before=(0.01, 200.0), after=(0.01, 200.0))
    assert (d["status"], d["reason"]) == ("failed", f"health check GET {site}/ready answered 503")


def test_reference_deployment_of_an_application_without_base_url_rests_on_metrics(world):
    api, _ = world
    with api.client() as http:  # reference 000's bodies, as written
        app_id = http.post("/v1/applications", json={
            "name": "New Application", "description": "Description of the application", "environment": "production",
            "config": {"monitoring": True, "alerts": True}}).json()["id"]
        d = deploy_and_watch(api, http, app_id, {"version": "v1.2.5", "description": "Bug fixes and performance "
                                                 "improvements", "config": {"rollback_on_error": True,
                                                                            "health_check_url": "/health"}},
                             before=(0.01, 200.0), after=(0.01, 205.0))
    assert (d["version"], d["status"], d["reason"], d["description"]) == (
        "v1.2.5", "success", None, "Bug fixes and performance improvements")
    assert d["config"] == {"rollback_on_error": True, "health_check_url": "/health"}


def test_deployment_validation_and_tenancy(world):
    api, _ = world
    with api.client() as http, api.client(api.new_key()) as other:
        app_id = http.post("/v1/applications", json={"name": "no base url"}).json()["id"]
        res = http.post(f"/v1/applications/{app_id}/deployments", json={"version": "v1", "config": {"health_check_url": "h"}})
        assert (res.status_code, res.json()["field"]) == (400, "config.health_check_url")
        assert http.post(f"/v1/applications/{app_id}/deployments", json={}).json()["field"] == "version"
        assert other.post(f"/v1/applications/{app_id}/deployments", json={"version": "v1"}).status_code == 404
        assert other.get(f"/v1/applications/{app_id}/deployments").status_code == 404
