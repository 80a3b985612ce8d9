"""The alert state machine, as pure functions over one subject's state (an application,
an agent or a token budget): `apply_record` (and in it `observe`) on each source record
(`observe` on a budget's figures, `budget_points`), `tick` on the wall clock. The worker
(pipeline/worker/alerts.py) and replay (pipeline/replay/alerts.py) both run them; replay
runs the clock itself (`run_clock`) and leaves budget rules out (docs/alerts.md, Replay).

    ok ──cond──> pending ──cond held `for`──> firing ──not cond──> ok   (notified: resolved)
     └──cond, for = 0────────────────────────> firing                    (notified: firing)
    any but no_data ──no point for a window (wall clock)──> no_data     (notified if it was firing; not budgets)
    firing ──every repeat interval (wall clock)──> firing                (notified: reminder)

A subject's state: the bucketed series its rules read (series.py), when each metric
was last seen (wall clock: the Kafka timestamp of the record that brought it, when
Sophra received it, so the state is a function of the log and replay derives the same),
and per rule {state, since, started_at, value,
evaluated_at, notified, created}. Transition ids come from the rule, the new state, the
time it began and the kind of notice, so deriving a transition twice (a batch re-read
after a crash) gives the same id, which the sink and the notifier collapse.
Rules and numbers: docs/alerts.md.
"""
import hashlib
import itertools
import json

from . import series as S
from .conditions import AGENT_METRICS, Rule, holds


def new_state() -> dict:
    return {"offset": -1, "name": None, "series": {}, "seen": {}, "rules": {}}


def _rule_state(state: dict, rule: Rule, wall: int) -> dict:
    return state["rules"].setdefault(rule.id, {
        "state": "ok", "since": wall, "started_at": wall, "value": None, "evaluated_at": None,
        "notified": None, "created": wall})


def transition_id(rule_id: str, new: str, at: int, notify: str | None) -> str:
    return "tr_" + hashlib.sha256(f"{rule_id}/{new}/{at}/{notify}".encode()).hexdigest()[:20]


def _transition(state: dict, rule: Rule, prev: str, new: str, at: int, started_at: int, value: float | None,
                notify: str | None, wall: int) -> tuple[str, dict]:
    return "alert_transition", {
        "tenant": rule.tenant, "id": transition_id(rule.id, new, at, notify), "rule_id": rule.id,
        "rule_name": rule.name, "scope": rule.scope, "subject_id": rule.subject_id, "subject_name": state["name"],
        "state": new, "previous_state": prev, "notify": notify, "metric": rule.metric,
        "aggregation": rule.aggregation, "operator": rule.operator, "threshold": rule.threshold,
        "eval_window": rule.window, "value": value, "started_at": started_at, "at": at, "actions": rule.actions,
        "wall_at": wall}


def _status(rule: Rule, rs: dict, wall: int) -> tuple[str, dict]:
    # Never below a status already written: a tick runs at the worker's clock, which is
    # ahead of the receipt time of records still queued when the worker catches up.
    rs["version"] = max(wall, rs.get("version", 0))
    return "alert_status", {
        "tenant": rule.tenant, "rule_id": rule.id, "scope": rule.scope, "subject_id": rule.subject_id,
        "state": rs["state"], "since": rs["since"], "value": rs["value"],
        "evaluated_at": rs["evaluated_at"] if rs["evaluated_at"] is not None else rs["since"], "version": rs["version"]}


def observe(state: dict, rules: list[Rule], points: list[tuple[str, float, int]], wall: int) -> list[tuple[str, dict]]:
    """Add (metric, value, timestamp) points and evaluate the enabled `rules` on them: once
    per bucket the points reach, at the series' newest point, in data-time order. Returns
    the transitions and statuses (kind, record) it derived, oldest first."""
    out: list[tuple[str, dict]] = []
    rules = [r for r in rules if r.enabled]
    for key, group in itertools.groupby(sorted(rules, key=lambda r: r.series), key=lambda r: r.series):
        group = list(group)
        width, window_ms, metric = group[0].bucket_ms, group[0].window_ms, group[0].metric
        keep = any(r.aggregation == "p95" for r in group)
        mine = sorted((t, v) for m, v, t in points if m == metric)
        if not mine:
            continue
        state["seen"][metric] = wall
        s = state["series"].setdefault(key, S.new_series())
        for _, in_bucket in itertools.groupby(mine, key=lambda p: p[0] - p[0] % width):
            for t, v in in_bucket:
                S.add(s, t, v, width, window_ms, keep)
            at = s["newest"]
            buckets = S.window(s, at, width, window_ms)
            for rule in group:
                out += _step(state, rule, S.aggregate(buckets, rule.aggregation), at, wall)
        out += [_status(r, state["rules"][r.id], wall) for r in group if r.id in state["rules"]]
    return out


def _step(state: dict, rule: Rule, value: float | None, at: int, wall: int) -> list[tuple[str, dict]]:
    rs = _rule_state(state, rule, wall)
    if value is None:
        return []
    rs["value"], rs["evaluated_at"] = value, at
    prev = rs["state"]
    if holds(value, rule.operator, rule.threshold):
        if prev == "firing":
            return []
        if prev == "pending" and at - rs["since"] < rule.for_ms:
            return []
        new = "firing" if prev == "pending" or rule.for_ms == 0 else "pending"
    else:
        if prev == "ok":
            return []
        new = "ok"
    notify = "firing" if new == "firing" else "resolved" if prev == "firing" else None
    started_at = at if new != "ok" or prev != "firing" else rs["started_at"]
    rs.update(state=new, since=at, started_at=started_at)
    if notify == "firing":
        rs["notified"] = wall
    return [_transition(state, rule, prev, new, at, started_at, value, notify, wall)]


def watched(rule: Rule) -> bool:
    """Whether silence means missing data: a budget's figures change only when tokens are
    counted, so an idle budget is quiet, not missing (its rules never go no_data)."""
    return rule.scope != "budget"


def tick(state: dict, rules: list[Rule], wall: int) -> list[tuple[str, dict]]:
    """The wall clock's part: no_data once a rule's metric went a window without points,
    reminders while firing; forget the state of rules deleted or disabled, and the series
    no rule reads any more."""
    out: list[tuple[str, dict]] = []
    live = {r.id: r for r in rules if r.enabled}
    for rule_id in [k for k in state["rules"] if k not in live]:
        del state["rules"][rule_id]
    for key in [k for k in state["series"] if k not in {r.series for r in live.values()}]:
        del state["series"][key]
    for rule in live.values():
        rs = _rule_state(state, rule, wall)
        last = max(state["seen"].get(rule.metric, 0), rs["created"])
        prev = rs["state"]
        if prev != "no_data" and watched(rule) and wall - last > rule.window_ms:
            at = last + rule.window_ms
            notify = "no_data" if prev == "firing" else None
            started_at = rs["started_at"] if prev == "firing" else at
            rs.update(state="no_data", since=at, started_at=started_at, value=None, evaluated_at=at)
            out += [_transition(state, rule, prev, "no_data", at, started_at, None, notify, wall),
                    _status(rule, rs, wall)]
        elif prev == "firing" and rule.repeat_ms > 0 and wall - rs["notified"] >= rule.repeat_ms:
            # One reminder however long the clock jumped (a worker that was down), at a time
            # derived from the state so that re-deriving it gives the same id.
            at = rs["notified"] + (wall - rs["notified"]) // rule.repeat_ms * rule.repeat_ms
            rs["notified"] = at
            out.append(_transition(state, rule, "firing", "firing", at, rs["started_at"], rs["value"], "reminder",
                                   wall))
    return out


def vital_points(record: dict) -> list[tuple[str, float, int]]:
    """An agent_vital record as the (metric, value, timestamp) points agent rules read:
    reference 003's metric names, token usage as a percentage of the limit, and every
    numeric value of the metadata (custom metrics are stored there)."""
    t = record["recorded_at"]
    values = {"tokenConsumption": record["token_consumption"], "hallucinationRate": record["hallucination_rate"],
              "loopCount": record["loop_frequency"], "conflictCount": record["directive_conflicts"],
              "tokenUsagePercent": 100.0 * record["token_consumption"] / record["token_limit"]}
    try:
        meta = json.loads(record["metadata"] or "{}")
    except ValueError:
        meta = {}
    if isinstance(meta, dict):
        for k, v in meta.items():
            if k not in AGENT_METRICS and isinstance(v, (int, float)) and not isinstance(v, bool):
                values[k] = v
    return [(m, float(v), t) for m, v in values.items()]


def budget_points(f: dict, at: int) -> list[tuple[str, float, int]]:
    """A budget's figures (pipeline/budgets.py `figures`) at `at` as the points budget rules
    read: percent_used; exhausted 1 or 0; hours_to_exhaustion from the forecast, 0 once
    exhausted (it has run out), absent while the budget does not run out at its pace."""
    points = [("percent_used", float(f["percent_used"]), at), ("exhausted", float(f["exhausted"]), at)]
    if f["exhausted"]:
        points.append(("hours_to_exhaustion", 0.0, at))
    elif f["forecast_exhaustion_at"] is not None:
        points.append(("hours_to_exhaustion", (f["forecast_exhaustion_at"] - at) / 3_600_000, at))
    return points


def metric_points(record: dict) -> list[tuple[str, float, int]]:
    """An app_metric_batch record as (metric, value, timestamp) points."""
    return [(p["metric"], p["value"], p["timestamp"]) for p in record["points"]]


# scope -> (its source record kind, the record's subject field, its points)
SOURCES = {"application": ("app_metric_batch", "application_id", metric_points),
           "agent": ("agent_vital", "agent_id", vital_points)}


def apply_record(state: dict | None, rules, scope: str, record: dict, wall: int) -> tuple[dict | None, list]:
    """One source record of a subject, received at `wall`: (its state, or None when no rule
    watches it and it has none; the transitions and statuses derived)."""
    if not rules and state is None:
        return None, []  # nothing watches it: keep no state
    state = state or new_state()
    if scope == "agent":
        state["name"] = record["agent_name"] or state["name"]
    return state, observe(state, list(rules), SOURCES[scope][2](record), wall)


def next_due(state: dict, rules: list[Rule]) -> int | None:
    """The earliest wall time at which `tick` derives something for this state (no_data or
    a reminder), None if nothing is due ever without new points. Mirrors tick's tests."""
    due = []
    for rule in rules:
        rs = state["rules"].get(rule.id)
        if not rule.enabled or rs is None:
            continue
        if rs["state"] != "no_data" and watched(rule):
            due.append(max(state["seen"].get(rule.metric, 0), rs["created"]) + rule.window_ms + 1)
        if rs["state"] == "firing" and rule.repeat_ms > 0:
            due.append(rs["notified"] + rule.repeat_ms)
    return min(due, default=None)


def run_clock(state: dict, rules: list[Rule], until: int) -> list[tuple[str, dict]]:
    """What the worker's clock (a tick a second) derives for this state up to `until`: a
    tick at each due time, in order, then one at `until`. Each due tick derives what the
    worker's first tick past that time derives (no_data at its time, one reminder)."""
    out: list[tuple[str, dict]] = []
    while (due := next_due(state, rules)) is not None and due <= until:
        out += tick(state, rules, due)
    return out + tick(state, rules, until)
