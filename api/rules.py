"""Alert rules in the api, for every kind of subject (application, agent, token budget):
the request models, creating and changing a rule record, and the rule as answered (with
the state the worker last reported). Routes: api/routes/alerts.py (applications under /v1; agents and budgets
under /api). Semantics: docs/alerts.md.

Rules are records on the compacted `app.alert_rules` topic; every api process keeps them
all in memory (a ConfigRegistry), so a rule is listed by the replica that took it as
soon as its 201 is answered. The worker evaluates them, the notifier delivers.
"""
import json
import math
import secrets
import time
from typing import Annotated, Literal

from fastapi import Request
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, HttpUrl, model_serializer

from pipeline.accounts import EMAIL
from pipeline.alerts.conditions import (AGENT_METRIC_NAME, AGGREGATIONS, BUDGET_METRICS, DEFAULT_AGGREGATION,
                                        DEFAULT_REPEAT, DEFAULT_WINDOW, duration_ms, window_ms, without_secrets)
from pipeline.applications import ConfigRegistry
from pipeline.outbound import Outbound, OutboundBlocked

from .config_write import write_config
from .errors import ApiError, invalid
from .models import iso_ms
from .series import parse_iso
from .routes.applications import iso_s

METRIC_PATTERN = r"^[a-z][a-z0-9_.]{0,63}$"  # an application's standard metrics or a custom metric's name
MAX_FOR_MS = 24 * 3_600_000
MIN_REPEAT_MS, MAX_REPEAT_MS = 60_000, 7 * 86_400_000
NO_SMTP_WARNING = ("SOPHRA_SMTP_URL is not set on this server: email actions are recorded as not delivered "
                   "until an operator sets it")
NO_SLACK_WARNING = ("No Slack bot token is set for this account: set one with PUT /v1/integrations/slack, or give "
                    "the action a webhook_url")


def _finite(v: float) -> float:
    if not math.isfinite(v):
        raise ValueError("must be a finite number")
    return v


def _window(text: str) -> str:
    window_ms(text)
    return text


def _for(text: str) -> str:
    if duration_ms(text) > MAX_FOR_MS:
        raise ValueError("must be at most 24h")
    return text


def _repeat(text: str) -> str:
    if not MIN_REPEAT_MS <= duration_ms(text) <= MAX_REPEAT_MS:
        raise ValueError("must be between 1m and 7d")
    return text


Window = Annotated[str, AfterValidator(_window)]
Threshold = Annotated[float, AfterValidator(_finite)]
Aggregation = Literal[AGGREGATIONS]
Operator = Literal[">", ">=", "<", "<=", "==", "!="]


class Condition(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")
    metric: str = Field(pattern=METRIC_PATTERN, description="response_time, error_rate, throughput or a custom metric")
    operator: Operator
    threshold: Threshold
    window: Window = Field(DEFAULT_WINDOW, description="Evaluation window in data time, 1m to 24h, e.g. 5m or 1h")
    aggregation: Aggregation = Field(DEFAULT_AGGREGATION, description="How the window's points become one value")


class AgentCondition(Condition):
    metric: str = Field(pattern=AGENT_METRIC_NAME.pattern,
                        description="tokenConsumption, hallucinationRate, loopCount, conflictCount, "
                                    "tokenUsagePercent (token consumption as % of the limit) or a custom numeric "
                                    "metric reported in vitals")


class BudgetCondition(Condition):
    metric: Literal[BUDGET_METRICS] = Field(description=(
        "percent_used, hours_to_exhaustion (until the forecast exhaustion; 0 once exhausted) or exhausted (1 or 0)"))
    aggregation: Aggregation = Field("max", description=(
        "How the window's points become one value; max by default, so a crossing fires at once"))


class EmailAction(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")
    type: Literal["email"]
    recipients: list[Annotated[str, Field(pattern=EMAIL.pattern, max_length=254)]] = Field(min_length=1, max_length=20)


class SlackAction(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")
    type: Literal["slack"]
    channel: str = Field(pattern=r"^#[a-z0-9_-]{1,80}$")
    webhook_url: HttpUrl | None = Field(None, description="An incoming-webhook URL for the channel; without it the "
                                                          "account's bot token posts with chat.postMessage")


class WebhookAction(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")
    type: Literal["webhook"]
    url: HttpUrl
    secret: str | None = Field(None, min_length=16, max_length=200, description=(
        "HMAC-SHA256 signing secret; generated when omitted. Returned once, in the answer that set it"))


Action = Annotated[EmailAction | SlackAction | WebhookAction, Field(discriminator="type")]
Actions = Annotated[list[Action], Field(min_length=1, max_length=10)]
Name = Annotated[str, Field(min_length=1, max_length=200)]
For = Annotated[str, AfterValidator(_for)]
Repeat = Annotated[str, AfterValidator(_repeat)]


class RuleCreate(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", populate_by_name=True)
    name: Name
    condition: Condition
    actions: Actions
    enabled: bool = True
    for_: For = Field("0m", alias="for", description="How long the condition must hold before firing (pending "
                                                      "until then), 0m to 24h")
    repeat_interval: Repeat = Field(DEFAULT_REPEAT, description="While firing, a reminder this often, 1m to 7d")


class AgentRuleCreate(RuleCreate):
    condition: AgentCondition


class BudgetRuleCreate(RuleCreate):
    condition: BudgetCondition


class ConditionPatch(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")
    metric: str | None = None
    operator: Operator | None = None
    threshold: Threshold | None = None
    window: Window | None = None
    aggregation: Aggregation | None = None


class RulePatch(BaseModel):
    """Any of the rule's fields; a partial `condition` changes only the keys given."""
    model_config = ConfigDict(strict=True, extra="forbid", populate_by_name=True)
    name: Name | None = None
    condition: ConditionPatch | None = None
    actions: Actions | None = None
    enabled: bool | None = None
    for_: For | None = Field(None, alias="for")
    repeat_interval: Repeat | None = None


class Silence(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")
    until: str | None = Field(description="ISO 8601 time (no offset = UTC) until which delivery is muted; null "
                                          "lifts the silence")


class RuleOut(BaseModel):
    id: str
    application_id: str | None = None
    agent_id: str | None = None
    budget_id: str | None = Field(None, description="Only in a budget's rules")
    name: str
    condition: dict
    actions: list[dict]
    enabled: bool
    for_: str = Field(alias="for")
    repeat_interval: str
    silenced_until: str | None
    created_at: str
    updated_at: str | None
    state: Literal["ok", "pending", "firing", "no_data", "disabled"] = Field(
        description="As the worker last evaluated it (ok until its first evaluation); disabled rules are not evaluated")
    since: str | None = Field(description="When the rule entered its state")
    value: float | None = Field(description="The last evaluated value of the aggregation over the window")
    evaluated_at: str | None
    warnings: list[str] | None = Field(None, description="What will keep a notification from being delivered")


    @model_serializer(mode="wrap")
    def _without_budget_id(self, handler):
        # Application and agent rules are answered as before budgets had rules.
        answer = handler(self)
        if answer.get("budget_id") is None:
            answer.pop("budget_id", None)
        return answer


class RuleList(BaseModel):
    alerts: list[RuleOut]


class Transition(BaseModel):
    id: str
    state: str
    previous_state: str
    notify: str | None = Field(description="firing | resolved | reminder | no_data when people were told; null when "
                                           "only recorded")
    value: float | None
    threshold: float
    started_at: str
    at: str


class Delivery(BaseModel):
    delivery_id: str
    transition_id: str
    action_type: str
    target: str
    attempt: int
    outcome: Literal["delivered", "retrying", "failed", "not_delivered", "suppressed"]
    error: str | None
    latency_ms: int
    at: str
    next_attempt_at: str | None


class History(BaseModel):
    transitions: list[Transition]
    deliveries: list[Delivery]


def rules(request: Request) -> ConfigRegistry:
    return request.app.state.alert_rules


def _duration(ms: int) -> str:
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000)):
        if ms % size == 0 and ms >= size:
            return f"{ms // size}{unit}"
    return f"{ms // 1000}s" if ms else "0m"


def checked_actions(request: Request, actions: list, field: str = "actions") -> list[dict]:
    """The actions to store: URLs checked by the outbound guard, webhook secrets generated
    where missing. The answer to the request that set them shows them whole, secrets too;
    every other answer without secrets."""
    guard: Outbound = request.app.state.outbound
    stored = []
    for i, action in enumerate(actions):
        a = action.model_dump(mode="json", exclude_none=True)
        for key in ("url", "webhook_url"):
            if key in a:
                try:
                    guard.check_url(a[key])
                except OutboundBlocked as exc:
                    raise invalid(f"{field}.{i}.{action.type}.{key}", f"is not allowed: {exc}") from None
        if a["type"] == "webhook" and "secret" not in a:
            a["secret"] = "whsec_" + secrets.token_urlsafe(24)
        stored.append(a)
    return stored


def warnings(request: Request, tenant: str, actions: list[dict]) -> list[str] | None:
    found = []
    if any(a["type"] == "email" for a in actions) and not request.app.state.settings.smtp_url:
        found.append(NO_SMTP_WARNING)
    if any(a["type"] == "slack" and "webhook_url" not in a for a in actions) and \
            request.app.state.integrations.get(tenant, f"{tenant}/slack") is None:
        found.append(NO_SLACK_WARNING)
    return found or None


def _now() -> int:
    return time.time_ns() // 1_000_000


async def create(request: Request, tenant: str, body: RuleCreate, *, scope: str, subject_id: str) -> RuleOut:
    stored = checked_actions(request, body.actions)
    record = {"tenant": tenant, "id": "alert_" + secrets.token_hex(8),
              "application_id": subject_id if scope == "application" else "",
              "name": body.name, "condition": body.condition.model_dump_json(), "actions": json.dumps(stored),
              "enabled": body.enabled, "created_at": _now(), "scope": scope,
              "agent_id": subject_id if scope == "agent" else None,
              "budget_id": subject_id if scope == "budget" else None, "for_ms": duration_ms(body.for_),
              "repeat_interval_ms": duration_ms(body.repeat_interval), "silenced_until": None, "updated_at": None}
    await write_config(request.app.state.producer, rules(request), "alert_rule", record["id"], record)
    return out(record, None, shown=stored, warn=warnings(request, tenant, stored))


def find(request: Request, tenant: str, alert_id: str, *, scope: str, subject_id: str) -> dict:
    """The caller's rule on that subject, or 404 (another account's is indistinguishable from none)."""
    rule = rules(request).get(tenant, alert_id)
    if rule is None or rule["scope"] != scope or subject_of(rule) != subject_id:
        raise ApiError(404, "Not found", f"No alert {alert_id!r} on {scope} {subject_id!r}")
    return rule


SUBJECT_FIELDS = {"application": "application_id", "agent": "agent_id", "budget": "budget_id"}


def subject_of(rule: dict) -> str:
    return rule[SUBJECT_FIELDS.get(rule["scope"], "application_id")]


def of_subject(request: Request, tenant: str, scope: str, subject_id: str) -> list[dict]:
    return [r for r in rules(request).of(tenant) if r["scope"] == scope and subject_of(r) == subject_id]


async def update(request: Request, tenant: str, rule: dict, body: RulePatch, condition_model: type) -> RuleOut:
    changes: dict = {}
    shown = None
    if body.name is not None:
        changes["name"] = body.name
    if body.condition is not None:
        merged = {**json.loads(rule["condition"]), **body.condition.model_dump(exclude_none=True)}
        try:
            changes["condition"] = condition_model(**merged).model_dump_json()
        except ValueError as exc:  # pydantic's ValidationError: name the field as a create would
            err = exc.errors()[0]
            raise invalid("condition." + ".".join(str(p) for p in err["loc"]), err["msg"]) from None
    if body.actions is not None:
        shown = checked_actions(request, body.actions)
        changes["actions"] = json.dumps(shown)
    if body.enabled is not None:
        changes["enabled"] = body.enabled
    if body.for_ is not None:
        changes["for_ms"] = duration_ms(body.for_)
    if body.repeat_interval is not None:
        changes["repeat_interval_ms"] = duration_ms(body.repeat_interval)
    record = {**rule, **changes, "updated_at": _now()}
    await write_config(request.app.state.producer, rules(request), "alert_rule", rule["id"], record)
    status = await statuses(request, tenant, [rule["id"]])
    return out(record, status.get(rule["id"]), shown=shown,
               warn=warnings(request, tenant, json.loads(record["actions"])))


async def silence(request: Request, tenant: str, rule: dict, body: Silence) -> RuleOut:
    until = None
    if body.until is not None:
        until = parse_iso(body.until, "until")
        if until <= _now():
            raise invalid("until", "must be in the future (null lifts the silence)")
    record = {**rule, "silenced_until": until, "updated_at": _now()}
    await write_config(request.app.state.producer, rules(request), "alert_rule", rule["id"], record)
    status = await statuses(request, tenant, [rule["id"]])
    return out(record, status.get(rule["id"]))


async def delete(request: Request, rule: dict) -> None:
    await write_config(request.app.state.producer, rules(request), "alert_rule", rule["id"], None)


_STATUS = """
SELECT rule_id, state, toUnixTimestamp64Milli(since) AS since, value, toUnixTimestamp64Milli(evaluated_at) AS at
FROM alert_status FINAL
WHERE tenant = %(tenant)s AND rule_id IN %(ids)s
"""


async def statuses(request: Request, tenant: str, ids: list[str]) -> dict[str, dict]:
    if not ids:
        return {}
    rows = await request.app.state.store.rows(_STATUS, {"tenant": tenant, "ids": ids})
    return {r["rule_id"]: r for r in rows}


def out(r: dict, status: dict | None, *, shown: list[dict] | None = None, warn: list[str] | None = None) -> RuleOut:
    if not r["enabled"]:
        state, since, value, at = "disabled", r["updated_at"] or r["created_at"], None, None
    elif status is None:
        state, since, value, at = "ok", r["created_at"], None, None
    else:
        state, since, value, at = status["state"], status["since"], status["value"], status["at"]
    field = SUBJECT_FIELDS.get(r["scope"], "application_id")
    subject = {field: r[field]}
    return RuleOut(id=r["id"], **subject, name=r["name"], condition=json.loads(r["condition"]),
                   actions=shown if shown is not None else without_secrets(json.loads(r["actions"])),
                   enabled=r["enabled"], repeat_interval=_duration(r["repeat_interval_ms"]),
                   silenced_until=iso_s(r["silenced_until"]) if r["silenced_until"] else None,
                   created_at=iso_s(r["created_at"]), updated_at=iso_s(r["updated_at"]) if r["updated_at"] else None,
                   state=state, since=iso_s(since), value=value, evaluated_at=iso_s(at) if at is not None else None,
                   warnings=warn, **{"for": _duration(r["for_ms"])})


async def listing(request: Request, tenant: str, scope: str, subject_id: str) -> RuleList:
    found = of_subject(request, tenant, scope, subject_id)
    status = await statuses(request, tenant, [r["id"] for r in found])
    return RuleList(alerts=[out(r, status.get(r["id"])) for r in found])


_TRANSITIONS = """
SELECT id, state, previous_state, notify, value, threshold, toUnixTimestamp64Milli(started_at) AS started,
       toUnixTimestamp64Milli(at) AS at_ms
FROM alert_transitions FINAL
WHERE tenant = %(tenant)s AND rule_id = %(rule)s
ORDER BY at DESC, wall_at DESC, id DESC
LIMIT %(limit)s
"""
_DELIVERIES = """
SELECT delivery_id, transition_id, action_type, target, attempt, outcome, error, latency_ms,
       toUnixTimestamp64Milli(at) AS at_ms, toUnixTimestamp64Milli(next_attempt_at) AS next_ms
FROM alert_deliveries FINAL
WHERE tenant = %(tenant)s AND rule_id = %(rule)s
ORDER BY at DESC, attempt DESC, delivery_id DESC
LIMIT %(limit)s
"""


async def history(request: Request, tenant: str, rule: dict, limit: int) -> History:
    store = request.app.state.store
    params = {"tenant": tenant, "rule": rule["id"], "limit": limit}
    transitions, deliveries = await store.rows(_TRANSITIONS, params), await store.rows(_DELIVERIES, params)
    return History(
        transitions=[Transition(id=t["id"], state=t["state"], previous_state=t["previous_state"], notify=t["notify"],
                                value=t["value"], threshold=t["threshold"], started_at=iso_ms(t["started"]),
                                at=iso_ms(t["at_ms"])) for t in transitions],
        deliveries=[Delivery(delivery_id=d["delivery_id"], transition_id=d["transition_id"],
                             action_type=d["action_type"], target=d["target"], attempt=d["attempt"],
                             outcome=d["outcome"], error=d["error"], latency_ms=d["latency_ms"], at=iso_ms(d["at_ms"]),
                             next_attempt_at=iso_ms(d["next_ms"]) if d["next_ms"] is not None else None)
                    for d in deliveries])
