"""/v1 alert rules: validated, stored, listed, deleted (evaluation: tests/test_alerts_live.py)."""
import json

import pytest

from api.rules import NO_SLACK_WARNING, NO_SMTP_WARNING


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
        assert {k: v for k, v in rule.items() if k not in ("id", "created_at", "since")} == {
            "application_id": app_id, "agent_id": None, "name": "High Error Rate", "enabled": True,
            "condition": {"metric": "error_rate", "operator": ">", "threshold": 0.05, "window": "5m",
                          "aggregation": "mean"},
            "actions": [{"type": "email", "recipients": ["admin@company.com"]}, {"type": "slack", "channel": "#alerts"}],
            "for": "0m", "repeat_interval": "4h", "silenced_until": None, "updated_at": None,
            "state": "ok", "value": None, "evaluated_at": None,
            "warnings": [NO_SMTP_WARNING, NO_SLACK_WARNING]}
        assert rule["since"] == rule["created_at"]
        assert http.get(f"/v1/applications/{app_id}/alerts").json() == {"alerts": [{**rule, "warnings": None}]}
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
