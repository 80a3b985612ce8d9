"""/v1 alert rules: validated, stored, listed, deleted, and carried to the worker."""
import json
import os
import subprocess
import sys

import pytest
from confluent_kafka import Consumer

from sophra.processes import terminate

from .conftest import eventually

pytestmark = pytest.mark.integration

REFERENCE_RULE = {"name": "High Error Rate", "condition": {"metric": "error_rate", "operator": ">", "threshold": 0.05},
                  "actions": [{"type": "email", "recipients": ["admin@company.com"]},
                              {"type": "slack", "channel": "#alerts"}]}


@pytest.fixture
def api(running_api):
    return running_api()


def test_reference_rule_round_trip(api):
    with api.client() as http:
        app_id = http.post("/v1/applications", json={"name": "shop"}).json()["id"]
        created = http.post(f"/v1/applications/{app_id}/alerts", json=REFERENCE_RULE)
        assert created.status_code == 201
        rule = created.json()
        assert rule["id"].startswith("alert_") and rule["created_at"].endswith("Z")
        assert {k: v for k, v in rule.items() if k not in ("id", "created_at")} == {
            "application_id": app_id, "name": "High Error Rate", "enabled": True,
            "condition": {"metric": "error_rate", "operator": ">", "threshold": 0.05, "window": "5m"},
            "actions": [{"type": "email", "recipients": ["admin@company.com"]}, {"type": "slack", "channel": "#alerts"}]}
        assert http.get(f"/v1/applications/{app_id}/alerts").json() == {"alerts": [rule]}
        assert http.delete(f"/v1/applications/{app_id}/alerts/{rule['id']}").status_code == 204
        assert http.get(f"/v1/applications/{app_id}/alerts").json() == {"alerts": []}
        assert http.delete(f"/v1/applications/{app_id}/alerts/{rule['id']}").status_code == 404


@pytest.mark.parametrize("change,field", [
    ({"condition": {"metric": "error_rate", "operator": "=>", "threshold": 1}}, "condition.operator"),
    ({"condition": {"metric": "Error Rate", "operator": ">", "threshold": 1}}, "condition.metric"),
    ({"condition": {"metric": "error_rate", "operator": ">", "threshold": "high"}}, "condition.threshold"),
    ({"condition": {"metric": "error_rate", "operator": ">", "threshold": 1, "window": "2d"}}, "condition.window"),
    ({"condition": {"metric": "error_rate", "operator": ">", "threshold": 1, "window": "25h"}}, "condition.window"),
    ({"actions": []}, "actions"),
    ({"actions": [{"type": "email", "recipients": ["not-an-email"]}]}, "actions.0.email.recipients.0"),
    ({"actions": [{"type": "slack", "channel": "alerts"}]}, "actions.0.slack.channel"),
    ({"actions": [{"type": "pager"}]}, "actions.0"),
    ({"name": ""}, "name"),
])
def test_invalid_rules_name_the_field(api, change, field):
    with api.client() as http:
        app_id = http.post("/v1/applications", json={"name": "shop"}).json()["id"]
        res = http.post(f"/v1/applications/{app_id}/alerts", json={**REFERENCE_RULE, **change})
    assert (res.status_code, res.json()["field"]) == (400, field)


def test_rules_of_another_account_are_invisible(api):
    with api.client() as owner, api.client(api.new_key()) as other:
        app_id = owner.post("/v1/applications", json={"name": "shop"}).json()["id"]
        rule_id = owner.post(f"/v1/applications/{app_id}/alerts", json=REFERENCE_RULE).json()["id"]
        assert other.get(f"/v1/applications/{app_id}/alerts").status_code == 404
        assert other.post(f"/v1/applications/{app_id}/alerts", json=REFERENCE_RULE).status_code == 404
        assert other.delete(f"/v1/applications/{app_id}/alerts/{rule_id}").status_code == 404
        assert len(owner.get(f"/v1/applications/{app_id}/alerts").json()["alerts"]) == 1


def test_rules_reach_the_worker(api):
    s = api.settings
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": s.kafka_bootstrap_servers,
           "SOPHRA_TOPIC_PREFIX": s.topic_prefix, "SOPHRA_WORKER_ID": s.worker_id}
    worker = subprocess.Popen([sys.executable, "-m", "sophra", "worker"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    changelog = Consumer({"bootstrap.servers": s.kafka_bootstrap_servers, "group.id": "rules-" + s.worker_id,
                          "auto.offset.reset": "earliest"})
    changelog.subscribe([f"{s.worker_id}-alert_rules-changelog"])
    table = {}

    def table_is(expected):
        for m in changelog.consume(100, timeout=0.3):
            if not m.error():
                table[m.key().decode()] = json.loads(m.value())["name"] if m.value() is not None else None
        return table == expected
    try:
        with api.client() as http:
            app_id = http.post("/v1/applications", json={"name": "shop"}).json()["id"]
            keep = http.post(f"/v1/applications/{app_id}/alerts", json=REFERENCE_RULE).json()["id"]
            gone = http.post(f"/v1/applications/{app_id}/alerts", json={**REFERENCE_RULE, "name": "tmp"}).json()["id"]
            http.delete(f"/v1/applications/{app_id}/alerts/{gone}")
        assert eventually(lambda: table_is({keep: "High Error Rate", gone: None}), 60), table
    finally:
        terminate(worker)
        changelog.close()
