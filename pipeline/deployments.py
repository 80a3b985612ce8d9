"""Deployments (/v1): the rules that move a deployment from pending to its outcome.

pending      the api accepted it (started_at = acceptance time)
in_progress  the worker saw it and is waiting for data after it
success | failed | rolled_back
             decided by the first metric point at or after started_at + AFTER_MS: the
             application's mean error rate and mean response time over the AFTER_MS after
             the deployment are compared with the BEFORE_MS before it, and the health
             check (when given) is probed. A failure with rollback_on_error is rolled_back.

Time is the data's (metric timestamps), so the same records always give the same
outcome; a deployment with no metrics after it stays in_progress.
"""
BEFORE_MS = 15 * 60_000
AFTER_MS = 5 * 60_000
KEEP_MS = 2 * 3_600_000          # metric history kept per application
ERROR_RATE_RISE = 0.02           # error rate failed: after > before + 0.02 and after > 1.5x before
ERROR_RATE_FACTOR = 1.5
ERROR_RATE_ABSOLUTE = 0.05       # without data before it: after > 5 % fails
RESPONSE_TIME_FACTOR = 1.5       # response time failed: after > 1.5x before and 50 ms slower
RESPONSE_TIME_RISE_MS = 50.0
WATCHED = ("error_rate", "response_time")


DONE_KEPT = 200                   # decided deployment ids remembered, so a redelivery can't reopen one


def new_state() -> dict:
    return {"points": {m: [] for m in WATCHED}, "last_batch_id": 0, "open": {}, "done": []}


def add_points(state: dict, points: list[dict]) -> None:
    for p in points:
        if p["metric"] in WATCHED:
            state["points"][p["metric"]].append([p["timestamp"], p["value"]])
    newest = max((p["timestamp"] for p in points), default=0)
    for m in WATCHED:
        series = sorted(state["points"][m])
        state["points"][m] = [pt for pt in series if pt[0] >= newest - KEEP_MS]


def _mean(state: dict, metric: str, start: int, end: int) -> float | None:
    values = [v for t, v in state["points"][metric] if start <= t < end]
    return sum(values) / len(values) if values else None


def verdict(state: dict, started_at: int, probe: str | None) -> tuple[bool, list[str], dict]:
    """(healthy?, reasons, measurements) of a deployment, from the data around it."""
    before = {m: _mean(state, m, started_at - BEFORE_MS, started_at) for m in WATCHED}
    after = {m: _mean(state, m, started_at, started_at + AFTER_MS) for m in WATCHED}
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


def due(state: dict, started_at: int) -> bool:
    """Has data arrived from after the observation window?"""
    newest = max((pts[-1][0] for pts in state["points"].values() if pts), default=0)
    return newest >= started_at + AFTER_MS
