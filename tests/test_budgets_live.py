"""Token budgets end to end on real parts (issue 16, parts 1 and 3): /api/budgets through
the api, vitals through the real broker, the real Faust worker counting them, its counts
back in the api from the compacted topic, and the throttle signal of POST /api/vitals."""
import json
import os
import subprocess
import sys
import time
import uuid
from datetime import datetime, timezone

import pytest
from confluent_kafka import Producer

from pipeline.accounts import tenant_for
from pipeline.producer import producer_config
from pipeline.topics import AGENT_VITALS, entity_key
from schemas import codec
from sophra.processes import terminate

from .conftest import clear_of_the_hour_end, eventually

pytestmark = pytest.mark.integration

FRESHNESS_S = 5  # docs/budgets.md: a report is in the figures within this, while the worker keeps up


FAULTS = os.path.join(os.path.dirname(__file__), "faults")  # its sitecustomize injects faults into the worker


def start_worker(s, instance: str, slow_seek_s: float = 0):
    """`sophra worker` with a stable instance id, so a restart after SIGKILL takes its
    partitions back at once; its output in the data folder. `slow_seek_s`: its seek to
    the committed offsets after a rebalance waits that long (tests/faults)."""
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": s.kafka_bootstrap_servers, "SOPHRA_TOPIC_PREFIX": s.topic_prefix,
           "SOPHRA_WORKER_ID": s.worker_id, "SOPHRA_WORKER_INSTANCE_ID": instance}
    if slow_seek_s:
        env.update(SOPHRA_FAULT_SLOW_SEEK_S=str(slow_seek_s),
                   PYTHONPATH=os.pathsep.join(p for p in (FAULTS, env.get("PYTHONPATH")) if p))
    log = s.data_dir / f"worker-{len(list(s.data_dir.glob('worker-*.log')))}.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "sophra", "worker", "--loglevel", "info"], env=env, stdout=out,
                                stderr=subprocess.STDOUT)
    proc.log = log
    return proc


def worker_said(proc) -> str:
    state = "running" if proc.poll() is None else f"exited {proc.returncode}"
    return f"worker {state}; the end of {proc.log}:\n" + "\n".join(proc.log.read_text().splitlines()[-40:])


def ms(iso: str) -> int:
    return int(datetime.strptime(iso, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc).timestamp() * 1000)


def iso(epoch_ms: int) -> str:
    dt = datetime.fromtimestamp(epoch_ms // 1000, timezone.utc)
    return f"{dt:%Y-%m-%dT%H:%M:%S}.{epoch_ms % 1000:03d}Z"


def vital(tenant: str, i: int, agent: str, tokens: int, recorded_at: int, metadata=None) -> dict:
    return {"tenant": tenant, "id": 1_000_000 + i, "agent_id": agent, "agent_name": None, "token_consumption": tokens,
            "token_limit": 100_000, "hallucination_rate": 0.0, "loop_frequency": 0, "directive_conflicts": 0,
            "overall_health": "green", "metadata": json.dumps(metadata or {}), "recorded_at": recorded_at}


def produce(s, records):
    p = Producer(producer_config(s.kafka_bootstrap_servers))
    for r in records:
        p.produce(s.topic(AGENT_VITALS.name), key=entity_key(r["tenant"], r["agent_id"]),
                  value=codec.encode("agent_vital", r))
    assert p.flush(30) == 0


def paced(budget: dict, answer: dict, used: int) -> str | None:
    """docs/budgets.md's forecast for a calendar budget made this period, in the vitals
    answer (its `now` is the report's recording): the average pace since its creation."""
    now, created = ms(answer["vital"]["recorded_at"]), ms(budget["created_at"])
    if now == created:
        return None  # no time elapsed: no pace
    return iso(now + -(-(budget["limit"] - used) * (now - created) // used))


def figures(http, budget_id) -> tuple:
    b = http.get(f"/api/budgets/{budget_id}").json()
    return b["used"], b["remaining"], b["percent_used"], b["exhausted"]


@pytest.fixture
def api(running_api):
    return running_api()


def test_crud_validation_and_tenancy(api):
    clear_of_the_hour_end(60)  # so the day's end below is the one of the creation
    with api.client() as http, api.client(api.new_key()) as other:
        res = http.post("/api/budgets", json={"scope": "agent", "agent_id": "support-bot", "limit": 50_000,
                                              "period": "day"})
        assert res.status_code == 201, res.text
        agent = res.json()
        created = ms(agent["created_at"])
        midnight = created - created % 86_400_000
        assert agent == {
            "id": agent["id"], "name": "agent support-bot, day", "scope": "agent", "agent_id": "support-bot",
            "tag": None, "tag_value": None, "limit": 50_000, "period": "day", "window": None,
            "created_at": agent["created_at"], "updated_at": None, "used": 0, "remaining": 50_000,
            "percent_used": 0.0, "exhausted": False, "since": agent["created_at"],  # created after the day began
            "resets_at": iso(midnight + 86_400_000), "as_of": None, "forecast_exhaustion_at": None,
            "forecast_exhaustion_lower": None, "forecast_exhaustion_upper": None}
        assert agent["id"].startswith("bdg_")
        group = http.post("/api/budgets", json={"name": "Support team", "scope": "group", "tag": "team",
                                                "tag_value": "support", "limit": 1_000_000, "period": "rolling",
                                                "window": "90m"}).json()
        assert (group["name"], group["window"], group["resets_at"], group["tag"], group["tag_value"]) == (
            "Support team", "90m", None, "team", "support")
        account = http.post("/api/budgets", json={"scope": "account", "limit": 9, "period": "month"}).json()
        assert account["name"] == "account, month"

        bad = [({"agent_id": "a", "limit": 1, "period": "day"}, "scope"),
               ({"scope": "agent", "limit": 1, "period": "day"}, "agent_id"),
               ({"scope": "group", "tag_value": "x", "limit": 1, "period": "day"}, "tag"),
               ({"scope": "group", "tag": "team", "limit": 1, "period": "day"}, "tag_value"),
               ({"scope": "account", "agent_id": "a", "limit": 1, "period": "day"}, "agent_id"),
               ({"scope": "account", "limit": 0, "period": "day"}, "limit"),
               ({"scope": "account", "limit": "100", "period": "day"}, "limit"),
               ({"scope": "account", "limit": 1.5, "period": "day"}, "limit"),
               ({"scope": "account", "limit": 1, "period": "year"}, "period"),
               ({"scope": "account", "limit": 1, "period": "rolling"}, "window"),
               ({"scope": "account", "limit": 1, "period": "rolling", "window": "90s"}, "window"),
               ({"scope": "account", "limit": 1, "period": "rolling", "window": "32d"}, "window"),
               ({"scope": "account", "limit": 1, "period": "rolling", "window": "soon"}, "window"),
               ({"scope": "account", "limit": 1, "period": "day", "window": "1h"}, "window"),
               ({"scope": "account", "limit": 1, "period": "day", "colour": "red"}, "colour"),
               ({"scope": "agent", "agent_id": "a/b", "limit": 1, "period": "day"}, "agent_id")]
        for body, field in bad:
            res = http.post("/api/budgets", json=body)
            assert (res.status_code, res.json()["success"], res.json().get("field")) == (400, False, field), (
                body, res.text)
            assert res.json()["message"].startswith(field + ": ")

        assert http.get("/api/budgets").json() == {"budgets": [agent, group, account]}
        assert http.get(f"/api/budgets/{agent['id']}").json() == agent

        res = http.patch(f"/api/budgets/{agent['id']}", json={"limit": 40_000, "name": "Bot"})
        assert res.status_code == 200
        changed = res.json()
        assert (changed["limit"], changed["name"], changed["remaining"], changed["created_at"]) == (
            40_000, "Bot", 40_000, agent["created_at"])
        assert changed["updated_at"] is not None
        for body, field in [({"scope": "account"}, "scope"), ({"period": "month"}, "period"),
                            ({"window": "1h"}, "window"), ({"limit": 0}, "limit"), ({"shape": 1}, "shape")]:
            res = http.patch(f"/api/budgets/{agent['id']}", json=body)
            assert (res.status_code, res.json().get("field")) == (400, field), res.text
        assert http.get(f"/api/budgets/{agent['id']}").json() == changed

        # another account sees none of them and can change none
        assert other.get("/api/budgets").json() == {"budgets": []}
        for method, kw in (("get", {}), ("patch", {"json": {"limit": 1}}), ("delete", {})):
            res = getattr(other, method)(f"/api/budgets/{agent['id']}", **kw)
            assert (res.status_code, res.json()["error"]) == (404, "Not found")
        assert http.get(f"/api/budgets/{agent['id']}").json() == changed

        assert http.delete(f"/api/budgets/{agent['id']}").status_code == 204
        assert http.get(f"/api/budgets/{agent['id']}").status_code == 404
        assert [b["id"] for b in http.get("/api/budgets").json()["budgets"]] == [group["id"], account["id"]]
    with api.client(None) as anonymous:
        res = anonymous.get("/api/budgets")
        assert (res.status_code, res.json()["error"]) == (401, "Clé API invalide ou expirée")


def test_counts_are_exact_across_a_worker_killed_mid_stream(api):
    """Three budgets of one account and one of another, fed 600 reports straight to the
    vitals topic while the worker is killed with SIGKILL and started again: every figure
    is the exact sum, nothing counted twice, nothing of the other account."""
    clear_of_the_hour_end(180)  # the day and the hour stay the same through the test
    email, other_email = f"{uuid.uuid4().hex[:10]}@budgets.test", f"{uuid.uuid4().hex[:10]}@budgets.test"
    key, other_key = api.new_key(email), api.new_key(other_email)
    tenant, other_tenant = tenant_for(email), tenant_for(other_email)
    s = api.settings
    with api.client(key) as http, api.client(other_key) as other:
        one = http.post("/api/budgets", json={"scope": "agent", "agent_id": "a3", "limit": 100_000,
                                              "period": "day"}).json()
        team = http.post("/api/budgets", json={"scope": "group", "tag": "team", "tag_value": "support",
                                               "limit": 1_000_000, "period": "month"}).json()
        everything = http.post("/api/budgets", json={"scope": "account", "limit": 2_000_000, "period": "rolling",
                                                     "window": "60m"}).json()
        theirs = other.post("/api/budgets", json={"scope": "account", "limit": 10_000, "period": "day"}).json()
        created = max(ms(b["created_at"]) for b in (one, team, everything, theirs))

        agents = [f"a{i}" for i in range(12)]  # spread over the six partitions
        records = []
        for i in range(600):
            agent = agents[i % len(agents)]
            meta = {"team": "support"} if i % len(agents) < 6 else {"team": "sales"}
            records.append(vital(tenant, i, agent, tokens=100 + i, recorded_at=created + 1 + i, metadata=meta))
        early = [vital(tenant, 900 + i, "a3", 7_777, created - 60_000, {"team": "support"}) for i in range(5)]
        theirs_records = [vital(other_tenant, 2000 + i, f"a{i % 4}", 50, created + 1 + i) for i in range(40)]

        expected_one = sum(r["token_consumption"] for r in records if r["agent_id"] == "a3")
        expected_team = sum(r["token_consumption"] for r in records if '"support"' in r["metadata"])
        expected_all = sum(r["token_consumption"] for r in records)
        assert (expected_one, expected_team, expected_all) == (19_850, 118_950, 239_700)

        worker = start_worker(s, "budgets-test")
        try:
            produce(s, early + records[:300] + theirs_records)
            assert eventually(lambda: http.get(f"/api/budgets/{everything['id']}").json()["used"] > 0, 120), (
                worker_said(worker))
            produce(s, records[300:])  # the worker has counted part of the stream; kill it as the rest arrives
            worker.kill()
            assert worker.wait(30) == -9
            counted_before = http.get(f"/api/budgets/{everything['id']}").json()["used"]
            worker = start_worker(s, "budgets-test")

            def exact():
                return (figures(http, one["id"]), figures(http, team["id"]), figures(http, everything["id"]),
                        figures(other, theirs["id"]))
            want = ((expected_one, 100_000 - expected_one, 19.85, False),
                    (expected_team, 1_000_000 - expected_team, 11.89, False),
                    (expected_all, 2_000_000 - expected_all, 11.98, False),
                    (2_000, 8_000, 20.0, False))
            assert eventually(lambda: exact() == want, 240, 0.2), (exact(), want, worker_said(worker))
            time.sleep(3)  # a record counted twice would show by now
            assert exact() == want
        finally:
            terminate(worker)
        assert 0 < counted_before <= expected_all  # stopped mid-stream, as far as it had got
        b = http.get(f"/api/budgets/{everything['id']}").json()
        assert b["as_of"] == iso(max(r["recorded_at"] for r in records))
        assert b["since"] == b["created_at"]  # the window reaches back past its creation


def test_a_backlog_met_by_a_slow_seek_after_a_kill_is_counted_exactly(api):
    """A worker killed with SIGKILL, a backlog of 12,000 reports while it is down, and a
    restart whose seek to the committed offsets is slow (a loaded broker): the restarted
    worker restores its counts from the changelog, and table recovery's last fetch comes
    back while the seek is pending. faust 0.15 dropped what that fetch held and cleared
    what reached the streams before the seek (pipeline/worker/resume.py); every report
    must count once."""
    clear_of_the_hour_end(180)
    email = f"{uuid.uuid4().hex[:10]}@budgets.test"
    key, tenant, s = api.new_key(email), tenant_for(email), api.settings
    with api.client(key) as http:
        budget = http.post("/api/budgets", json={"scope": "account", "limit": 10_000_000, "period": "day"}).json()
        created = ms(budget["created_at"])
        agents = [f"b{i}" for i in range(60)]  # over every partition
        first = [vital(tenant, i, agents[i % 60], 1, created + 1 + i) for i in range(600)]
        backlog = [vital(tenant, 600 + i, agents[i % 60], 2, created + 601 + i) for i in range(12_000)]

        def used():
            return http.get(f"/api/budgets/{budget['id']}").json()["used"]
        worker = start_worker(s, "budgets-backlog")
        try:
            produce(s, first)
            assert eventually(lambda: used() == 600, 120), worker_said(worker)  # state in the changelogs
            worker.kill()
            assert worker.wait(30) == -9
            produce(s, backlog)
            worker = start_worker(s, "budgets-backlog", slow_seek_s=1.5)
            assert eventually(lambda: used() == 24_600, 180, 0.5), (used(), worker_said(worker))
            time.sleep(3)  # a report counted twice would show by now
            assert used() == 24_600
        finally:
            terminate(worker)


def test_vitals_answer_carries_the_budget_within_the_documented_freshness(api):
    """POST /api/vitals answers with the tightest budget covering the agent: the worker's
    counts from memory plus the report itself; a report shows in the next answers within
    FRESHNESS_S."""
    clear_of_the_hour_end(60)
    s = api.settings
    worker = start_worker(s, "budgets-signal")
    try:
        with api.client() as http:
            # once the worker counts a first report, it has joined and keeps up: then the clock starts
            warm = http.post("/api/budgets", json={"scope": "agent", "agent_id": "warm-up", "limit": 10,
                                                   "period": "day"}).json()
            assert http.post("/api/vitals", json={"agentId": "warm-up", "metrics": {"tokenConsumption": 1}}
                             ).status_code == 200
            assert eventually(lambda: figures(http, warm["id"])[0] == 1, 120), worker_said(worker)
            team = http.post("/api/budgets", json={"scope": "group", "tag": "team", "tag_value": "ops",
                                                   "limit": 10_000, "period": "day"}).json()

            def report(agent, tokens, team_name="ops"):
                res = http.post("/api/vitals", json={"agentId": agent, "metrics": {"tokenConsumption": tokens},
                                                     "metadata": {"team": team_name}})
                assert res.status_code == 200, res.text
                return res.json()

            first = report("o1", 3_000)
            assert first["budget"] == {"id": team["id"], "remaining": 7_000, "percent_used": 30.0, "exhausted": False,
                                       "forecast_exhaustion_at": paced(team, first, 3_000), "as_of": None}
            assert first["budget"]["forecast_exhaustion_at"] is not None
            assert set(first) == {"success", "health", "vital", "budget"}  # the reference's fields, untouched
            started = time.monotonic()
            assert eventually(lambda: figures(http, team["id"])[0] == 3_000, FRESHNESS_S, 0.02), (
                figures(http, team["id"]), worker_said(worker))
            took = time.monotonic() - started
            # the API's forecast from the worker's counts, at the request's time: 3,000 since creation
            before = time.time_ns() // 1_000_000
            got = http.get(f"/api/budgets/{team['id']}").json()
            after = time.time_ns() // 1_000_000
            created = ms(team["created_at"])
            assert created < before and got["used"] == 3_000
            assert (iso(before + -(-7_000 * (before - created) // 3_000)) <= got["forecast_exhaustion_at"]
                    <= iso(after + -(-7_000 * (after - created) // 3_000)))
            assert (got["forecast_exhaustion_lower"], got["forecast_exhaustion_upper"]) == (None, None)  # one count
            second = report("o2", 5_000)
            assert second["budget"] == {"id": team["id"], "remaining": 2_000, "percent_used": 80.0,
                                        "exhausted": False, "forecast_exhaustion_at": paced(team, second, 8_000),
                                        "as_of": first["vital"]["recorded_at"]}
            assert eventually(lambda: figures(http, team["id"])[0] == 8_000, FRESHNESS_S, 0.02)
            third = report("o3", 4_000)
            assert third["budget"] == {"id": team["id"], "remaining": 0, "percent_used": 120.0, "exhausted": True,
                                       "forecast_exhaustion_at": None, "as_of": second["vital"]["recorded_at"]}

            # an agent's own budget beside the group's: the answer names the tighter one
            assert http.post("/api/budgets", json={"scope": "agent", "agent_id": "o4", "limit": 100_000,
                                                   "period": "week"}).status_code == 201
            assert eventually(lambda: figures(http, team["id"])[0] == 12_000, FRESHNESS_S, 0.02)
            got = http.get(f"/api/budgets/{team['id']}").json()  # exhausted: no forecast, in the API either
            assert [got[k] for k in ("forecast_exhaustion_at", "forecast_exhaustion_lower",
                                     "forecast_exhaustion_upper")] == [None, None, None]
            assert report("o4", 500)["budget"]["id"] == team["id"]  # 125 % of the group's beats 0.5 % of its own
            alone = http.post("/api/budgets", json={"scope": "agent", "agent_id": "o6", "limit": 1_000,
                                                    "period": "month"}).json()
            sixth = report("o6", 250, "sales")
            assert sixth["budget"] == {  # out of the group: its own budget only
                "id": alone["id"], "remaining": 750, "percent_used": 25.0, "exhausted": False,
                "forecast_exhaustion_at": paced(alone, sixth, 250), "as_of": None}
            sales = report("o5", 500, "sales")
            assert set(sales) == {"success", "health", "vital"}  # no budget covers it: the reference's answer exactly
    finally:
        terminate(worker)
    assert took < FRESHNESS_S
