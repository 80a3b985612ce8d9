"""The per-application state and deployment verdicts (pipeline/deployments.py) on
made-up data with known answers, and the worker's step that starts health checks
outside its batch loop (pipeline/worker/deployments.py) against a real local server."""
import asyncio
import http.server
import socket
import threading
import time

import pytest

from pipeline import deployments as D
from pipeline.outbound import Outbound
from pipeline.worker.deployments import Probes, apply, probe
from schemas import codec

MIN = 60_000
T0 = 1_795_464_000_000  # 2026-11-23T20:00:00Z


def pts(metric, values_at):
    return [{"metric": metric, "value": v, "timestamp": t} for v, t in values_at]


def test_points_become_bounded_per_minute_sums():
    state = D.new_state()
    # 10,000 points in one minute are one entry; throughput is not watched
    D.add_points(state, pts("response_time", [(float(i % 10), T0 + i) for i in range(10_000)]))
    D.add_points(state, pts("throughput", [(5.0, T0 + 3 * 3_600_000)]))
    assert state["minutes"] == {"error_rate": [], "response_time": [[T0, 45_000.0, 10_000]]}
    assert state["newest"] == T0 + 9_999
    # a point three hours later drops the minutes older than two hours before its minute
    D.add_points(state, pts("response_time", [(1.0, T0 + 3 * 3_600_000 + 5), (2.0, T0 + 60 * MIN)]))
    assert state["minutes"]["response_time"] == [[T0 + 60 * MIN, 2.0, 1], [T0 + 180 * MIN, 1.0, 1]]
    # a late point keeps `newest` and lands in its minute
    D.add_points(state, pts("response_time", [(4.0, T0 + 60 * MIN + 30_000)]))
    assert (state["newest"], state["minutes"]["response_time"][0]) == (T0 + 180 * MIN + 5, [T0 + 60 * MIN, 6.0, 2])


def test_verdict_compares_whole_minutes_around_the_deployment():
    state = D.new_state()
    started = T0 + 30 * MIN + 20_000  # 20:30:20; its minute counts as after
    D.add_points(state, pts("error_rate", [(0.01, T0 + i * MIN) for i in range(15, 30)]      # 20:15..20:29
                 + [(0.5, T0 + 14 * MIN)]                                                # before the window
                 + [(0.05, T0 + 30 * MIN + 10_000)]                                      # 20:30:10: after
                 + [(0.05, T0 + i * MIN) for i in range(31, 35)]))
    D.add_points(state, pts("response_time", [(200.0, T0 + i * MIN) for i in range(15, 35)]))
    assert not D.due(state, started)
    healthy, reasons, measured = D.verdict(state, started, None)
    assert (healthy, reasons) == (False, ["error rate rose from 0.01 to 0.05"])
    assert measured == {"before": {"error_rate": 0.01, "response_time": 200.0},
                        "after": {"error_rate": 0.05, "response_time": 200.0}}
    D.add_points(state, pts("response_time", [(200.0, started + 5 * MIN)]))
    assert D.due(state, started)
    assert D.verdict(state, started, "health check GET http://x/h answered 503")[:2] == (
        False, ["error rate rose from 0.01 to 0.05", "health check GET http://x/h answered 503"])


# --- the worker's step with a health check (pipeline/worker/deployments.py) -------------

SECRET = b"internal: db_password=hunter2"


def batch(batch_id, points):
    return {"tenant": "acct", "application_id": "app_1", "id": batch_id, "received_at": 0, "points": points}


def due_deployment(error_after: float) -> tuple[dict, dict]:
    """A state whose deployment (with a health check) just became due; and its record."""
    state = D.new_state()
    dep = {"tenant": "acct", "id": "deploy_1", "application_id": "app_1", "version": "v2", "description": None,
           "changes": "[]", "rollback_on_error": False, "health_check_url": "/health",
           "health_url": "http://shop.example/health", "status": "pending", "reason": None,
           "started_at": T0 + 30 * MIN, "completed_at": None, "revision": 0}
    assert apply(state, "app_metric_batch", batch(1, pts("error_rate", [(0.01, T0 + i * MIN) for i in range(15, 30)]))) == []
    assert [(k, r["status"]) for k, _, r in apply(state, "app_deployment", wire(dep))] == [("app_deployment", "in_progress")]
    # due: data from past the 5 minutes after it; the step decides nothing, it records the wait
    assert apply(state, "app_metric_batch", batch(2, pts("error_rate", [(error_after, T0 + i * MIN)
                                                                         for i in range(30, 36)]))) == []
    return state, dep


def wire(record: dict) -> dict:
    """The record as the worker reads it off Kafka."""
    return codec.decode(codec.encode("app_deployment", record))[1]


def test_a_due_deployment_waits_in_state_for_its_health_check_result():
    state, dep = due_deployment(error_after=0.2)
    assert state["probing"] == {"deploy_1": {"reasons": ["error rate rose from 0.01 to 0.2"],
                                             "completed_at": T0 + 35 * MIN}}
    assert apply(state, "app_metric_batch", batch(3, pts("error_rate", [(0.01, T0 + 40 * MIN)]))) == []
    result = wire(D.probe_result(state["open"]["deploy_1"], "health check GET http://shop.example/health answered 503"))
    out = apply(state, "app_deployment", result)
    assert [(k, key, r.get("status"), r.get("reason") or r.get("description"), r.get("revision"), r.get("probed"))
            for k, key, r in out] == [
        ("app_deployment", b"acct/app_1", "failed",
         "error rate rose from 0.01 to 0.2; health check GET http://shop.example/health answered 503", 2, False),
        ("app_insight", b"acct/app_1", None,
         "error rate rose from 0.01 to 0.2; health check GET http://shop.example/health answered 503", None, None)]
    assert out[0][2]["completed_at"] == T0 + 35 * MIN  # the data point that made it due
    assert (state["probing"], state["open"], state["done"]) == ({}, {}, ["deploy_1"])
    assert apply(state, "app_deployment", result) == []  # a second result (probed again after a restart)


def test_a_passing_health_check_completes_a_healthy_deployment():
    state, _ = due_deployment(error_after=0.01)
    out = apply(state, "app_deployment", wire(D.probe_result(state["open"]["deploy_1"], None)))
    assert [(k, r["status"], r["reason"], r["completed_at"]) for k, _, r in out] == [
        ("app_deployment", "success", None, T0 + 35 * MIN)]


def test_a_state_changelogged_before_health_checks_moved_out_still_steps():
    state = D.new_state()
    del state["probing"]
    assert apply(state, "app_metric_batch", batch(1, pts("error_rate", [(0.01, T0)]))) == []
    assert state["probing"] == {}


class Site(http.server.BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self):  # noqa: N802
        self.hits.append(self.path)
        if self.path == "/slow":
            time.sleep(0.5)
        self.send_response(200 if self.path in ("/health", "/slow") else 503)
        self.send_header("Content-Length", str(len(SECRET)))
        self.end_headers()
        self.wfile.write(SECRET)

    def log_message(self, *args):
        pass


@pytest.fixture
def site():
    Site.hits = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Site)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_the_health_check_goes_through_the_guard(site):
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]

        async def checks():
            guarded, allowed = Outbound(), Outbound(allow=["127.0.0.0/8"])
            found = [await probe(guarded, f"{site}/health"), await probe(guarded, "http://10.0.0.5/health"),
                     await probe(guarded, "http://169.254.169.254/latest/meta-data/"),
                     await probe(allowed, f"{site}/health"), await probe(allowed, f"{site}/ready"),
                     await probe(allowed, None), await probe(allowed, f"http://127.0.0.1:{port}/health")]
            await allowed.close()
            return found
        found = asyncio.run(checks())
    assert found == [f"health check GET {site}/health refused: loopback address",
                     "health check GET http://10.0.0.5/health refused: private address",
                     "health check GET http://169.254.169.254/latest/meta-data/ refused: cloud metadata address",
                     None, f"health check GET {site}/ready answered 503", None,
                     f"health check GET http://127.0.0.1:{port}/health failed: cannot connect to 127.0.0.1:{port}: "
                     f"Connect call failed ('127.0.0.1', {port})"]
    assert Site.hits == ["/health", "/ready"]  # only the allowed ones reached it; no body in any reason


class Outlet:
    """Stands in for the app.deployments topic: keeps what is sent to it."""

    def __init__(self):
        self.sent = []

    async def send(self, key, value, force):
        self.sent.append((key, codec.decode(value)[1], force))
        done = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


def test_probes_start_in_the_background_once_and_produce_their_result(site):
    state, _ = due_deployment(error_after=0.01)
    state["open"]["deploy_1"]["health_url"] = f"{site}/slow"

    async def run():
        outlet = Outlet()
        probes = Probes(Outbound(allow=["127.0.0.0/8"]), outlet)
        began = time.monotonic()
        probes.start(b"acct/app_1", state)
        probes.start(b"acct/app_1", state)  # already in flight: not started twice
        returned_after = time.monotonic() - began
        await asyncio.gather(*probes._tasks)
        await probes.outbound.close()
        return returned_after, outlet.sent, set(probes.in_flight)

    returned_after, sent, in_flight = asyncio.run(run())
    assert returned_after < 0.1 and Site.hits == ["/slow"]  # the server took 0.5 s
    assert [(key, r["id"], r["status"], r["revision"], r["probed"], r["probe_failure"], force)
            for key, r, force in sent] == [(b"acct/app_1", "deploy_1", "in_progress", 1, True, None, True)]
    assert in_flight == {(b"acct/app_1", "deploy_1")}  # until the worker consumes the result
