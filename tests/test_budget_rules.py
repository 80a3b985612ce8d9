"""Token budget rules (pipeline/budgets.py) and the worker's counting step
(pipeline/worker/budgets.py apply_batch) on made-up reports with known answers."""
import json
from datetime import datetime, timezone

from pipeline.budgets import count, covers, exhaustion, figures, next_period, since, slot
from pipeline.worker.budgets import apply_batch, partition_of, state_key
from schemas import codec


def at(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp() * 1000)


def budget(period="day", window_ms=None, created="2026-01-01T00:00:00", **kw) -> dict:
    return {"tenant": "t1", "id": "bdg_1", "name": "b", "scope": "account", "agent_id": None, "tag": None,
            "tag_value": None, "limit": 1_000, "period": period, "window_ms": window_ms, "created_at": at(created),
            "updated_at": None, **kw}


WED = at("2026-12-09T15:30:00")  # a Wednesday


def test_calendar_periods_are_utc_days_iso_weeks_and_months():
    assert slot(budget("day"), WED) == at("2026-12-09T00:00:00")
    assert slot(budget("week"), WED) == at("2026-12-07T00:00:00")  # the Monday before
    assert slot(budget("week"), at("2026-12-07T00:00:00")) == at("2026-12-07T00:00:00")
    assert slot(budget("week"), at("2026-12-06T23:59:59.999")) == at("2026-11-30T00:00:00")
    assert slot(budget("month"), WED) == at("2026-12-01T00:00:00")
    assert next_period(budget("day"), at("2026-12-09T00:00:00")) == at("2026-12-10T00:00:00")
    assert next_period(budget("week"), at("2026-12-07T00:00:00")) == at("2026-12-14T00:00:00")
    assert next_period(budget("month"), at("2026-12-01T00:00:00")) == at("2027-01-01T00:00:00")
    assert next_period(budget("month"), at("2026-02-01T00:00:00")) == at("2026-03-01T00:00:00")
    assert next_period(budget("rolling", 3_600_000), WED) is None


def test_a_rolling_window_counts_its_last_60_buckets():
    b = budget("rolling", 3_600_000)  # buckets of one minute
    partial = None
    for minute, tokens in ((0, 100), (30, 200), (59, 300), (60, 400)):
        partial = count(partial, b, at("2026-12-09T10:00:00") + minute * 60_000 + 5_000, tokens)
    counts = [{"start": int(s), "used": u} for s, u in partial["counts"].items()]
    # at 11:00:30 the window's buckets are 10:01 .. 11:00: the 10:00 bucket has left it
    f = figures(b, [{"counts": counts, "counted_through": partial["through"]}], at("2026-12-09T11:00:30"))
    assert (f["used"], f["remaining"], f["percent_used"], f["exhausted"]) == (900, 100, 90.0, False)
    assert f["since"] == at("2026-12-09T10:01:00") and f["resets_at"] is None
    assert f["as_of"] == at("2026-12-09T11:00:05")
    # the pace: the last complete bucket (10:59, 300 tokens a minute), the 100 left in 20 s
    assert (f["forecast_exhaustion_at"], f["forecast_exhaustion_lower"], f["forecast_exhaustion_upper"]) == (
        at("2026-12-09T11:00:50"), at("2026-12-09T11:00:50"), at("2026-12-09T11:00:50"))
    f = figures(b, [{"counts": counts, "counted_through": partial["through"]}], at("2026-12-09T09:59:00"))
    assert f["used"] == 0  # nothing counted lies in the window ending then


def test_a_partial_keeps_the_current_and_previous_period_and_sums_across_partitions():
    b = budget("day", limit=500)
    p = count(None, b, at("2026-12-07T23:00:00"), 50)
    p = count(p, b, at("2026-12-08T01:00:00"), 70)
    p = count(p, b, at("2026-12-09T01:00:00"), 90)  # the 7th is now two days back: dropped
    assert p == {"counts": {str(at("2026-12-08T00:00:00")): 70, str(at("2026-12-09T00:00:00")): 90},
                 "through": at("2026-12-09T01:00:00")}
    late = count(p, b, at("2026-12-07T22:00:00"), 1_000)  # older than anything readable: not counted
    assert late == p
    q = count(None, b, at("2026-12-09T02:00:00"), 500)
    parts = [{"counts": [{"start": int(s), "used": u} for s, u in x["counts"].items()], "counted_through": x["through"]}
             for x in (p, q)]
    f = figures(b, parts, at("2026-12-09T12:00:00"))
    assert (f["used"], f["remaining"], f["percent_used"], f["exhausted"]) == (590, 0, 118.0, True)
    assert f["resets_at"] == at("2026-12-10T00:00:00") and f["as_of"] == at("2026-12-09T02:00:00")
    assert since(b, at("2026-12-09T12:00:00")) == at("2026-12-09T00:00:00")
    assert since(budget("day", created="2026-12-09T08:00:00"), at("2026-12-09T12:00:00")) == at("2026-12-09T08:00:00")


def day_counts(used: int) -> list[dict]:
    return [{"start": at("2026-12-09T00:00:00"), "used": used}]


def test_a_calendar_budget_runs_out_at_its_average_pace_since_the_period_began():
    noon = at("2026-12-09T12:00:00")
    # 600 of 1,000 by noon: 50 an hour, so the 400 left last 8 hours; one count a period: no interval
    assert exhaustion(budget("day"), day_counts(600), noon) == {"at": at("2026-12-09T20:00:00"), "lower": None,
                                                                 "upper": None}
    # a budget made at 06:00 counts its pace from then: 100 an hour
    assert exhaustion(budget("day", created="2026-12-09T06:00:00"), day_counts(600), noon)["at"] == at(
        "2026-12-09T16:00:00")
    # 500 by noon reaches 1,000 at midnight, when the day resets: it does not run out; nor without use
    assert exhaustion(budget("day"), day_counts(500), noon) is None
    assert exhaustion(budget("day"), day_counts(0), noon) is None
    assert exhaustion(budget("day"), day_counts(1_000), noon) is None  # exhausted already: `exhausted` says so
    f = figures(budget("day"), [{"counts": day_counts(600), "counted_through": noon}], noon)
    assert (f["forecast_exhaustion_at"], f["forecast_exhaustion_lower"], f["forecast_exhaustion_upper"]) == (
        at("2026-12-09T20:00:00"), None, None)
    assert figures(budget("day"), [{"counts": day_counts(600), "counted_through": noon}], noon,
                   ahead=False)["forecast_exhaustion_at"] is None


def test_a_rolling_budget_forecasts_its_next_bucket_with_an_interval():
    b = budget("rolling", 3_600_000, created="2026-12-09T10:00:00")  # one-minute buckets
    minute = 60_000
    # 10:00 .. 10:29 alternate 10 and 30 tokens (600), 15 so far in 10:30: 615 used, 385 left
    counts = [{"start": at("2026-12-09T10:00:00") + i * minute, "used": (10, 30)[i % 2]} for i in range(30)]
    counts.append({"start": at("2026-12-09T10:30:00"), "used": 15})
    # pipeline/forecast.py's naive rule on the 30 complete buckets: the last (30 a minute), and the
    # 10 % / 90 % quantiles of the changes between buckets (-20, +20): 10 to 50 a minute
    assert exhaustion(b, counts, at("2026-12-09T10:30:30")) == {
        "at": at("2026-12-09T10:43:20"),  # 385 / 30 a minute = 12 min 50 s
        "lower": at("2026-12-09T10:38:12"),  # 385 / 50 = 7 min 42 s
        "upper": None}  # at 10 a minute the buckets leaving the window outpace it: never
    # made at 10:29: one complete bucket, fewer than forecast.py needs (3): the average pace since
    # `since`, without interval (60 tokens in 1.5 min: 40 a minute)
    young = budget("rolling", 3_600_000, created="2026-12-09T10:29:00")
    assert exhaustion(young, [{"start": at("2026-12-09T10:29:00"), "used": 60}], at("2026-12-09T10:30:30")) == {
        "at": at("2026-12-09T10:54:00"), "lower": None, "upper": None}  # 940 / 40 a minute = 23.5 min
    # a steady 10 a minute can never fill 1,000 in a 60-minute window
    steady = [{"start": at("2026-12-09T10:00:00") + i * minute, "used": 10} for i in range(31)]
    assert exhaustion(b, steady, at("2026-12-09T10:30:30")) is None


def test_scopes():
    agent = budget(scope="agent", agent_id="bot")
    group = budget(scope="group", tag="team", tag_value="support")
    assert covers(agent, "bot", None) and not covers(agent, "bot2", None)
    assert covers(group, "x", {"team": "support"}) and not covers(group, "x", {"team": "sales"})
    assert not covers(group, "x", {}) and not covers(group, "x", {"team": 1})
    assert covers(budget(), "anyone", None)


def vital(i: int, agent: str, tokens: int, recorded_at: int, metadata=None, tenant="t1") -> bytes:
    return codec.encode("agent_vital", {
        "tenant": tenant, "id": i, "agent_id": agent, "agent_name": None, "token_consumption": tokens,
        "token_limit": 100_000, "hallucination_rate": 0.0, "loop_frequency": 0, "directive_conflicts": 0,
        "overall_health": "green", "metadata": json.dumps(metadata or {}), "recorded_at": recorded_at})


def test_the_worker_step_counts_each_record_once_by_offset():
    t = at("2026-12-09T10:00:00")
    books = {"t1": (budget("day", created="2026-12-09T09:00:00"),
                    budget("month", id="bdg_team", scope="group", tag="team", tag_value="ops"))}
    records = [(vital(1, "a", 100, t, {"team": "ops"}), ("vitals", 2, 10)),
               (vital(2, "b", 200, t + 1, {"team": "dev"}), ("vitals", 2, 11)),
               (vital(3, "a", 400, at("2026-12-09T08:00:00"), {"team": "ops"}), ("vitals", 2, 12)),  # before creation
               (vital(4, "c", 800, t + 2, tenant="t2"), ("vitals", 2, 13)),  # an account without budgets
               (b"not avro", ("vitals", 2, 14))]
    states, outputs = apply_batch({}.get, lambda tenant: books.get(tenant, ()), records)
    assert list(states) == [state_key("t1", 2)] and partition_of(state_key("t1", 2)) == 2
    day = str(at("2026-12-09T00:00:00"))
    assert states[b"t1@2"]["budgets"]["bdg_1"] == {"counts": {day: 300}, "through": t + 1}
    assert states[b"t1@2"]["budgets"]["bdg_team"]["counts"] == {str(at("2026-12-01T00:00:00")): 500}
    assert states[b"t1@2"]["offsets"] == {"vitals/2": 12}
    assert {k: (r["counts"], r["counted_through"]) for k, r in outputs.items()} == {
        ("bdg_1", 2): ([{"start": int(day), "used": 300}], t + 1),
        ("bdg_team", 2): ([{"start": at("2026-12-01T00:00:00"), "used": 500}], t)}
    # the same records again (a redelivery after a restart), then one new one
    again, outputs = apply_batch(states.get, lambda tenant: books.get(tenant, ()),
                                 records + [(vital(5, "a", 1, t + 3), ("vitals", 2, 15))])
    assert again[b"t1@2"]["budgets"]["bdg_1"]["counts"] == {day: 301}
    assert list(outputs) == [("bdg_1", 2)]
    # a deleted budget leaves the state at the next record
    books["t1"] = books["t1"][1:]
    third, _ = apply_batch(again.get, lambda tenant: books.get(tenant, ()),
                           [(vital(6, "a", 1, t + 4), ("vitals", 2, 16))])
    assert list(third[b"t1@2"]["budgets"]) == ["bdg_team"]
