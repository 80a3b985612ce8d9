"""End to end on real parts: POST /api/vitals over HTTP, through Kafka and the sink into
ClickHouse, and back out through GET /api/agents/{id}/vitals."""
import re

import asyncio

import httpx
import pytest

from pipeline.limits import VITALS_INTERVAL_S, IntervalLimiter

from .conftest import eventually

pytestmark = pytest.mark.integration

REFERENCE_BODY = {"agentId": "my-agent", "agentName": "Production Agent",
                  "metrics": {"tokenConsumption": 2400, "hallucinationRate": 0.02, "loopCount": 3, "conflictCount": 0}}
ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


@pytest.fixture
def api(running_api):
    return running_api()


def test_reported_vitals_come_back_from_clickhouse(api):
    with api.client() as http:
        res = http.post("/api/vitals", json=REFERENCE_BODY)
        assert res.status_code == 200
        body = res.json()
        vital = body["vital"]
        assert ISO_MS.match(vital.pop("recorded_at"))
        assert isinstance(vital["id"], int) and 0 < vital["id"] < 2**53
        assert body == {"success": True, "health": "green", "vital": {
            "id": vital["id"], "agent_id": "my-agent", "token_consumption": 2400, "hallucination_rate": 0.02,
            "loop_frequency": 3, "directive_conflicts": 0, "overall_health": "green"}}

        read = eventually(lambda: (r := http.get("/api/agents/my-agent/vitals")).status_code == 200 and r.json(), 10)
        assert read == {"success": True, "vitals": [{
            "id": vital["id"], "agent_id": "my-agent", "token_consumption": 2400, "token_limit": 100000,
            "hallucination_rate": 0.02, "loop_frequency": 3, "directive_conflicts": 0, "overall_health": "green",
            "metadata": {}, "recorded_at": res.json()["vital"]["recorded_at"]}]}


def test_defaults_custom_metrics_health_and_newest_first(api):
    clock = [0.0]  # this test is about ordering: step over the rate limit instead of sleeping 10 s
    api.app.state.vitals_limiter = IntervalLimiter(VITALS_INTERVAL_S, clock=lambda: clock[0])
    with api.client() as http:
        first = http.post("/api/vitals", json={"agentId": "a1"}).json()
        clock[0] += VITALS_INTERVAL_S
        second = http.post("/api/vitals", json={
            "agentId": "a1", "metrics": {"tokenConsumption": 96_000, "tasksCompleted": 12, "model": "claude-3-5-sonnet"},
            "metadata": {"region": "eu", "model": "explicit-wins"}}).json()
        assert first["health"] == "green" and second["health"] == "red"
        vitals = eventually(lambda: (r := http.get("/api/agents/a1/vitals")).status_code == 200
                            and len(r.json()["vitals"]) == 2 and r.json()["vitals"], 10)
        assert [v["id"] for v in vitals] == [second["vital"]["id"], first["vital"]["id"]]
        assert vitals[0]["metadata"] == {"tasksCompleted": 12, "model": "explicit-wins", "region": "eu"}
        assert (vitals[1]["token_consumption"], vitals[1]["token_limit"], vitals[1]["hallucination_rate"]) == (0, 100000, 0.0)
        assert [v["id"] for v in http.get("/api/agents/a1/vitals?limit=1").json()["vitals"]] == [second["vital"]["id"]]


def test_one_key_never_sees_another_keys_agents(api):
    with api.client(api.new_key()) as owner, api.client(api.new_key()) as intruder:
        assert owner.post("/api/vitals", json={"agentId": "private"}).status_code == 200
        assert eventually(lambda: owner.get("/api/agents/private/vitals").status_code == 200, 10)
        res = intruder.get("/api/agents/private/vitals")
        assert res.status_code == 404
        assert res.json() == {"success": False, "error": "Agent not found",
                              "message": "No agent 'private' for this API key"}


@pytest.mark.parametrize("key", [None, "not-a-sophra-key", "sk_live_" + "A" * 43])
def test_missing_or_malformed_key_gets_the_reference_401(api, key):
    with api.client(key) as http:
        res = http.post("/api/vitals", json=REFERENCE_BODY)
    assert res.status_code == 401
    assert res.json() == {"success": False, "error": "Clé API invalide ou expirée",
                          "message": "Clé API invalide ou expirée. Obtenez la vôtre sur /onboarding.html"}


@pytest.mark.parametrize("payload,field", [
    ({}, "agentId"),
    ({"agentId": ""}, "agentId"),
    ({"agentId": 42}, "agentId"),
    ({"agentId": "a", "metrics": {"hallucinationRate": 1.5}}, "metrics.hallucinationRate"),
    ({"agentId": "a", "metrics": {"hallucinationRate": "0.1"}}, "metrics.hallucinationRate"),
    ({"agentId": "a", "metrics": {"loopCount": -1}}, "metrics.loopCount"),
    ({"agentId": "a", "metrics": {"loopCount": 2.5}}, "metrics.loopCount"),
    ({"agentId": "a", "metrics": {"tokenLimit": 0}}, "metrics.tokenLimit"),
    ({"agentId": "a", "metrics": "lots"}, "metrics"),
    ({"agentId": "a", "metadata": [1, 2]}, "metadata"),
])
def test_bad_input_gets_400_naming_the_field(api, payload, field):
    with api.client() as http:
        res = http.post("/api/vitals", json=payload)
    assert res.status_code == 400
    assert res.json()["field"] == field and res.json()["success"] is False
    assert res.json()["message"].startswith(field + ": ")


@pytest.mark.parametrize("raw,field,message", [
    (b'{"agentId": "a", "metrics": {"hallucinationRate": NaN}}', "metrics.hallucinationRate",
     "metrics.hallucinationRate: input should be a finite number"),
    (b'{"agentId": "a", "metrics": {"custom": Infinity}}', "metrics.custom", "metrics.custom: must be a finite number"),
    (b'{"agentId": "a", "metadata": {"x": [1, -Infinity]}}', "metadata", None),
    (b"agentId=a", "body", "body: is not valid JSON"),
    (b'{"agentId": "a", "metadata": {"blob": "' + b"x" * 70_000 + b'"}}', "body", "body: larger than 65536 bytes"),
])
def test_non_json_non_finite_and_oversized_bodies(api, raw, field, message):
    with api.client() as http:
        res = http.post("/api/vitals", content=raw, headers={"Content-Type": "application/json"})
    assert res.status_code == 400
    assert res.json()["field"] == field
    if message:
        assert res.json()["message"] == message


def test_limit_out_of_range_is_400(api):
    with api.client() as http:
        for bad in ("0", "501", "ten"):
            res = http.get(f"/api/agents/x/vitals?limit={bad}")
            assert (res.status_code, res.json()["field"]) == (400, "limit")


def test_fifty_simultaneous_reports_for_one_agent_accept_exactly_one(api):
    async def burst():
        async with httpx.AsyncClient(base_url=api.url, headers={"Authorization": f"Bearer {api.key}"}) as http:
            return await asyncio.gather(*(http.post("/api/vitals", json={"agentId": "busy", "metrics": {"loopCount": i}})
                                          for i in range(50)))

    responses = asyncio.run(burst())
    assert sorted(r.status_code for r in responses) == [200] + [429] * 49
    for r in responses:
        if r.status_code == 429:
            body = r.json()
            assert body["success"] is False and body["error"] == "Rate limit exceeded"
            assert 0 < body["retry_after_ms"] <= 10_000
            assert body["retry_after_seconds"] == -(-body["retry_after_ms"] // 1000) == int(r.headers["Retry-After"])
    accepted = next(r.json()["vital"]["id"] for r in responses if r.status_code == 200)
    with api.client() as http:
        assert eventually(lambda: (g := http.get("/api/agents/busy/vitals")).status_code == 200 and g.json(), 10)
        assert [v["id"] for v in http.get("/api/agents/busy/vitals").json()["vitals"]] == [accepted]


def test_rate_limit_is_per_agent_and_ignores_rejected_input(api):
    with api.client() as http:
        assert http.post("/api/vitals", json={"agentId": "r1", "metrics": {"loopCount": -1}}).status_code == 400
        assert http.post("/api/vitals", json={"agentId": "r1"}).status_code == 200
        assert http.post("/api/vitals", json={"agentId": "r2"}).status_code == 200
        assert http.post("/api/vitals", json={"agentId": "r1"}).status_code == 429
    with api.client(api.new_key()) as other:  # another account's agent of the same name
        assert other.post("/api/vitals", json={"agentId": "r1"}).status_code == 200
