"""The throttle signal in the JavaScript and Python agent SDKs against the real server:
`budget(agentId)` is the latest vitals answer's budget, and the user's function is
called once per threshold crossed upward. No worker runs, so each answer's figures are
exactly its own report (api/budgets.py adds it to the worker's counts, here none)."""
import asyncio
import json
import sys

import pytest

from .conftest import RunningApi, test_settings
from .test_sdk_js import JS, SDK, node

pytestmark = pytest.mark.integration

sys.path.insert(0, str(JS.parents[1] / "sdk" / "python"))
from sophonz import AgentClient, AsyncAgentClient  # noqa: E402  (the package source)

REPORTS = [("b1", 5_000, "ops"), ("b2", 8_500, "ops"), ("b3", 12_000, "ops"), ("b4", 100, "sales")]


@pytest.fixture(scope="module")
def api(kafka_bootstrap, clickhouse_dsn, tmp_path_factory):
    with RunningApi(test_settings(tmp_path_factory.mktemp("budget-sdks"), kafka_bootstrap, clickhouse_dsn)) as running:
        yield running


def group_budget(api, key: str) -> str:
    with api.client(key) as http:
        res = http.post("/api/budgets", json={"scope": "group", "tag": "team", "tag_value": "ops", "limit": 10_000,
                                              "period": "day"})
        assert res.status_code == 201, res.text
        return res.json()["id"]


def signal(budget_id: str, remaining: int, percent: float) -> dict:
    # a budget made a moment ago runs out within moments at the pace of its first reports, when
    # time has passed (its exact time: tests/test_budgets_live.py); once exhausted, no forecast
    return {"id": budget_id, "remaining": remaining, "percent_used": percent, "exhausted": percent >= 100,
            "forecast_exhaustion_at": percent < 100, "as_of": None}


def forecast_given(budget: dict | None) -> dict | None:
    """The budget with whether it carries a forecast, instead of the forecast (its time
    depends on the request's)."""
    return budget and {**budget, "forecast_exhaustion_at": budget["forecast_exhaustion_at"] is not None}


def expected(budget_id: str) -> list:
    return [signal(budget_id, 5_000, 50.0), signal(budget_id, 1_500, 85.0), signal(budget_id, 0, 120.0), None]


def test_javascript_sdk(api):
    key = api.new_key()
    budget_id = group_budget(api, key)
    proc = node(str(JS / "budget_signal.js"), json.dumps({"sdk": str(SDK), "apiKey": key, "baseUrl": api.url,
                                                          "reports": REPORTS}))
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    out = json.loads(proc.stdout)
    assert {**out, "budgets": [forecast_given(b) for b in out["budgets"]]} == {"before": None,
                                                                               "budgets": expected(budget_id),
                                       "crossed": [["b2", 80, 85.0], ["b3", 80, 120.0], ["b3", 100, 120.0]]}


def test_python_sdk_blocking_and_asyncio(api):
    key = api.new_key()
    budget_id = group_budget(api, key)
    crossed = []

    def on_budget(agent_id, threshold, budget):
        crossed.append((agent_id, threshold, budget["percent_used"]))
        raise RuntimeError("a user function that raises does not fail the report")

    client = AgentClient(key, api.url, on_budget=on_budget, budget_thresholds=(100, 80))
    assert client.budget("b1") is None
    seen = []
    for agent, tokens, team in REPORTS:
        answer = client.report_vitals(agent, {"tokenConsumption": tokens}, metadata={"team": team})
        assert answer.get("budget") == client.budget(agent)
        seen.append(client.budget(agent))
    assert [forecast_given(b) for b in seen] == expected(budget_id)
    assert crossed == [("b2", 80.0, 85.0), ("b3", 80.0, 120.0), ("b3", 100.0, 120.0)]

    async def run():
        a = AsyncAgentClient(key, api.url, on_budget=lambda *args: crossed.append(args[:2]), budget_thresholds=(95,))
        await a.report_vitals("c1", {"tokenConsumption": 9_600}, metadata={"team": "ops"})
        return a.budget("c1")
    crossed.clear()
    assert forecast_given(asyncio.run(run())) == signal(budget_id, 400, 96.0)
    assert crossed == [("c1", 95.0)]
    with pytest.raises(ValueError):
        AgentClient(key, api.url, budget_thresholds=(0,))
