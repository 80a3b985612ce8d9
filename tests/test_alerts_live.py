"""Alerts end to end on real parts: rules through the api, metrics through the real
broker, the real Faust worker evaluating them, the real notifier delivering to a real
SMTP server (aiosmtpd) and a local server speaking Slack's API and webhooks, the sink
landing transitions and delivery attempts in ClickHouse for the history."""
import os
import subprocess
import sys
import time
from datetime import datetime, timezone

import pytest

from pipeline.notifier.channels import verify_signature
from sophra.processes import terminate

from .conftest import eventually
from .receivers import HttpReceiver, SmtpServer

pytestmark = pytest.mark.integration

REFERENCE_RULE = {"name": "High Error Rate", "condition": {"metric": "error_rate", "operator": ">", "threshold": 0.05},
                  "actions": [{"type": "email", "recipients": ["admin@company.com"]},
                              {"type": "slack", "channel": "#alerts"}]}
MIN, SEC = 60_000, 1000


def start(s, command: str, **env) -> subprocess.Popen:
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": s.kafka_bootstrap_servers, "SOPHRA_TOPIC_PREFIX": s.topic_prefix,
           "SOPHRA_WORKER_ID": s.worker_id, "SOPHRA_NOTIFIER_GROUP": "notifier-" + s.worker_id,
           "SOPHRA_OUTBOUND_ALLOW": "127.0.0.0/8", "SOPHRA_NOTIFY_RETRY_BASE_MS": "200", **env}
    return subprocess.Popen([sys.executable, "-m", "sophra", command], env=env,
                            stdout=open(s.data_dir / f"{command}.log", "ab"), stderr=subprocess.STDOUT)


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def utc(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def points(metric: str, start: int, values, step: int = 10 * SEC) -> dict:
    return {"points": [{"metric": metric, "value": v, "timestamp": iso(start + i * step)} for i, v in enumerate(values)]}


def minute_ago(n: int) -> int:
    now = time.time_ns() // 1_000_000
    return now - now % MIN - n * MIN


def test_rules_fire_resolve_go_quiet_and_deliver_exactly_once(running_api):
    api = running_api(outbound_allow="127.0.0.0/8")  # the receivers are on loopback
    s = api.settings
    with SmtpServer() as smtp, HttpReceiver() as slack, HttpReceiver(fail_times=3) as hook:
        worker = start(s, "worker")
        notifier = start(s, "notifier", SOPHRA_SMTP_URL=smtp.url, SOPHRA_SLACK_API_URL=slack.url,
                         SOPHRA_PUBLIC_URL=api.url)
        try:
            with api.client() as http:
                assert http.put("/v1/integrations/slack", json={"bot_token": "xoxb-test-token"}).status_code == 200
                assert http.get("/v1/integrations/slack").json()["configured"] is True
                app_id = http.post("/v1/applications", json={"name": "My Application"}).json()["id"]
                ref = http.post(f"/v1/applications/{app_id}/alerts", json=REFERENCE_RULE).json()
                flap = http.post(f"/v1/applications/{app_id}/alerts", json={
                    "name": "Slow", "for": "2m", "condition": {"metric": "response_time", "operator": ">",
                                                               "threshold": 500, "window": "1m", "aggregation": "max"},
                    "actions": [{"type": "email", "recipients": ["oncall@company.com"]}]}).json()
                quiet = http.post(f"/v1/applications/{app_id}/alerts", json={
                    "name": "Throughput", "condition": {"metric": "throughput", "operator": "<", "threshold": 1,
                                                        "window": "1m"},
                    "actions": [{"type": "webhook", "url": hook.hook_url}]}).json()
                secret = quiet["actions"][0]["secret"]
                assert "secret" not in http.get(f"/v1/applications/{app_id}/alerts").json()["alerts"][2]["actions"][0]

                t0 = minute_ago(20)
                fired_at = t0 + 20 * SEC
                assert http.post(f"/v1/applications/{app_id}/metrics",
                                 json=points("error_rate", t0, [0.01, 0.02, 0.21])).status_code == 202
                # The spike's mean (0.08) crosses 0.05 at its third point: one email, one Slack message.
                [mail] = smtp.wait_for(1, 60)
                assert mail.rcpt_tos == ["admin@company.com"]
                assert mail.message["Subject"] == "[FIRING] High Error Rate — My Application"
                link = f"{api.url}/v1/applications/{app_id}"
                assert mail.message.get_body(("plain",)).get_content() == (
                    "High Error Rate is firing on application My Application.\n"
                    "error_rate (mean over 5m) = 0.08, threshold > 0.05\n"
                    f"Started: {utc(fired_at)}\n"
                    f"Link: {link}\n")
                assert "<html" in mail.message.get_body(("html",)).get_content()
                [post] = [r for r in slack.wait_for(1, 30) if r.path == "/chat.postMessage"]
                assert post.headers["Authorization"] == "Bearer xoxb-test-token"
                assert (post.json["channel"], post.json["text"]) == ("#alerts", (
                    f"*[FIRING] High Error Rate* — <{link}|My Application>\n"
                    f"error_rate (mean over 5m) = 0.08, threshold &gt; 0.05 · Started: {utc(fired_at)}"))

                # A flapping series (1m windows of one point each) with for=2m: pending three
                # times, then held two minutes: fires once.
                flapping = [900, 100, 900, 100, 900, 100, 900, 900, 900, 900]
                assert http.post(f"/v1/applications/{app_id}/metrics",
                                 json=points("response_time", t0, flapping, step=MIN)).status_code == 202
                # Throughput below 1: the webhook receiver fails 3 times, then takes it once.
                assert http.post(f"/v1/applications/{app_id}/metrics",
                                 json=points("throughput", t0, [0])).status_code == 202
                # The error rate drops: its window leaves the spike at t0 + 6 min, resolved once.
                assert http.post(f"/v1/applications/{app_id}/metrics",
                                 json=points("error_rate", t0 + 6 * MIN, [0.0, 0.01])).status_code == 202
                def mail(subject: str) -> list:
                    return [m for m in smtp.messages if m.message["Subject"] == subject]
                assert eventually(lambda: mail("[RESOLVED] High Error Rate — My Application"), 60)
                assert eventually(lambda: mail("[FIRING] Slow — My Application"), 60)
                assert eventually(lambda: len(hook.requests) == 4, 30)
                mails = smtp.messages
                resolved = [m for m in mails if m.message["Subject"].startswith("[RESOLVED]")]
                assert [m.message["Subject"] for m in resolved] == ["[RESOLVED] High Error Rate — My Application"]
                assert resolved[0].message.get_body(("plain",)).get_content() == (
                    "High Error Rate resolved on application My Application.\n"
                    "error_rate (mean over 5m) = 0, threshold > 0.05\n"
                    f"Started: {utc(fired_at)}, fired for 5m 40s\n"
                    f"Link: {link}\n")
                slow = [m for m in mails if m.message["Subject"] == "[FIRING] Slow — My Application"]
                assert len(slow) == 1 and "Started: " + utc(t0 + 8 * MIN) in slow[0].message.get_body(
                    ("plain",)).get_content()
                # Every webhook try carried the same idempotency id and a valid signature.
                assert len({r.headers["X-Sophra-Delivery"] for r in hook.requests}) == 1
                last = hook.requests[-1]
                assert verify_signature(secret, last.headers["X-Sophra-Timestamp"], last.body,
                                        last.headers["X-Sophra-Signature"])
                assert (last.json["kind"], last.json["rule"], last.json["value"]) == (
                    "firing", {"id": quiet["id"], "name": "Throughput"}, 0)

                # With no points for a window (1m), the 1m rules go no_data; the firing ones say so.
                def states():
                    got = {a["id"]: a["state"] for a in http.get(f"/v1/applications/{app_id}/alerts").json()["alerts"]}
                    return got if got == {ref["id"]: "ok", flap["id"]: "no_data", quiet["id"]: "no_data"} else None
                assert eventually(states, 120, 1)
                assert eventually(lambda: len(hook.requests) == 5, 30)
                assert hook.requests[-1].json["kind"] == "no_data"

                def history_of(rule_id: str, deliveries: int):
                    h = http.get(f"/v1/applications/{app_id}/alerts/{rule_id}/history").json()
                    return h if len(h["deliveries"]) == deliveries else None
                history = eventually(lambda: history_of(ref["id"], 4), 30)
                assert [(t["previous_state"], t["state"], t["notify"]) for t in history["transitions"]] == [
                    ("firing", "ok", "resolved"), ("ok", "firing", "firing")]
                assert sorted((d["action_type"], d["outcome"], d["attempt"]) for d in history["deliveries"]) == [
                    ("email", "delivered", 1), ("email", "delivered", 1), ("slack", "delivered", 1),
                    ("slack", "delivered", 1)]
                hook_history = eventually(lambda: history_of(quiet["id"], 5), 30)
                assert [(d["attempt"], d["outcome"]) for d in hook_history["deliveries"]] == [
                    (1, "delivered"), (4, "delivered"), (3, "retrying"), (2, "retrying"), (1, "retrying")]
                assert [t["notify"] for t in hook_history["transitions"]] == ["no_data", "firing"]
            time.sleep(1)  # nothing more, nothing twice: the firing Slow rule's silence was the last word
            assert sorted(m.message["Subject"] for m in smtp.messages) == [
                "[FIRING] High Error Rate — My Application", "[FIRING] Slow — My Application",
                "[NO DATA] Slow — My Application", "[RESOLVED] High Error Rate — My Application"]
            assert len([r for r in slack.requests if r.path == "/chat.postMessage"]) == 2
        finally:
            terminate(notifier)
            terminate(worker)


def test_kill_9_of_worker_and_notifier_in_a_firing_storm_loses_and_doubles_nothing(running_api):
    """100 rules fire while the worker and the notifier are killed with SIGKILL and started
    again: every firing is delivered, and only a delivery in flight at the kill may be
    received twice (docs/alerts.md)."""
    api = running_api(outbound_allow="127.0.0.0/8")
    s = api.settings
    with HttpReceiver(delay_s=0.05) as hook:
        worker, notifier = start(s, "worker"), start(s, "notifier")
        try:
            with api.client() as http:
                apps = [http.post("/v1/applications", json={"name": f"shop {a}"}).json()["id"] for a in range(10)]
                rules = {}
                for app_id in apps:
                    for m in range(10):
                        rule = http.post(f"/v1/applications/{app_id}/alerts", json={
                            "name": f"m{m}", "condition": {"metric": f"m{m}", "operator": ">", "threshold": 0.5,
                                                           "window": "1h"},  # no no_data within the test
                            "actions": [{"type": "webhook", "url": hook.hook_url}]}).json()
                        rules[rule["id"]] = app_id
                t0 = minute_ago(10)

                def crossing(app_ids):
                    for app_id in app_ids:
                        body = {"points": [{"metric": f"m{m}", "value": 1.0, "timestamp": iso(t0)} for m in range(10)]}
                        assert http.post(f"/v1/applications/{app_id}/metrics", json=body).status_code == 202

                crossing(apps[:5])
                assert eventually(lambda: len(hook.requests) >= 10, 60)
                notifier.kill()
                worker.kill()
                before_kill = {r.headers["X-Sophra-Delivery"] for r in hook.requests}
                crossing(apps[5:])  # acknowledged while nothing evaluates or delivers
                worker, notifier = start(s, "worker"), start(s, "notifier")

                def delivered():
                    return {r.json["rule"]["id"] for r in hook.requests} == set(rules)
                assert eventually(delivered, 120, 0.2)
                time.sleep(2)  # anything still coming would be a duplicate
        finally:
            terminate(notifier)
            terminate(worker)
    ids = [r.headers["X-Sophra-Delivery"] for r in hook.requests]
    assert len(set(ids)) == 100 and {r.json["kind"] for r in hook.requests} == {"firing"}
    twice = {i for i in ids if ids.count(i) > 1}
    assert all(ids.count(i) == 2 for i in twice) and twice <= before_kill  # only what was in flight at the kill


def test_agent_rules_ari_policies_silences_and_muted_applications(running_api):
    from confluent_kafka import Producer

    from pipeline.accounts import tenant_for
    from pipeline.producer import producer_config
    from pipeline.topics import ARI_INTERVENTIONS, entity_key
    from schemas import codec

    with SmtpServer() as smtp:
        api = running_api(smtp_url=smtp.url)  # so its answers know email is delivered
        s = api.settings
        email = "owner@agents.test"
        key = api.new_key(email)
        worker = start(s, "worker")
        notifier = start(s, "notifier", SOPHRA_SMTP_URL=smtp.url, SOPHRA_PUBLIC_URL=api.url)
        try:
            with api.client(key) as http, api.client(api.new_key()) as other:
                budget = http.post("/api/agents/support-bot/alerts", json={
                    "name": "Token budget", "condition": {"metric": "tokenUsagePercent", "operator": ">=",
                                                          "threshold": 90},
                    "actions": [{"type": "email", "recipients": ["ops@company.com"]}]})
                assert budget.status_code == 201, budget.text
                budget = budget.json()
                assert (budget["agent_id"], budget["application_id"], budget["warnings"]) == ("support-bot", None, None)
                assert other.get("/api/agents/support-bot/alerts").json() == {"alerts": []}  # tenancy
                assert other.delete(f"/api/agents/support-bot/alerts/{budget['id']}").status_code == 404
                bad = http.post("/api/agents/support-bot/alerts", json={**REFERENCE_RULE, "condition": {
                    "metric": "error rate", "operator": ">", "threshold": 1}})
                assert (bad.status_code, bad.json()["field"]) == (400, "condition.metric")
                policy = http.post("/api/notifications", json={"min_severity": "medium", "actions": [
                    {"type": "email", "recipients": ["ari@company.com"]}]})
                assert policy.status_code == 201 and policy.json()["min_severity"] == "medium"
                assert [p["id"] for p in http.get("/api/notifications").json()["policies"]] == [policy.json()["id"]]
                assert other.get("/api/notifications").json() == {"policies": []}

                # A muted application evaluates but does not deliver; a silenced rule neither.
                muted = http.post("/v1/applications", json={"name": "Muted", "config": {"alerts": False}}).json()["id"]
                quiet_rule = http.post(f"/v1/applications/{muted}/alerts", json=REFERENCE_RULE).json()
                loud = http.post("/v1/applications", json={"name": "Loud"}).json()["id"]
                hushed = http.post(f"/v1/applications/{loud}/alerts", json=REFERENCE_RULE).json()
                until = iso(time.time_ns() // 1_000_000 + 3_600_000)
                silenced = http.post(f"/v1/applications/{loud}/alerts/{hushed['id']}/silence", json={"until": until})
                assert silenced.json()["silenced_until"] == until[:19] + "Z"
                past = http.post(f"/v1/applications/{loud}/alerts/{hushed['id']}/silence", json={"until": "2020-01-01"})
                assert (past.status_code, past.json()["field"]) == (400, "until")
                patched = http.patch(f"/v1/applications/{loud}/alerts/{hushed['id']}",
                                     json={"condition": {"threshold": 0.1}, "name": "Errors over 10%"})
                assert (patched.json()["condition"]["threshold"], patched.json()["condition"]["window"],
                        patched.json()["name"]) == (0.1, "5m", "Errors over 10%")
                wrong = http.patch(f"/v1/applications/{loud}/alerts/{hushed['id']}",
                                   json={"condition": {"window": "2d"}})
                assert (wrong.status_code, wrong.json()["field"]) == (400, "condition.window")

                t0 = minute_ago(5)
                for app_id in (muted, loud):
                    assert http.post(f"/v1/applications/{app_id}/metrics",
                                     json=points("error_rate", t0, [0.5])).status_code == 202
                assert http.post("/api/vitals", json={"agentId": "support-bot", "agentName": "Production Agent",
                                                      "metrics": {"tokenConsumption": 95_000}}).status_code == 200
                tenant = tenant_for(email)
                p = Producer(producer_config(s.kafka_bootstrap_servers))
                for severity, n in (("low", 1), ("high", 2)):
                    iv = {"tenant": tenant, "agent_id": "support-bot", "intervention_id": f"iv_{n}_p1", "protocol": 1,
                          "severity": severity, "description": "Burnout risk detected — loop frequency spike",
                          "tokens_saved": 100, "details": "{}", "opened_at": time.time_ns() // 1_000_000,
                          "closed_at": None, "version": n}
                    p.produce(s.topic(ARI_INTERVENTIONS.name), key=entity_key(tenant, "support-bot"),
                              value=codec.encode("ari_intervention", iv))
                assert p.flush(10) == 0

                mails = smtp.wait_for(2, 60)
                time.sleep(2)
                assert sorted((m.message["Subject"], tuple(m.rcpt_tos)) for m in smtp.messages) == [
                    ("[ARI HIGH] Burnout risk detected — loop frequency spike — support-bot", ("ari@company.com",)),
                    ("[FIRING] Token budget — Production Agent", ("ops@company.com",))]
                assert f"Link: {api.url}/api/agents/support-bot\n" in [
                    m for m in mails if "Token" in m.message["Subject"]][0].message.get_body(("plain",)).get_content()

                def outcome(app_id, rule_id):
                    d = http.get(f"/v1/applications/{app_id}/alerts/{rule_id}/history").json()["deliveries"]
                    return [(x["outcome"], x["error"]) for x in d] or None
                assert eventually(lambda: outcome(muted, quiet_rule["id"]), 30) == [
                    ("suppressed", "alerts are off for this application (config.alerts is false)")] * 2
                assert eventually(lambda: outcome(loud, hushed["id"]), 30) == [
                    ("suppressed", f"silenced until {until[:19]}Z")] * 2
                states = {a["id"]: a["state"] for a in http.get(f"/v1/applications/{loud}/alerts").json()["alerts"]}
                assert states == {hushed["id"]: "firing"}  # silenced, still tracked
        finally:
            terminate(notifier)
            terminate(worker)


def test_a_restarted_worker_keeps_a_pending_rule_pending(running_api):
    """for=3m: pending from t0; the worker restarts; points up to t0+3m fire it at t0+3m,
    as if it had never stopped (a worker that forgot would restart pending later)."""
    api = running_api()
    s = api.settings
    worker = start(s, "worker")
    try:
        with api.client() as http:
            app_id = http.post("/v1/applications", json={"name": "shop"}).json()["id"]
            rule = http.post(f"/v1/applications/{app_id}/alerts", json={
                **REFERENCE_RULE, "for": "3m"}).json()  # 5m window: 5 s buckets, each point evaluated at its time
            t0 = minute_ago(10)
            assert http.post(f"/v1/applications/{app_id}/metrics",
                             json=points("error_rate", t0, [0.5] * 7, step=15 * SEC)).status_code == 202

            def state():
                alerts = http.get(f"/v1/applications/{app_id}/alerts").json()["alerts"]
                return alerts[0]["state"], alerts[0]["since"]
            assert eventually(lambda: state()[0] == "pending", 60)
            assert state()[1] == iso(t0)[:19] + "Z"
            assert terminate(worker) == 0
            worker = start(s, "worker")
            assert http.post(f"/v1/applications/{app_id}/metrics",
                             json=points("error_rate", t0 + 2 * MIN, [0.5] * 5, step=15 * SEC)).status_code == 202
            assert eventually(lambda: state()[0] == "firing", 120), (state(), http.get(
                f"/v1/applications/{app_id}/alerts/{rule['id']}/history").json())
            assert state()[1] == iso(t0 + 3 * MIN)[:19] + "Z"
            history = http.get(f"/v1/applications/{app_id}/alerts/{rule['id']}/history").json()
            assert [(t["previous_state"], t["state"]) for t in history["transitions"]] == [
                ("pending", "firing"), ("ok", "pending")]
    finally:
        terminate(worker)


def test_a_slow_mail_server_does_not_hold_up_slack(running_api):
    with SmtpServer(delay_s=15) as smtp, HttpReceiver() as slack:
        api = running_api(smtp_url=smtp.url)
        s = api.settings
        worker = start(s, "worker")
        notifier = start(s, "notifier", SOPHRA_SMTP_URL=smtp.url, SOPHRA_SLACK_API_URL=slack.url)
        try:
            with api.client() as http:
                http.put("/v1/integrations/slack", json={"bot_token": "xoxb-test-token"})
                app_id = http.post("/v1/applications", json={"name": "My Application"}).json()["id"]
                http.post(f"/v1/applications/{app_id}/alerts", json=REFERENCE_RULE)
                http.post(f"/v1/applications/{app_id}/metrics", json=points("error_rate", minute_ago(3), [0.5]))
                assert eventually(lambda: slack.requests, 60)
                assert smtp.messages == []  # the email is still being accepted, and Slack did not wait for it
                assert [m.message["Subject"] for m in smtp.wait_for(1, 30)] == [
                    "[FIRING] High Error Rate — My Application"]
        finally:
            terminate(notifier)
            terminate(worker)
