"""What a rule's condition may say, in one place: the api validates against it and the
worker evaluates with it."""
import json
import operator as op
import re
from dataclasses import dataclass

MINUTE_MS = 60_000
DURATION = re.compile(r"^([0-9]+)(s|m|h|d)$")
_UNIT_MS = {"s": 1000, "m": MINUTE_MS, "h": 60 * MINUTE_MS, "d": 1440 * MINUTE_MS}

WINDOW_MIN_MS, WINDOW_MAX_MS = MINUTE_MS, 1440 * MINUTE_MS
DEFAULT_WINDOW = "5m"
DEFAULT_AGGREGATION = "mean"
DEFAULT_REPEAT = "4h"
AGGREGATIONS = ("mean", "p95", "max", "min", "sum", "count")
OPERATORS = {">": op.gt, ">=": op.ge, "<": op.lt, "<=": op.le, "==": op.eq, "!=": op.ne}
BUCKETS = 60  # a window is kept as 60 buckets of window/60 (docs/alerts.md)

# Agent rules watch a vital (the names of reference 003's metrics object) or a custom
# numeric metric, which vitals carry in their metadata.
AGENT_METRICS = ("tokenConsumption", "hallucinationRate", "loopCount", "conflictCount", "tokenUsagePercent")
AGENT_METRIC_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]{0,63}$")

# Budget rules watch a token budget's figures (pipeline/budgets.py `figures`), computed by
# the worker when its counts change (pipeline/alerts/evaluate.py budget_points).
BUDGET_METRICS = ("percent_used", "hours_to_exhaustion", "exhausted")


def duration_ms(text: str) -> int:
    """Milliseconds of "90s", "5m", "4h", "1d"; ValueError otherwise."""
    m = DURATION.match(text) if isinstance(text, str) else None
    if not m:
        raise ValueError("must be a duration like 30s, 5m, 4h or 1d")
    return int(m.group(1)) * _UNIT_MS[m.group(2)]


def window_ms(text: str) -> int:
    ms = duration_ms(text)
    if not WINDOW_MIN_MS <= ms <= WINDOW_MAX_MS or ms % 1000:
        raise ValueError("must be between 1m and 24h")
    return ms


def holds(value: float, operator: str, threshold: float) -> bool:
    return OPERATORS[operator](value, threshold)


@dataclass(frozen=True)
class Rule:
    """A rule as the worker evaluates it, from its alert_rule record."""
    id: str
    tenant: str
    name: str
    scope: str            # application | agent | budget
    subject_id: str       # app_..., the agent id or the budget id
    metric: str
    operator: str
    threshold: float
    window: str
    window_ms: int
    aggregation: str
    for_ms: int
    repeat_ms: int
    actions: str          # JSON array, as text
    enabled: bool
    created_at: int = 0   # epoch ms; replay evaluates a rule over the records received from then on

    @property
    def bucket_ms(self) -> int:
        return self.window_ms // BUCKETS

    @property
    def series(self) -> str:
        """The series it reads: its metric at its bucket width (rules may share one)."""
        return f"{self.metric}|{self.bucket_ms}"

    @classmethod
    def from_record(cls, r: dict) -> "Rule":
        c = json.loads(r["condition"])
        window = c.get("window") or DEFAULT_WINDOW
        scope = r.get("scope") if r.get("scope") in ("agent", "budget") else "application"
        subject = r[{"application": "application_id", "agent": "agent_id", "budget": "budget_id"}[scope]]
        return cls(id=r["id"], tenant=r["tenant"], name=r["name"], scope=scope, subject_id=subject, metric=c["metric"],
                   operator=c["operator"], threshold=float(c["threshold"]), window=window,
                   window_ms=window_ms(window), aggregation=c.get("aggregation") or DEFAULT_AGGREGATION,
                   for_ms=r.get("for_ms", 0), repeat_ms=r.get("repeat_interval_ms", duration_ms(DEFAULT_REPEAT)),
                   actions=json.dumps(without_secrets(json.loads(r["actions"]))), enabled=r.get("enabled", True),
                   created_at=r.get("created_at") or 0)


def without_secrets(actions: list[dict]) -> list[dict]:
    """Actions as anyone may see them: in api answers, and in transitions (which ClickHouse
    keeps); a webhook's secret stays with the rule."""
    return [{k: v for k, v in a.items() if k != "secret"} for a in actions]
