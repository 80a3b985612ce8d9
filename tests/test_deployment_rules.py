"""The per-application state and deployment verdicts (pipeline/deployments.py) on
made-up data with known answers."""
from pipeline import deployments as D

MIN = 60_000
T0 = 1_795_464_000_000  # 2026-11-23T20:00:00Z


def pts(metric, values_at):
    return [{"metric": metric, "value": v, "timestamp": t} for v, t in values_at]


def test_points_become_bounded_per_minute_sums():
    state = D.new_state()
    # 10,000 points in one minute are one entry; throughput is not watched
    D.add_points(state, pts("response_time", [(float(i % 10), T0 + i) for i in range(10_000)]))
    D.add_points(state, pts("throughput", [(5.0, T0 + 3 * 3_600_000)]))
    assert state["minutes"] == {"error_rate": [], "response_time": [[T0, 45_000.0, 10_000]]}
    assert state["newest"] == T0 + 9_999
    # a point three hours later drops the minutes older than two hours before its minute
    D.add_points(state, pts("response_time", [(1.0, T0 + 3 * 3_600_000 + 5), (2.0, T0 + 60 * MIN)]))
    assert state["minutes"]["response_time"] == [[T0 + 60 * MIN, 2.0, 1], [T0 + 180 * MIN, 1.0, 1]]
    # a late point keeps `newest` and lands in its minute
    D.add_points(state, pts("response_time", [(4.0, T0 + 60 * MIN + 30_000)]))
    assert (state["newest"], state["minutes"]["response_time"][0]) == (T0 + 180 * MIN + 5, [T0 + 60 * MIN, 6.0, 2])


def test_verdict_compares_whole_minutes_around_the_deployment():
    state = D.new_state()
    started = T0 + 30 * MIN + 20_000  # 20:30:20; its minute counts as after
    D.add_points(state, pts("error_rate", [(0.01, T0 + i * MIN) for i in range(15, 30)]      # 20:15..20:29
                 + [(0.5, T0 + 14 * MIN)]                                                # before the window
                 + [(0.05, T0 + 30 * MIN + 10_000)]                                      # 20:30:10: after
                 + [(0.05, T0 + i * MIN) for i in range(31, 35)]))
    D.add_points(state, pts("response_time", [(200.0, T0 + i * MIN) for i in range(15, 35)]))
    assert not D.due(state, started)
    healthy, reasons, measured = D.verdict(state, started, None)
    assert (healthy, reasons) == (False, ["error rate rose from 0.01 to 0.05"])
    assert measured == {"before": {"error_rate": 0.01, "response_time": 200.0},
                        "after": {"error_rate": 0.05, "response_time": 200.0}}
    D.add_points(state, pts("response_time", [(200.0, started + 5 * MIN)]))
    assert D.due(state, started)
    assert D.verdict(state, started, "health check GET http://x/h answered 503")[:2] == (
        False, ["error rate rose from 0.01 to 0.05", "health check GET http://x/h answered 503"])
