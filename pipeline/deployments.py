"""Deployments (/v1): the rules that move a deployment from pending to its outcome.

pending      the api accepted it (started_at = acceptance time)
in_progress  the worker saw it and is waiting for data after it
success | failed | rolled_back
             decided by the first metric point at or after started_at + AFTER_MS: the
             application's mean error rate and mean response time over the AFTER_MS after
             the deployment are compared with the BEFORE_MS before it, and the health
             check (when given) is probed. A failure with rollback_on_error is rolled_back.

With a health check, the metric verdict is taken when the deployment becomes due and
kept in state["probing"] until the probe's result comes back as a record on the same
topic (an in_progress revision with probed=true); that record completes the decision.
So the outcome is in the event log, and a deployment still "probing" after a restart is
probed again (pipeline/worker/deployments.py).

Time is the data's (metric timestamps), so the same records always give the same
outcome; a deployment with no metrics after it stays in_progress.

The state keeps per-minute sums and counts of the watched metrics, not the points: its
size (and the changelog record written after every batch) stays bounded whatever the
point rate. So the windows are whole minutes: "before" is the BEFORE_MS of minutes
ending at the minute of started_at, "after" the AFTER_MS of minutes from it.
"""
import logging

from . import insights as I

log = logging.getLogger("sophra.worker.deployments")

BEFORE_MS = 15 * 60_000
AFTER_MS = 5 * 60_000
MINUTE_MS = 60_000
KEEP_MS = 2 * 3_600_000          # metric history kept per application, back from its newest minute
ERROR_RATE_RISE = 0.02           # error rate failed: after > before + 0.02 and after > 1.5x before
ERROR_RATE_FACTOR = 1.5
ERROR_RATE_ABSOLUTE = 0.05       # without data before it: after > 5 % fails
RESPONSE_TIME_FACTOR = 1.5       # response time failed: after > 1.5x before and 50 ms slower
RESPONSE_TIME_RISE_MS = 50.0
WATCHED = ("error_rate", "response_time")


DONE_KEPT = 200                   # decided deployment ids remembered, so a redelivery can't reopen one


def new_state() -> dict:
    # minutes: per metric, [minute start (epoch ms), sum, count] oldest first
    # probing: deployment id -> {"reasons", "completed_at"}: due, health check result not yet seen
    return {"minutes": {m: [] for m in WATCHED}, "newest": None, "open": {}, "done": [],
            "probing": {}}


def add_points(state: dict, points: list[dict]) -> None:
    watched = [p for p in points if p["metric"] in WATCHED]
    if not watched:
        return
    newest = max(p["timestamp"] for p in watched)
    if state["newest"] is None or newest > state["newest"]:
        state["newest"] = newest
    oldest_kept = state["newest"] - state["newest"] % MINUTE_MS - KEEP_MS
    for m in WATCHED:
        sums = {t: [s, c] for t, s, c in state["minutes"][m]}
        for p in watched:
            if p["metric"] == m:
                slot = sums.setdefault(p["timestamp"] - p["timestamp"] % MINUTE_MS, [0.0, 0])
                slot[0] += p["value"]
                slot[1] += 1
        state["minutes"][m] = [[t, s, c] for t, (s, c) in sorted(sums.items()) if t >= oldest_kept]


def mean_count(minutes: list, start: int, end: int) -> tuple[float | None, int]:
    """Mean and number of the points in the minutes [start, end) (both minute-aligned)."""
    total = n = 0
    for t, s, c in minutes:
        if start <= t < end:
            total += s
            n += c
    return (total / n if n else None), n


def _mean(state: dict, metric: str, start: int, end: int) -> float | None:
    return mean_count(state["minutes"][metric], start, end)[0]


def verdict(state: dict, started_at: int, probe: str | None) -> tuple[bool, list[str], dict]:
    """(healthy?, reasons, measurements) of a deployment, from the data around it."""
    m0 = started_at - started_at % MINUTE_MS
    before = {m: _mean(state, m, m0 - BEFORE_MS, m0) for m in WATCHED}
    after = {m: _mean(state, m, m0, m0 + AFTER_MS) for m in WATCHED}
    reasons = []
    eb, ea = before["error_rate"], after["error_rate"]
    if ea is not None and (
            (eb is None and ea > ERROR_RATE_ABSOLUTE)
            or (eb is not None and ea > eb + ERROR_RATE_RISE and ea > ERROR_RATE_FACTOR * eb)):
        reasons.append(f"error rate rose from {_fmt(eb)} to {ea:.4g}")
    rb, ra = before["response_time"], after["response_time"]
    if rb is not None and ra is not None and ra > RESPONSE_TIME_FACTOR * rb and ra - rb > RESPONSE_TIME_RISE_MS:
        reasons.append(f"response time rose from {rb:.4g} ms to {ra:.4g} ms")
    if probe:
        reasons.append(probe)
    return not reasons, reasons, {"before": before, "after": after}


def _fmt(v: float | None) -> str:
    return "no data" if v is None else f"{v:.4g}"


def newest(state: dict) -> int | None:
    """Timestamp of the newest watched point, None before any."""
    return state["newest"]


def due(state: dict, started_at: int) -> bool:
    """Has data arrived from after the observation window?"""
    t = newest(state)
    return t is not None and t >= started_at + AFTER_MS


def outcome(dep: dict, reasons: list[str], completed_at: int | None) -> dict:
    """The deciding revision of a deployment, from its reasons to fail (none: success)."""
    status = "rolled_back" if reasons and dep["rollback_on_error"] else "failed" if reasons else "success"
    reason = "; ".join(reasons) + ("; rolled back (rollback_on_error)" if status == "rolled_back" else "")
    return {**dep, "status": status, "reason": reason or None, "completed_at": completed_at, "revision": 2,
            "probed": False, "probe_failure": None}


def probe_result(dep: dict, failure: str | None) -> dict:
    """The record that brings a health check's result back: an in_progress revision."""
    return {**dep, "probed": True, "probe_failure": failure}


# -- the step: the worker (pipeline/worker/deployments.py) and replay (pipeline/replay) run it --

def apply(state: dict, kind: str, record: dict) -> list[tuple[str, bytes, dict]]:
    """Step one application's state by one record; the (kind, key, record)s to produce.
    Never waits on anything: a health check to run shows as state["probing"]."""
    tenant = record["tenant"]
    key = f"{tenant}/{record['application_id']}".encode()
    probing = state.setdefault("probing", {})  # states changelogged before health checks moved out
    out = []
    if kind == "app_deployment" and record["probed"]:
        waiting = probing.pop(record["id"], None)
        if waiting is not None:  # else a duplicate (a probe started again after a restart): ignored
            failure = [record["probe_failure"]] if record["probe_failure"] else []
            out += _decide(state, key, state["open"][record["id"]], waiting["reasons"] + failure,
                           waiting["completed_at"])
        return out
    if kind == "app_deployment":
        if record["status"] == "pending" and record["id"] not in state["open"] and record["id"] not in state["done"]:
            started = {**record, "status": "in_progress", "revision": 1}
            state["open"][record["id"]] = started
            out.append(("app_deployment", key, started))
    elif kind == "app_metric_batch":
        add_points(state, record["points"])
    for dep_id, dep in list(state["open"].items()):
        if dep_id not in probing and due(state, dep["started_at"]):
            healthy, reasons, measured = verdict(state, dep["started_at"], None)
            log.info("deployment %s: metrics %s %s", dep_id, "healthy" if healthy else "unhealthy", measured)
            if dep["health_url"]:
                probing[dep_id] = {"reasons": reasons, "completed_at": newest(state)}
            else:
                out += _decide(state, key, dep, reasons, newest(state))
    return out


def _decide(state: dict, key: bytes, dep: dict, reasons: list[str], completed_at: int | None) -> list:
    decided = outcome(dep, reasons, completed_at)
    out = [("app_deployment", key, decided)]
    if reasons:
        out.append(("app_insight", key, I.deployment_insight(dep["tenant"], decided, completed_at)))
    log.info("deployment %s: %s", dep["id"], decided["status"])
    del state["open"][dep["id"]]
    state["done"] = (state["done"] + [dep["id"]])[-DONE_KEPT:]
    return out
