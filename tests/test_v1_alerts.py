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
    ({"condition": {"metric": "error_rate", "operator": ">", "threshold": 1, "aggregation": "median"}},
     "condition.aggregation"),
    ({"for": "2d"}, "for"),
    ({"for": "soon"}, "for"),
    ({"repeat_interval": "30s"}, "repeat_interval"),
    ({"actions": [{"type": "webhook", "url": "http://127.0.0.1:9000/hook"}]}, "actions.0.webhook.url"),
    ({"actions": [{"type": "webhook", "url": "http://169.254.169.254/latest"}]}, "actions.0.webhook.url"),
    ({"actions": [{"type": "webhook", "url": "https://user:pw@hooks.example.com/x"}]}, "actions.0.webhook.url"),
    ({"actions": [{"type": "webhook", "url": "https://hooks.example.com/x", "secret": "short"}]},
     "actions.0.webhook.secret"),
    ({"actions": [{"type": "slack", "channel": "#a", "webhook_url": "http://10.0.0.8/services/x"}]},
     "actions.0.slack.webhook_url"),
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
        assert other.patch(f"/v1/applications/{app_id}/alerts/{rule_id}", json={"enabled": False}).status_code == 404
        assert other.post(f"/v1/applications/{app_id}/alerts/{rule_id}/silence", json={"until": None}).status_code == 404
        assert other.get(f"/v1/applications/{app_id}/alerts/{rule_id}/history").status_code == 404
        other_app = other.post("/v1/applications", json={"name": "theirs"}).json()["id"]
        # the rule id under an application of theirs is no way in either
        assert other.get(f"/v1/applications/{other_app}/alerts/{rule_id}/history").status_code == 404
        assert other.get(f"/api/agents/x/alerts/{rule_id}/history").status_code == 404
        assert len(owner.get(f"/v1/applications/{app_id}/alerts").json()["alerts"]) == 1


def test_patch_disable_and_silence_a_rule(api):
    with api.client() as http:
        app_id = http.post("/v1/applications", json={"name": "shop"}).json()["id"]
        rule = http.post(f"/v1/applications/{app_id}/alerts", json={
            **REFERENCE_RULE, "actions": [{"type": "webhook", "url": "https://hooks.example.com/a",
                                           "secret": "s" * 16}]}).json()
        assert rule["actions"] == [{"type": "webhook", "url": "https://hooks.example.com/a", "secret": "s" * 16}]
        changed = http.patch(f"/v1/applications/{app_id}/alerts/{rule['id']}",
                             json={"enabled": False, "for": "90s", "repeat_interval": "1d"}).json()
        assert (changed["enabled"], changed["state"], changed["for"], changed["repeat_interval"]) == (
            False, "disabled", "90s", "1d")
        assert changed["actions"] == [{"type": "webhook", "url": "https://hooks.example.com/a"}]  # secret shown once
        assert changed["updated_at"] is not None and changed["warnings"] is None
        listed = http.get(f"/v1/applications/{app_id}/alerts").json()["alerts"]
        assert [(r["id"], r["enabled"], r["for"]) for r in listed] == [(rule["id"], False, "90s")]
        lifted = http.post(f"/v1/applications/{app_id}/alerts/{rule['id']}/silence", json={"until": None})
        assert (lifted.status_code, lifted.json()["silenced_until"]) == (200, None)
        bad = http.post(f"/v1/applications/{app_id}/alerts/{rule['id']}/silence", json={"until": "tomorrow"})
        assert (bad.status_code, bad.json()["field"]) == (400, "until")
        assert http.get(f"/v1/applications/{app_id}/alerts/{rule['id']}/history").json() == {
            "transitions": [], "deliveries": []}
