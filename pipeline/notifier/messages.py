"""What a notification says: one alert transition (or ARI intervention) rendered once for
every channel: an email subject, plain text and HTML, Slack mrkdwn, and the webhook JSON.
Formats are pinned by tests/test_notifier_channels.py and described in docs/notifications.md."""
import html
from dataclasses import dataclass
from datetime import datetime, timezone

KINDS = ("firing", "resolved", "reminder", "no_data", "intervention")
_TAGS = {"firing": "FIRING", "resolved": "RESOLVED", "reminder": "REMINDER", "no_data": "NO DATA"}
# Headline colour of the HTML part, per kind.
_COLOURS = {"firing": "#cf222e", "resolved": "#1a7f37", "reminder": "#cf222e", "no_data": "#9a6700",
            "intervention": "#8250df"}


@dataclass(frozen=True)
class Notification:
    id: str                 # the transition's deterministic id; delivery ids derive from it
    kind: str               # one of KINDS
    rule_id: str | None     # "alert_..." (None for an ARI intervention)
    rule_name: str          # for interventions the ARI description
    subject_kind: str       # "application" | "agent" | "budget"
    subject_id: str
    subject_name: str
    metric: str | None
    aggregation: str | None
    operator: str | None
    threshold: float | None
    window: str | None
    value: float | None     # None for no_data
    started_at: int         # epoch ms UTC when this firing episode started
    at: int                 # epoch ms UTC of this transition
    link: str
    severity: str | None = None
    details: str | None = None


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str
    slack_text: str
    payload: dict


def num(v: float) -> str:
    """Compact number: 0.08, 250, 1234, 1.5e-05; never float noise like 0.08000000001."""
    if float(v).is_integer() and abs(v) < 1e15:
        return str(int(v))
    s = f"{v:.4g}"
    return f"{v:.0f}" if "e+" in s and abs(v) < 1e15 else s  # 12346 reads better than 1.235e+04


def utc(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def iso(ms: int) -> str:
    """ISO 8601 UTC with Z; milliseconds only when there are any."""
    t = datetime.fromtimestamp(ms // 1000, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{t}.{ms % 1000:03d}Z" if ms % 1000 else f"{t}Z"


def duration(ms: int) -> str:
    """The two leading units, zeros dropped: 45s, 7m 30s, 1h 5m, 2d 3h, 1h."""
    s = max(ms, 0) // 1000
    parts = [(s // 86400, "d"), (s % 86400 // 3600, "h"), (s % 3600 // 60, "m"), (s % 60, "s")]
    first = next((i for i, (n, _) in enumerate(parts) if n), 3)
    return " ".join(f"{n}{u}" for n, u in parts[first:first + 2] if n) or "0s"


def _one_line(s: str) -> str:
    # Names are user input; a header or a Slack line must not break on a newline.
    return " ".join(s.split())


def _condition(n: Notification) -> str | None:
    """`error_rate (mean over 5m) = 0.08, threshold > 0.05`; `: no data` when there is no value."""
    if n.metric is None:
        return None
    scope = " over ".join(x for x in (n.aggregation, n.window) if x)
    head = f"{n.metric} ({scope})" if scope else n.metric
    head += f" = {num(n.value)}" if n.value is not None else ": no data"
    if n.operator is not None and n.threshold is not None:
        head += f", threshold {n.operator} {num(n.threshold)}"
    return head


def _headline(n: Notification) -> str:
    where = f"{n.subject_kind} {n.subject_name}"
    if n.kind == "intervention":
        sev = f" (severity {n.severity})" if n.severity else ""
        return f"ARI flagged {where}: {n.rule_name}{sev}."
    return {"firing": f"{n.rule_name} is firing on {where}.",
            "reminder": f"{n.rule_name} is still firing on {where}.",
            "resolved": f"{n.rule_name} resolved on {where}.",
            "no_data": f"{n.rule_name} is firing on {where} and its data stopped."}[n.kind]


def _when(n: Notification) -> str:
    if n.kind == "intervention":
        return f"Detected: {utc(n.at)}"
    since = f"Started: {utc(n.started_at)}"
    if n.kind == "resolved":
        return f"{since}, fired for {duration(n.at - n.started_at)}"
    if n.kind in ("reminder", "no_data"):
        return f"{since}, firing for {duration(n.at - n.started_at)}"
    return since


def _tag(n: Notification) -> str:
    if n.kind == "intervention":
        return f"[ARI {n.severity.upper()}]" if n.severity else "[ARI]"
    return f"[{_TAGS[n.kind]}]"


def subject(n: Notification) -> str:
    return _one_line(f"{_tag(n)} {n.rule_name} \N{EM DASH} {n.subject_name}")


def payload(n: Notification, title: str) -> dict:
    cond = None if n.metric is None else {"metric": n.metric, "aggregation": n.aggregation, "operator": n.operator,
                                           "threshold": n.threshold, "window": n.window}
    return {"version": 1, "id": n.id, "kind": n.kind,
            "rule": None if n.rule_id is None else {"id": n.rule_id, "name": n.rule_name},
            "subject": {"kind": n.subject_kind, "id": n.subject_id, "name": n.subject_name},
            "condition": cond, "value": n.value, "started_at": iso(n.started_at), "at": iso(n.at),
            "link": n.link, "severity": n.severity, "details": n.details, "title": title}


def _slack_escape(s: str) -> str:
    # Slack mrkdwn reserves exactly these three.
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _html(headline: str, facts: list[str], link: str, colour: str) -> str:
    e = html.escape
    rows = "".join(f'<p style="margin:0 0 6px">{e(f)}</p>' for f in facts)
    return ('<!DOCTYPE html><html><head><meta charset="utf-8"></head>'
            '<body style="font-family:Helvetica,Arial,sans-serif;font-size:14px;color:#1f2328">'
            f'<p style="margin:0 0 12px;font-size:16px;font-weight:bold;color:{colour}">{e(headline)}</p>'
            f'{rows}<p style="margin:12px 0 0">Link: <a href="{e(link)}" style="color:#0969da">{e(link)}</a></p>'
            '</body></html>')


def render(n: Notification) -> Rendered:
    if n.kind not in KINDS:
        raise ValueError(f"unknown notification kind {n.kind!r}")
    title, headline = subject(n), _one_line(_headline(n))
    facts = [x for x in (_condition(n), n.details and _one_line(n.details), _when(n)) if x]
    text = "\n".join([headline, *facts, f"Link: {n.link}"]) + "\n"
    # Slack: the bold title linking the subject, then the facts on one line.
    name = _slack_escape(_one_line(n.subject_name)).replace("|", "\N{DIVIDES}")
    first = f"*{_slack_escape(_one_line(f'{_tag(n)} {n.rule_name}'))}* \N{EM DASH} <{n.link}|{name}>"
    rest = " \N{MIDDLE DOT} ".join(_slack_escape(f) for f in facts)
    return Rendered(subject=title, text=text, html=_html(headline, facts, n.link, _COLOURS[n.kind]),
                    slack_text=f"{first}\n{rest}", payload=payload(n, title))
