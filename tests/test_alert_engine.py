"""The alert state machine and its windows on made-up series with known answers
(pipeline/alerts/)."""
import json

import pytest

from pipeline.alerts import series as S
from pipeline.alerts.conditions import Rule, duration_ms, window_ms
from pipeline.alerts.evaluate import new_state, observe, run_clock, tick, transition_id, vital_points

T0 = 1_795_464_000_000  # 2026-11-23T20:00:00Z, a whole minute
S_ = 1000
MIN = 60_000
WALL = 1_800_000_000_000


def rule(**kw) -> Rule:
    cond = {"metric": "error_rate", "operator": ">", "threshold": 0.05, "window": "5m", **kw.pop("condition", {})}
    rec = {"tenant": "acct", "id": kw.pop("id", "alert_1"), "application_id": "app_1", "name": "High Error Rate",
           "condition": json.dumps(cond), "actions": "[]", "enabled": True, "created_at": 0, **kw}
    return Rule.from_record(rec)


def notices(out):
    return [(r["previous_state"], r["state"], r["notify"], r["at"], r["value"]) for k, r in out if k == "alert_transition"]


def test_durations_and_windows():
    assert [duration_ms(d) for d in ("30s", "5m", "4h", "1d", "0m")] == [30_000, 300_000, 14_400_000, 86_400_000, 0]
    assert window_ms("24h") == 86_400_000
    for bad in ("25h", "30s", "0m", "5", "m", "1.5h"):
        with pytest.raises(ValueError):
            window_ms(bad)


def test_each_aggregation_over_a_window():
    s = S.new_series()
    for i, v in enumerate([1.0, 2.0, 3.0, 4.0, 100.0]):
        S.add(s, T0 + i * 10 * S_, v, 5 * S_, 5 * MIN, keep_values=True)
    buckets = S.window(s, s["newest"], 5 * S_, 5 * MIN)
    assert {a: S.aggregate(buckets, a) for a in ("mean", "max", "min", "sum", "count")} == {
        "mean": 22.0, "max": 100.0, "min": 1.0, "sum": 110.0, "count": 5.0}
    assert S.aggregate(buckets, "p95") == pytest.approx(80.8)  # numpy.percentile([1, 2, 3, 4, 100], 95)


def test_the_window_slides_in_data_time():
    s = S.new_series()
    S.add(s, T0, 10.0, 5 * S_, 5 * MIN, False)
    S.add(s, T0 + 4 * MIN, 20.0, 5 * S_, 5 * MIN, False)
    assert S.aggregate(S.window(s, s["newest"], 5 * S_, 5 * MIN), "mean") == 15.0
    S.add(s, T0 + 5 * MIN, 30.0, 5 * S_, 5 * MIN, False)  # T0's bucket is now out of the 5 minutes
    assert S.aggregate(S.window(s, s["newest"], 5 * S_, 5 * MIN), "mean") == 25.0
    S.add(s, T0 + 10, 1000.0, 5 * S_, 5 * MIN, False)  # too old for the window: dropped
    assert [b[0] for b in s["b"]] == [T0 + 4 * MIN, T0 + 5 * MIN]


def test_p95_keeps_a_bounded_summary_of_a_busy_bucket():
    s = S.new_series()
    for v in range(1000):
        S.add(s, T0, float(v), 5 * S_, 5 * MIN, True)
    [bucket] = s["b"]
    assert len(bucket[5]) == S.VALUES_KEPT and bucket[2] == 1000
    assert abs(S.aggregate([bucket], "p95") - 949.05) < 50  # exactly 949.05 over 0..999


def test_fires_once_resolves_once_and_statuses_follow():
    r, st = rule(), new_state()
    out = observe(st, [r], [("error_rate", 0.01, T0), ("error_rate", 0.02, T0 + 10 * S_)], WALL)
    assert notices(out) == []
    assert [rec["state"] for k, rec in out if k == "alert_status"] == ["ok"]
    # mean over 5 minutes crosses 0.05 with the third point: (0.01 + 0.02 + 0.20) / 3
    out = observe(st, [r], [("error_rate", 0.20, T0 + 20 * S_), ("error_rate", 0.30, T0 + 30 * S_)], WALL + 1)
    assert notices(out) == [("ok", "firing", "firing", T0 + 20 * S_, pytest.approx(0.23 / 3))]
    [tr] = [rec for k, rec in out if k == "alert_transition"]
    assert tr["id"] == transition_id("alert_1", "firing", T0 + 20 * S_, "firing") and tr["started_at"] == T0 + 20 * S_
    late = [("error_rate", 0.0, T0 + 6 * MIN + i * 10 * S_) for i in range(6)]  # the spike leaves the window
    out = observe(st, [r], late, WALL + 2)
    assert notices(out) == [("firing", "ok", "resolved", T0 + 6 * MIN, 0.0)]
    [resolved] = [rec for k, rec in out if k == "alert_transition"]
    assert (resolved["notify"], resolved["started_at"]) == ("resolved", T0 + 20 * S_)
    assert st["rules"]["alert_1"]["state"] == "ok"


def test_for_duration_keeps_a_flapping_series_pending_and_fires_once():
    r, st = rule(condition={"window": "1m"}, for_ms=2 * MIN), new_state()
    values = [0.1, 0.0, 0.1, 0.0, 0.1, 0.0] + [0.1] * 20   # one point a minute, 1m window: each minute alone
    out = []
    for i, v in enumerate(values):
        out += observe(st, [r], [("error_rate", v, T0 + i * MIN)], WALL + i)
    assert [(p, n, notify) for p, n, notify, _, _ in notices(out)] == [
        ("ok", "pending", None), ("pending", "ok", None), ("ok", "pending", None), ("pending", "ok", None),
        ("ok", "pending", None), ("pending", "ok", None), ("ok", "pending", None), ("pending", "firing", "firing")]
    assert notices(out)[-1][3] == T0 + 8 * MIN  # pending from minute 6, held 2 minutes


def test_no_data_after_a_window_of_silence_and_reminders_while_firing():
    r, st = rule(repeat_interval_ms=MIN), new_state()
    observe(st, [r], [("error_rate", 0.5, T0)], WALL)
    assert st["rules"]["alert_1"]["state"] == "firing"
    assert tick(st, [r], WALL + 30 * S_) == []
    out = tick(st, [r], WALL + MIN)
    assert notices(out) == [("firing", "firing", "reminder", WALL + MIN, 0.5)]
    assert tick(st, [r], WALL + MIN + 1) == []
    out = tick(st, [r], WALL + 5 * MIN + 1)  # a window without points
    assert notices(out) == [("firing", "no_data", "no_data", WALL + 5 * MIN, None)]
    assert tick(st, [r], WALL + 6 * MIN) == []
    out = observe(st, [r], [("error_rate", 0.0, T0 + 10 * MIN)], WALL + 7 * MIN)
    assert notices(out) == [("no_data", "ok", None, T0 + 10 * MIN, 0.0)]


def test_a_new_rule_without_data_goes_no_data_quietly_and_deleted_rules_are_forgotten():
    r, st = rule(), new_state()
    assert tick(st, [r], WALL) == []
    assert notices(tick(st, [r], WALL + 5 * MIN + 1)) == [("ok", "no_data", None, WALL + 5 * MIN, None)]
    observe(st, [r], [("error_rate", 0.5, T0)], WALL + 6 * MIN)
    assert tick(st, [], WALL + 6 * MIN) == [] and st["rules"] == {} and st["series"] == {}


def test_operators_and_an_agent_vital_as_points():
    for op, fires in ((">", False), (">=", True), ("<", False), ("<=", True), ("==", True), ("!=", False)):
        st = new_state()
        out = observe(st, [rule(condition={"operator": op, "threshold": 0.5})], [("error_rate", 0.5, T0)], WALL)
        assert bool(notices(out)) is fires, op
    vital = {"token_consumption": 90_000, "token_limit": 100_000, "hallucination_rate": 0.02, "loop_frequency": 3,
             "directive_conflicts": 1, "recorded_at": T0, "metadata": json.dumps({"latencyP95Ms": 340, "model": "x",
                                                                                  "ok": True})}
    assert vital_points(vital) == [("tokenConsumption", 90000.0, T0), ("hallucinationRate", 0.02, T0),
                                   ("loopCount", 3.0, T0), ("conflictCount", 1.0, T0),
                                   ("tokenUsagePercent", 90.0, T0), ("latencyP95Ms", 340.0, T0)]


def test_replays_clock_derives_what_a_tick_a_second_derives():
    """run_clock (replay's clock) jumps from due time to due time; the worker ticks every
    second. Over 3 h after a firing (repeat 1h, data stopping after the firing), both
    derive the same transitions with the same ids: the no_data after a window of
    silence and nothing else, then, with points again, a reminder an hour after it fired."""
    r = rule(repeat_interval_ms=3_600_000)
    def fired():
        state = new_state()
        observe(state, [r], [("error_rate", 0.5, T0)], WALL)
        return state
    a, b = fired(), fired()
    got_a = run_clock(a, [r], WALL + 3 * 3_600_000)
    got_b = []
    for wall in range(WALL + S_, WALL + 3 * 3_600_000 + 1, S_):
        got_b += tick(b, [r], wall)
    assert notices(got_a) == notices(got_b) == [("firing", "no_data", "no_data", WALL + 5 * MIN, None)]
    assert [t["id"] for _, t in got_a if _ == "alert_transition"] == [
        t["id"] for _, t in got_b if _ == "alert_transition"]
    assert same(a) == same(b)

    # Points every 10 s keep it firing: one reminder an hour after it fired, the same either way.
    a, b = fired(), fired()
    got_a, got_b = [], []
    for i in range(1, 4 * 60 * 6):  # 4 h of points every 10 s, data time = wall time here
        wall = WALL + i * 10 * S_
        got_a += run_clock(a, [r], wall) + observe(a, [r], [("error_rate", 0.5, T0 + i * 10 * S_)], wall)
        for w in range(wall - 10 * S_ + S_, wall + 1, S_):
            got_b += tick(b, [r], w)
        got_b += observe(b, [r], [("error_rate", 0.5, T0 + i * 10 * S_)], wall)
    reminders = [(WALL + k * 3_600_000) for k in (1, 2, 3)]
    assert [t["at"] for k, t in got_a if k == "alert_transition"] == reminders
    assert [t["id"] for k, t in got_a if k == "alert_transition"] == [t["id"] for k, t in got_b
                                                                      if k == "alert_transition"]
    assert same(a) == same(b)


def same(state: dict) -> dict:
    """A state without its status versions: those are the wall time of the tick that wrote
    them (the due time for replay's clock, the next whole second for the worker's)."""
    return {**state, "rules": {k: {f: v for f, v in rs.items() if f != "version"} for k, rs in state["rules"].items()}}
