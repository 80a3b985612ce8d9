"""Request and response models of the agent API, field for field as reference 003.

Requests use the reference's camelCase names and are strict: counts must be JSON
integers, rates JSON numbers, nothing may be NaN or infinite. Responses use its
snake_case names.
"""
import math
from datetime import datetime, timezone
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

MAX_COUNT = 2**53 - 1  # exact in JavaScript, fits Avro long and UInt64
# An agent id is read back as one URL path segment (/api/agents/{id}/vitals), so it holds
# no "/" and is not "." or ".." (which clients resolve away); no control characters.
AGENT_ID_PATTERN = r"^[^\x00-\x1f\x7f/]+$"


def _addressable(agent_id: str) -> str:
    if agent_id in (".", ".."):
        raise ValueError('must not be "." or ".." (it could not be read back at /api/agents/{agentId})')
    return agent_id


AgentId = Annotated[str, Field(min_length=1, max_length=256, pattern=AGENT_ID_PATTERN,
                               description='Unique identifier of the agent (e.g. "my-prod-agent"); no "/"'),
                    AfterValidator(_addressable)]


def iso_ms(epoch_ms: int) -> str:
    """`2026-04-04T16:44:00.000Z`, the reference's time format."""
    dt = datetime.fromtimestamp(epoch_ms // 1000, timezone.utc)
    return f"{dt:%Y-%m-%dT%H:%M:%S}.{epoch_ms % 1000:03d}Z"


def _finite(value: Any, where: str) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{where} must be a finite number")
    if isinstance(value, dict):
        for k, v in value.items():
            _finite(v, f"{where}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _finite(v, f"{where}[{i}]")
    return value


Metadata = Annotated[dict[str, Any] | None, AfterValidator(lambda v: _finite(v, "metadata") if v else v)]


class VitalMetrics(BaseModel):
    """Standard metrics; any other key is a custom metric, stored in `metadata`."""
    model_config = ConfigDict(strict=True, extra="allow", allow_inf_nan=False)

    tokenConsumption: int = Field(0, ge=0, le=MAX_COUNT, description="Tokens used in current window")
    tokenLimit: int = Field(100_000, ge=1, le=MAX_COUNT, description="The model's context window")
    hallucinationRate: float = Field(0.0, ge=0.0, le=1.0, description="Rate 0.0-1.0")
    loopCount: int = Field(0, ge=0, le=MAX_COUNT, description="Recursive calls / re-tries in window")
    conflictCount: int = Field(0, ge=0, le=MAX_COUNT, description="Directive conflicts detected")

    def custom(self) -> dict[str, Any]:
        extra = self.model_extra or {}
        for k, v in extra.items():
            _finite(v, f"metrics.{k}")
        return dict(extra)


class VitalsIn(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")

    agentId: AgentId
    agentName: str | None = Field(None, max_length=256, description="Display name shown on the dashboard")
    metrics: VitalMetrics = Field(default_factory=VitalMetrics)
    metadata: Metadata = Field(None, description="Any custom data, shown in the detailed view")


class EventIn(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")

    agentId: AgentId
    type: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$",
                      description="Event type slug, e.g. directive_conflict, tool_error, task_completed")
    details: str | None = Field(None, max_length=8192, description="Human-readable description of the event")
    metadata: Metadata = Field(None, description="Structured data attached to the event")


class EventOut(BaseModel):
    id: int
    agent_id: str
    event_type: str
    details: str | None
    metadata: dict[str, Any]
    recorded_at: str


class EventCreated(BaseModel):
    success: Literal[True] = True
    event: EventOut


class EventsList(BaseModel):
    success: Literal[True] = True
    events: list[EventOut]


Health = Literal["green", "amber", "red"]


class VitalOut(BaseModel):
    id: int
    agent_id: str
    token_consumption: int
    hallucination_rate: float
    loop_frequency: int
    directive_conflicts: int
    overall_health: Health
    recorded_at: str


class BudgetSignal(BaseModel):
    """The throttle signal in the POST /api/vitals answer: the tightest budget covering
    the agent (highest percent_used), from memory."""
    id: str
    remaining: int
    percent_used: float
    exhausted: bool
    forecast_exhaustion_at: str | None = Field(description="When the budget runs out at the current pace, this report "
                                                         "included; null if it will not before it resets (or within "
                                                         "the window), or is exhausted already")
    as_of: str | None = Field(description="Recording time of the newest report the worker had counted; this report is "
                                          "added to the figures on top of it")


class VitalCreated(BaseModel):
    success: Literal[True] = True
    health: Health
    vital: VitalOut
    budget: BudgetSignal | None = Field(None, description=(
        "Beyond reference 003: the throttle signal, present only when a token budget covers the agent "
        "(docs/budgets.md)"))


class VitalRecord(BaseModel):
    id: int
    agent_id: str
    token_consumption: int
    token_limit: int
    hallucination_rate: float
    loop_frequency: int
    directive_conflicts: int
    overall_health: Health
    metadata: dict[str, Any]
    recorded_at: str


class VitalsList(BaseModel):
    success: Literal[True] = True
    vitals: list[VitalRecord]


class AgentOut(BaseModel):
    agent_id: str
    name: str
    status: Literal["active", "warning", "critical"]
    overall_health: Health
    token_consumption: int
    hallucination_rate: float
    loop_frequency: int
    directive_conflicts: int
    last_vitals_at: str
    updated_at: str


class AgentsList(BaseModel):
    success: Literal[True] = True
    agents: list[AgentOut]


class Checkup(BaseModel):
    result: Literal["ok", "warn", "fail"]
    text: str


class AriStats(BaseModel):
    interventions_today: int = Field(description="Interventions opened since 00:00 UTC today")
    tokens_saved: int = Field(description="Tokens saved, estimated, over all interventions")
    conflicts_resolved: int = Field(description="Protocol 2 episodes that closed (conflicts back to 2 or fewer)")
    tokens_saved_measured: int = Field(0, description="Tokens saved, measured (the drop after the episode), over "
                                                      "the interventions whose outcome is measured")


class InterventionOut(BaseModel):
    id: str
    protocol: int
    name: str
    description: str
    severity: Literal["low", "medium", "high"]
    tokens_saved: int
    status: Literal["open", "closed"]
    created_at: str
    closed_at: str | None
    details: dict[str, Any]
    outcome: Literal["improved", "unchanged", "worse"] | None = Field(
        None, description="Whether the intervention worked, once the episode closed and the snapshots after it "
                          "were measured (docs/ari.md, Outcomes); null until then")
    outcome_details: dict[str, Any] | None = Field(
        None, description="The outcome's figures: window, watched metrics, each metric's mean before and after")
    tokens_saved_measured: int | None = Field(
        None, description="Tokens saved, measured beside the tokens_saved estimate (protocols 1 and 4); null until "
                          "the outcome is measured")


class AriOut(BaseModel):
    success: Literal[True] = True
    agent_id: str
    ready: bool = Field(description="False until ARI has seen 5 snapshots of the agent")
    snapshots: int
    message: str | None = None
    stats: AriStats
    checkups: dict[str, Checkup]
    interventions: list[InterventionOut]


class ErrorOut(BaseModel):
    success: Literal[False] = False
    error: str
    message: str
    field: str | None = None


class RateLimited(ErrorOut):
    retry_after_ms: int
    retry_after_seconds: int

