"""Seeded data for the dashboard's browser test (tests/test_dashboard.py) and its render
benchmark: an account whose agents, events, ARI results, application metrics,
deployments, insights and alert rules have a known history.

The public api is used wherever it allows (keys, applications, metrics, alert rules).
What only the pipeline writes, or what the api stamps with server time (vitals are
rate-limited to one per 10 s per agent), is produced straight to the real topics with
the project's codec and keys; the api's in-process sink lands it in ClickHouse like any
other record. `wait_readable` returns once the api answers with all of it.
"""
import json
import math
import time
from dataclasses import dataclass, field

from confluent_kafka import Producer

from pipeline import accounts, health
from pipeline.topics import (AGENT_EVENTS, AGENT_VITALS, APP_ALERT_STATUS, APP_ALERTS, APP_DEPLOYMENTS, APP_INSIGHTS,
                             ARI_INTERVENTIONS, ARI_STATUS, entity_key)
from schemas import codec

MIN_MS = 60_000
FIVE_MS = 5 * MIN_MS
HOUR_MS = 60 * MIN_MS
DAY_MS = 24 * HOUR_MS


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class Topics:
    """Produces encoded records to one api's topics (its prefix), acks=all."""

    def __init__(self, settings):
        self.settings = settings
        self.producer = Producer({"bootstrap.servers": settings.kafka_bootstrap_servers, "acks": "all",
                                  "linger.ms": 20, "queue.buffering.max.messages": 1_000_000})

    def send(self, spec, kind: str, key: bytes, record: dict) -> None:
        while True:
            try:
                self.producer.produce(self.settings.topic(spec.name), codec.encode(kind, record), key)
                return
            except BufferError:
                self.producer.poll(0.1)

    def flush(self) -> None:
        assert self.producer.flush(60) == 0, "records not delivered to Kafka"


# -- agents -----------------------------------------------------------------------------
def vital(tenant: str, agent_id: str, name: str, at_ms: int, n: int, *, tokens: int, limit: int = 100_000,
          hallucination: float, loops: int, conflicts: int, metadata: dict | None = None) -> dict:
    return {"tenant": tenant, "id": n, "agent_id": agent_id, "agent_name": name, "token_consumption": tokens,
            "token_limit": limit, "hallucination_rate": hallucination, "loop_frequency": loops,
            "directive_conflicts": conflicts,
            "overall_health": health.score(token_consumption=tokens, token_limit=limit, hallucination_rate=hallucination,
                                           loop_count=loops, conflict_count=conflicts),
            "metadata": json.dumps(metadata or {}, separators=(",", ":")), "recorded_at": at_ms}


def checkout_values(i: int) -> dict:
    """The main agent's i-th report: every vital moves in waves through the green and
    amber bands (never red), so its status is warning at worst."""
    return {"tokens": round(50_000 + 24_000 * math.sin(i / 23)), "hallucination": round(0.07 + 0.06 * math.sin(i / 9), 4),
            "loops": round(45 + 40 * math.sin(i / 31)), "conflicts": round(2 + 2 * math.sin(i / 17))}


@dataclass
class Seeded:
    """What was seeded, for the test's exact expectations."""
    email: str
    tenant: str
    key: str
    read_only_key: str = ""
    spare_key_id: str = ""
    spare_key: str = ""
    agents: dict = field(default_factory=dict)   # agent_id -> name
    checkout_vitals: list = field(default_factory=list)  # (recorded_at ms, values dict, metadata)
    events: list = field(default_factory=list)
    interventions: list = field(default_factory=list)
    app_id: str = ""
    app_points: list = field(default_factory=list)  # (metric, value, ms)
    deployments: list = field(default_factory=list)
    insights: list = field(default_factory=list)
    agent_rule_id: str = ""
    app_rule_id: str = ""


CHECKOUT = ("agent-checkout", "checkout-bot")
BILLING = ("agent-billing", "billing-agent")
SUPPORT = ("agent-support", "support-agent")


def seed_agents(topics: Topics, tenant: str, seeded: Seeded, start_ms: int) -> None:
    """checkout-bot reports every 5 minutes for 26 h up to now (one report per 5-minute
    bucket, so each bucket's mean is that report's value); billing-agent reported every
    5 minutes but stopped an hour ago (stale); support-agent's last report is critical."""
    n = start_ms
    agent, name = CHECKOUT
    first = start_ms - start_ms % FIVE_MS - 26 * HOUR_MS
    i = 0
    for t in range(first + 30_000, start_ms - 60_000, FIVE_MS):
        v = checkout_values(i)
        meta = {"responseLatency": round(320 + 80 * math.sin(i / 13), 1), "model": "gpt-4o", "region": "eu-west-1",
                "tools": ["search", "code"]}
        topics.send(AGENT_VITALS, "agent_vital", entity_key(tenant, agent),
                    vital(tenant, agent, name, t, n + i, metadata=meta, **v))
        seeded.checkout_vitals.append((t, v, meta))
        i += 1
    for agent, name, begin, end, values in (
            (*BILLING, start_ms - 3 * HOUR_MS, start_ms - HOUR_MS,
             {"tokens": 30_000, "hallucination": 0.02, "loops": 10, "conflicts": 0}),
            (*SUPPORT, start_ms - 2 * HOUR_MS, start_ms - 30_000,
             {"tokens": 97_000, "hallucination": 0.3, "loops": 120, "conflicts": 6})):
        for j, t in enumerate(range(begin - begin % FIVE_MS + 30_000, end, FIVE_MS)):
            topics.send(AGENT_VITALS, "agent_vital", entity_key(tenant, agent),
                        vital(tenant, agent, name, t, n + 100_000 + j + (0 if agent == BILLING[0] else 50_000), **values))
    seeded.agents = dict((CHECKOUT, BILLING, SUPPORT))

    agent = CHECKOUT[0]
    for j, (ago, etype, details, meta) in enumerate((
            # markup in what agents send is shown as text, never interpreted
            (3 * HOUR_MS, "tool_error", "search API timed out after 30 s <img src=x onerror=alert(1)>",
             {"tool": "search", "attempt": 3}),
            (2 * HOUR_MS, "directive_conflict", "refund policy contradicts the system prompt", {"rule": "refunds"}),
            (40 * MIN_MS, "task_completed", "order 1042 refunded", {"order": 1042}))):
        record = {"tenant": tenant, "id": n + 200_000 + j, "agent_id": agent, "event_type": etype, "details": details,
                  "metadata": json.dumps(meta), "recorded_at": start_ms - ago}
        topics.send(AGENT_EVENTS, "agent_event", entity_key(tenant, agent), record)
        seeded.events.append(record)

    checkups = {"auth": {"result": "ok", "text": "ALIGNÉ"}, "integ": {"result": "warn", "text": "SUSPECT"},
                "charge": {"result": "ok", "text": "OPTIMAL"}}
    topics.send(ARI_STATUS, "ari_status", entity_key(tenant, agent),
                {"tenant": tenant, "agent_id": agent, "snapshots": len(seeded.checkout_vitals),
                 "checkups": json.dumps(checkups), "baseline": "{}", "updated_at": start_ms, "version": 1})
    for iid, protocol, severity, description, saved, opened, closed in (
            ("int_seed_tokens", 4, "medium", "Token usage 40 % above baseline for 6 snapshots: simplify the context",
             12_000, start_ms - 5 * HOUR_MS, start_ms - 4 * HOUR_MS),
            ("int_seed_conflicts", 2, "high", "3 directive conflicts in a row: re-read the system prompt",
             0, start_ms - 50 * MIN_MS, None)):
        record = {"tenant": tenant, "agent_id": agent, "intervention_id": iid, "protocol": protocol,
                  "severity": severity, "description": description, "tokens_saved": saved,
                  "details": json.dumps({"seeded": True}), "opened_at": opened, "closed_at": closed, "version": 1}
        if closed:  # measured after it closed (docs/ari.md, Outcomes)
            record.update(outcome="improved", tokens_saved_measured=9_000, outcome_details=json.dumps(
                {"window": 3, "watched": ["token_consumption"],
                 "metrics": {"token_consumption": {"before": 7000.0, "after": 4000.0}}}))
        topics.send(ARI_INTERVENTIONS, "ari_intervention", entity_key(tenant, agent), record)
        seeded.interventions.append(record)


def seed_many_agents(topics: Topics, tenant: str, count: int, start_ms: int, reports: int = 24) -> None:
    """`count` agents for the render benchmark, each with `reports` hourly reports over the
    last day (so each has a 24-point trend), some of them stale."""
    n = start_ms * 10
    for a in range(count):
        agent = f"bench-agent-{a:05d}"
        last = start_ms - (3 * HOUR_MS if a % 10 == 0 else 60_000)
        for r in range(reports):
            i = a * reports + r
            topics.send(AGENT_VITALS, "agent_vital", entity_key(tenant, agent),
                        vital(tenant, agent, f"bench agent {a:05d}", last - (reports - 1 - r) * HOUR_MS, n + i,
                              tokens=(i * 7919) % 100_000, hallucination=((i * 31) % 40) / 200, loops=(i * 13) % 150,
                              conflicts=i % 7))
    topics.flush()


# -- applications ---------------------------------------------------------------------
def app_values(minute: int) -> dict:
    """The application's points of one minute (absolute minute number since the epoch)."""
    return {"response_time": float(100 + minute % 60), "error_rate": 0.05 if minute % 10 == 0 else 0.01,
            "throughput": float(50 + minute % 20)}


def seed_application(http, topics: Topics, tenant: str, seeded: Seeded, start_ms: int) -> None:
    res = http.post("/v1/applications", json={"name": "Checkout API", "environment": "production",
                                              "description": "Public checkout endpoints"})
    assert res.status_code == 201, res.text
    app_id = seeded.app_id = res.json()["id"]
    # One point per metric per minute over the last 26 h: 26 h x 60 x 3 = 4,680 points, one request.
    first = start_ms // MIN_MS - 26 * 60
    points = []
    for minute in range(first, start_ms // MIN_MS):
        for metric, value in app_values(minute).items():
            points.append({"metric": metric, "value": value, "timestamp": minute * MIN_MS + 5_000})
    res = http.post(f"/v1/applications/{app_id}/metrics", json={"points": points})
    assert res.status_code == 202, res.text
    seeded.app_points = [(p["metric"], p["value"], p["timestamp"]) for p in points]

    key = f"{tenant}/{app_id}".encode()
    for dep_id, version, status, reason, started in (
            ("deploy_seed_good", "v2.0.0", "success", "error rate and response time held for 10 minutes",
             start_ms - 20 * HOUR_MS),
            ("deploy_seed_bad", "v2.1.0", "rolled_back", "error rate rose from 1.0 % to 5.2 % within 5 minutes",
             start_ms - 6 * HOUR_MS)):
        record = {"tenant": tenant, "id": dep_id, "application_id": app_id, "version": version,
                  "description": f"release {version}", "changes": json.dumps([f"{version} changes"]),
                  "rollback_on_error": True, "health_check_url": None, "health_url": None, "status": status,
                  "reason": reason, "started_at": started, "completed_at": started + 10 * MIN_MS, "revision": 2,
                  "probed": False, "probe_failure": None}
        topics.send(APP_DEPLOYMENTS, "app_deployment", key, record)
        seeded.deployments.append(record)
    for iid, itype, severity, title, at in (
            ("insight_seed_perf", "performance", "medium", "Response time p95 above its baseline",
             start_ms - 12 * HOUR_MS),
            ("insight_seed_deploy", "deployment", "high", "Deployment v2.1.0 raised the error rate",
             start_ms - 6 * HOUR_MS + 5 * MIN_MS)):
        record = {"tenant": tenant, "id": iid, "application_id": app_id, "type": itype, "severity": severity,
                  "title": title, "description": f"{title} (seeded)", "recommendation": "Look at the slowest routes",
                  "timestamp": at, "version": 1}
        topics.send(APP_INSIGHTS, "app_insight", key, record)
        seeded.insights.append(record)


# -- alert rules ------------------------------------------------------------------------
def seed_rules(http, topics: Topics, tenant: str, seeded: Seeded, start_ms: int) -> None:
    """An agent rule and an application rule through the api, both firing (as the worker
    would report it), the application's with one transition in its history."""
    res = http.post(f"/api/agents/{CHECKOUT[0]}/alerts", json={
        "name": "Hallucinations high", "actions": [{"type": "email", "recipients": ["ops@example.com"]}],
        "condition": {"metric": "hallucinationRate", "operator": ">", "threshold": 0.1, "window": "15m"}})
    assert res.status_code == 201, res.text
    seeded.agent_rule_id = res.json()["id"]
    res = http.post(f"/v1/applications/{seeded.app_id}/alerts", json={
        "name": "Slow responses", "actions": [{"type": "email", "recipients": ["ops@example.com"]}],
        "condition": {"metric": "response_time", "operator": ">", "threshold": 150, "window": "5m",
                      "aggregation": "p95"}})
    assert res.status_code == 201, res.text
    seeded.app_rule_id = res.json()["id"]
    for rule_id, scope, subject, value in ((seeded.agent_rule_id, "agent", CHECKOUT[0], 0.12),
                                           (seeded.app_rule_id, "application", seeded.app_id, 158.0)):
        topics.send(APP_ALERT_STATUS, "alert_status", rule_id.encode(), {
            "tenant": tenant, "rule_id": rule_id, "scope": scope, "subject_id": subject, "state": "firing",
            "since": start_ms - 10 * MIN_MS, "value": value, "evaluated_at": start_ms - MIN_MS, "version": 1})
    topics.send(APP_ALERTS, "alert_transition", seeded.app_rule_id.encode(), {
        "tenant": tenant, "id": "tr_seed_1", "rule_id": seeded.app_rule_id, "rule_name": "Slow responses",
        "scope": "application", "subject_id": seeded.app_id, "subject_name": "Checkout API", "state": "firing",
        "previous_state": "ok", "notify": "firing", "metric": "response_time", "aggregation": "p95", "operator": ">",
        "threshold": 150.0, "eval_window": "5m", "value": 158.0, "started_at": start_ms - 10 * MIN_MS,
        "at": start_ms - 10 * MIN_MS, "actions": "[]", "wall_at": start_ms - 10 * MIN_MS})


# -- the whole account ----------------------------------------------------------------
def seed(api, email: str = "dashboard@example.com") -> Seeded:
    start = now_ms()
    key = api.new_key(email)
    seeded = Seeded(email=email, tenant=accounts.tenant_for(accounts.normalize_email(email)), key=key)
    topics = Topics(api.settings)
    with api.client(key) as http:
        spare = http.post("/api/keys", json={"email": email})
        ro = http.post("/api/keys", json={"email": email, "read_only": True})
        assert spare.status_code == 201 and ro.status_code == 201, (spare.text, ro.text)
        seeded.spare_key_id, seeded.spare_key = spare.json()["key_id"], spare.json()["key"]
        seeded.read_only_key = ro.json()["key"]
        seed_agents(topics, seeded.tenant, seeded, start)
        seed_application(http, topics, seeded.tenant, seeded, start)
        seed_rules(http, topics, seeded.tenant, seeded, start)
    topics.flush()
    return seeded


def wait_readable(api, seeded: Seeded, timeout: float = 60) -> None:
    """Until the api answers with everything seeded (the sink lands it in batches)."""
    checks = {
        "agents": lambda h: len(h.get("/api/agents").json()["agents"]) == 3,
        "vitals": lambda h: h.get(f"/api/agents/{CHECKOUT[0]}/vitals?limit=1").json()["vitals"][0]["recorded_at"]
        == _iso(seeded.checkout_vitals[-1][0]),
        "events": lambda h: len(h.get(f"/api/agents/{CHECKOUT[0]}/events").json()["events"]) == len(seeded.events),
        "ari": lambda h: len(h.get(f"/api/agents/{CHECKOUT[0]}/ari").json().get("interventions", [])) == 2,
        "app metrics": lambda h: sum(p["value"] is not None for p in h.get(
            f"/v1/applications/{seeded.app_id}/metrics", params={"granularity": "1h", "start": seeded.app_points[0][2],
                                                                 "metric": "throughput"}).json()["data"]) >= 26,
        "deployments": lambda h: {d["status"] for d in h.get(
            f"/v1/applications/{seeded.app_id}/deployments").json()["deployments"]} == {"success", "rolled_back"},
        "insights": lambda h: len(h.get(f"/v1/applications/{seeded.app_id}/insights").json()["insights"]) == 2,
        "rules": lambda h: h.get(f"/v1/applications/{seeded.app_id}/alerts").json()["alerts"][0]["state"] == "firing"
        and h.get(f"/api/agents/{CHECKOUT[0]}/alerts").json()["alerts"][0]["state"] == "firing",
        "history": lambda h: len(h.get(f"/v1/applications/{seeded.app_id}/alerts/{seeded.app_rule_id}/history")
                                 .json()["transitions"]) == 1,
    }
    deadline = time.monotonic() + timeout
    pending = dict(checks)
    with api.client(seeded.key) as http:
        while pending:
            for name in list(pending):
                try:
                    if pending[name](http):
                        del pending[name]
                except (KeyError, IndexError, ValueError):
                    pass
            if pending and time.monotonic() > deadline:
                raise AssertionError(f"seeded data not readable after {timeout} s: {', '.join(pending)}")
            if pending:
                time.sleep(0.1)


def _iso(ms: int) -> str:
    from api.models import iso_ms
    return iso_ms(ms)
