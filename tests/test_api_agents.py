"""Events and the agent registry, end to end on the real broker and engine."""
import pytest

from pipeline.limits import VITALS_INTERVAL_S, IntervalLimiter

from .conftest import eventually

pytestmark = pytest.mark.integration


@pytest.fixture
def api(running_api):
    return running_api()


def step_over_rate_limit(api):
    """These tests are about state, not the limit: give the limiter a clock they can move."""
    clock = [0.0]
    api.app.state.vitals_limiter = IntervalLimiter(VITALS_INTERVAL_S, clock=lambda: clock[0])

    def tick():
        clock[0] += VITALS_INTERVAL_S
    return tick


def test_event_reference_example_round_trip(api):
    body = {"agentId": "my-agent", "type": "directive_conflict",
            "details": "System prompt contradicts user instruction on output format",
            "metadata": {"severity": "medium", "instructions": 2}}
    with api.client() as http:
        res = http.post("/api/events", json=body)
        assert res.status_code == 200
        event = res.json()["event"]
        assert res.json() == {"success": True, "event": {
            "id": event["id"], "agent_id": "my-agent", "event_type": "directive_conflict",
            "details": "System prompt contradicts user instruction on output format",
            "metadata": {"severity": "medium", "instructions": 2}, "recorded_at": event["recorded_at"]}}
        listed = eventually(lambda: (r := http.get("/api/agents/my-agent/events")).status_code == 200 and r.json(), 10)
        assert listed == {"success": True, "events": [event]}
    with api.client(api.new_key()) as other:
        assert other.get("/api/agents/my-agent/events").status_code == 404


@pytest.mark.parametrize("payload,field", [
    ({"type": "x"}, "agentId"),
    ({"agentId": "a"}, "type"),
    ({"agentId": "a", "type": "has spaces"}, "type"),
    ({"agentId": "a", "type": "ok", "details": 5}, "details"),
    ({"agentId": "a", "type": "ok", "metadata": "nope"}, "metadata"),
])
def test_bad_events_name_the_field(api, payload, field):
    with api.client() as http:
        res = http.post("/api/events", json=payload)
    assert (res.status_code, res.json()["field"]) == (400, field)


def test_agents_list_latest_vitals_name_and_status(api):
    tick = step_over_rate_limit(api)
    with api.client() as http:
        http.post("/api/vitals", json={"agentId": "calm", "agentName": "Calm Agent",
                                       "metrics": {"tokenConsumption": 100}})
        tick()
        last = http.post("/api/vitals", json={"agentId": "calm", "metrics": {"tokenConsumption": 80_000}}).json()
        tick()
        hot = http.post("/api/vitals", json={"agentId": "hot", "metrics": {"conflictCount": 5, "loopCount": 7}}).json()

        agents = eventually(lambda: len(a := http.get("/api/agents").json()["agents"]) == 2 and a, 10)
        assert agents == [
            {"agent_id": "hot", "name": "hot", "status": "critical", "overall_health": "red",
             "token_consumption": 0, "hallucination_rate": 0.0, "loop_frequency": 7, "directive_conflicts": 5,
             "last_vitals_at": hot["vital"]["recorded_at"], "updated_at": hot["vital"]["recorded_at"]},
            {"agent_id": "calm", "name": "Calm Agent", "status": "warning", "overall_health": "amber",
             "token_consumption": 80_000, "hallucination_rate": 0.0, "loop_frequency": 0, "directive_conflicts": 0,
             "last_vitals_at": last["vital"]["recorded_at"], "updated_at": last["vital"]["recorded_at"]},
        ]
        tick()
        http.post("/api/vitals", json={"agentId": "calm", "agentName": "Renamed"})
        assert eventually(lambda: [a["name"] for a in http.get("/api/agents").json()["agents"]] == ["Renamed", "hot"], 10)
    with api.client(api.new_key()) as other:
        assert other.get("/api/agents").json() == {"success": True, "agents": []}
        assert other.get("/api/agents/calm/vitals").status_code == 404
