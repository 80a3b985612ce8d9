"""Budget alerts on made-up counts with known answers: a budget's figures as the points its
rules read, the worker's step on budgets.usage records (the latest partial of each
partition summed), and the clock that never calls an idle budget no_data
(pipeline/alerts/evaluate.py, pipeline/worker/alerts.py; docs/alerts.md)."""
import json
from datetime import datetime, timezone

from pipeline.alerts.conditions import Rule
from pipeline.alerts.evaluate import budget_points, run_clock
from pipeline.budgets import figures
from pipeline.worker.alerts import apply_usage

H = 3_600_000


def at(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp() * 1000)


BUDGET = {"tenant": "t1", "id": "bdg_1", "name": "support, day", "scope": "account", "agent_id": None, "tag": None,
          "tag_value": None, "limit": 1000, "period": "day", "window_ms": None,
          "created_at": at("2026-12-06T00:00:00")}


def rule(rule_id: str, metric: str, operator: str, threshold: float, aggregation: str = "max", **kw) -> Rule:
    cond = {"metric": metric, "operator": operator, "threshold": threshold, "window": "1m", "aggregation": aggregation}
    return Rule.from_record({"tenant": "t1", "id": rule_id, "application_id": "", "name": rule_id,
                             "condition": json.dumps(cond), "actions": "[]", "enabled": True, "created_at": 0,
                             "scope": "budget", "agent_id": None, "budget_id": "bdg_1", **kw})


def usage(partition: int, used: int, through: int) -> dict:
    return {"tenant": "t1", "budget_id": "bdg_1", "partition": partition,
            "counts": [{"start": at("2026-12-07T00:00:00"), "used": used}], "counted_through": through,
            "forecast_exhaustion_at": None, "updated_at": through}


def test_a_rule_record_of_scope_budget_watches_its_budget():
    r = rule("r", "percent_used", ">=", 80)
    assert (r.scope, r.subject_id, r.series) == ("budget", "bdg_1", "percent_used|1000")


def test_figures_become_percent_used_exhausted_and_hours_to_exhaustion():
    noon = at("2026-12-07T12:00:00")
    # docs/budgets.md's example: 600 of 1,000 by noon, 50 an hour, runs out at 20:00
    f = figures(BUDGET, [usage(0, 400, noon), usage(3, 200, noon)], noon)
    assert budget_points(f, noon) == [("percent_used", 60.0, noon), ("exhausted", 0.0, noon),
                                      ("hours_to_exhaustion", 8.0, noon)]
    # 500: it reaches the limit at midnight, when the day resets: no forecast, no point
    f = figures(BUDGET, [usage(0, 500, noon)], noon)
    assert budget_points(f, noon) == [("percent_used", 50.0, noon), ("exhausted", 0.0, noon)]
    # run out: 0 hours left
    f = figures(BUDGET, [usage(0, 600, noon), usage(1, 450, noon)], noon)
    assert budget_points(f, noon) == [("percent_used", 105.0, noon), ("exhausted", 1.0, noon),
                                      ("hours_to_exhaustion", 0.0, noon)]


def test_crossing_80_percent_then_exhausting_fires_each_rule_once_and_idle_is_not_no_data():
    rules = [rule("pct", "percent_used", ">=", 80), rule("out", "exhausted", "==", 1),
             rule("soon", "hours_to_exhaustion", "<", 2, aggregation="min")]  # min: the soonest in the window
    t = at("2026-12-07T12:00:00")
    steps = [(b"bdg_1/0", usage(0, 500, t), t),            # 50 %: nothing
             (b"bdg_1/4", usage(4, 300, t + 1000), t + 2000),  # 80 % (both partitions summed): fires pct
             (b"bdg_1/4", usage(4, 400, t + 3000), t + 4000),  # 90 %: runs out within 2 h, fires soon
             (b"bdg_1/0", usage(0, 650, t + 5000), t + 6000)]  # 105 %: exhausted fires
    state, fired = None, []
    for key, record, wall in steps:
        state, out = apply_usage(state, rules, BUDGET, key, record, wall)
        fired += [(r["rule_id"], r["previous_state"], r["state"], r["notify"], r["value"], r["at"])
                  for kind, r in out if kind == "alert_transition"]
    # at 12:00:04, 900 used since 00:00: the 100 left take 100 × 43,204,000 / 900 ms, rounded up
    assert fired == [("pct", "ok", "firing", "firing", 80.0, t + 2000),
                     ("soon", "ok", "firing", "firing", 4_800_445 / H, t + 4000),
                     ("out", "ok", "firing", "firing", 1.0, t + 6000)]
    assert sorted(state["partials"]) == ["0", "4"] and state["name"] == "support, day"
    # an hour without counts: no no_data (an idle budget is quiet), only the reminder clock
    # (repeat 4h by default: none within the hour)
    assert run_clock(state, rules, t + H) == []
    assert [(r["rule_id"], r["notify"]) for _, r in run_clock(state, rules, t + 6000 + 4 * H)] == [
        ("pct", "reminder"), ("soon", "reminder"), ("out", "reminder")]
    # a tombstone (the budget deleted) drops its partition's partial
    state, out = apply_usage(state, rules, None, b"bdg_1/0", None, t + 5 * H)
    assert (sorted(state["partials"]), out) == (["4"], [])


def test_partials_are_kept_without_rules_so_a_later_rule_starts_from_the_whole_count():
    t = at("2026-12-07T12:00:00")
    state, out = apply_usage(None, (), BUDGET, b"bdg_1/2", usage(2, 900, t), t)
    assert out == [] and state["partials"]["2"]["counts"] == [{"start": at("2026-12-07T00:00:00"), "used": 900}]
    state, out = apply_usage(state, [rule("pct", "percent_used", ">=", 80)], BUDGET, b"bdg_1/5", usage(5, 10, t), t)
    assert [(r["state"], r["value"]) for k, r in out if k == "alert_transition"] == [("firing", 91.0)]
