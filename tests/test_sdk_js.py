"""The JavaScript SDK (sdk/sophra-sdk.js) against the real server.

The reference's Node examples run verbatim under node (tests/js/reference/), the browser
example runs in headless Chromium from another origin, and the retry rules (Retry-After
honoured, bounded give-up, no retry on 4xx) are observed end to end. What the SDK
reported is then read back through the HTTP API.
"""
import functools
import html
import http.server
import json
import os
import re
import shutil
import subprocess
import threading
import time
import uuid
from pathlib import Path

import httpx
import pytest

from .conftest import eventually, free_port

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[1]
JS = ROOT / "tests" / "js"
SDK = ROOT / "sdk" / "sophra-sdk.js"
NODE = shutil.which("node") or "/usr/bin/node"
ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def new_key(url: str) -> str:
    """A fresh key, hence a fresh account: agents and rate limits of other tests are invisible."""
    res = httpx.post(f"{url}/api/keys", json={"email": f"sdk-{uuid.uuid4().hex}@example.com"}, timeout=10)
    assert res.status_code == 201, res.text
    return res.json()["key"]


@pytest.fixture
def api(running_api):
    return running_api()


def node(*args: str, env: dict | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("SOPHRA_", "SNIPPET_"))}
    return subprocess.run([NODE, *args], capture_output=True, text=True, timeout=timeout, env={**clean, **(env or {})})


def run_reference(api, tmp_path, snippet: str, key: str, **env) -> tuple[subprocess.CompletedProcess, dict | None]:
    """Install the SDK the way the reference says (download it from the server next to the
    code), then run one reference snippet with the key and base URL from the environment."""
    project = tmp_path / snippet.removesuffix(".js")
    project.mkdir()
    served = httpx.get(f"{api.url}/sdk/sophra-sdk.js", timeout=10)
    assert served.status_code == 200 and served.content == SDK.read_bytes()
    (project / "sophra-sdk.js").write_bytes(served.content)
    shutil.copy(JS / "reference" / snippet, project / snippet)
    shutil.copy(JS / "run_reference.js", project / "run_reference.js")
    proc = node(str(project / "run_reference.js"), str(project / snippet),
                env={"SOPHRA_API_KEY": key, "SOPHRA_BASE_URL": api.url, **env})
    summary = json.loads(proc.stdout.splitlines()[-1]) if proc.returncode == 0 and proc.stdout.strip() else None
    return proc, summary


def sdk_calls(plan: dict) -> dict:
    """Run SDK calls in order from a plan (tests/js/sdk_calls.js); results and HTTP exchanges."""
    proc = node(str(JS / "sdk_calls.js"), json.dumps({"sdk": str(SDK), **plan}))
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    return json.loads(proc.stdout)


def stored_vitals(api, key: str, agent: str, count: int) -> list[dict]:
    """The agent's vitals once at least `count` have landed, newest first."""
    with api.client(key) as http:
        def read():
            res = http.get(f"/api/agents/{agent}/vitals")
            return res.status_code == 200 and len(res.json()["vitals"]) >= count and res.json()["vitals"]
        vitals = eventually(read, 15)
    assert vitals, f"fewer than {count} vitals for {agent!r}"
    return vitals


def vital_row(created: dict, **values) -> dict:
    """The stored row for a POST /api/vitals answer: id and time from the answer, the
    rest given literally by the test."""
    assert ISO_MS.match(created["vital"]["recorded_at"])
    return {"id": created["vital"]["id"], "agent_id": created["vital"]["agent_id"], **values,
            "recorded_at": created["vital"]["recorded_at"]}


def ok_call(summary: dict, index: int = 0) -> dict:
    call = summary["calls"][index]
    assert call["ok"], call
    return call["value"]


# ---- Node: the reference's examples, verbatim -------------------------------------------

def test_reference_node_usage(api, tmp_path):
    key = new_key(api.url)
    proc, summary = run_reference(api, tmp_path, "node_usage.js", key)
    assert (proc.returncode, proc.stderr) == (0, "")
    created = ok_call(summary)
    assert created["success"] is True and created["health"] == "green"
    assert stored_vitals(api, key, "my-agent", 1) == [vital_row(
        created, token_consumption=2400, token_limit=100000, hallucination_rate=0.02, loop_frequency=3,
        directive_conflicts=0, overall_health="green", metadata={})]


def test_reference_custom_metrics_are_stored_in_metadata(api, tmp_path):
    key = new_key(api.url)
    proc, summary = run_reference(api, tmp_path, "custom_metrics.js", key)
    assert (proc.returncode, proc.stderr) == (0, "")
    created = ok_call(summary)
    assert stored_vitals(api, key, "my-agent", 1) == [vital_row(
        created, token_consumption=3200, token_limit=100000, hallucination_rate=0.03, loop_frequency=1,
        directive_conflicts=0, overall_health="green",
        metadata={"tasksCompleted": 12, "apiCallsOut": 8, "latencyP95Ms": 340, "model": "claude-3-5-sonnet"})]


def test_reference_discrete_events(api, tmp_path):
    key = new_key(api.url)
    proc, summary = run_reference(api, tmp_path, "events.js", key)
    assert (proc.returncode, proc.stderr) == (0, "")
    conflict, error = ok_call(summary, 0), ok_call(summary, 1)
    for answer in (conflict, error):
        assert isinstance(answer["event"].pop("id"), int)
        assert ISO_MS.match(answer["event"].pop("recorded_at"))
    assert conflict == {"success": True, "event": {
        "agent_id": "my-agent", "event_type": "directive_conflict", "details": "System prompt vs user instruction mismatch",
        "metadata": {"instruction_a": "...", "instruction_b": "..."}}}
    assert error == {"success": True, "event": {
        "agent_id": "my-agent", "event_type": "tool_error", "details": "Web search tool timed out",
        "metadata": {"tool": "web_search", "attempt": 3}}}
    with httpx.Client(base_url=api.url, headers={"Authorization": f"Bearer {key}"}) as http:
        stored = eventually(lambda: (r := http.get("/api/agents/my-agent/events")).status_code == 200
                            and len(r.json()["events"]) == 2 and r.json()["events"], 15)
    assert [(e["event_type"], e["details"], e["metadata"]) for e in stored] == [
        ("tool_error", "Web search tool timed out", {"tool": "web_search", "attempt": 3}),
        ("directive_conflict", "System prompt vs user instruction mismatch", {"instruction_a": "...", "instruction_b": "..."}),
    ]


def test_reference_error_handling(api, tmp_path):
    # The reference's `{ ... }` placeholders are replaced by real payloads, one agent each
    # (see tests/js/reference/error_handling.js).
    key = new_key(api.url)
    proc, summary = run_reference(api, tmp_path, "error_handling.js", key)
    assert (proc.returncode, proc.stderr) == (0, "")
    awaited, fire_and_forget = ok_call(summary, 0), ok_call(summary, 1)
    assert stored_vitals(api, key, "error-handling-awaited", 1) == [vital_row(
        awaited, token_consumption=1200, token_limit=100000, hallucination_rate=0.02, loop_frequency=4,
        directive_conflicts=1, overall_health="green", metadata={})]
    assert stored_vitals(api, key, "error-handling-fire-and-forget", 1) == [vital_row(
        fire_and_forget, token_consumption=90000, token_limit=100000, hallucination_rate=0.06, loop_frequency=7,
        directive_conflicts=2, overall_health="amber", metadata={})]


def test_reference_error_handling_when_reports_fail(api, tmp_path):
    # Same snippet with a rejected key: both failures are caught as the reference intends,
    # the script ends normally and nothing is stored.
    proc, summary = run_reference(api, tmp_path, "error_handling.js", "not-a-sophra-key")
    assert proc.returncode == 0, proc.stderr
    message = "Clé API invalide ou expirée. Obtenez la vôtre sur /onboarding.html"
    assert proc.stderr.startswith(f"[sophra] Vitals report failed: {message}\nSophraError: {message}")
    assert [(c["ok"], c["error"]["status"]) for c in summary["calls"]] == [(False, 401), (False, 401)]


def test_reference_non_blocking_monitoring(api, tmp_path):
    key = new_key(api.url)
    proc, summary = run_reference(api, tmp_path, "non_blocking.js", key)
    assert (proc.returncode, proc.stderr) == (0, "")
    created = ok_call(summary)
    # The agent's own step ran while the report was still in flight.
    assert summary["result"]["step"] == 2
    assert summary["result"]["processedAtMs"] < summary["calls"][0]["settledMs"]
    assert stored_vitals(api, key, "my-agent", 1) == [vital_row(
        created, token_consumption=5000, token_limit=8000, hallucination_rate=0.01, loop_frequency=2,
        directive_conflicts=0, overall_health="green", metadata={})]


def test_reference_graceful_degradation(api, tmp_path):
    key = new_key(api.url)
    proc, summary = run_reference(api, tmp_path, "graceful_degradation.js", key)
    assert (proc.returncode, proc.stderr) == (0, "")
    created = ok_call(summary)
    assert summary["result"] == {"agentKeptRunning": True}
    assert stored_vitals(api, key, "my-agent", 1) == [vital_row(
        created, token_consumption=700, token_limit=100000, hallucination_rate=0.2, loop_frequency=0,
        directive_conflicts=0, overall_health="red", metadata={"run": "nightly"})]


def test_reference_graceful_degradation_when_sophra_is_unreachable(api, tmp_path):
    # Nothing listens on the base URL: the SDK retries within its bound (shortened here by
    # the runner), then safeReport logs and the agent carries on.
    closed = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    proc, summary = run_reference(api, tmp_path, "graceful_degradation.js", "sk_live_unused",
                                  SOPHRA_BASE_URL=closed, SNIPPET_MAX_RETRY_MS="1000")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == "[sophra] Report skipped: [sophra] network error: fetch failed\n"
    assert summary["result"] == {"agentKeptRunning": True}
    assert summary["calls"][0]["error"]["status"] == 0
    assert time.monotonic() - started < 10


# ---- Retry rules, end to end ----------------------------------------------------------

def test_rate_limited_report_waits_for_retry_after_then_succeeds(api):
    key = new_key(api.url)
    metrics = [{"tokenConsumption": 100, "loopCount": 1}, {"tokenConsumption": 200, "loopCount": 2}]
    out = sdk_calls({"client": {"apiKey": key, "baseUrl": api.url},
                     "calls": [["reportVitals", {"agentId": "rate-limited", "metrics": m}] for m in metrics]})
    first, second = out["results"]
    assert first["ok"] and second["ok"], out
    assert first["value"]["vital"]["id"] != second["value"]["vital"]["id"]
    assert second["endMs"] - second["startMs"] >= 9000
    # What was on the wire: the refusal, then a retry no sooner than its Retry-After.
    statuses = [(e["status"], e["retryAfter"] is not None) for e in out["exchanges"]]
    assert statuses == [(200, False), (429, True), (200, False)], out["exchanges"]
    refused, retried = out["exchanges"][1], out["exchanges"][2]
    assert retried["startMs"] - refused["endMs"] >= int(refused["retryAfter"]) * 1000
    stored = stored_vitals(api, key, "rate-limited", 2)
    assert [(v["id"], v["token_consumption"], v["loop_frequency"]) for v in stored] == [
        (second["value"]["vital"]["id"], 200, 2), (first["value"]["vital"]["id"], 100, 1)]


def test_rate_limited_report_gives_up_within_max_retry_ms(api):
    key = new_key(api.url)
    out = sdk_calls({"client": {"apiKey": key, "baseUrl": api.url, "maxRetryMs": 1500},
                     "calls": [["reportVitals", {"agentId": "impatient"}]] * 2})
    first, second = out["results"]
    assert first["ok"] and not second["ok"]
    assert second["error"]["status"] == 429
    assert second["error"]["body"]["error"] == "Rate limit exceeded"
    assert second["error"]["body"]["retry_after_ms"] > 1500
    # The server asked for more than the budget, so the SDK gives up instead of sleeping.
    assert second["endMs"] - second["startMs"] < 5000
    assert [e["status"] for e in out["exchanges"]] == [200, 429]


def test_bad_payload_is_rejected_at_once_without_retry(api):
    key = new_key(api.url)
    out = sdk_calls({"client": {"apiKey": key, "baseUrl": api.url},
                     "calls": [["reportVitals", {"agentId": "bad", "metrics": {"hallucinationRate": 1.5}}]]})
    [result] = out["results"]
    assert not result["ok"]
    assert result["error"]["status"] == 400
    assert "metrics.hallucinationRate" in result["error"]["message"]
    assert result["error"]["body"]["field"] == "metrics.hallucinationRate"
    assert [e["status"] for e in out["exchanges"]] == [400]


@pytest.mark.parametrize("wrong_key", ["not-a-sophra-key", "sk_live_" + "0" * 32])
def test_wrong_key_is_rejected_at_once_with_401(api, wrong_key):
    out = sdk_calls({"client": {"apiKey": wrong_key, "baseUrl": api.url},
                     "calls": [["reportVitals", {"agentId": "nobody"}], ["getAgents"]]})
    for result in out["results"]:
        assert not result["ok"]
        assert result["error"]["status"] == 401
        assert result["error"]["message"] == "Clé API invalide ou expirée. Obtenez la vôtre sur /onboarding.html"
    assert [e["status"] for e in out["exchanges"]] == [401, 401]


def test_read_calls(api):
    key = new_key(api.url)
    write = sdk_calls({"client": {"apiKey": key, "baseUrl": api.url}, "useDefault": True,
                       "calls": [["reportVitals", {"agentId": f"reader-{i}", "agentName": f"Reader {i}"}] for i in (1, 2)]})
    assert all(r["ok"] for r in write["results"])
    for i in (1, 2):
        stored_vitals(api, key, f"reader-{i}", 1)
    out = sdk_calls({"client": {"apiKey": key, "baseUrl": api.url},
                     "calls": [["getVitals", "reader-1", {"limit": 1}], ["getVitals", "nobody"], ["getAgents"]]})
    vitals, missing, agents = out["results"]
    assert vitals["ok"] and [v["id"] for v in vitals["value"]["vitals"]] == [write["results"][0]["value"]["vital"]["id"]]
    assert (missing["ok"], missing["error"]["status"]) == (False, 404)
    assert agents["ok"] and agents["value"]["success"] is True
    assert sorted((a["agent_id"], a["name"]) for a in agents["value"]["agents"]) == [
        ("reader-1", "Reader 1"), ("reader-2", "Reader 2")]
    assert out["exchanges"][0]["url"] == f"{api.url}/api/agents/reader-1/vitals?limit=1"


def test_sdk_behaviour_with_a_fake_fetch():
    proc = node(str(JS / "unit.js"), str(SDK))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("ok ")


# ---- Browser ----------------------------------------------------------------------------

@pytest.fixture(scope="session")
def chromium():
    proc = subprocess.run(["sh", str(ROOT / "deploy" / "install_debian_package.sh"), "/usr/bin/chromium", "chromium"], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, f"Chromium is required for the browser SDK test: {proc.stderr}"
    return "/usr/bin/chromium"


class _PageHandler(http.server.BaseHTTPRequestHandler):
    def __init__(self, *args, page: bytes, **kwargs):
        self.page = page
        super().__init__(*args, **kwargs)

    def do_GET(self):
        if self.path.split("?")[0] != "/browser.html":
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(self.page)))
        self.end_headers()
        self.wfile.write(self.page)

    def log_message(self, *args):
        pass


@pytest.fixture
def page_origin(api):
    """tests/js/browser.html, pointed at the api, served from a different origin."""
    page = (JS / "browser.html").read_text().replace("{{SOPHRA_API_URL}}", api.url).encode()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_PageHandler, page=page))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_browser_usage_from_another_origin(api, chromium, page_origin, tmp_path):
    key = new_key(api.url)
    assert page_origin != api.url
    proc = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'chromium'}", "--virtual-time-budget=15000",
         "--dump-dom", f"{page_origin}/browser.html?key={key}"],
        capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    found = re.search(r'<pre id="result">(.*?)</pre>', proc.stdout, re.S)
    assert found, proc.stdout
    outcome = json.loads(html.unescape(found.group(1)))
    assert outcome["ok"] is True, outcome
    created = outcome["result"]
    assert created["success"] is True and created["health"] == "green"
    assert stored_vitals(api, key, "browser-agent", 1) == [vital_row(
        created, token_consumption=800, token_limit=100000, hallucination_rate=0.01, loop_frequency=0,
        directive_conflicts=0, overall_health="green", metadata={})]
