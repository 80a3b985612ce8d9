"""The worker's per-application watch on the real broker and engine: deployments driven
by data (the application's metrics after a deployment against before it, and its health
check through the outbound guard), and the insight a failed one raises. Anomaly insights
through the same worker: tests/test_anomaly_live.py."""
import http.server
import os
import subprocess
import sys
import threading
import time

import pytest
from confluent_kafka import Producer

from api.routes.deployments import DeploymentConfig, DeploymentOut, Recent
from pipeline.producer import producer_config
from pipeline.topics import APP_METRICS
from schemas import codec
from sophra.processes import terminate

from .conftest import eventually, free_port

pytestmark = pytest.mark.integration
MIN = 60_000


SECRET = b"internal answer: db_password=hunter2"


class Health(http.server.BaseHTTPRequestHandler):
    """/health answers 200, /hold 200 once the test releases it, anything else 503; the
    body is something a user must never read back through a deployment's reason."""

    def do_GET(self):  # noqa: N802
        self.server.hits.append(self.path)
        if self.path == "/hold":
            self.server.release.wait(4.5)  # under the worker's 5 s probe timeout
        self.send_response(200 if self.path in ("/health", "/hold") else 503)
        self.send_header("Content-Length", str(len(SECRET)))
        self.end_headers()
        try:
            self.wfile.write(SECRET)
        except OSError:  # the worker that asked was killed
            pass

    def log_message(self, *args):
        pass


class Site:
    def __init__(self):
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Health)
        self.server.hits, self.server.release = [], threading.Event()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def hits(self) -> list[str]:
        return self.server.hits


class Worker:
    """`python -m sophra worker` for the api's topics, as deployed: the guard allows only
    `allow` (SOPHRA_OUTBOUND_ALLOW)."""

    def __init__(self, settings, allow: str):
        self.env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
                    "SOPHRA_TOPIC_PREFIX": settings.topic_prefix, "SOPHRA_WORKER_ID": settings.worker_id,
                    "SOPHRA_OUTBOUND_ALLOW": allow,
                    # Faust's own settings: a killed worker leaves the group in 6 s, not 60;
                    # offsets are committed every 0.5 s, not 2.8
                    "BROKER_SESSION_TIMEOUT": "6", "BROKER_HEARTBEAT_INTERVAL": "1",
                    "BROKER_COMMIT_INTERVAL": "0.5"}
        self.proc = self._start()

    def _start(self) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "sophra", "worker"], env=self.env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def crash_and_restart(self) -> None:
        self.proc.kill()  # SIGKILL: nothing gets to finish
        self.proc.wait()
        self.proc = self._start()

    def stop(self) -> None:
        terminate(self.proc)


@pytest.fixture
def world(running_api, request):
    """(api, site, worker); the loopback receivers are allowed unless the test passes
    another SOPHRA_OUTBOUND_ALLOW through indirect parametrization."""
    api = running_api()
    worker = Worker(api.settings, getattr(request, "param", "127.0.0.0/8"))
    site = Site()
    yield api, site, worker
    site.server.release.set()
    site.server.shutdown()
    worker.stop()


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


def deploy(api, http, app_id, body, before):
    """Metrics before, then the deployment (pending); its id."""
    tenant = api.app.state.keys.book.authenticate(api.key).tenant
    now = int(time.time() * 1000)
    send_points(api, tenant, app_id, series(now - 14 * MIN, 14, *before), batch_id=now * 10)
    created = http.post(f"/v1/applications/{app_id}/deployments", json=body)
    assert created.status_code == 201, created.text
    dep = created.json()
    assert (dep["status"], dep["completed_at"], dep["reason"]) == ("pending", None, None)
    return dep["id"]


def send_after(api, app_id, after):
    """After-data from just past the deployment to beyond its 5 min window: makes it due."""
    tenant = api.app.state.keys.book.authenticate(api.key).tenant
    now = int(time.time() * 1000)
    send_points(api, tenant, app_id, series(now + 1000, 6, *after), batch_id=(now + 14 * MIN) * 10)


def listed(http, app_id, dep_id):
    return next((d for d in http.get(f"/v1/applications/{app_id}/deployments").json()["deployments"]
                 if d["id"] == dep_id), None)


def decided(http, app_id, dep_id, timeout=60):
    def done():
        d = listed(http, app_id, dep_id)
        return d if d and d["status"] not in ("pending", "in_progress") else None
    return eventually(done, timeout)


def deploy_and_watch(api, http, app_id, body, before, after):
    dep_id = deploy(api, http, app_id, body, before)
    send_after(api, app_id, after)
    return decided(http, app_id, dep_id)


def test_healthy_deployment_succeeds(world):
    api, site, _ = world
    with api.client() as http:
        app_id = http.post("/v1/applications", json={"name": "shop", "base_url": site.url}).json()["id"]
        d = deploy_and_watch(api, http, app_id, {"version": "v1.2.5", "changes": ["Fixed payment bug"],
                                                 "config": {"health_check_url": "/health"}},
                             before=(0.01, 200.0), after=(0.012, 210.0))
    assert (d["version"], d["status"], d["reason"], d["changes"]) == ("v1.2.5", "success", None, ["Fixed payment bug"])
    assert d["completed_at"].endswith("Z") and d["config"] == {"rollback_on_error": False, "health_check_url": "/health"}


def test_error_rate_regression_is_rolled_back_with_its_reason(world):
    api, site, _ = world
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


def test_slow_deployment_without_rollback_fails(world):
    api, site, _ = world
    with api.client() as http:
        app_id = http.post("/v1/applications", json={"name": "shop"}).json()["id"]
        d = deploy_and_watch(api, http, app_id, {"version": "v3"}, before=(0.01, 200.0), after=(0.01, 400.0))
    assert (d["status"], d["reason"]) == ("failed", "response time rose from 200 ms to 400 ms")


def test_failing_health_check_fails_the_deployment(world):
    api, site, _ = world
    with api.client() as http:
        app_id = http.post("/v1/applications", json={"name": "shop", "base_url": site.url}).json()["id"]
        d = deploy_and_watch(api, http, app_id, {"version": "v4", "config": {"health_check_url": "/ready"}},
                             before=(0.01, 200.0), after=(0.01, 200.0))
    assert (d["status"], d["reason"]) == ("failed", f"health check GET {site.url}/ready answered 503")


def test_reference_deployment_of_an_application_without_base_url_rests_on_metrics(world):
    api, _, _ = world
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
    api, _, _ = world
    with api.client() as http, api.client(api.new_key()) as other:
        app_id = http.post("/v1/applications", json={"name": "no base url"}).json()["id"]
        res = http.post(f"/v1/applications/{app_id}/deployments", json={"version": "v1", "config": {"health_check_url": "h"}})
        assert (res.status_code, res.json()["field"]) == (400, "config.health_check_url")
        assert http.post(f"/v1/applications/{app_id}/deployments", json={}).json()["field"] == "version"
        assert other.post(f"/v1/applications/{app_id}/deployments", json={"version": "v1"}).status_code == 404
        assert other.get(f"/v1/applications/{app_id}/deployments").status_code == 404


@pytest.mark.parametrize("world", [""], indirect=True)  # as deployed by default: nothing internal allowed
def test_a_health_check_at_an_internal_address_is_refused_and_never_sent(world):
    api, site, _ = world
    with api.client() as http:
        local = http.post("/v1/applications", json={"name": "shop", "base_url": site.url}).json()["id"]
        private = http.post("/v1/applications", json={"name": "intranet"}).json()["id"]
        a = deploy(api, http, local, {"version": "v5", "config": {"health_check_url": "/health"}}, (0.01, 200.0))
        b = deploy(api, http, private, {"version": "v6", "config": {"health_check_url": "http://10.0.0.5/health"}},
                   (0.01, 200.0))
        send_after(api, local, (0.01, 200.0))
        send_after(api, private, (0.01, 200.0))
        da, db = decided(http, local, a), decided(http, private, b)
    assert (da["status"], da["reason"]) == ("failed", f"health check GET {site.url}/health refused: loopback address")
    assert (db["status"], db["reason"]) == ("failed", "health check GET http://10.0.0.5/health refused: private address")
    assert site.hits == []


def test_a_held_health_check_blocks_nothing_and_survives_a_worker_crash(world):
    api, site, worker = world
    with api.client() as http:
        held = http.post("/v1/applications", json={"name": "shop", "base_url": site.url}).json()["id"]
        other = http.post("/v1/applications", json={"name": "other"}).json()["id"]
        a = deploy(api, http, held, {"version": "v7", "config": {"health_check_url": "/hold"}}, (0.01, 200.0))
        b = deploy(api, http, other, {"version": "v8"}, (0.01, 200.0))
        send_after(api, held, (0.01, 200.0))
        assert eventually(lambda: site.hits == ["/hold"], 60), site.hits
        # Past a commit, so the restarted worker neither re-reads the batch that made it due
        # nor gets another record for it: only its state (from the changelog) says "probing".
        time.sleep(1.5)
        worker.crash_and_restart()  # well within the 5 s probe timeout: no result was produced
        # the restarted worker finds the deployment still probing and probes again
        assert eventually(lambda: site.hits == ["/hold", "/hold"], 60), site.hits
        # while that check is held, the batch loop goes on: another deployment is decided
        send_after(api, other, (0.01, 200.0))
        db = decided(http, other, b, timeout=4)
        assert (db and db["status"], listed(http, held, a)["status"]) == ("success", "in_progress")
        site.server.release.set()
        da = decided(http, held, a)
    assert (da["status"], da["reason"], da["completed_at"] is not None) == ("success", None, True)
    assert site.hits == ["/hold", "/hold"]


def test_a_new_deployment_is_listed_by_its_replica_right_after_the_201(running_api):
    api = running_api()  # no worker: the deployments stay pending
    with api.client() as http:
        app_id = http.post("/v1/applications", json={"name": "shop"}).json()["id"]
        first = http.post(f"/v1/applications/{app_id}/deployments", json={
            "version": "v1.0.0", "description": "First", "changes": ["Initial release"],
            "config": {"rollback_on_error": True, "health_check_url": "/health"}})
        assert first.status_code == 201, first.text
        assert http.get(f"/v1/applications/{app_id}/deployments").json() == {"deployments": [{
            "id": first.json()["id"], "version": "v1.0.0", "status": "pending", "started_at": first.json()["started_at"],
            "completed_at": None, "changes": ["Initial release"], "description": "First", "reason": None,
            "config": {"rollback_on_error": True, "health_check_url": "/health"}}]}
        second = http.post(f"/v1/applications/{app_id}/deployments", json={"version": "v1.0.1"}).json()
        newest_first = {"deployments": [second, first.json()]}
        assert http.get(f"/v1/applications/{app_id}/deployments").json() == newest_first
        # once ClickHouse has both, its rows are listed, once each
        landed = "SELECT count() AS n FROM app_deployments FINAL WHERE application_id = %(a)s"
        assert eventually(lambda: api.app.state.store.query_rows(landed, {"a": app_id})[0]["n"] == 2)
        assert http.get(f"/v1/applications/{app_id}/deployments").json() == newest_first
        assert api.app.state.recent_deployments.merge(api.app.state.keys.book.authenticate(api.key).tenant,
                                                      app_id, []) == []  # forgotten once landed


def out(dep_id: str) -> DeploymentOut:
    return DeploymentOut(id=dep_id, version="v", status="pending", started_at="2026-11-23T20:00:00Z", completed_at=None,
                         changes=[], description=None, reason=None, config=DeploymentConfig())


def test_the_replica_memory_is_bounded_and_per_application():
    recent = Recent()
    recent.MAX = 3
    for i in range(4):
        recent.add("acct", "app_1" if i < 3 else "app_2", 1000 + i, out(f"d{i}"))
    assert sorted(recent.merge("acct", "app_1", [])) == [(1001, "d1", out("d1")), (1002, "d2", out("d2"))]
    assert recent.merge("acct", "app_2", [{"id": "d3"}]) == []  # ClickHouse has it: forgotten
    assert recent.merge("other", "app_1", []) == []
    recent.KEEP_S = 0.0
    assert recent.merge("acct", "app_1", []) == []
