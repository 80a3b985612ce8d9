"""The Java SDK (sdk/java) against the real server.

One `mvn -B -q test` runs the SDK's JUnit suite: its unit tests, and LiveServerTest against
this server with two fresh accounts. Surefire's reports must show every test run and none
skipped (a suite skipped for want of its environment fails here), and what the Java tests
wrote is then read back through the HTTP API, value for value.
"""
import os
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import httpx
import pytest

from .conftest import eventually

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[1]
SDK_JAVA = ROOT / "sdk" / "java"
REPORTS = SDK_JAVA / "target" / "surefire-reports"
# Test methods per class; a new test adds itself here, so a class that silently stops
# running (or is skipped) fails this module.
EXPECTED_TESTS = {
    "com.sophonz.BackoffTest": 5,
    "com.sophonz.BuilderTest": 4,
    "com.sophonz.CloseTest": 1,
    "com.sophonz.ErrorModelTest": 2,
    "com.sophonz.JsonTest": 5,
    "com.sophonz.ReporterTest": 3,
    "com.sophonz.LiveServerTest": 11,
}


@pytest.fixture(scope="module")
def mvn():
    proc = subprocess.run(["sh", str(ROOT / "deploy" / "install_debian_package.sh"), "/usr/bin/mvn", "maven"],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, f"Maven is required for the Java SDK's tests: {proc.stderr}"
    return shutil.which("mvn") or "/usr/bin/mvn"


def surefire_counts() -> dict:
    counts = {}
    for report in sorted(REPORTS.glob("TEST-*.xml")):
        suite = ET.parse(report).getroot()
        counts[suite.get("name")] = {k: int(suite.get(k)) for k in ("tests", "failures", "errors", "skipped")}
    return counts


# On a clean machine Maven first downloads its plugins and Jackson/JUnit (about a minute),
# on top of the api's start-up; later runs work from ~/.m2.
@pytest.mark.timeout(900)
def test_java_sdk_against_the_real_server(running_api, mvn):
    api = running_api()
    key, key2 = api.new_key(), api.new_key()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SOPHONZ_", "SOPHRA_"))}
    env.update(SOPHRA_TEST_BASE_URL=api.url, SOPHRA_TEST_API_KEY=key, SOPHRA_TEST_API_KEY_2=key2,
               # for the client built with no key nor address (a /v1 suffix is accepted)
               SOPHRA_API_KEY=key2, SOPHRA_BASE_URL=f"{api.url}/v1")
    shutil.rmtree(REPORTS, ignore_errors=True)  # counts below come from this run only
    proc = subprocess.run([mvn, "-B", "-q", "test"], cwd=SDK_JAVA, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-5000:]
    # the reference example's System.out.println(apps): the server's JSON as sent
    assert '"applications":[{"id":"app_' in proc.stdout and '"name":"My Application"' in proc.stdout
    assert surefire_counts() == {name: {"tests": n, "failures": 0, "errors": 0, "skipped": 0}
                                 for name, n in EXPECTED_TESTS.items()}

    with api.client(key) as http:
        # applications the Java tests made (the doomed one deleted), with their stored fields
        apps = http.get("/v1/applications", params={"per_page": 100}).json()["applications"]
        assert sorted(a["name"] for a in apps) == ["Java Metrics", "Java Ops", "Java Shop"]
        shop_id = next(a["id"] for a in apps if a["name"] == "Java Shop")
        shop = http.get(f"/v1/applications/{shop_id}").json()
        assert {k: shop[k] for k in ("name", "description", "status", "environment", "base_url", "config")} == {
            "name": "Java Shop", "description": "from java", "status": "maintenance", "environment": "staging",
            "base_url": "https://java.example.com/", "config": {"monitoring": True}}
        ops_id = next(a["id"] for a in apps if a["name"] == "Java Ops")
        [deployment] = http.get(f"/v1/applications/{ops_id}/deployments").json()["deployments"]
        assert {k: deployment[k] for k in ("version", "description", "changes", "config")} == {
            "version": "v1.2.5", "description": "Bug fixes and performance improvements",
            "changes": ["Fixed payment processing bug", "Updated user interface"],
            "config": {"rollback_on_error": True, "health_check_url": "/health"}}
        assert http.get(f"/v1/applications/{ops_id}/alerts").json() == {"alerts": []}

        # the agent reports: values as the Java tests sent them
        def vitals(agent: str, count: int) -> list[dict]:
            rows = eventually(lambda: (r := http.get(f"/api/agents/{agent}/vitals")).status_code == 200
                              and len(r.json()["vitals"]) >= count and r.json()["vitals"], 15)
            assert rows, agent
            return [{k: v for k, v in row.items() if k not in ("id", "recorded_at")} for row in rows]

        assert vitals("java-agent", 1) == [{
            "agent_id": "java-agent", "token_consumption": 2400, "token_limit": 100000, "hallucination_rate": 0.02,
            "loop_frequency": 3, "directive_conflicts": 0, "overall_health": "green", "metadata": {}}]
        # the second report, first refused with 429, was retried after its Retry-After and stored
        assert [(v["token_consumption"], v["loop_frequency"]) for v in vitals("java-rate-limited", 2)] == [
            (200, 2), (100, 1)]
        # the impatient client gave up: one report stored, not two
        assert len(vitals("java-impatient", 1)) == 1
        assert vitals("java-reporter", 1) == [{
            "agent_id": "java-reporter", "token_consumption": 90000, "token_limit": 100000,
            "hallucination_rate": 0.06, "loop_frequency": 7, "directive_conflicts": 2, "overall_health": "amber",
            "metadata": {"tasksCompleted": 12}}]
        assert http.get("/api/agents/java-bad/vitals").status_code == 404  # the 400 stored nothing
        events = http.get("/api/agents/java-reporter/events").json()["events"]
        assert [(e["event_type"], e["details"], e["metadata"]) for e in events] == [
            ("task_completed", "nightly run", {})]
        agents = {a["agent_id"]: a["name"] for a in http.get("/api/agents").json()["agents"]}
        assert agents == {"java-agent": "Java Agent", "java-rate-limited": "java-rate-limited",
                          "java-impatient": "java-impatient", "java-reporter": "Java Reporter"}

    # the reference example's account holds exactly its one application
    with api.client(key2) as http:
        assert [a["name"] for a in http.get("/v1/applications").json()["applications"]] == ["My Application"]
