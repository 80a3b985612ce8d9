"""The C# SDK (sdk/csharp) against the real server.

The SDK and its own test runner are compiled with Mono's mcs and run under mono
(sdk/csharp/run_tests.sh; `make csharp` installs Mono). The runner's unit tests check
the client-side rules without a server; its live tests go through every /v1 endpoint
and the agent API on a fresh account, including retries observed end to end (the
vitals 10 s per-agent limit answers 429 with Retry-After). Then what the C# side wrote
is read back here, through the HTTP API, and compared exactly; the README's quick
start is compiled and run as written.
"""
import json
import os
import re
import shutil
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import httpx
import pytest

from .conftest import clear_of_the_hour_end, eventually
from .test_sdk_v1 import on_plan, test_plan  # noqa: F401  (test_plan: the 3-requests-per-hour plan fixture)

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[1]
RUN_TESTS = ROOT / "sdk" / "csharp" / "run_tests.sh"
README = ROOT / "sdk" / "csharp" / "README.md"
UNIT_TESTS = 14
LIVE_TESTS = 21
NO_METRICS = {"uptime": None, "response_time": None, "error_rate": None}


@pytest.fixture(scope="module")
def mono():
    proc = subprocess.run(["sh", str(ROOT / "deploy" / "install_debian_package.sh"), "/usr/bin/mcs", "mono-mcs",
                           "mono-runtime", "libmono-system-net-http4.0-cil"], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, f"Mono is required for the C# SDK tests (make csharp): {proc.stderr}"
    assert shutil.which("mono") and shutil.which("mcs")


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def run_csharp(out: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("SOPHONZ_", "SOPHRA_"))}
    return subprocess.run(["nice", "sh", str(RUN_TESTS), str(out), *args], capture_output=True, text=True, timeout=300,
                          env={**clean, **(env or {})})


def results(proc: subprocess.CompletedProcess) -> tuple[list[str], list[str], str]:
    lines = proc.stdout.splitlines()
    passed = [line[5:].rsplit(" (", 1)[0] for line in lines if line.startswith("ok   ")]
    failed = [line for line in lines if line.startswith("FAIL ")]
    return passed, failed, lines[-1] if lines else ""


def test_csharp_unit_tests(mono, tmp_path):
    proc = run_csharp(tmp_path / "build", "--unit")
    passed, failed, last = results(proc)
    assert (proc.returncode, failed, proc.stderr) == (0, [], ""), proc.stdout
    assert last == f"{UNIT_TESTS} passed, 0 failed"
    assert len(passed) == UNIT_TESTS and all(name.startswith("unit: ") for name in passed)


def test_csharp_sdk_against_the_server(mono, running_api, tmp_path, test_plan):  # noqa: F811
    clear_of_the_hour_end(90)  # the quota test counts requests per hour
    api = running_api()
    key = api.new_key()
    limited_key = on_plan(api, test_plan)
    with api.client(key) as http:
        created = http.post("/v1/applications", json={"name": "My Application"})
        assert created.status_code == 201, created.text
    facts_file = tmp_path / "facts.json"
    proc = run_csharp(tmp_path / "build", env={
        "SOPHRA_TEST_BASE_URL": api.url, "SOPHRA_TEST_API_KEY": key, "SOPHRA_TEST_APP_ID": created.json()["id"],
        "SOPHRA_TEST_LIMITED_KEY": limited_key, "SOPHRA_TEST_OUTPUT": str(facts_file)})
    passed, failed, last = results(proc)
    assert (proc.returncode, failed, proc.stderr) == (0, [], ""), proc.stdout
    assert last == f"{UNIT_TESTS + LIVE_TESTS} passed, 0 failed"
    assert len([name for name in passed if name.startswith("live: ")]) == LIVE_TESTS
    facts = json.loads(facts_file.read_text())

    with api.client(key) as http:
        def get(path: str, status: int = 200) -> dict:
            res = http.get(path)
            assert res.status_code == status, (path, res.text)
            return res.json()

        # /v1: what the C# client created, changed and deleted
        shop = facts["shop"]
        assert get(f"/v1/applications/{shop['id']}") == {
            "id": shop["id"], "name": "C# Shop", "description": None, "status": "maintenance", "environment": "staging",
            "base_url": "https://shop.example.com/", "config": {"monitoring": True, "alerts": True}, "metrics": NO_METRICS,
            "created_at": shop["created_at"], "updated_at": shop["updated_at"]}
        assert get(f"/v1/applications/{facts['deleted_app_id']}", 404)["error"] == "Not found"
        assert sorted(a["name"] for a in get("/v1/applications")["applications"]) == [
            "C# Alerts", "C# Deploys", "C# Metrics", "C# Quiet", "C# Shop", "My Application"]

        minute = facts["metrics_minute_ms"]
        query = {"metric": "response_time", "start": iso(minute), "end": iso(minute + 120_000), "granularity": "1m"}
        assert http.get(f"/v1/applications/{facts['metrics_app_id']}/metrics", params=query).json() == {
            "metric": "response_time", "granularity": "1m",
            "data": [{"timestamp": iso(minute), "value": 175.25}, {"timestamp": iso(minute + 60_000), "value": 600.0}]}
        assert http.get(f"/v1/applications/{facts['metrics_app_id']}/metrics",
                        params={**query, "metric": "error_rate", "stat": "max"}).json()["data"] == [
            {"timestamp": iso(minute), "value": 0.25}, {"timestamp": iso(minute + 60_000), "value": None}]

        [rule] = get(f"/v1/applications/{facts['alerts_app_id']}/alerts")["alerts"]
        assert (rule["id"], rule["name"], rule["condition"], rule["for"], rule["enabled"], rule["silenced_until"]) == (
            facts["alert_id"], "Very High Error Rate",
            {"metric": "error_rate", "operator": ">", "threshold": 0.1, "window": "5m", "aggregation": "mean"},
            "90s", True, "2099-01-01T12:00:00Z")
        assert rule["actions"] == [{"type": "email", "recipients": ["admin@company.com"]},
                                   {"type": "slack", "channel": "#alerts"}]
        assert get(f"/v1/applications/{facts['deploy_app_id']}/deployments") == {"deployments": [facts["deployment"]]}

        # agents: awaited reports, retried reports and fire-and-forget reports
        vital = facts["vital"]
        assert get("/api/agents/csharp-agent/vitals") == {"success": True, "vitals": [{
            "id": vital["id"], "agent_id": "csharp-agent", "token_consumption": 2400, "token_limit": 100000,
            "hallucination_rate": 0.02, "loop_frequency": 3, "directive_conflicts": 0, "overall_health": "green",
            "metadata": {"region": "eu", "model": "gpt-x"}, "recorded_at": vital["recorded_at"]}]}
        assert get("/api/agents/csharp-agent/events") == {"success": True, "events": [facts["event"]]}
        assert facts["event"]["details"] == "Web search tool timed out"

        first_id, second_id = facts["rate_limited_ids"]
        assert [(v["id"], v["token_consumption"], v["loop_frequency"])
                for v in get("/api/agents/csharp-rate-limited/vitals")["vitals"]] == [(second_id, 200, 2), (first_id, 100, 1)]
        assert len(get("/api/agents/csharp-impatient/vitals")["vitals"]) == 1  # the refused report was never stored
        assert len(get("/api/agents/csharp-cancelled/vitals")["vitals"]) == 1

        background = eventually(lambda: (r := http.get("/api/agents/csharp-background/vitals")).status_code == 200
                                and r.json()["vitals"], 15)
        assert [{k: v for k, v in row.items() if k not in ("id", "recorded_at")} for row in background] == [{
            "agent_id": "csharp-background", "token_consumption": 90000, "token_limit": 100000, "hallucination_rate": 0.06,
            "loop_frequency": 7, "directive_conflicts": 2, "overall_health": "amber", "metadata": {}}]
        events = eventually(lambda: (r := http.get("/api/agents/csharp-background/events")).status_code == 200
                            and r.json()["events"], 15)
        assert [(e["event_type"], e["details"], e["metadata"]) for e in events] == [("task_completed", "nightly run", {})]
        agents = {a["agent_id"]: (a["name"], a["overall_health"]) for a in get("/api/agents")["agents"]}
        assert agents == {"csharp-agent": ("C# Production Agent", "green"), "csharp-background": ("Background", "amber"),
                          "csharp-rate-limited": ("csharp-rate-limited", "green"),
                          "csharp-impatient": ("csharp-impatient", "green"),
                          "csharp-cancelled": ("csharp-cancelled", "green")}
        for i in range(5):  # sent to a server that never answered: nothing stored here
            assert get(f"/api/agents/csharp-unsent-{i}/vitals", 404)["error"] == "Agent not found"

    # the limited account: three lists counted, the fourth refused
    res = httpx.get(f"{api.url}/v1/applications", headers={"Authorization": f"Bearer {limited_key}"}, timeout=10)
    assert (res.status_code, res.headers["X-RateLimit-Remaining"]) == (429, "0")

    # The README's quick start (reference 000's example in C#), only the key substituted,
    # the base URL from SOPHONZ_BASE_URL as the other SDKs' users set it (with /v1).
    fresh = api.new_key()
    with api.client(fresh) as http:
        app = http.post("/v1/applications", json={"name": "My Application"}).json()
    source = re.search(r"## Quick start.*?```csharp\n(.*?)```", README.read_text(), re.S).group(1)
    assert 'ApiKey = "your-api-key"' in source
    build = tmp_path / "build"
    (build / "Example.cs").write_text(source.replace("your-api-key", fresh))
    compiled = subprocess.run(["mcs", "-r:System.Net.Http.dll", f"-r:{build / 'Sophonz.dll'}", "-out:" + str(build / "Example.exe"),
                               str(build / "Example.cs")], capture_output=True, text=True, timeout=120)
    assert compiled.returncode == 0, compiled.stdout + compiled.stderr
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("SOPHONZ_", "SOPHRA_"))}
    proc = subprocess.run(["mono", str(build / "Example.exe")], capture_output=True, text=True, timeout=60, cwd=build,
                          env={**clean, "SOPHONZ_BASE_URL": f"{api.url}/v1"})
    assert (proc.returncode, proc.stderr) == (0, "")
    expected = {"applications": [{"id": app["id"], "name": "My Application", "status": "active",
                                  "environment": "production", "created_at": app["created_at"],
                                  "updated_at": app["created_at"]}], "total": 1, "page": 1, "per_page": 20}
    assert proc.stdout == json.dumps(expected, separators=(",", ":")) + "\n"
