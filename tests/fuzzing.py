"""Schemathesis against a running api: every operation of /openapi.json, requests that
fit the schema and requests that do not, with a valid key. Shared by
tests/test_schemathesis.py (bounded, part of `make test`) and bench/fuzz_api.py (long).

What counts as a problem: any response of 5xx, and any 4xx whose body is not the one
error shape ({"success": false, "error": str, "message": str}, a 400 also naming its
`field`). Nothing is excluded: every operation is run. DELETE operations run last, so
the fixed ids below (a real application, alert rule, policy) serve the other
operations first; DELETE /api/keys/{key_id} only ever gets generated ids, so it never
revokes the key the run uses (tests/test_keys_api.py covers revocation).
"""
import json
from collections import Counter
from dataclasses import dataclass, field

import hypothesis
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

ERROR_FIELDS = {"success", "error", "message", "field", "retry_after_ms", "retry_after_seconds"}


@dataclass
class Report:
    statuses: Counter = field(default_factory=Counter)  # status -> count
    by_operation: dict = field(default_factory=dict)     # "METHOD /path" -> Counter of statuses
    problems: list = field(default_factory=list)         # (operation, status, body, curl)
    unsent: int = 0  # generated requests the HTTP client itself refused to send (e.g. bad header bytes)

    @property
    def requests(self) -> int:
        return sum(self.statuses.values())


def shape_problem(status: int, body: bytes) -> str | None:
    """Why a response breaks the rules, or None."""
    if status >= 500:
        return "a server error"
    if status < 400:
        return None
    try:
        data = json.loads(body)
    except ValueError:
        return "a 4xx that is not JSON"
    if not isinstance(data, dict) or data.get("success") is not False or not isinstance(data.get("error"), str) \
            or not isinstance(data.get("message"), str):
        return "a 4xx without success: false, error and message"
    if status == 400 and not isinstance(data.get("field"), str):
        return "a 400 that names no field"
    if not set(data) <= ERROR_FIELDS:
        return f"a 4xx with unknown keys {sorted(set(data) - ERROR_FIELDS)}"
    return None


def unlimited_key(api) -> str:
    """A key of a new account on the enterprise plan (a RunningApi's), so the /v1 hourly
    quota never turns the run into 429s."""
    import time
    import uuid

    from pipeline.quota import set_plan
    from pipeline.topics import ACCOUNT_PLANS

    email = f"fuzz-{uuid.uuid4().hex[:8]}@test.sophra"
    key = api.new_key(email)
    tenant, _ = set_plan(api.settings.kafka_bootstrap_servers, api.settings.topic(ACCOUNT_PLANS.name), email,
                         "enterprise")
    deadline = time.monotonic() + 30
    while api.app.state.quota.plans.plan_of(tenant) != "enterprise":
        if time.monotonic() > deadline:
            raise RuntimeError("the api did not see the enterprise plan")
        time.sleep(0.05)
    return key


def fixtures(base_url: str, key: str) -> dict[str, str]:
    """Real ids for the path parameters, so generated requests also reach past the 404s."""
    h = {"Authorization": f"Bearer {key}"}
    app_id = requests.post(f"{base_url}/v1/applications", json={"name": "fuzz"}, headers=h, timeout=10).json()["id"]
    rule = {"name": "fuzz", "condition": {"metric": "error_rate", "operator": ">", "threshold": 0.5},
            "actions": [{"type": "email", "recipients": ["fuzz@test.sophra"]}]}
    alert_id = requests.post(f"{base_url}/v1/applications/{app_id}/alerts", json=rule, headers=h,
                             timeout=10).json()["id"]
    agent_rule = {**rule, "condition": {"metric": "loopCount", "operator": ">", "threshold": 5}}
    agent_alert = requests.post(f"{base_url}/api/agents/fuzz-agent/alerts", json=agent_rule, headers=h,
                                timeout=10).json()["id"]
    requests.post(f"{base_url}/api/vitals", json={"agentId": "fuzz-agent"}, headers=h, timeout=10)
    policy = requests.post(f"{base_url}/api/notifications", json={"actions": rule["actions"]}, headers=h,
                           timeout=10).json()["id"]
    return {"app_id": app_id, "alert_id": alert_id, "agent_id": "fuzz-agent", "policy_id": policy,
            "_agent_alert_id": agent_alert}


def run(base_url: str, key: str, examples: int, *, seed: int = 0, ids: dict[str, str] | None = None) -> Report:
    """`examples` per operation and generation mode (positive, negative), half of them on
    the real ids in `ids` where the operation's path takes them."""
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    report = Report()
    session = requests.Session()
    auth = {"Authorization": f"Bearer {key}"}
    operations = [r.ok() for r in schema.get_all_operations()]
    operations.sort(key=lambda op: op.method.upper() == "DELETE")  # stable: otherwise in the schema's order
    for op in operations:
        label = f"{op.method.upper()} {op.path}"
        counts = report.by_operation.setdefault(label, Counter())
        names = {p.name for p in op.path_parameters}
        fixed = {n: v for n, v in (ids or {}).items() if n in names}
        if fixed and "agent_id" in names and "alert_id" in names:
            fixed["alert_id"] = ids["_agent_alert_id"]
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            strategy = op.as_strategy(generation_mode=mode)
            if fixed:
                strategy = st.one_of(strategy, op.as_strategy(generation_mode=mode, path_parameters=fixed))

            @settings(max_examples=examples, deadline=None, database=None, phases=[Phase.generate],
                      suppress_health_check=list(HealthCheck), verbosity=hypothesis.Verbosity.quiet)
            @hypothesis.seed(seed)
            @hypothesis.given(strategy)
            def explore(case):
                try:
                    res = case.call(base_url=base_url, session=session, headers=auth, timeout=30)
                except (requests.exceptions.InvalidHeader, requests.exceptions.InvalidURL, UnicodeError, ValueError):
                    report.unsent += 1
                    return
                report.statuses[res.status_code] += 1
                counts[res.status_code] += 1
                why = shape_problem(res.status_code, res.content)
                if why:
                    report.problems.append((label, res.status_code, why, res.content[:300], case.as_curl_command()))

            try:
                explore()
            except hypothesis.errors.Unsatisfiable:  # e.g. no input can break an operation without parameters
                pass
    return report


def summary(report: Report) -> str:
    lines = [f"{report.requests} requests ({report.unsent} not sendable by the client), by status: "
             + ", ".join(f"{s}: {n}" for s, n in sorted(report.statuses.items()))]
    for label, counts in report.by_operation.items():
        lines.append(f"  {label:60} " + " ".join(f"{s}:{n}" for s, n in sorted(counts.items())))
    for label, status, why, body, curl in report.problems[:20]:
        lines.append(f"PROBLEM {label} -> {status} ({why}): {body!r}\n    {curl}")
    return "\n".join(lines)
