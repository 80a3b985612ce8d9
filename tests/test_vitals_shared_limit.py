"""The vitals rate limit across api replicas (pipeline/shared_limits.py): a report one
replica stored closes the agent's window on the others, once it reached them (the
sharing lag, bench/vitals_limit_lag.py)."""
import pytest

from .conftest import RunningApi, eventually

pytestmark = pytest.mark.integration


def test_a_report_taken_by_one_replica_is_refused_by_the_other(make_settings):
    s = make_settings()
    with RunningApi(s, run_sink=False) as a, RunningApi(s, run_sink=False) as b:
        key = a.new_key()
        tenant = a.app.state.keys.book.authenticate(key).tenant
        assert eventually(lambda: b.app.state.keys.book.authenticate(key) is not None)
        with a.client(key) as on_a, b.client(key) as on_b:
            res = on_a.post("/api/vitals", json={"agentId": "shared"})
            assert res.status_code == 200
            # b learns of it from the topic, not from a: its window is a's report's, held by no one on b
            held = eventually(lambda: b.app.state.vitals_limiter._next.get((tenant, "shared")), 5, interval=0.001)
            assert held[1] == 0
            refused = on_b.post("/api/vitals", json={"agentId": "shared"})
            assert refused.status_code == 429
            assert 0 < refused.json()["retry_after_ms"] <= 10_000
            # other agents and other accounts are untouched
            assert on_b.post("/api/vitals", json={"agentId": "other"}).status_code == 200
            with b.client(b.new_key()) as stranger:
                assert stranger.post("/api/vitals", json={"agentId": "shared"}).status_code == 200
            assert on_a.post("/api/vitals", json={"agentId": "shared"}).status_code == 429
