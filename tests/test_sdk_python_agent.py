"""The Python agent SDK (sdk/python/sophonz: AgentClient, AsyncAgentClient,
BackgroundReporter) against the real server.

Every example of sdk/python/README.md's agent section (reference 003's JavaScript
examples translated) runs verbatim in a fresh interpreter, a test driver appended where
the example only defines functions, and what it reported is read back through the HTTP
API. Then the retry rules end to end (Retry-After honoured, bounded give-up, no retry on
other 4xx), asyncio never blocking the loop, and the background queue's exact counts.
"""
import asyncio
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest


from .conftest import RunningApi, cap_topic, eventually, free_port, silent_server, test_settings

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[1]
SDK_PY = ROOT / "sdk" / "python"
README = SDK_PY / "README.md"
ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
BAD_KEY_MESSAGE = "Clé API invalide ou expirée. Obtenez la vôtre sur /onboarding.html"

sys.path.insert(0, str(SDK_PY))
from sophonz import AgentClient, AsyncAgentClient, SophonzError  # noqa: E402  (the package source)
from sophonz._backoff import server_wait  # noqa: E402


@pytest.fixture(scope="module")
def api(kafka_bootstrap, clickhouse_dsn, tmp_path_factory):
    # One api for the module (make_settings at module scope); each test makes its own
    # account, so agents and per-agent rate limits never meet.
    settings = test_settings(tmp_path_factory.mktemp("sdk-py-agent"), kafka_bootstrap, clickhouse_dsn)
    with RunningApi(settings) as running:
        yield running


# ---- helpers -------------------------------------------------------------------------------

def readme_examples() -> dict[str, str]:
    """The README's tested blocks: a ```python block right after `<!-- example: NAME -->`."""
    found = re.findall(r"<!-- example: (\w+) -->\n```python\n(.*?)```", README.read_text(), re.S)
    return dict(found)


def run_example(tmp_path: Path, name: str, key: str, base_url: str, driver: str = "",
                timeout: float = 60) -> subprocess.CompletedProcess:
    """One README example as a script, exactly as written, then `driver` (test code)."""
    script = tmp_path / f"{name}.py"
    script.write_text(readme_examples()[name] + driver)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SOPHONZ_", "SOPHRA_", "PYTHONPATH"))}
    env.update(PYTHONPATH=str(SDK_PY), SOPHRA_API_KEY=key, SOPHRA_BASE_URL=base_url)
    return subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=timeout,
                          cwd=tmp_path, env=env)


def stored(api, key: str, agent: str, what: str, count: int) -> list[dict]:
    """The agent's vitals or events once exactly `count` have landed, newest first."""
    with api.client(key) as http:
        def read():
            res = http.get(f"/api/agents/{agent}/{what}")
            return res.status_code == 200 and len(res.json()[what]) == count and res.json()[what]
        rows = eventually(read, 15)
    assert rows, f"not {count} {what} for {agent!r}"
    return rows


def vitals(api, key: str, agent: str, count: int) -> list[dict]:
    """Stored vitals without their server-made id and time (checked for form here)."""
    rows = stored(api, key, agent, "vitals", count)
    for row in rows:
        assert isinstance(row.pop("id"), int) and ISO_MS.match(row.pop("recorded_at"))
    return rows


def events(api, key: str, agent: str, count: int) -> list[tuple]:
    return [(e["event_type"], e["details"], e["metadata"]) for e in stored(api, key, agent, "events", count)]


def vital(agent: str, tokens=0, limit=100000, hallucination=0.0, loops=0, conflicts=0, health="green",
          metadata=None) -> dict:
    return {"agent_id": agent, "token_consumption": tokens, "token_limit": limit, "hallucination_rate": hallucination,
            "loop_frequency": loops, "directive_conflicts": conflicts, "overall_health": health,
            "metadata": metadata or {}}


class Recording(AgentClient):
    """An AgentClient that notes each HTTP exchange: (status, least wait asked, start, end)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.exchanges: list[tuple] = []

    def attempt(self, prepared):
        start = time.monotonic()
        try:
            answer = super().attempt(prepared)
        except SophonzError as err:
            self.exchanges.append((err.status, server_wait(err), start, time.monotonic()))
            raise
        self.exchanges.append((200, None, start, time.monotonic()))
        return answer

    @property
    def statuses(self) -> list[int]:
        return [e[0] for e in self.exchanges]


def error_of(call) -> SophonzError:
    with pytest.raises(SophonzError) as caught:
        call()
    return caught.value


# ---- the README's examples, verbatim ---------------------------------------------------------

TESTED_EXAMPLES = {"node_usage", "custom_metrics", "events", "error_handling", "non_blocking",
                   "graceful_degradation", "reads", "asyncio_usage", "background"}


def test_every_readme_example_is_run_here():
    assert set(readme_examples()) == TESTED_EXAMPLES


def test_example_usage(api, tmp_path):
    key = api.new_key()
    proc = run_example(tmp_path, "node_usage", key, api.url)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")
    assert vitals(api, key, "my-agent", 1) == [vital("my-agent", 2400, 100000, 0.02, 3, 0, "green")]
    with api.client(key) as http:
        assert [(a["agent_id"], a["name"]) for a in http.get("/api/agents").json()["agents"]] == [
            ("my-agent", "My Production Agent")]


def test_example_custom_metrics_are_stored_in_metadata(api, tmp_path):
    key = api.new_key()
    proc = run_example(tmp_path, "custom_metrics", key, api.url)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")
    assert vitals(api, key, "my-agent", 1) == [vital("my-agent", 3200, 100000, 0.03, 1, 0, "green", metadata={
        "tasksCompleted": 12, "apiCallsOut": 8, "latencyP95Ms": 340, "model": "claude-3-5-sonnet"})]


def test_example_discrete_events(api, tmp_path):
    key = api.new_key()
    proc = run_example(tmp_path, "events", key, api.url)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")
    assert events(api, key, "my-agent", 2) == [
        ("tool_error", "Web search tool timed out", {"tool": "web_search", "attempt": 3}),
        ("directive_conflict", "System prompt vs user instruction mismatch",
         {"instruction_a": "...", "instruction_b": "..."})]


def test_example_error_handling(api, tmp_path):
    key = api.new_key()
    proc = run_example(tmp_path, "error_handling", key, api.url)  # the background report is sent at exit
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")
    assert vitals(api, key, "my-agent", 1) == [vital("my-agent", 1200, 100000, 0.02, 4, 1, "green")]
    assert vitals(api, key, "my-other-agent", 1) == [vital("my-other-agent", 90000, 100000, 0.06, 7, 2, "amber")]


def test_example_error_handling_when_reports_fail(api, tmp_path):
    # A rejected key: the blocking report's failure is logged, the background one counted.
    driver = "\nprint(monitor.flush(10), monitor.sent, monitor.drops, monitor.last_error.status)\n"
    proc = run_example(tmp_path, "error_handling", "not-a-sophra-key", api.url, driver)
    assert (proc.returncode, proc.stderr) == (0, f"[sophra] Vitals report failed: {BAD_KEY_MESSAGE}\n")
    assert proc.stdout == ("True 0 {'queue_full': 0, 'invalid': 0, 'refused': 1, 'gave_up': 0, 'closed': 0} "
                           "401\n")


def test_example_non_blocking_monitoring(api, tmp_path):
    key = api.new_key()
    driver = """
import asyncio, json
async def process_next_step(state):  # the agent's own work: is the report still in flight?
    return {"step": state["step"] + 1, "reports_pending": monitor.pending}
result = asyncio.run(run_agent_step({"step": 1, "metrics": {
    "tokenConsumption": 5000, "tokenLimit": 8000, "hallucinationRate": 0.01, "loopCount": 2, "conflictCount": 0}}))
print(json.dumps({"result": result, "flushed": monitor.flush(15), "sent": monitor.sent, "dropped": monitor.dropped}))
"""
    proc = run_example(tmp_path, "non_blocking", key, api.url, driver)
    assert (proc.returncode, proc.stderr) == (0, "")
    # The agent's step ran while the report was still pending, and the report then landed.
    assert json.loads(proc.stdout) == {"result": {"step": 2, "reports_pending": 1}, "flushed": True, "sent": 1,
                                       "dropped": 0}
    assert vitals(api, key, "my-agent", 1) == [vital("my-agent", 5000, 8000, 0.01, 2, 0, "green")]


GRACEFUL_DRIVER = """
safe_report("my-agent", {"tokenConsumption": 700, "hallucinationRate": 0.2, "loopCount": 0, "conflictCount": 0},
            agent_name="Degrades Gracefully", metadata={"run": "nightly"})
print("agent kept running")
"""


def test_example_graceful_degradation(api, tmp_path):
    key = api.new_key()
    proc = run_example(tmp_path, "graceful_degradation", key, api.url, GRACEFUL_DRIVER)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "agent kept running\n", "")
    assert vitals(api, key, "my-agent", 1) == [vital("my-agent", 700, 100000, 0.2, 0, 0, "red",
                                                     metadata={"run": "nightly"})]


def test_example_graceful_degradation_when_sophra_is_unreachable(tmp_path):
    # Nothing listens: the client retries for its budget (shortened to 1 s by the driver),
    # then safe_report logs and the agent carries on.
    closed = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    proc = run_example(tmp_path, "graceful_degradation", "sk_live_unused", closed,
                       "\nsophra.max_retry = 1.0\n" + GRACEFUL_DRIVER)
    took = time.monotonic() - started
    assert (proc.returncode, proc.stdout) == (0, "agent kept running\n")
    assert proc.stderr == f"[sophra] Report skipped: Cannot reach {closed}/api/vitals: [Errno 111] Connection refused\n"
    assert 1.0 <= took < 8


def test_example_reads(api, tmp_path):
    key = api.new_key()
    sdk = AgentClient(key, api.url)
    sdk.report_vitals("my-agent", {"tokenConsumption": 99000, "tokenLimit": 100000})
    sdk.report_vitals("helper", {"hallucinationRate": 0.1})
    vitals(api, key, "my-agent", 1)
    vitals(api, key, "helper", 1)
    proc = run_example(tmp_path, "reads", key, api.url)
    assert (proc.returncode, proc.stderr) == (0, "")
    lines = proc.stdout.splitlines()
    assert sorted(lines[:2]) == ["helper warning amber", "my-agent critical red"]
    assert lines[2:] == ["{'interventions_today': 0, 'tokens_saved': 0, 'conflicts_resolved': 0, "
                         "'tokens_saved_measured': 0} {} []"]


def test_example_asyncio(api, tmp_path):
    key = api.new_key()
    proc = run_example(tmp_path, "asyncio_usage", key, api.url)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "amber\n400 metrics.hallucinationRate\n", "")
    assert vitals(api, key, "async-agent", 1) == [vital("async-agent", 1500, 100000, 0.07, 0, 0, "amber")]
    assert events(api, key, "async-agent", 1) == [("task_completed", "Summarised 12 tickets", {})]


def test_example_background(api, tmp_path):
    key = api.new_key()
    proc = run_example(tmp_path, "background", key, api.url)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "4 0\n", "")
    assert events(api, key, "batch-agent", 3) == [("step_done", f"step {i}", {"step": i}) for i in (2, 1, 0)]
    assert vitals(api, key, "batch-agent", 1) == [vital("batch-agent", 4200, loops=3)]


# ---- blocking client: retry rules end to end ---------------------------------------------------

def test_rate_limited_report_waits_for_retry_after_then_succeeds(api):
    key = api.new_key()
    sdk = Recording(key, api.url)
    first = sdk.report_vitals("rate-limited", {"tokenConsumption": 100, "loopCount": 1})
    started = time.monotonic()
    second = sdk.report_vitals("rate-limited", {"tokenConsumption": 200, "loopCount": 2})
    assert time.monotonic() - started >= 8  # the server's 10 s per agent, less the first answer's time
    assert first["vital"]["id"] != second["vital"]["id"]
    # What was on the wire: the refusal, then one retry no sooner than it asked.
    assert sdk.statuses == [200, 429, 200]
    (_, asked, _, refused_at), (_, _, retried_at, _) = sdk.exchanges[1], sdk.exchanges[2]
    assert 0 < asked <= 10 and retried_at - refused_at >= asked
    assert [(v["id"], v["token_consumption"], v["loop_frequency"]) for v in stored(api, key, "rate-limited", "vitals", 2)] \
        == [(second["vital"]["id"], 200, 2), (first["vital"]["id"], 100, 1)]


def test_rate_limited_report_gives_up_at_once_past_max_retry(api):
    key = api.new_key()
    sdk = Recording(key, api.url, max_retry=1.5)
    sdk.report_vitals("impatient")
    started = time.monotonic()
    err = error_of(lambda: sdk.report_vitals("impatient"))
    # The server asked for more than the budget, so the client gives up instead of sleeping.
    assert time.monotonic() - started < 1.5
    assert (err.status, err.error, err.field) == (429, "Rate limit exceeded", None)
    assert err.message.startswith("One vitals report per agent per 10 s; retry in ")
    assert err.retry_after == err.body["retry_after_seconds"] and 1 <= err.retry_after <= 10
    assert 1500 < err.body["retry_after_ms"] <= 10_000
    assert sdk.statuses == [200, 429]


def test_a_503_is_retried_after_retry_after_within_the_budget_then_raised(running_api):
    """Kafka refusing the vitals topic (the broker caps its record size): the api answers
    503 with Retry-After: 1, which the client waits out between tries until its budget
    ends, then raises; nothing was stored."""
    from pipeline.topics import AGENT_VITALS

    api = running_api()  # topics of its own: its vitals topic is capped
    key = api.new_key()
    cap_topic(api.settings.kafka_bootstrap_servers, api.settings.topic(AGENT_VITALS.name), 64)
    with api.client(key) as http:  # the broker applies the cap a moment after it acknowledged it
        probes = iter(range(100))
        assert eventually(lambda: http.post("/api/vitals", json={"agentId": f"probe-{next(probes)}", "metrics": {}})
                          .status_code == 503, 30)
    sdk = Recording(key, api.url, max_retry=2.5)
    started = time.monotonic()
    err = error_of(lambda: sdk.report_vitals("kafka-refuses", {"tokenConsumption": 1}))
    assert time.monotonic() - started < 2.5 + 2 * sdk.timeout
    assert (err.status, err.error, err.retry_after) == (503, "Service unavailable", 1)
    assert err.message.startswith("Record not stored: ")
    assert set(sdk.statuses) == {503} and len(sdk.statuses) >= 2  # retried, and gave up
    for (_, asked, _, refused_at), (_, _, retried_at, _) in zip(sdk.exchanges, sdk.exchanges[1:]):
        assert asked == 1 and retried_at - refused_at >= 1
    with api.client(key) as http:
        assert http.get("/api/agents/kafka-refuses/vitals").status_code == 404


def test_bad_input_and_bad_key_are_refused_at_once_without_retry(api):
    sdk = Recording(api.new_key(), api.url)
    err = error_of(lambda: sdk.report_vitals("bad", {"hallucinationRate": 1.5}))
    assert (err.status, err.error, err.field) == (400, "Invalid request", "metrics.hallucinationRate")
    assert err.message.startswith("metrics.hallucinationRate: ")
    err = error_of(lambda: sdk.report_event("bad", "not a slug"))
    assert (err.status, err.field) == (400, "type")
    assert sdk.statuses == [400, 400]
    wrong = Recording("sk_live_" + "0" * 32, api.url)
    for call in (lambda: wrong.report_vitals("nobody"), wrong.list_agents):
        err = error_of(call)
        assert (err.status, err.message, err.field, err.retry_after) == (401, BAD_KEY_MESSAGE, None, None)
    assert wrong.statuses == [401, 401]


def test_no_answer_is_retried_within_the_budget_then_raised():
    sdk = Recording("sk_live_unused", f"http://127.0.0.1:{free_port()}", max_retry=1)
    started = time.monotonic()
    err = error_of(lambda: sdk.report_event("a", "tool_error"))
    assert 1 <= time.monotonic() - started < 4
    assert (err.status, err.error) == (0, "Network error")
    assert len(sdk.exchanges) >= 2 and set(sdk.statuses) == {0}
    no_retry = Recording("sk_live_unused", f"http://127.0.0.1:{free_port()}", max_retry=0)
    error_of(lambda: no_retry.report_event("a", "tool_error"))
    assert no_retry.statuses == [0]


def test_reads_key_and_base_url(api, monkeypatch):
    key = api.new_key()
    for name in ("SOPHONZ_API_KEY", "SOPHRA_API_KEY", "SOPHONZ_BASE_URL", "SOPHRA_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    # Without a key the client is still made; each call fails at once (one attempt, which
    # fails before sending anything) and is not retried.
    keyless = Recording(base_url=api.url)
    err = error_of(keyless.list_agents)
    assert (err.status, err.error) == (0, "No API key") and keyless.statuses == [0]
    # The key from SOPHRA_API_KEY, the /v1 Client's base URL from SOPHONZ_BASE_URL.
    monkeypatch.setenv("SOPHRA_API_KEY", key)
    monkeypatch.setenv("SOPHONZ_BASE_URL", f"{api.url}/v1/")
    sdk = AgentClient()
    assert (sdk.api_key, sdk.base_url) == (key, api.url)
    created = sdk.report_vitals("reader", {"conflictCount": 2}, agent_name="Reader", metadata={"build": 7})
    assert created["health"] == "amber"
    event = sdk.report_event("reader", "task_completed", "done")["event"]
    assert (event["event_type"], event["details"], event["metadata"]) == ("task_completed", "done", {})
    assert vitals(api, key, "reader", 1) == [vital("reader", conflicts=2, health="amber", metadata={"build": 7})]
    events(api, key, "reader", 1)

    assert sdk.get_vitals("reader", limit=1) == {"success": True, "vitals": [
        {**vital("reader", conflicts=2, health="amber", metadata={"build": 7}), "id": created["vital"]["id"],
         "recorded_at": created["vital"]["recorded_at"]}]}
    assert sdk.get_events("reader", limit=5)["events"] == [{**event, "metadata": {}}]
    [agent] = sdk.list_agents()["agents"]
    assert agent == {"agent_id": "reader", "name": "Reader", "status": "warning", "overall_health": "amber",
                     "token_consumption": 0, "hallucination_rate": 0.0, "loop_frequency": 0, "directive_conflicts": 2,
                     "last_vitals_at": created["vital"]["recorded_at"], "updated_at": created["vital"]["recorded_at"]}
    assert sdk.get_ari("reader") == {
        "success": True, "agent_id": "reader", "ready": False, "snapshots": 1,
        "message": "ARI starts after 5 snapshots; this agent has 1 so far",
        "stats": {"interventions_today": 0, "tokens_saved": 0, "conflicts_resolved": 0, "tokens_saved_measured": 0},
        "checkups": {},
        "interventions": []}
    for call in (lambda: sdk.get_vitals("nobody"), lambda: sdk.get_ari("nobody")):
        err = error_of(call)
        assert (err.status, err.error, err.message) == (404, "Agent not found", "No agent 'nobody' for this API key")
    err = error_of(lambda: sdk.get_vitals("reader", limit=501))
    assert (err.status, err.field) == (400, "limit")


# ---- asyncio ----------------------------------------------------------------------------------

def test_asyncio_client_never_blocks_the_event_loop(api):
    key = api.new_key()

    async def main():
        ticks = []

        async def ticker():
            while True:
                ticks.append(time.monotonic())
                await asyncio.sleep(0.01)

        beat = asyncio.create_task(ticker())
        with silent_server() as silent:
            hanging = AsyncAgentClient(key, silent, timeout=1, max_retry=0)
            started = time.monotonic()
            with pytest.raises(SophonzError) as caught:
                await hanging.report_vitals("async")
            waited = time.monotonic() - started
        sdk = AsyncAgentClient(key, api.url, max_retry=1.5)
        created = await sdk.report_vitals("async", {"tokenConsumption": 10})
        with pytest.raises(SophonzError) as limited:  # Retry-After beyond the budget: at once
            await sdk.report_vitals("async", {"tokenConsumption": 20})
        with pytest.raises(SophonzError) as bad:
            await sdk.report_event("async", "tool_error", metadata=["not", "an", "object"])
        beat.cancel()
        return caught.value, waited, ticks, created, limited.value, bad.value

    timeout, waited, ticks, created, limited, bad = asyncio.run(main())
    assert (timeout.status, timeout.error) == (0, "Timeout") and 1 <= waited < 3
    # The loop kept ticking through the second the request hung.
    during = [t for t in ticks if t < ticks[0] + waited]
    assert len(during) >= 20 and max(b - a for a, b in zip(during, during[1:])) < 0.5
    assert created["health"] == "green"
    assert (limited.status, limited.error) == (429, "Rate limit exceeded")
    assert (bad.status, bad.field) == (400, "metadata")
    assert vitals(api, key, "async", 1) == [vital("async", 10)]


# ---- background mode ----------------------------------------------------------------------------

def test_background_full_queue_drops_exactly_and_waits_out_retry_after(api):
    key = api.new_key()
    sdk = Recording(key, api.url)
    sdk.report_vitals("busy", {"loopCount": 1})
    monitor = sdk.background(queue_size=3)
    assert monitor.report_vitals("busy", {"loopCount": 2}) is True
    # The thread got 429 and now waits out the server's ~10 s: the queue does not drain.
    assert eventually(lambda: len(sdk.exchanges) == 2, 10)
    took, queued = [], []
    for i in range(5):
        started = time.monotonic()
        queued.append(monitor.report_event("busy", "step_done", f"step {i}"))
        took.append(time.monotonic() - started)
    assert queued == [True, True, True, False, False]
    assert max(took) < 0.5  # never waits for the thread (busy for ~10 s)
    assert monitor.drops == {"queue_full": 2, "invalid": 0, "refused": 0, "gave_up": 0, "closed": 0}
    assert (monitor.pending, monitor.sent, monitor.dropped) == (4, 0, 2)
    assert monitor.last_error.status == 429

    assert monitor.flush(30) is True
    assert (monitor.pending, monitor.sent, monitor.dropped) == (0, 4, 2)
    assert sdk.statuses == [200, 429, 200, 200, 200, 200]
    (_, asked, _, refused_at), (_, _, retried_at, _) = sdk.exchanges[1], sdk.exchanges[2]
    assert retried_at - refused_at >= asked > 0
    assert [v["loop_frequency"] for v in vitals(api, key, "busy", 2)] == [2, 1]
    assert events(api, key, "busy", 3) == [("step_done", f"step {i}", {}) for i in (2, 1, 0)]
    assert monitor.close(1) is True


def test_background_counts_bad_input_refusals_and_reports_after_close(api):
    key = api.new_key()
    monitor = AgentClient(key, api.url).background()
    assert monitor.report_vitals("", {"loopCount": 1}) is False               # no agent id
    assert monitor.report_vitals("a", {"hallucinationRate": float("nan")}) is False  # not JSON
    assert monitor.report_event("a", "tool_error", metadata={"tags": {1, 2}}) is False  # not JSON
    assert monitor.report_vitals("a", {"hallucinationRate": 1.5}) is True       # the server's 400
    assert monitor.report_event("a", "tool_error", "sent") is True
    assert monitor.flush(10) is True
    assert (monitor.last_error.status, monitor.last_error.field) == (400, "metrics.hallucinationRate")
    assert monitor.close(5) is True
    assert monitor.report_event("a", "tool_error", "too late") is False
    assert monitor.drops == {"queue_full": 0, "invalid": 4, "refused": 0, "gave_up": 0, "closed": 1}
    assert monitor.sent == 1
    assert events(api, key, "a", 1) == [("tool_error", "sent", {})]

    refused = AgentClient("not-a-sophra-key", api.url).background()
    assert refused.report_vitals("a") is True
    assert refused.flush(10) is True and refused.close(1) is True
    assert (refused.sent, refused.drops["refused"], refused.last_error.status) == (0, 1, 401)


def test_background_gives_up_after_the_retry_budget():
    monitor = AgentClient("sk_live_unused", f"http://127.0.0.1:{free_port()}", max_retry=0.5).background()
    started = time.monotonic()
    assert monitor.report_event("a", "tool_error") is True
    assert monitor.flush(10) is True
    assert 0.5 <= time.monotonic() - started < 4
    assert monitor.drops == {"queue_full": 0, "invalid": 0, "refused": 0, "gave_up": 1, "closed": 0}
    assert (monitor.sent, monitor.last_error.status, monitor.last_error.error) == (0, 0, "Network error")


AT_EXIT = """
import atexit, json, os, sys, time
sys.path.insert(0, {sdk!r})
from sophonz import AgentClient
# atexit runs last-registered first: this runs after the reporter's own exit handler.
atexit.register(lambda: print(json.dumps({{"sent": monitor.sent, "drops": monitor.drops,
                                           "exit_wait": round(time.monotonic() - ended, 1)}})))
monitor = AgentClient({key!r}, {url!r}).background(exit_timeout={exit_timeout})
monitor.report_vitals("leaving", {{"loopCount": 9}})
monitor.report_event("leaving", "shutdown", "bye")
ended = time.monotonic()
"""


def test_background_reports_are_sent_at_exit_within_exit_timeout(api, tmp_path):
    key = api.new_key()
    script = tmp_path / "exit.py"
    script.write_text(AT_EXIT.format(sdk=str(SDK_PY), key=key, url=api.url, exit_timeout=10))
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert (proc.returncode, proc.stderr) == (0, "")
    summary = json.loads(proc.stdout)
    assert (summary["sent"], summary["drops"]["closed"], summary["exit_wait"] < 10) == (2, 0, True)
    assert vitals(api, key, "leaving", 1) == [vital("leaving", loops=9)]
    assert events(api, key, "leaving", 1) == [("shutdown", "bye", {})]

    # A server that never answers holds the exit for exit_timeout, not for the retry budget.
    with silent_server() as silent:
        script.write_text(AT_EXIT.format(sdk=str(SDK_PY), key=key, url=silent, exit_timeout=1))
        started = time.monotonic()
        proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert (proc.returncode, proc.stderr) == (0, "")
    summary = json.loads(proc.stdout)
    assert (summary["sent"], summary["drops"]) == (0, {"queue_full": 0, "invalid": 0, "refused": 0, "gave_up": 0,
                                                       "closed": 2})
    assert 1.0 <= summary["exit_wait"] < 2 and time.monotonic() - started < 10
