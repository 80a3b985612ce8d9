"""Insight rules on made-up histories with known answers (pipeline/insights.py), and the
worker's per-application step that raises them (pipeline/worker/deployments.py)."""
from pipeline import deployments as D
from pipeline import insights as I
from pipeline.worker.deployments import apply

MIN = 60_000
T0 = 1_795_464_000_000  # 2026-11-23T20:00:00Z


def hours(prev: float, cur: float, n: int = 60) -> list[list]:
    """Per-minute [start, sum, count] of n points a minute apart in each of the two hours
    ending with the minute T0 + 119 min."""
    return [[T0 + i * MIN, prev, 1] for i in range(n)] + [[T0 + 60 * MIN + i * MIN, cur, 1] for i in range(n)]


def state_with(**series) -> dict:
    return {"response_time": series.get("response_time", []), "error_rate": series.get("error_rate", [])}


NEWEST = T0 + 119 * MIN


def test_response_time_rise_is_medium_from_20_percent_and_high_from_50():
    assert I.detect(state_with(response_time=hours(200, 239)), NEWEST) == []
    assert I.detect(state_with(response_time=hours(200, 280)), NEWEST) == [{
        "type": "performance", "severity": "medium", "title": "Response time increase detected",
        "description": "Average response time increased by 40% in the last hour (200 ms to 280 ms)"}]
    assert I.detect(state_with(response_time=hours(200, 300)), NEWEST)[0]["severity"] == "high"


def test_error_rate_rise_needs_a_point_and_a_half_times():
    assert I.detect(state_with(error_rate=hours(0.02, 0.029)), NEWEST) == []   # +0.9 points
    assert I.detect(state_with(error_rate=hours(0.04, 0.055)), NEWEST) == []   # 1.375x
    assert I.detect(state_with(error_rate=hours(0.01, 0.042)), NEWEST) == [{
        "type": "reliability", "severity": "medium", "title": "Error rate increase detected",
        "description": "Error rate rose from 1% to 4.2% in the last hour"}]
    assert I.detect(state_with(error_rate=hours(0.01, 0.08)), NEWEST)[0]["severity"] == "high"


def test_too_few_points_in_either_hour_say_nothing():
    assert I.detect(state_with(response_time=hours(200, 400, n=4)), NEWEST) == []
    only_now = [[T0 + 60 * MIN + i * MIN, 400, 1] for i in range(60)]
    assert I.detect(state_with(response_time=only_now), NEWEST) == []


def test_raised_once_an_hour_and_again_when_the_severity_changes():
    state = {}
    medium = [{"type": "performance", "severity": "medium", "title": "t", "description": "d"}]
    high = [{**medium[0], "severity": "high"}]
    at = T0 + 65 * MIN  # 21:05
    first = I.raise_insights(state, "acct", "app_1", medium, at)
    assert [(r["id"], r["severity"], r["timestamp"], r["version"]) for r in first] == [
        (I.insight_id("acct", "app_1", "performance", str(at // 3_600_000)), "medium", at, at)]
    assert first[0]["recommendation"] == "Consider scaling your application or optimizing slow queries"
    assert I.raise_insights(state, "acct", "app_1", medium, at + MIN) == []
    again = I.raise_insights(state, "acct", "app_1", high, at + 2 * MIN)  # same hour: a new version
    assert [(r["id"], r["severity"], r["version"]) for r in again] == [(first[0]["id"], "high", at + 2 * MIN)]
    next_hour = I.raise_insights(state, "acct", "app_1", high, T0 + 120 * MIN)
    assert len(next_hour) == 1 and next_hour[0]["id"] != first[0]["id"]


def batch(batch_id: int, points: list[tuple[str, float, int]]) -> dict:
    return {"tenant": "acct", "application_id": "app_1", "id": batch_id, "received_at": 0,
            "points": [{"metric": m, "value": v, "timestamp": t} for m, v, t in points]}


def test_the_worker_step_raises_insights_from_metric_batches_and_failed_deployments():
    state = D.new_state()
    before = [("response_time", 200.0, T0 + i * MIN) for i in range(60)]
    after = [("response_time", 300.0, T0 + 60 * MIN + i * MIN) for i in range(60)]
    assert apply(state, "app_metric_batch", batch(1, before)) == []
    out = apply(state, "app_metric_batch", batch(2, after))
    assert [(kind, key, r["type"], r["severity"], r["description"]) for kind, key, r in out] == [
        ("app_insight", b"acct/app_1", "performance", "high",
         "Average response time increased by 50% in the last hour (200 ms to 300 ms)")]

    dep = {"tenant": "acct", "id": "deploy_1", "application_id": "app_1", "version": "v2", "description": None,
           "changes": "[]", "rollback_on_error": True, "health_check_url": None, "health_url": None,
           "status": "pending", "reason": None, "started_at": T0 + 120 * MIN, "completed_at": None, "revision": 0,
           "probed": False, "probe_failure": None}
    assert [k for k, _, _ in apply(state, "app_deployment", dep)] == ["app_deployment"]
    slow = [("response_time", 600.0, T0 + 120 * MIN + i * MIN) for i in range(6)]
    out = apply(state, "app_metric_batch", batch(3, slow))
    decided = [r for k, _, r in out if k == "app_deployment"]
    insight = [r for k, _, r in out if k == "app_insight" and r["type"] == "deployment"]
    assert [(d["status"], d["reason"]) for d in decided] == [
        ("rolled_back", "response time rose from 300 ms to 600 ms; rolled back (rollback_on_error)")]
    assert [(i["id"], i["severity"], i["title"], i["description"], i["timestamp"]) for i in insight] == [
        (I.insight_id("acct", "app_1", "deployment", "deploy_1"), "high", "Deployment v2 rolled back",
         decided[0]["reason"], T0 + 125 * MIN)]
