"""The /v1 SDKs (sdk/python: `sophonz`, sdk/javascript: `@sophonz/sdk`) against the real server.

Reference 000's two SDK examples run verbatim (only the key substituted, the base URL
from SOPHONZ_BASE_URL); then each SDK goes through applications, metrics, alerts and
deployments, its errors (400, 401, 404, 429, network, timeout) and the rate-limit
headers, with every answer compared exactly. Insights and predictions are not tested
here (their server side is not finished).
"""
import ast
import json
import math
import os
import shutil
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest

from api.rules import NO_SLACK_WARNING, NO_SMTP_WARNING
from pipeline import quota
from pipeline.accounts import tenant_for
from pipeline.quota import set_plan
from pipeline.topics import ACCOUNT_PLANS

from .conftest import clear_of_the_hour_end, eventually, free_port, next_hour, silent_server

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[1]
SDK_PY = ROOT / "sdk" / "python"
SDK_JS = ROOT / "sdk" / "javascript"
NODE = shutil.which("node") or "/usr/bin/node"

sys.path.insert(0, str(SDK_PY))
import sophonz  # noqa: E402  (the package source, as `pip install ./sdk/python` installs it)

# Reference 000's examples, verbatim; only 'your-api-key' is replaced by a real key.
REFERENCE_PY = """from sophonz import Client
client = Client(api_key='your-api-key')
apps = client.applications.list()
print(apps)
"""
REFERENCE_JS = """import { Sophonz } from '@sophonz/sdk';
const client = new Sophonz({ apiKey: 'your-api-key' });
const apps = await client.applications.list();
console.log(apps);
"""
REFERENCE_RULE = {"name": "High Error Rate", "condition": {"metric": "error_rate", "operator": ">", "threshold": 0.05},
                  "actions": [{"type": "email", "recipients": ["admin@company.com"]},
                              {"type": "slack", "channel": "#alerts"}]}
STORED_RULE = {"name": "High Error Rate", "enabled": True, "agent_id": None,
               "condition": {"metric": "error_rate", "operator": ">", "threshold": 0.05, "window": "5m",
                             "aggregation": "mean"},
               "actions": REFERENCE_RULE["actions"], "for": "0m", "repeat_interval": "4h", "silenced_until": None,
               "updated_at": None, "state": "ok", "value": None, "evaluated_at": None,
               # the test api has no SMTP server and the account no Slack token
               "warnings": [NO_SMTP_WARNING, NO_SLACK_WARNING]}


def stored_rule(rule: dict, app_id: str) -> dict:
    """The created rule as answered: STORED_RULE with its id and times (new: in state ok since creation)."""
    assert rule["since"] == rule["created_at"]
    return {"id": rule["id"], "application_id": app_id, **STORED_RULE, "created_at": rule["created_at"],
            "since": rule["since"]}


def as_listed(rule: dict) -> dict:
    return {**rule, "warnings": None}  # warnings come with the answer to a write only
UNAUTHORIZED = {"status": 401, "error": "Clé API invalide ou expirée",
                "message": "Clé API invalide ou expirée. Obtenez la vôtre sur /onboarding.html",
                "field": None, "retry_after": None}
NO_METRICS = {"uptime": None, "response_time": None, "error_rate": None}
TEST_LIMIT = 3


# ---- helpers -------------------------------------------------------------------------------

def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def summary(app: dict) -> dict:
    return {k: app[k] for k in ("id", "name", "status", "environment", "created_at", "updated_at")}


def clean_env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SOPHONZ_", "SOPHRA_", "PYTHONPATH"))}
    return {**env, **extra}


def node(script: Path, env: dict, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([NODE, str(script)], capture_output=True, text=True, timeout=timeout, cwd=script.parent,
                          env=env)


def js_project(tmp_path: Path, name: str, source: str) -> Path:
    """A project that installed the SDK: node_modules/@sophonz/sdk is sdk/javascript."""
    project = tmp_path / name
    (project / "node_modules" / "@sophonz").mkdir(parents=True)
    (project / "node_modules" / "@sophonz" / "sdk").symlink_to(SDK_JS, target_is_directory=True)
    script = project / "example.mjs"
    script.write_text(source)
    return script


def on_plan(api, plan: str) -> str:
    """The key of a new account on `plan`, once this api process knows the plan."""
    email = f"{plan}-{os.urandom(6).hex()}@test.sophra"
    key = api.new_key(email)
    set_plan(api.settings.kafka_bootstrap_servers, api.settings.topic(ACCOUNT_PLANS.name), email, plan)
    assert eventually(lambda: api.app.state.quota.plans.plan_of(tenant_for(email)) == plan, 15)
    return key


def refusal_message(reset: int, retry_after: int) -> str:
    at = datetime.fromtimestamp(reset, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return (f"This account has used its {TEST_LIMIT} requests of this hour (test plan); "
            f"the quota resets at {at}, in {retry_after} s")


def retry_after_bounds(reset: int, before_ms: int, after_ms: int) -> tuple[int, int]:
    """What the server's Retry-After (seconds to the end of the hour, at least 1) can be
    for a request answered between before_ms and after_ms."""
    return (max(1, math.ceil((reset * 1000 - after_ms) / 1000)), max(1, math.ceil((reset * 1000 - before_ms) / 1000)))


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@pytest.fixture
def test_plan(monkeypatch):
    monkeypatch.setitem(quota.PLAN_LIMITS, "test", TEST_LIMIT)
    return "test"


# ---- reference 000's examples, verbatim ----------------------------------------------------

def test_reference_examples_run_verbatim(running_api, tmp_path):
    api = running_api()
    key = api.new_key()
    with api.client(key) as http:
        created = http.post("/v1/applications", json={"name": "My Application"})
        assert created.status_code == 201, created.text
    app = created.json()
    expected = {"applications": [{"id": app["id"], "name": "My Application", "status": "active",
                                  "environment": "production", "created_at": app["created_at"],
                                  "updated_at": app["created_at"]}],
                "total": 1, "page": 1, "per_page": 20}
    env = clean_env(SOPHONZ_BASE_URL=f"{api.url}/v1")

    # Python: the package source on PYTHONPATH, as installed.
    example = tmp_path / "example.py"
    example.write_text(REFERENCE_PY.replace("your-api-key", key))
    py_env = {**env, "PYTHONPATH": str(SDK_PY)}
    where = subprocess.run([sys.executable, "-c", "import sophonz; print(sophonz.__file__)"], env=py_env,
                           capture_output=True, text=True, timeout=30, cwd=tmp_path)
    assert where.stdout == f"{SDK_PY / 'sophonz' / '__init__.py'}\n", where.stderr
    proc = subprocess.run([sys.executable, str(example)], env=py_env, capture_output=True, text=True, timeout=60,
                          cwd=tmp_path)
    assert (proc.returncode, proc.stderr) == (0, "")
    assert ast.literal_eval(proc.stdout) == expected
    assert proc.stdout == f"{expected!r}\n"  # print(apps) of the parsed JSON, keys in the server's order

    # JavaScript: an ES module importing the installed package.
    proc = node(js_project(tmp_path, "verbatim", REFERENCE_JS.replace("your-api-key", key)), env)
    assert (proc.returncode, proc.stderr) == (0, "")
    assert "'My Application'" in proc.stdout and app["id"] in proc.stdout
    inspected = subprocess.run([NODE, "-e", "console.log(JSON.parse(process.env.APPS))"], capture_output=True,
                               text=True, timeout=30, env={**env, "APPS": json.dumps(expected)})
    assert proc.stdout == inspected.stdout  # exactly what console.log prints for that object
    as_json = REFERENCE_JS.replace("your-api-key", key).replace("console.log(apps)", "console.log(JSON.stringify(apps))")
    proc = node(js_project(tmp_path, "json", as_json), env)
    assert (proc.returncode, proc.stderr) == (0, "")
    assert json.loads(proc.stdout) == expected

    # The key of the examples came from the file: the same examples without a key fail.
    proc = subprocess.run([sys.executable, "-c", "from sophonz import Client; Client()"], env=py_env,
                          capture_output=True, text=True, timeout=30, cwd=tmp_path)
    assert proc.returncode == 1 and proc.stderr.endswith(
        "ValueError: No API key: pass Client(api_key=...) or set SOPHONZ_API_KEY\n")


# ---- Python ----------------------------------------------------------------------------------

def sdk_error(call) -> dict:
    with pytest.raises(sophonz.SophonzError) as caught:
        call()
    e = caught.value
    return {"status": e.status, "error": e.error, "message": e.message, "field": e.field, "retry_after": e.retry_after}


def test_python_sdk_round_trip(running_api, monkeypatch, test_plan):
    clear_of_the_hour_end(60)
    api = running_api()
    assert sophonz.__file__ == str(SDK_PY / "sophonz" / "__init__.py")
    key = api.new_key()
    client = sophonz.Client(api_key=key, base_url=f"{api.url}/v1/")
    assert (client.base_url, client.timeout, client.rate_limit) == (f"{api.url}/v1", 10, None)

    # applications
    assert client.applications.list() == {"applications": [], "total": 0, "page": 1, "per_page": 20}
    assert client.rate_limit == {"limit": 1000, "remaining": 999, "reset": next_hour()}  # the first /v1 request
    shop = client.applications.create("Shop", description="The web shop", environment="staging",
                                      config={"monitoring": True, "alerts": True})
    assert shop == {"id": shop["id"], "name": "Shop", "description": "The web shop", "status": "active",
                    "environment": "staging", "base_url": None, "config": {"monitoring": True, "alerts": True},
                    "metrics": NO_METRICS, "created_at": shop["created_at"], "updated_at": shop["created_at"]}
    assert shop["id"].startswith("app_") and shop["created_at"].endswith("Z")
    second = client.applications.create("Second", status="inactive", base_url="https://second.example.com")
    assert {k: second[k] for k in ("name", "description", "status", "environment", "base_url", "config")} == {
        "name": "Second", "description": None, "status": "inactive", "environment": "production",
        "base_url": "https://second.example.com/", "config": {}}
    assert client.rate_limit["remaining"] == 997
    assert client.applications.get(shop["id"]) == shop
    updated = client.applications.update(shop["id"], status="maintenance", base_url="https://shop.example.com",
                                         description=None)
    assert updated == {**shop, "status": "maintenance", "base_url": "https://shop.example.com/", "description": None,
                       "updated_at": updated["updated_at"]}
    assert client.applications.get(shop["id"]) == updated
    assert client.applications.list(per_page=1) == {"applications": [summary(updated)], "total": 2, "page": 1,
                                                    "per_page": 1}
    assert client.applications.list(page=2, per_page=1) == {"applications": [summary(second)], "total": 2,
                                                            "page": 2, "per_page": 1}
    assert client.applications.list(page=3, per_page=1)["applications"] == []
    assert client.rate_limit["remaining"] == 991  # nine requests

    # metrics: a datetime (in +02:00), epoch ms and an ISO string; read back at 1m
    minute = now_ms() // 60_000 * 60_000 - 10 * 60_000
    sent = client.metrics.send(shop["id"], [
        {"metric": "response_time", "value": 100, "timestamp": datetime.fromtimestamp(
            (minute + 1000) / 1000, timezone(timedelta(hours=2)))},
        {"metric": "response_time", "value": 250.5, "timestamp": minute + 2000},
        {"metric": "response_time", "value": 600, "timestamp": iso(minute + 60_000)},
        {"metric": "error_rate", "value": 0.25, "timestamp": minute + 3000},
    ])
    assert sent == {"accepted": 4, "batch_id": sent["batch_id"]} and 0 < sent["batch_id"] < 2**53
    start = datetime.fromtimestamp(minute / 1000, timezone.utc)
    end = start + timedelta(minutes=2)
    counted = eventually(lambda: (c := client.metrics.get(shop["id"], metric="response_time", start=start, end=end,
                                                          granularity="1m", stat="count"))["data"][1]["value"] and c,
                         10, 0.1)
    assert counted == {"metric": "response_time", "granularity": "1m",
                       "data": [{"timestamp": iso(minute), "value": 2}, {"timestamp": iso(minute + 60_000), "value": 1}]}
    assert client.metrics.get(shop["id"], metric="response_time", start=start, end=end, granularity="1m") == {
        "metric": "response_time", "granularity": "1m",
        "data": [{"timestamp": iso(minute), "value": 175.25}, {"timestamp": iso(minute + 60_000), "value": 600.0}]}
    naive_start = start.replace(tzinfo=None)  # a naive datetime is UTC
    assert client.metrics.get(shop["id"], metric="error_rate", start=naive_start, end=iso(minute + 60_000),
                              granularity="1m", stat="max")["data"] == [{"timestamp": iso(minute), "value": 0.25}]
    assert sdk_error(lambda: client.metrics.send(shop["id"], [{"metric": "error_rate", "value": 2, "timestamp": 1}])
                     ) == {"status": 400, "error": "Invalid request", "field": "points[0].value", "retry_after": None,
                           "message": "points[0].value: must be between 0 and 1 for error_rate (a fraction 0..1)"}

    # alerts
    rule = client.alerts.create(shop["id"], **REFERENCE_RULE)
    assert rule == stored_rule(rule, shop["id"])
    assert rule["id"].startswith("alert_")
    assert client.alerts.list(shop["id"]) == {"alerts": [as_listed(rule)]}
    assert client.alerts.delete(shop["id"], rule["id"]) is None
    assert client.alerts.list(shop["id"]) == {"alerts": []}
    assert sdk_error(lambda: client.alerts.delete(shop["id"], rule["id"])) == {
        "status": 404, "error": "Not found", "field": None, "retry_after": None,
        "message": f"No alert {rule['id']!r} on application {shop['id']!r}"}

    # deployments (no worker runs here: they stay pending)
    deployment = client.deployments.create(shop["id"], "v1.2.5", description="Bug fixes and performance improvements",
                                           changes=["Fixed payment processing bug", "Updated user interface"],
                                           config={"rollback_on_error": True, "health_check_url": "/health"})
    assert deployment == {"id": deployment["id"], "version": "v1.2.5", "status": "pending",
                          "started_at": deployment["started_at"], "completed_at": None,
                          "changes": ["Fixed payment processing bug", "Updated user interface"],
                          "description": "Bug fixes and performance improvements", "reason": None,
                          "config": {"rollback_on_error": True, "health_check_url": "/health"}}
    assert deployment["id"].startswith("deploy_")
    listed = eventually(lambda: client.deployments.list(shop["id"])["deployments"], 10, 0.1)
    assert listed == [deployment]
    assert sdk_error(lambda: client.deployments.create(second["id"], "")) == {
        "status": 400, "error": "Invalid request", "field": "version", "retry_after": None,
        "message": "version: string should have at least 1 character"}

    # delete, and the errors
    assert client.applications.delete(second["id"]) is None
    assert sdk_error(lambda: client.applications.get(second["id"])) == {
        "status": 404, "error": "Not found", "field": None, "retry_after": None,
        "message": f"No application {second['id']!r} for this API key"}
    assert sdk_error(lambda: client.applications.delete(second["id"]))["status"] == 404
    assert sdk_error(lambda: client.applications.create("")) == {
        "status": 400, "error": "Invalid request", "field": "name", "retry_after": None,
        "message": "name: string should have at least 1 character"}
    assert sdk_error(lambda: client.applications.create("x", environment="moon"))["field"] == "environment"
    assert sdk_error(lambda: client.applications.list(per_page=101))["field"] == "per_page"
    # path segments are encoded: the whole id reaches the server
    assert sdk_error(lambda: client.applications.get("app x?y#z"))["message"] == (
        "No application 'app x?y#z' for this API key")
    with pytest.raises(sophonz.SophonzError) as caught:
        client.applications.get("app_0000000000000000")
    assert isinstance(caught.value, Exception) and caught.value.body == {
        "success": False, "error": "Not found", "message": "No application 'app_0000000000000000' for this API key"}
    assert str(caught.value) == "404 Not found: No application 'app_0000000000000000' for this API key"

    # the key from the environment; the client's count is the server's
    monkeypatch.setenv("SOPHONZ_API_KEY", key)
    monkeypatch.setenv("SOPHONZ_BASE_URL", f"{api.url}/v1")
    from_env = sophonz.Client()
    assert from_env.applications.list()["total"] == 1
    last = from_env.rate_limit
    with api.client(key) as http:
        res = http.get("/v1/applications")
    assert (last["limit"], last["remaining"] - 1, last["reset"]) == (
        1000, int(res.headers["X-RateLimit-Remaining"]), int(res.headers["X-RateLimit-Reset"]))
    monkeypatch.delenv("SOPHONZ_API_KEY")
    monkeypatch.delenv("SOPHONZ_BASE_URL")
    assert sophonz.Client(api_key="k").base_url == "http://127.0.0.1:8000/v1" == sophonz.DEFAULT_BASE_URL
    with pytest.raises(ValueError, match="No API key"):
        sophonz.Client()

    # 401, network failure, timeout
    bad = sophonz.Client(api_key="sk_live_not_a_key", base_url=f"{api.url}/v1")
    assert sdk_error(bad.applications.list) == UNAUTHORIZED
    assert bad.rate_limit is None  # no valid key: nothing counted, no quota headers
    dead = f"http://127.0.0.1:{free_port()}/v1"
    e = sdk_error(sophonz.Client(api_key=key, base_url=dead).applications.list)
    assert (e["status"], e["error"], e["field"], e["retry_after"]) == (0, "Network error", None, None)
    assert e["message"].startswith(f"Cannot reach {dead}/applications: ")
    with silent_server() as silent_root:
        silent = silent_root + "/v1"
        t = time.monotonic()
        e = sdk_error(sophonz.Client(api_key=key, base_url=silent, timeout=0.3).applications.list)
        assert time.monotonic() - t < 2
    assert e == {"status": 0, "error": "Timeout", "message": f"No answer from {silent}/applications within 0.3 s",
                 "field": None, "retry_after": None}

    # quota: 429 with retry_after, and enterprise keys
    limited = sophonz.Client(api_key=on_plan(api, test_plan), base_url=f"{api.url}/v1")
    for remaining in range(TEST_LIMIT - 1, -1, -1):
        limited.applications.list()
        assert limited.rate_limit == {"limit": TEST_LIMIT, "remaining": remaining, "reset": next_hour()}
    before = now_ms()
    refused = sdk_error(limited.applications.list)
    lo, hi = retry_after_bounds(next_hour(), before, now_ms())
    assert lo <= refused["retry_after"] <= hi
    assert refused == {"status": 429, "error": "Rate limit exceeded", "field": None,
                       "retry_after": refused["retry_after"],
                       "message": refusal_message(next_hour(), refused["retry_after"])}
    assert limited.rate_limit == {"limit": TEST_LIMIT, "remaining": 0, "reset": next_hour()}
    unlimited = sophonz.Client(api_key=on_plan(api, "enterprise"), base_url=f"{api.url}/v1")
    assert unlimited.applications.list()["total"] == 0
    assert unlimited.rate_limit == {"limit": "unlimited", "remaining": "unlimited", "reset": next_hour()}


# ---- JavaScript ------------------------------------------------------------------------------

SDK_CALLS_JS = r"""
import { Sophonz, SophonzError, DEFAULT_BASE_URL } from '@sophonz/sdk';

const cfg = JSON.parse(process.env.SDK_TEST_CONFIG);
const out = {};
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const failure = async (promise) => {
  try {
    return { resolved: await promise };
  } catch (e) {
    return { sophonzError: e instanceof SophonzError, error_: e instanceof Error, name: e.name, status: e.status,
             error: e.error, message: e.message, field: e.field, retryAfter: e.retryAfter, retry_after: e.retry_after };
  }
};
async function poll(fn, done, ms = 10000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await fn();
    if (done(value) || Date.now() > deadline) return value;
    await sleep(100);
  }
}

const c = new Sophonz({ apiKey: cfg.key, baseUrl: cfg.baseUrl + '/' });
out.config = { baseUrl: c.baseUrl, timeoutMs: c.timeoutMs, rateLimit: c.rateLimit, keyHidden: !JSON.stringify(c).includes(cfg.key) };
out.empty = await c.applications.list();
out.firstRateLimit = c.rateLimit;
const shop = await c.applications.create({ name: 'JS Shop', description: 'from node', environment: 'staging',
                                           config: { monitoring: true } });
const second = await c.applications.create({ name: 'JS Second' });
out.created = [shop, second];
out.got = await c.applications.get(shop.id);
out.updated = await c.applications.update(shop.id, { status: 'maintenance', description: null,
                                                     base_url: 'https://js.example.com' });
out.page1 = await c.applications.list({ perPage: 1 });
out.page2 = await c.applications.list({ page: 2, per_page: 1 });
out.afterPagesRateLimit = c.rateLimit;

const m = cfg.minuteMs;
out.sent = await c.metrics.send(shop.id, [
  { metric: 'response_time', value: 100, timestamp: new Date(m + 1000) },
  { metric: 'response_time', value: 250.5, timestamp: m + 2000 },
  { metric: 'response_time', value: 600, timestamp: new Date(m + 60000).toISOString() },
]);
const range = { metric: 'response_time', start: new Date(m), end: new Date(m + 120000), granularity: '1m' };
out.counted = await poll(() => c.metrics.get(shop.id, { ...range, stat: 'count' }), (r) => r.data[1].value === 1);
out.mean = await c.metrics.get(shop.id, range);

out.alert = await c.alerts.create(shop.id, cfg.rule);
out.alerts = await c.alerts.list(shop.id);
out.alertDeleted = await c.alerts.delete(shop.id, out.alert.id);
out.alertsAfter = await c.alerts.list(shop.id);

out.deployment = await c.deployments.create(shop.id, { version: 'v2.0.0', description: 'js deploy',
  changes: ['one', 'two'], config: { rollback_on_error: true, health_check_url: '/health' } });
out.deployments = await poll(() => c.deployments.list(shop.id), (r) => r.deployments.length > 0);

out.deleted = await c.applications.delete(second.id);
out.notFound = await failure(c.applications.get(second.id));
out.invalid = await failure(c.applications.create({ name: '' }));
out.encoded = await failure(c.applications.get('app x?y#z'));
out.fromEnv = await new Sophonz({ baseUrl: cfg.baseUrl }).applications.list({ perPage: 1 });
out.lastRateLimit = (await c.applications.list(), c.rateLimit);

const bad = new Sophonz({ apiKey: 'sk_live_not_a_key', baseUrl: cfg.baseUrl });
out.unauthorized = await failure(bad.applications.list());
out.badRateLimit = bad.rateLimit;
out.network = await failure(new Sophonz({ apiKey: 'k', baseUrl: cfg.deadUrl }).applications.list());
const t = Date.now();
out.timeout = await failure(new Sophonz({ apiKey: 'k', baseUrl: cfg.silentUrl, timeoutMs: 300 }).applications.list());
out.timeoutFast = Date.now() - t < 2000;
delete process.env.SOPHONZ_API_KEY;
out.noKey = (() => { try { new Sophonz(); return 'constructed'; } catch (e) { return `${e.name}: ${e.message}`; } })();
out.defaultBase = [new Sophonz({ apiKey: 'k' }).baseUrl, DEFAULT_BASE_URL];

const limited = new Sophonz({ apiKey: cfg.limitedKey, baseUrl: cfg.baseUrl });
out.limitedRateLimits = [];
for (let i = 0; i < cfg.testLimit; i++) {
  await limited.applications.list();
  out.limitedRateLimits.push(limited.rateLimit);
}
out.refusedBefore = Date.now();
out.refused = await failure(limited.applications.list());
out.refusedAfter = Date.now();
out.refusedRateLimit = limited.rateLimit;
const unlimited = new Sophonz({ apiKey: cfg.unlimitedKey, baseUrl: cfg.baseUrl });
await unlimited.applications.list();
out.unlimitedRateLimit = unlimited.rateLimit;

console.log(JSON.stringify(out));
"""


def js_error(status, error, message, field=None, retry_after=None) -> dict:
    return {"sophonzError": True, "error_": True, "name": "SophonzError", "status": status, "error": error,
            "message": message, "field": field, "retryAfter": retry_after, "retry_after": retry_after}


def test_javascript_sdk_round_trip(running_api, tmp_path, test_plan):
    clear_of_the_hour_end(60)
    api = running_api()
    key = api.new_key()
    limited_key, unlimited_key = on_plan(api, test_plan), on_plan(api, "enterprise")
    minute = now_ms() // 60_000 * 60_000 - 10 * 60_000
    dead = f"http://127.0.0.1:{free_port()}/v1"
    with silent_server() as silent_root:
        silent = silent_root + "/v1"
        cfg = {"key": key, "baseUrl": f"{api.url}/v1", "minuteMs": minute, "rule": REFERENCE_RULE,
               "deadUrl": dead, "silentUrl": silent, "limitedKey": limited_key, "unlimitedKey": unlimited_key,
               "testLimit": TEST_LIMIT}
        proc = node(js_project(tmp_path, "calls", SDK_CALLS_JS),
                    clean_env(SDK_TEST_CONFIG=json.dumps(cfg), SOPHONZ_API_KEY=key))
    assert (proc.returncode, proc.stderr) == (0, "")
    out = json.loads(proc.stdout)
    reset = next_hour()

    assert out["config"] == {"baseUrl": f"{api.url}/v1", "timeoutMs": 10000, "rateLimit": None, "keyHidden": True}
    assert out["empty"] == {"applications": [], "total": 0, "page": 1, "per_page": 20}
    assert out["firstRateLimit"] == {"limit": 1000, "remaining": 999, "reset": reset}
    shop, second = out["created"]
    assert shop == {"id": shop["id"], "name": "JS Shop", "description": "from node", "status": "active",
                    "environment": "staging", "base_url": None, "config": {"monitoring": True},
                    "metrics": NO_METRICS, "created_at": shop["created_at"], "updated_at": shop["created_at"]}
    assert (second["name"], second["environment"], second["status"]) == ("JS Second", "production", "active")
    assert out["got"] == shop
    updated = out["updated"]
    assert updated == {**shop, "status": "maintenance", "description": None, "base_url": "https://js.example.com/",
                       "updated_at": updated["updated_at"]}
    assert out["page1"] == {"applications": [summary(updated)], "total": 2, "page": 1, "per_page": 1}
    assert out["page2"] == {"applications": [summary(second)], "total": 2, "page": 2, "per_page": 1}
    assert out["afterPagesRateLimit"] == {"limit": 1000, "remaining": 993, "reset": reset}

    assert out["sent"] == {"accepted": 3, "batch_id": out["sent"]["batch_id"]}
    assert out["counted"] == {"metric": "response_time", "granularity": "1m", "data": [
        {"timestamp": iso(minute), "value": 2}, {"timestamp": iso(minute + 60_000), "value": 1}]}
    assert out["mean"] == {"metric": "response_time", "granularity": "1m", "data": [
        {"timestamp": iso(minute), "value": 175.25}, {"timestamp": iso(minute + 60_000), "value": 600}]}

    rule = out["alert"]
    assert rule == stored_rule(rule, shop["id"])
    assert (out["alerts"], out["alertDeleted"], out["alertsAfter"]) == ({"alerts": [as_listed(rule)]}, None,
                                                                        {"alerts": []})
    deployment = out["deployment"]
    assert deployment == {"id": deployment["id"], "version": "v2.0.0", "status": "pending",
                          "started_at": deployment["started_at"], "completed_at": None, "changes": ["one", "two"],
                          "description": "js deploy", "reason": None,
                          "config": {"rollback_on_error": True, "health_check_url": "/health"}}
    assert out["deployments"] == {"deployments": [deployment]}

    assert out["deleted"] is None
    assert out["notFound"] == js_error(404, "Not found", f"No application {second['id']!r} for this API key")
    assert out["invalid"] == js_error(400, "Invalid request", "name: string should have at least 1 character", "name")
    assert out["encoded"] == js_error(404, "Not found", "No application 'app x?y#z' for this API key")
    assert out["fromEnv"] == {"applications": [summary(updated)], "total": 1, "page": 1, "per_page": 1}
    with api.client(key) as http:  # the client's count is the server's
        res = http.get("/v1/applications")
    assert out["lastRateLimit"] == {"limit": 1000, "remaining": int(res.headers["X-RateLimit-Remaining"]) + 1,
                                    "reset": int(res.headers["X-RateLimit-Reset"])}

    assert out["unauthorized"] == js_error(401, UNAUTHORIZED["error"], UNAUTHORIZED["message"])
    assert out["badRateLimit"] is None
    network = out["network"]
    assert network == js_error(0, "Network error", network["message"])
    assert network["message"].startswith(f"Cannot reach {dead}/applications: ") and "ECONNREFUSED" in network["message"]
    assert out["timeout"] == js_error(0, "Timeout", f"No answer from {silent}/applications within 300 ms")
    assert out["timeoutFast"] is True
    assert out["noKey"] == "TypeError: No API key: pass new Sophonz({ apiKey }) or set SOPHONZ_API_KEY"
    assert out["defaultBase"] == ["http://127.0.0.1:8000/v1"] * 2

    assert out["limitedRateLimits"] == [{"limit": TEST_LIMIT, "remaining": n, "reset": reset}
                                        for n in range(TEST_LIMIT - 1, -1, -1)]
    refused = out["refused"]
    lo, hi = retry_after_bounds(reset, out["refusedBefore"], out["refusedAfter"])
    assert lo <= refused["retryAfter"] <= hi
    assert refused == js_error(429, "Rate limit exceeded", refusal_message(reset, refused["retryAfter"]),
                               retry_after=refused["retryAfter"])
    assert out["refusedRateLimit"] == {"limit": TEST_LIMIT, "remaining": 0, "reset": reset}
    assert out["unlimitedRateLimit"] == {"limit": "unlimited", "remaining": "unlimited", "reset": reset}
