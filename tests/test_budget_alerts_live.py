"""Budget alerts end to end on real parts (issue 16, part 2): rules through
/api/budgets/{id}/alerts, vitals through the real broker, the real worker counting them
and stepping the budget's rules on the summed partials, the real notifier posting to a
local webhook, the sink landing the transitions for the history."""
import time
import uuid
from urllib.parse import urlsplit

import pytest
from aiokafka.partitioner import murmur2

from pipeline.accounts import tenant_for
from pipeline.applications import ConfigRegistry
from pipeline.topics import AGENT_VITALS, ALERT_RULES, entity_key
from sophra.processes import terminate

from .conftest import clear_of_the_hour_end, eventually
from .receivers import HttpReceiver
from .test_alerts_live import start
from .test_budgets_live import figures, ms, produce, vital

pytestmark = pytest.mark.integration


def partition(tenant: str, agent: str) -> int:
    return (murmur2(entity_key(tenant, agent)) & 0x7FFFFFFF) % AGENT_VITALS.partitions


def test_crud_validation_and_tenancy_of_budget_rules(running_api):
    api = running_api()
    key, other_key = api.new_key(f"{uuid.uuid4().hex[:10]}@balerts.test"), api.new_key(
        f"{uuid.uuid4().hex[:10]}@balerts.test")
    with api.client(key) as http, api.client(other_key) as other:
        b = http.post("/api/budgets", json={"scope": "account", "limit": 1000, "period": "day"}).json()
        base = f"/api/budgets/{b['id']}/alerts"
        hook = [{"type": "webhook", "url": "https://hooks.example.com/x", "secret": "s" * 16}]
        r = http.post(base, json={"name": "80 %", "condition": {"metric": "percent_used", "operator": ">=",
                                                                "threshold": 80}, "actions": hook})
        assert r.status_code == 201, r.text
        rule = r.json()
        assert {k: rule[k] for k in ("budget_id", "agent_id", "application_id", "condition", "state", "for")} == {
            "budget_id": b["id"], "agent_id": None, "application_id": None, "state": "ok", "for": "0m",
            "condition": {"metric": "percent_used", "operator": ">=", "threshold": 80.0, "window": "5m",
                          "aggregation": "max"}}
        bad = http.post(base, json={"name": "x", "condition": {"metric": "tokenConsumption", "operator": ">",
                                                               "threshold": 1}, "actions": hook})
        assert (bad.status_code, bad.json()["field"]) == (400, "condition.metric")
        assert [a["id"] for a in http.get(base).json()["alerts"]] == [rule["id"]]
        assert http.patch(f"{base}/{rule['id']}", json={"condition": {"metric": "exhausted"}}).json()[
            "condition"]["metric"] == "exhausted"
        # another account's key: 404 for the budget and its rules, as for none
        assert other.get(base).status_code == 404
        assert other.post(base, json={"name": "x", "condition": {"metric": "exhausted", "operator": "==",
                                                                 "threshold": 1}, "actions": hook}).status_code == 404
        assert other.delete(f"{base}/{rule['id']}").status_code == 404
        assert http.get("/api/budgets/bdg_none/alerts").status_code == 404
        assert http.delete(f"{base}/{rule['id']}").status_code == 204
        assert http.get(base).json()["alerts"] == []
        # deleting the budget deletes its rules (their routes would answer 404 for them)
        kept = http.post(base, json={"name": "out", "condition": {"metric": "exhausted", "operator": "==",
                                                                  "threshold": 1}, "actions": hook}).json()
        assert http.delete(f"/api/budgets/{b['id']}").status_code == 204
        assert http.get(base).status_code == 404
        b2 = http.post("/api/budgets", json={"scope": "account", "limit": 5, "period": "week"}).json()
        later = http.post(f"/api/budgets/{b2['id']}/alerts", json={"name": "out", "condition": {
            "metric": "exhausted", "operator": "==", "threshold": 1}, "actions": hook}).json()
        registry = ConfigRegistry(api.settings.kafka_bootstrap_servers, api.settings.topic(ALERT_RULES.name)).start()
        try:  # a rule made after the delete is read after its tombstone (one partition)
            assert eventually(lambda: registry.by_id.get(later["id"]), 30)
            assert kept["id"] not in registry.by_id
        finally:
            registry.stop()


def test_a_budget_crossing_80_percent_then_exhausting_fires_exactly_the_expected_alerts(running_api):
    """An account budget of 1,000 a day, counted from two vitals partitions: 500 (50 %),
    then 300 on another partition (80 %: the 80 % rule fires), then 250 (105 %: the
    exhausted rule fires; the 80 % rule, already firing, says nothing, though the worker was
    killed with SIGKILL and restarted in between). One webhook each, nothing else, not even
    after a window without counts (an idle budget is not no_data)."""
    clear_of_the_hour_end(240)  # the day stays the same through the test
    with HttpReceiver() as hook:
        api = running_api(outbound_allow="127.0.0.0/8")
        s = api.settings
        email = f"{uuid.uuid4().hex[:10]}@balerts.test"
        key, tenant = api.new_key(email), tenant_for(email)
        worker, notifier = start(s, "worker"), start(s, "notifier")
        try:
            with api.client(key) as http:
                b = http.post("/api/budgets", json={"scope": "account", "limit": 1000, "period": "day",
                                                    "name": "everything"}).json()
                base = f"/api/budgets/{b['id']}/alerts"
                actions = [{"type": "webhook", "url": hook.hook_url}]
                window = {"window": "1m"}
                pct = http.post(base, json={"name": "80 percent", "actions": actions, "condition": {
                    "metric": "percent_used", "operator": ">=", "threshold": 80, **window}}).json()
                out = http.post(base, json={"name": "exhausted", "actions": actions, "condition": {
                    "metric": "exhausted", "operator": "==", "threshold": 1, **window}}).json()
                created = ms(b["created_at"])
                agents = ["a0"] + [a for a in (f"a{i}" for i in range(1, 50))
                                   if partition(tenant, a) != partition(tenant, "a0")][:1]

                def step(i: int, agent: str, tokens: int, used: int, within: float = 60):
                    produce(s, [vital(tenant, i, agent, tokens, created + 1 + i)])
                    assert eventually(lambda: figures(http, b["id"])[0] == used, within), figures(http, b["id"])
                    time.sleep(2)  # the worker's alert step follows its count by a batch or two

                def history(rule_id: str) -> list:
                    h = http.get(f"{base}/{rule_id}/history").json()
                    return [(t["previous_state"], t["state"], t["notify"], t["value"], t["threshold"])
                            for t in h["transitions"]]

                step(0, agents[0], 500, 500)
                step(1, agents[1], 300, 800)  # the two partitions' partials summed: 80 %
                assert eventually(lambda: history(pct["id"]), 30) == [("ok", "firing", "firing", 80.0, 80.0)]
                assert hook.wait_for(1, 30) and len(hook.requests) == 1
                worker.kill()  # its alert state is in the changelog: the firing rule must not fire again
                assert worker.wait(30) == -9
                worker = start(s, "worker")
                step(2, agents[0], 250, 1050, within=180)
                assert eventually(lambda: history(out["id"]), 30) == [("ok", "firing", "firing", 1.0, 1.0)]
                assert hook.wait_for(2, 30)
                time.sleep(65)  # a whole window without counts
                assert history(pct["id"]) == [("ok", "firing", "firing", 80.0, 80.0)]
                assert history(out["id"]) == [("ok", "firing", "firing", 1.0, 1.0)]
                bodies = [r.json for r in hook.requests]
                assert [(p["kind"], p["rule"]["name"], p["subject"], p["value"], urlsplit(p["link"]).path)
                        for p in bodies] == [
                    ("firing", "80 percent", {"kind": "budget", "id": b["id"], "name": "everything"}, 80.0,
                     f"/api/budgets/{b['id']}"),
                    ("firing", "exhausted", {"kind": "budget", "id": b["id"], "name": "everything"}, 1.0,
                     f"/api/budgets/{b['id']}")]
                states = {a["name"]: (a["state"], a["value"]) for a in http.get(base).json()["alerts"]}
                assert states == {"80 percent": ("firing", 105.0), "exhausted": ("firing", 1.0)}
        finally:
            terminate(worker)
            terminate(notifier)
