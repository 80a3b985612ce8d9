"""Insights (/v1/applications/{id}/insights): what the worker notices in an application's
data, worded for a person. Pure rules over the per-application state the worker keeps
for deployments (pipeline/deployments.py: two hours of per-minute sums of error_rate and
response_time); rules and numbers in docs/insights.md.

Time is the data's: "the last hour" is the 60 minutes up to and including the minute of
the newest point, compared with the 60 minutes before them. An insight has one id per application, kind and UTC hour of its
detection, so it is raised at most once an hour while its cause lasts, and updated (a
higher version of the same id) when its severity changes in that hour. Replaying the
same records gives the same ids and versions.
"""
import hashlib

from .deployments import MINUTE_MS, mean_count

HOUR_MS = 3_600_000
MIN_POINTS = 5  # per hour compared: fewer is noise, not a trend

# performance: mean response time of the last hour vs the hour before
RT_MEDIUM = 0.20  # +20 % or more
RT_HIGH = 0.50    # +50 % or more
# reliability: mean error rate of the last hour vs the hour before
ER_RISE = 0.01    # up by more than one percentage point ...
ER_FACTOR = 1.5   # ... and to more than 1.5x
ER_HIGH = 0.05    # high once above 5 %

RECOMMEND = {
    "performance": "Consider scaling your application or optimizing slow queries",
    "reliability": "Check the error logs and recent deployments; roll back the latest change if it is the cause",
    "deployment": "Review the deployment's changes and fix the cause before deploying it again",
}


def insight_id(tenant: str, app_id: str, kind: str, scope: str) -> str:
    """Deterministic: the same kind in the same scope (an hour, a deployment) is one insight."""
    digest = hashlib.sha256(f"{tenant}/{app_id}/{kind}/{scope}".encode()).hexdigest()[:16]
    return f"insight_{digest}"


def _pct(x: float) -> str:
    return f"{x * 100:.3g}%"


def detect(minutes: dict[str, list], newest: int) -> list[dict]:
    """The insights the last hour up to `newest` shows, as {type, severity, title,
    description}; `minutes` per metric as [minute start, sum, count]."""
    found = []
    end = newest - newest % MINUTE_MS + MINUTE_MS
    cur_start, prev_start = end - HOUR_MS, end - 2 * HOUR_MS
    rt_now, n_now = mean_count(minutes["response_time"], cur_start, end)
    rt_before, n_before = mean_count(minutes["response_time"], prev_start, cur_start)
    if n_now >= MIN_POINTS and n_before >= MIN_POINTS and rt_before > 0:
        rise = rt_now / rt_before - 1
        if rise >= RT_MEDIUM:
            found.append({"type": "performance", "severity": "high" if rise >= RT_HIGH else "medium",
                          "title": "Response time increase detected",
                          "description": f"Average response time increased by {rise * 100:.0f}% in the last hour "
                                         f"({rt_before:.0f} ms to {rt_now:.0f} ms)"})
    er_now, n_now = mean_count(minutes["error_rate"], cur_start, end)
    er_before, n_before = mean_count(minutes["error_rate"], prev_start, cur_start)
    if n_now >= MIN_POINTS and n_before >= MIN_POINTS and er_now > er_before + ER_RISE and er_now > ER_FACTOR * er_before:
        found.append({"type": "reliability", "severity": "high" if er_now > ER_HIGH else "medium",
                      "title": "Error rate increase detected",
                      "description": f"Error rate rose from {_pct(er_before)} to {_pct(er_now)} in the last hour"})
    return found


def _record(tenant: str, app_id: str, found: dict, id_extra: str, at: int) -> dict:
    return {"tenant": tenant, "id": insight_id(tenant, app_id, found["type"], id_extra), "application_id": app_id,
            **found, "recommendation": RECOMMEND[found["type"]], "timestamp": at, "version": at}


def deployment_insight(tenant: str, deployment: dict, at: int) -> dict:
    """The insight record of a failed or rolled back deployment (one per deployment)."""
    verb = "rolled back" if deployment["status"] == "rolled_back" else "failed"
    found = {"type": "deployment", "severity": "high", "title": f"Deployment {deployment['version']} {verb}",
             "description": deployment["reason"]}
    return _record(tenant, deployment["application_id"], found, deployment["id"], at)


def raise_insights(state: dict, tenant: str, app_id: str, found: list[dict], at: int) -> list[dict]:
    """Insight records for what is new in `found` (detected at data time `at`): a kind not
    yet raised this hour, or raised with another severity. Remembers what it raised in
    state["insights"] ({kind: [hour, severity]})."""
    raised = state.setdefault("insights", {})
    hour = at // HOUR_MS
    out = []
    for f in found:
        if raised.get(f["type"]) == [hour, f["severity"]]:
            continue
        raised[f["type"]] = [hour, f["severity"]]
        out.append(_record(tenant, app_id, f, str(hour), at))
    return out
