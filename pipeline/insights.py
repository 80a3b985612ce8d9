"""Insights (/v1/applications/{id}/insights, /api/agents/{id}/insights): what the worker
notices, worded for a person. Two sources (docs/insights.md):

- an anomaly episode of one series (pipeline/anomaly/watch.py): what was seen, the
  expected band, since when, how unusual, and a likely cause where one is known (a
  deployment or agent event just before it, other series of the same subject unusual at
  the same time). One insight per episode: its id comes from the series and the minute
  the episode started, and each change is a higher `version` of it (status open, then
  resolved).
- a failed or rolled back deployment (the step in pipeline/deployments.py), one per deployment.

Ids and versions come from the data, so replaying the same records gives the same rows.
"""
import hashlib
import time

from .anomaly.watch import MINUTE_MS, Episode

CAUSE_BEFORE_MS = 30 * MINUTE_MS  # a deployment or event this long before an episode's start may be its cause

# Series of an application with a type of their own; every other series is "anomaly".
TYPE_OF = {"response_time": "performance", "error_rate": "reliability", "throughput": "traffic"}
LABEL = {"response_time": "Response time", "error_rate": "Error rate", "throughput": "Throughput"}

RECOMMEND = {
    "performance": "Consider scaling your application or optimizing slow queries",
    "reliability": "Check the error logs and recent deployments; roll back the latest change if it is the cause",
    "traffic": "Check upstream clients, load balancers and DNS: a drop can mean users cannot reach the service, "
               "a surge a retry storm or a new client",
    "anomaly": "Look at what changed when it started: deployments, configuration, inputs or load",
    "deployment": "Review the deployment's changes and fix the cause before deploying it again",
}


def insight_id(tenant: str, subject: str, kind: str, scope: str) -> str:
    """Deterministic: the same kind in the same scope (an episode, a deployment) is one insight."""
    digest = hashlib.sha256(f"{tenant}/{subject}/{kind}/{scope}".encode()).hexdigest()[:16]
    return f"insight_{digest}"


def _hm(ms: int) -> str:
    return time.strftime("%H:%M UTC", time.gmtime(ms // 1000))


def _value(series: str, x: float) -> str:
    if series == "response_time":
        return f"{x:.4g} ms"
    if series == "error_rate":
        return f"{x * 100:.3g}%"
    if series == "throughput":
        return f"{x:.4g} requests/min"
    return f"{x:.4g}"


def _band(series: str, ep: Episode) -> str:
    return f"{_value(series, ep.low)} to {_value(series, ep.high)}"


def likely_cause(ep: Episode, context: dict) -> str | None:
    """A deployment or agent event shortly before the episode started, and the series that
    became unusual at about the same time; None when nothing is known."""
    parts = []
    before = [c for c in context.get("changes", ()) if ep.started_at - CAUSE_BEFORE_MS <= c[1] < ep.started_at
              + MINUTE_MS]
    if before:
        what, at = max(before, key=lambda c: c[1])
        ago = max(0, (ep.started_at - at) // MINUTE_MS)
        parts.append(f"{what} at {_hm(at)}, {ago} min before it started")
    together = [f"{name} (since {_hm(start)})" for name, start in ep.others]
    if together:
        parts.append("unusual at the same time: " + ", ".join(together))
    return "; ".join(parts) or None


def anomaly_insight(tenant: str, scope: str, subject: str, ep: Episode, context: dict) -> dict:
    """The insight record of one version of an anomaly episode; scope application or agent."""
    kind = TYPE_OF.get(ep.series, "anomaly") if scope == "application" else "anomaly"
    label = LABEL.get(ep.series, ep.series)
    way = "high" if ep.observed > ep.expected else "low"
    score = f"anomaly score {ep.score:.2f}"
    if ep.status == "open":
        title = f"{label} unusually {way}"
        text = (f"{ep.series} averaged {_value(ep.series, ep.observed)} a minute at {_hm(ep.at)}, "
                f"{'above' if way == 'high' else 'below'} its expected {_band(ep.series, ep)} ({score}); "
                f"unusual since {_hm(ep.started_at)}")
    else:
        minutes = (ep.ended_at - ep.started_at) // MINUTE_MS
        moved = abs(ep.now_expected - ep.expected) > (ep.high - ep.low) / 2  # the detector learnt a new normal
        title = f"{label} settled at a new level" if moved else f"{label} back to normal"
        text = (f"{ep.series} was unusually {way} from {_hm(ep.started_at)} to {_hm(ep.ended_at)} ({minutes} min): "
                f"at worst {_value(ep.series, ep.observed)} a minute against an expected "
                f"{_band(ep.series, ep)} ({score})")
        if moved:
            text += f"; it is now expected around {_value(ep.series, ep.now_expected)}"
    cause = likely_cause(ep, context)
    if cause:
        text += f". Likely cause: {cause}"
    return {"tenant": tenant, "id": insight_id(tenant, subject, f"anomaly/{ep.series}", str(ep.started_at)),
            "application_id": subject if scope == "application" else "",
            "agent_id": subject if scope == "agent" else None, "type": kind, "severity": ep.severity,
            "title": title, "description": text, "recommendation": RECOMMEND[kind], "timestamp": ep.started_at,
            "version": ep.at, "metric": ep.series, "status": ep.status, "started_at": ep.started_at,
            "ended_at": ep.ended_at, "observed": ep.observed, "expected": ep.expected, "expected_low": ep.low,
            "expected_high": ep.high, "score": ep.score, "cause": cause}


def deployment_insight(tenant: str, deployment: dict, at: int) -> dict:
    """The insight record of a failed or rolled back deployment (one per deployment)."""
    verb = "rolled back" if deployment["status"] == "rolled_back" else "failed"
    app_id = deployment["application_id"]
    return {"tenant": tenant, "id": insight_id(tenant, app_id, "deployment", deployment["id"]),
            "application_id": app_id, "type": "deployment", "severity": "high",
            "title": f"Deployment {deployment['version']} {verb}", "description": deployment["reason"],
            "recommendation": RECOMMEND["deployment"], "timestamp": at, "version": at}
