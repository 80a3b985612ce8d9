"""Token budgets in the api: the request models, the budget as answered, and the
throttle signal of POST /api/vitals. Routes: api/routes/budgets.py; semantics:
docs/budgets.md; counting rules: pipeline/budgets.py.

Budgets are records on the compacted `accounts.budgets` topic, kept in memory by every
api process (a BudgetBook). The worker's counts arrive on the compacted `budgets.usage`
topic, one cumulative record per budget and vitals partition, which `UsageTail` keeps in
memory on a thread of its own: figures are computed from memory, and nothing on a
request waits on the stream.
"""
import secrets
import time
from typing import Annotated, Literal

from fastapi import Request
from pydantic import BaseModel, ConfigDict, Field

from pipeline.budget_book import BudgetBook
from pipeline.budgets import covers, exhaustion, figures, metadata_of, slot
from pipeline.alerts.conditions import duration_ms
from pipeline.topic_table import PromptTopicTable
from schemas import codec

from . import rules as R
from .config_write import write_config
from .errors import ApiError, invalid
from .models import MAX_COUNT, AgentId, BudgetSignal, iso_ms
from .publish import send

WINDOW_MIN_MS, WINDOW_MAX_MS = 60_000, 31 * 86_400_000
IMMUTABLE = ("scope", "agent_id", "tag", "tag_value", "period", "window")
Name = Annotated[str, Field(min_length=1, max_length=200)]
Tag = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]
TagValue = Annotated[str, Field(min_length=1, max_length=256)]
Limit = Annotated[int, Field(ge=1, le=MAX_COUNT, description="Tokens per period")]


class BudgetCreate(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")
    name: Name | None = Field(None, description="Display name; default: what the budget covers")
    scope: Literal["agent", "group", "account"] = Field(description="One agent, an agent group (a tag in vitals "
                                                                    "metadata) or the whole account")
    agent_id: AgentId | None = Field(None, description="The agent, for scope agent")
    tag: Tag | None = Field(None, description="The vitals metadata key naming the group (e.g. team), for scope group")
    tag_value: TagValue | None = Field(None, description="The group: reports whose metadata[tag] is this string")
    limit: Limit
    period: Literal["day", "week", "month", "rolling"] = Field(
        description="A calendar day, ISO week (from Monday) or month in UTC, or a rolling window")
    window: str | None = Field(None, description="The rolling window, whole minutes from 1m to 31d, e.g. 24h; "
                                                 "only for period rolling")


class BudgetPatch(BaseModel):
    """The name and the limit change; what a budget counts (scope, period) does not."""
    model_config = ConfigDict(strict=True, extra="allow")  # other fields are refused by name in `update`
    name: Name | None = None
    limit: Limit | None = None


class BudgetOut(BaseModel):
    id: str
    name: str
    scope: Literal["agent", "group", "account"]
    agent_id: str | None
    tag: str | None
    tag_value: str | None
    limit: int
    period: Literal["day", "week", "month", "rolling"]
    window: str | None
    created_at: str
    updated_at: str | None
    used: int = Field(description="Tokens counted in the current period (or window)")
    remaining: int = Field(description="limit - used, never below 0")
    percent_used: float = Field(description="used / limit x 100, rounded to 2 decimals; may pass 100")
    exhausted: bool = Field(description="used >= limit")
    since: str = Field(description="Start of what is counted: the period's (or window's) start, or the budget's "
                                   "creation if later")
    resets_at: str | None = Field(description="End of the calendar period; null for a rolling window")
    as_of: str | None = Field(description="Recording time of the newest report the worker has counted; null before "
                                          "the first")
    forecast_exhaustion_at: str | None = Field(description="When the budget runs out at the current pace; null if it "
                                                         "will not before it resets (or within the window), or is "
                                                         "exhausted already")
    forecast_exhaustion_lower: str | None = Field(description="The forecast's interval, early end: at the fast end of "
                                                            "the pace's interval; null without one")
    forecast_exhaustion_upper: str | None = Field(description="The forecast's interval, late end: at the slow end of "
                                                            "the pace's interval; null without one, or when at that "
                                                            "pace it does not run out")


class BudgetList(BaseModel):
    budgets: list[BudgetOut]


class UsageTail(PromptTopicTable):
    """The worker's partial counts from `budgets.usage`, by budget id and partition."""

    def __init__(self, bootstrap: str, topic: str):
        self.partials: dict[str, dict[int, dict]] = {}
        super().__init__(bootstrap, topic, self._put)

    def _put(self, key: bytes, value: bytes | None) -> None:
        budget_id, _, partition = key.decode().rpartition("/")
        if value is None:
            self.partials.get(budget_id, {}).pop(int(partition), None)
            return
        record = codec.decode(value)[1]
        # a new dict per budget each time: readers on the event loop never see one half-updated
        self.partials[budget_id] = {**self.partials.get(budget_id, {}), record["partition"]: record}

    def of(self, budget_id: str) -> list[dict]:
        return list(self.partials.get(budget_id, {}).values())


def _now() -> int:
    return time.time_ns() // 1_000_000


def _duration(ms: int) -> str:
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000)):
        if ms % size == 0:
            return f"{ms // size}{unit}"
    raise ValueError(ms)


def book(request: Request) -> BudgetBook:
    return request.app.state.budgets


def usage(request: Request) -> UsageTail:
    return request.app.state.budget_usage


def _checked(body: BudgetCreate) -> int | None:
    """The window in ms; 400 naming the field for what the types can't say."""
    needs = {"agent": {"agent_id"}, "group": {"tag", "tag_value"}, "account": set()}[body.scope]
    for field in ("agent_id", "tag", "tag_value"):
        given = getattr(body, field) is not None
        if field in needs and not given:
            raise invalid(field, f"is required for scope {body.scope}")
        if given and field not in needs:
            raise invalid(field, f"is not used by scope {body.scope}")
    if body.period != "rolling":
        if body.window is not None:
            raise invalid("window", f"is only for period rolling, not {body.period}")
        return None
    if body.window is None:
        raise invalid("window", "is required for period rolling")
    try:
        ms = duration_ms(body.window)
    except ValueError as exc:
        raise invalid("window", str(exc)) from None
    if not WINDOW_MIN_MS <= ms <= WINDOW_MAX_MS or ms % 60_000:
        raise invalid("window", "must be whole minutes from 1m to 31d")
    return ms


def _default_name(body: BudgetCreate) -> str:
    what = {"agent": f"agent {body.agent_id}", "group": f"{body.tag}={body.tag_value}", "account": "account"}
    period = f"rolling {body.window}" if body.period == "rolling" else body.period
    return f"{what[body.scope]}, {period}"


async def create(request: Request, tenant: str, body: BudgetCreate) -> BudgetOut:
    window_ms = _checked(body)
    record = {"tenant": tenant, "id": "bdg_" + secrets.token_hex(8), "name": body.name or _default_name(body),
              "scope": body.scope, "agent_id": body.agent_id, "tag": body.tag, "tag_value": body.tag_value,
              "limit": body.limit, "period": body.period, "window_ms": window_ms, "created_at": _now(),
              "updated_at": None}
    await write_config(request.app.state.producer, book(request), "budget", record["id"], record)
    return out(request, record)


def find(request: Request, tenant: str, budget_id: str) -> dict:
    """The caller's budget, or 404 (another account's is indistinguishable from none)."""
    budget = book(request).get(tenant, budget_id)
    if budget is None:
        raise ApiError(404, "Not found", f"No budget {budget_id!r} for this API key")
    return budget


async def update(request: Request, budget: dict, body: BudgetPatch) -> BudgetOut:
    for field in body.model_extra or {}:
        if field in IMMUTABLE:
            raise invalid(field, "can't be changed: it decides what the budget counts; create a new budget instead")
        raise invalid(field, "extra inputs are not permitted")
    changes = body.model_dump(include={"name", "limit"}, exclude_none=True)
    record = {**budget, **changes, "updated_at": _now()}
    await write_config(request.app.state.producer, book(request), "budget", budget["id"], record)
    return out(request, record)


async def delete(request: Request, budget: dict) -> None:
    await write_config(request.app.state.producer, book(request), "budget", budget["id"], None)
    # its counts go too (a tombstone per partition the worker counted from)
    for partition in list(usage(request).partials.get(budget["id"], {})):
        await send(request.app.state.producer, usage(request).topic, f"{budget['id']}/{partition}".encode(), None)
    # and its alert rules: their routes answer 404 once it is gone, so none could delete them
    for rule in R.of_subject(request, budget["tenant"], "budget", budget["id"]):
        await R.delete(request, rule)


def listing(request: Request, tenant: str) -> BudgetList:
    found = sorted(book(request).of_tenant(tenant), key=lambda b: (b["created_at"], b["id"]))
    return BudgetList(budgets=[out(request, b) for b in found])


def _iso(ms: int | None) -> str | None:
    return iso_ms(ms) if ms is not None else None


def out(request: Request, b: dict) -> BudgetOut:
    f = figures(b, usage(request).of(b["id"]), _now())
    return BudgetOut(id=b["id"], name=b["name"], scope=b["scope"], agent_id=b["agent_id"], tag=b["tag"],
                     tag_value=b["tag_value"], limit=b["limit"], period=b["period"],
                     window=_duration(b["window_ms"]) if b["window_ms"] else None, created_at=iso_ms(b["created_at"]),
                     updated_at=_iso(b["updated_at"]), used=f["used"], remaining=f["remaining"],
                     percent_used=f["percent_used"], exhausted=f["exhausted"], since=iso_ms(f["since"]),
                     resets_at=_iso(f["resets_at"]), as_of=_iso(f["as_of"]),
                     forecast_exhaustion_at=_iso(f["forecast_exhaustion_at"]),
                     forecast_exhaustion_lower=_iso(f["forecast_exhaustion_lower"]),
                     forecast_exhaustion_upper=_iso(f["forecast_exhaustion_upper"]))


def signal(state, record: dict) -> BudgetSignal | None:
    """The throttle signal for a report just stored: each budget covering the agent, from
    the worker's counts in memory plus this report's own tokens (the worker counts it a
    moment later); the tightest of them, or None when no budget covers the agent."""
    budgets = state.budgets.of_tenant(record["tenant"])
    if not budgets:
        return None
    now, tightest, metadata = record["recorded_at"], None, None
    for b in budgets:
        if b["scope"] == "group" and metadata is None:
            metadata = metadata_of(record)
        if not covers(b, record["agent_id"], metadata):
            continue
        partials = state.budget_usage.of(b["id"])
        counted = [*partials, _this_report(b, record)] if record["recorded_at"] >= b["created_at"] else partials
        f = figures(b, counted, now, ahead=False)  # forecast only the tightest, below
        f["as_of"] = max((p["counted_through"] for p in partials), default=None)  # the worker's, not this report's
        if tightest is None or (f["percent_used"], -f["remaining"]) > (tightest[1]["percent_used"],
                                                                        -tightest[1]["remaining"]):
            tightest = (b, f, counted)
    if tightest is None:
        return None
    b, f, counted = tightest
    ahead = exhaustion(b, [c for p in counted for c in p["counts"]], now)
    return BudgetSignal(id=b["id"], remaining=f["remaining"], percent_used=f["percent_used"], exhausted=f["exhausted"],
                        forecast_exhaustion_at=_iso(ahead and ahead["at"]), as_of=_iso(f["as_of"]))


def _this_report(b: dict, record: dict) -> dict:
    """The report as a partial of its own, so `figures` adds it like any other count."""
    return {"counts": [{"start": slot(b, record["recorded_at"]), "used": record["token_consumption"]}],
            "counted_through": record["recorded_at"]}

