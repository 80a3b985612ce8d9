"""The Go SDK (sdk/go) against the real server.

`go test` runs the SDK's unit tests and its live tests (sdk/go/integration_test.go) with
SOPHRA_TEST_BASE_URL and SOPHRA_TEST_API_KEY naming this server and a fresh account;
nothing may be skipped. The live tests also observe the 10 s vitals limit retried end to
end. Then what they wrote is read back here through the HTTP API, value for value.
"""
import json
import os
import re
import shutil
import subprocess
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from pipeline import quota
from pipeline.accounts import tenant_for
from pipeline.quota import set_plan
from pipeline.topics import ACCOUNT_PLANS

from .conftest import clear_of_the_hour_end, eventually

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[1]
SDK_GO = ROOT / "sdk" / "go"
MIN_GO = (1, 22)
TEST_LIMIT = 3  # requests per hour of the "test" plan, for the quota refusal


@pytest.fixture(scope="module")
def go() -> str:
    return find_go()


def find_go(path: str | None = None, fallback: str = "/usr/local/go/bin/go") -> str:
    """The Go toolchain: `go` on PATH, else the official install's /usr/local/go/bin/go.
    Missing or too old fails the test (never a skip): make test must run these."""
    found = shutil.which("go", path=path) or (fallback if os.access(fallback, os.X_OK) else None)
    if not found:
        pytest.fail(f"The Go SDK's tests need Go {MIN_GO[0]}.{MIN_GO[1]}+: install it from go.dev/dl "
                    "into /usr/local/go or put `go` on PATH", pytrace=False)
    version = subprocess.run([found, "env", "GOVERSION"], capture_output=True, text=True, timeout=60,
                             env=go_env()).stdout.strip()
    parsed = re.match(r"go(\d+)\.(\d+)", version)
    if not parsed or tuple(map(int, parsed.groups())) < MIN_GO:
        pytest.fail(f"{found} is {version or 'unreadable'}; sdk/go needs Go {MIN_GO[0]}.{MIN_GO[1]}+", pytrace=False)
    return found


def test_a_missing_go_fails_with_a_clear_message(tmp_path):
    with pytest.raises(pytest.fail.Exception) as failed:
        find_go(path=str(tmp_path), fallback=str(tmp_path / "go"))
    assert str(failed.value) == ("The Go SDK's tests need Go 1.22+: install it from go.dev/dl into /usr/local/go "
                                 "or put `go` on PATH")


def go_env(**extra: str) -> dict:
    # GOTOOLCHAIN=local: never download a toolchain; GOPROXY=off: the module has no
    # dependencies, so nothing may be fetched.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SOPHRA_", "SOPHONZ_"))}
    if not any(env.get(k) for k in ("GOCACHE", "XDG_CACHE_HOME", "HOME")):  # go needs a build cache
        env["GOCACHE"] = "/tmp/sophra-go-build"
    return {**env, "GOTOOLCHAIN": "local", "GOPROXY": "off", "GOFLAGS": "", **extra}


def go_tests() -> set[str]:
    names = set()
    for source in SDK_GO.glob("*_test.go"):
        names |= set(re.findall(r"^func (Test\w+)\(t \*testing\.T\)", source.read_text(), re.M))
    return names


def test_go_sdk_is_formatted_and_vetted(go):
    gofmt = Path(go).with_name("gofmt")
    fmt = subprocess.run([str(gofmt), "-l", "."], cwd=SDK_GO, capture_output=True, text=True, timeout=120)
    assert (fmt.returncode, fmt.stdout, fmt.stderr) == (0, "", "")
    vet = subprocess.run([go, "vet", "./..."], cwd=SDK_GO, capture_output=True, text=True, timeout=300, env=go_env())
    assert vet.returncode == 0, vet.stderr
    assert (SDK_GO / "go.mod").read_text() == "module github.com/sophra/sdk-go\n\ngo 1.22\n"  # no requirements


def readme_programs() -> list[str]:
    """The complete programs (package main) among sdk/go/README.md's Go blocks, in order."""
    blocks = re.findall(r"```go\n(.*?)```", (SDK_GO / "README.md").read_text(), re.S)
    return [b for b in blocks if b.startswith("package main\n")]


def go_run(go, tmp_path: Path, name: str, source: str, **env: str) -> subprocess.CompletedProcess:
    """Run `source` as its own module that requires the SDK, as a user's project would
    (a replace directive stands for `go get`)."""
    project = tmp_path / name
    project.mkdir()
    (project / "go.mod").write_text(f"module example.com/{name}\n\ngo 1.22\n\nrequire github.com/sophra/sdk-go v0.0.0\n\n"
                                    f"replace github.com/sophra/sdk-go => {SDK_GO}\n")
    (project / "main.go").write_text(source)
    return subprocess.run([go, "run", "."], cwd=project, capture_output=True, text=True, timeout=300,
                          env=go_env(**env))


def go_time(iso: str) -> str:
    """How Go's %v prints a UTC time.Time the server gave as 2026-01-02T03:04:05Z."""
    return datetime.strptime(iso, "%Y-%m-%dT%H:%M:%SZ").strftime("%Y-%m-%d %H:%M:%S +0000 UTC")


def on_test_plan(api) -> str:
    """The key of a new account on the "test" plan, once this api process knows the plan."""
    email = f"go-quota-{os.urandom(6).hex()}@test.sophra"
    key = api.new_key(email)
    set_plan(api.settings.kafka_bootstrap_servers, api.settings.topic(ACCOUNT_PLANS.name), email, "test")
    assert eventually(lambda: api.app.state.quota.plans.plan_of(tenant_for(email)) == "test", 15)
    return key


def test_go_sdk_against_the_live_server(go, running_api, tmp_path, monkeypatch):
    monkeypatch.setitem(quota.PLAN_LIMITS, "test", TEST_LIMIT)
    api = running_api()
    check_readme_examples(go, api, tmp_path)
    check_go_tests(go, api, tmp_path)


def check_readme_examples(go, api, tmp_path):
    reference, agent = readme_programs()
    # Reference 000's example: the key written in, the base URL (with /v1) from the environment.
    key = api.new_key()
    with api.client(key) as http:
        app = http.post("/v1/applications", json={"name": "My Application"}).json()
    proc = go_run(go, tmp_path, "reference", reference.replace("your-api-key", key),
                  SOPHONZ_BASE_URL=f"{api.url}/v1")
    assert (proc.returncode, proc.stderr) == (0, "")
    t = go_time(app["created_at"])
    assert proc.stdout == (f"&{{Applications:[{{ID:{app['id']} Name:My Application Status:active "
                           f"Environment:production CreatedAt:{t} UpdatedAt:{t}}}] Total:1 Page:1 PerPage:20}}\n")

    # The agent example: key and base URL from SOPHRA_*; the Reporter sends on Close.
    key = api.new_key()
    proc = go_run(go, tmp_path, "agent", agent, SOPHRA_API_KEY=key, SOPHRA_BASE_URL=api.url)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")
    with api.client(key) as http:
        vitals = eventually(lambda: (r := http.get("/api/agents/my-agent/vitals")).status_code == 200
                            and r.json()["vitals"], 15)
        assert [{k: v for k, v in row.items() if k not in ("id", "recorded_at")} for row in vitals] == [
            {"agent_id": "my-agent", "token_consumption": 2400, "token_limit": 100000, "hallucination_rate": 0.02,
             "loop_frequency": 3, "directive_conflicts": 0, "overall_health": "green",
             "metadata": {"tasksCompleted": 12}}]
        assert http.get("/api/agents").json()["agents"][0]["name"] == "My Production Agent"
        events = eventually(lambda: http.get("/api/agents/my-agent/events").json()["events"], 15)
        assert [(e["event_type"], e["details"], e["metadata"]) for e in events] == [
            ("tool_error", "Web search tool timed out", {"tool": "web_search", "attempt": 3})]


def check_go_tests(go, api, tmp_path):
    key, limited_key = api.new_key(), on_test_plan(api)
    out_file = tmp_path / "go-out.json"
    # The quota refusal's Retry-After runs to the end of the hour: keep it past the SDK's
    # 30 s retry budget (the go build and tests take well under 2 minutes).
    clear_of_the_hour_end(150)
    proc = subprocess.run([go, "test", "-count=1", "-v", "./..."], cwd=SDK_GO, capture_output=True, text=True,
                          timeout=600, env=go_env(SOPHRA_TEST_BASE_URL=api.url, SOPHRA_TEST_API_KEY=key,
                                                  SOPHRA_TEST_LIMITED_API_KEY=limited_key,
                                                  SOPHRA_TEST_LIMIT=str(TEST_LIMIT), SOPHRA_TEST_OUT=str(out_file)))
    assert proc.returncode == 0, proc.stdout[-8000:] + proc.stderr[-4000:]
    passed = set(re.findall(r"^\s*--- PASS: (Test\w+)", proc.stdout, re.M))
    assert "--- SKIP" not in proc.stdout and "--- FAIL" not in proc.stdout
    assert passed == go_tests() and {"TestLiveApplications", "TestLiveAgents", "TestLiveReporter",
                                     "TestLiveQuota"} <= passed
    out = json.loads(out_file.read_text())

    with api.client(key) as http:
        # applications, as the Go test left them
        app_id = out["application_id"]
        app = http.get(f"/v1/applications/{app_id}").json()
        assert app == {"id": app_id, "name": "Go Shop", "status": "maintenance", "environment": "staging",
                       "created_at": app["created_at"], "updated_at": app["updated_at"], "description": None,
                       "base_url": "https://go.example.com/", "config": {"monitoring": True, "alerts": True},
                       "metrics": {"uptime": 100.0, "response_time": 950.5 / 3, "error_rate": 0.25}}
        assert http.get("/v1/applications").json() == {"applications": [
            {k: app[k] for k in ("id", "name", "status", "environment", "created_at", "updated_at")}],
            "total": 1, "page": 1, "per_page": 20}
        minute = datetime.fromisoformat(out["metrics_minute"])
        iso = lambda t: t.strftime("%Y-%m-%dT%H:%M:%SZ")  # noqa: E731
        series = http.get(f"/v1/applications/{app_id}/metrics", params={
            "metric": "response_time", "start": iso(minute), "end": iso(minute + timedelta(minutes=2)),
            "granularity": "1m"}).json()
        assert series == {"metric": "response_time", "granularity": "1m", "data": [
            {"timestamp": iso(minute), "value": 175.25}, {"timestamp": iso(minute + timedelta(minutes=1)), "value": 600.0}]}
        [rule] = http.get(f"/v1/applications/{app_id}/alerts").json()["alerts"]
        assert {k: v for k, v in rule.items() if k not in ("created_at", "updated_at", "since")} == {
            "id": out["alert_id"], "application_id": app_id, "agent_id": None, "name": "Go error rate",
            "condition": {"metric": "error_rate", "operator": ">", "threshold": 0.1, "window": "10m",
                          "aggregation": "mean"},
            "actions": [{"type": "email", "recipients": ["oncall@company.com"]}], "enabled": True, "for": "2m",
            "repeat_interval": "4h", "silenced_until": out["alert_silenced_until"].replace("+00:00", "Z"),
            "state": "ok", "value": None, "evaluated_at": None, "warnings": None}
        [deployment] = http.get(f"/v1/applications/{app_id}/deployments").json()["deployments"]
        assert deployment == {"id": out["deployment_id"], "version": "v1.2.5", "status": "pending",
                              "started_at": deployment["started_at"], "completed_at": None,
                              "changes": ["Fixed payment processing bug", "Updated user interface"],
                              "description": "Bug fixes and performance improvements", "reason": None,
                              "config": {"rollback_on_error": True, "health_check_url": "/health"}}

        # the agent: two snapshots (the second one after the 429 was waited out), not the
        # third one the impatient client gave up on, and two events
        first_id, second_id = out["vital_ids"]
        vitals = http.get("/api/agents/go-agent/vitals").json()["vitals"]
        assert [{k: v for k, v in row.items() if k != "recorded_at"} for row in vitals] == [
            {"id": second_id, "agent_id": "go-agent", "token_consumption": 90000, "token_limit": 100000,
             "hallucination_rate": 0.06, "loop_frequency": 7, "directive_conflicts": 2, "overall_health": "amber",
             "metadata": {}},
            {"id": first_id, "agent_id": "go-agent", "token_consumption": 2400, "token_limit": 100000,
             "hallucination_rate": 0.02, "loop_frequency": 3, "directive_conflicts": 0, "overall_health": "green",
             "metadata": {"tasksCompleted": 12, "model": "claude-3-5-sonnet"}}]
        # the server stored the retried report no sooner than its 10 s per-agent limit allows
        at = [datetime.strptime(row["recorded_at"], "%Y-%m-%dT%H:%M:%S.%fZ") for row in vitals]
        assert at[0] - at[1] >= timedelta(seconds=9.95)
        conflict_id, tool_error_id = out["event_ids"]
        events = http.get("/api/agents/go-agent/events").json()["events"]
        assert [{k: v for k, v in e.items() if k != "recorded_at"} for e in events] == [
            {"id": tool_error_id, "agent_id": "go-agent", "event_type": "tool_error", "details": None,
             "metadata": {"tool": "web_search", "attempt": 3}},
            {"id": conflict_id, "agent_id": "go-agent", "event_type": "directive_conflict",
             "details": "System prompt vs user instruction mismatch", "metadata": {"instruction_a": "..."}}]

        [agent_rule] = http.get("/api/agents/go-agent/alerts").json()["alerts"]
        assert (agent_rule["id"], agent_rule["agent_id"], agent_rule["name"], agent_rule["condition"],
                agent_rule["actions"]) == (
            out["agent_alert_id"], "go-agent", "Hallucinating",
            {"metric": "hallucinationRate", "operator": ">", "threshold": 0.1, "window": "1m", "aggregation": "max"},
            [{"type": "webhook", "url": "https://hooks.example.com/go"}])  # a secret is shown once, on create

        # what the Reporter sent in the background
        background = eventually(lambda: (r := http.get("/api/agents/go-background/vitals")).status_code == 200
                                and r.json()["vitals"], 15)
        assert [{k: v for k, v in row.items() if k not in ("id", "recorded_at")} for row in background] == [
            {"agent_id": "go-background", "token_consumption": 700, "token_limit": 100000, "hallucination_rate": 0.2,
             "loop_frequency": 0, "directive_conflicts": 0, "overall_health": "red", "metadata": {"run": "nightly"}}]
        background_events = eventually(lambda: http.get("/api/agents/go-background/events").json()["events"], 15)
        assert [(e["event_type"], e["details"], e["metadata"]) for e in background_events] == [
            ("task_completed", "nightly run", {})]
        assert sorted(a["agent_id"] for a in http.get("/api/agents").json()["agents"]) == ["go-agent", "go-background"]
