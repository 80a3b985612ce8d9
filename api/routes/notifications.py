"""Where ARI interventions and Slack messages go, per account (beyond the references):

    /api/notifications          policies: ARI interventions at or above a severity, to actions
    /v1/integrations/slack      the account's Slack bot token (for chat.postMessage); never returned

Both are config records on compacted topics, kept in memory by every api process and by
the notifier (docs/notifications.md)."""
import json
import secrets
import time
from typing import Literal

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from pipeline.alerts.conditions import without_secrets
from pipeline.applications import ConfigRegistry

from .. import rules as R
from ..auth import Tenant
from ..config_write import write_config
from ..errors import ApiError
from ..models import AgentId, ErrorOut
from .applications import iso_s

router = APIRouter(tags=["notifications"])
_ERRORS = {400: {"model": ErrorOut}, 401: {"model": ErrorOut}, 404: {"model": ErrorOut}}
Severity = Literal["low", "medium", "high"]


class PolicyCreate(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")
    name: R.Name = "ARI interventions"
    min_severity: Severity = Field("high", description="Interventions at or above it are sent")
    agent_id: AgentId | None = Field(None, description="Only this agent's; every agent when omitted")
    actions: R.Actions
    enabled: bool = True


class PolicyPatch(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")
    name: R.Name | None = None
    min_severity: Severity | None = None
    actions: R.Actions | None = None
    enabled: bool | None = None


class PolicyOut(BaseModel):
    id: str
    name: str
    min_severity: Severity
    agent_id: str | None
    actions: list[dict]
    enabled: bool
    created_at: str
    updated_at: str | None
    warnings: list[str] | None = None


class PolicyList(BaseModel):
    policies: list[PolicyOut]


class SlackToken(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")
    bot_token: str = Field(pattern=r"^xox[a-z]-[A-Za-z0-9-]{8,250}$", description="A Slack bot token (xoxb-...)")


class SlackStatus(BaseModel):
    configured: bool
    set_at: str | None


def _policies(request: Request) -> ConfigRegistry:
    return request.app.state.notification_policies


def _integrations(request: Request) -> ConfigRegistry:
    return request.app.state.integrations


def _now() -> int:
    return time.time_ns() // 1_000_000


def _out(p: dict, shown: list[dict] | None = None, warn: list[str] | None = None) -> PolicyOut:
    return PolicyOut(id=p["id"], name=p["name"], min_severity=p["min_severity"], agent_id=p["agent_id"],
                     actions=shown if shown is not None else without_secrets(json.loads(p["actions"])),
                     enabled=p["enabled"], created_at=iso_s(p["created_at"]),
                     updated_at=iso_s(p["updated_at"]) if p["updated_at"] else None, warnings=warn)


def _find(request: Request, tenant: str, policy_id: str) -> dict:
    policy = _policies(request).get(tenant, policy_id)
    if policy is None:
        raise ApiError(404, "Not found", f"No notification policy {policy_id!r} for this API key")
    return policy


async def _write(request: Request, record: dict | None, policy_id: str) -> None:
    await write_config(request.app.state.producer, _policies(request), "notification_policy", policy_id, record)


@router.post("/api/notifications", status_code=201, response_model=PolicyOut, responses=_ERRORS)
async def create_policy(body: PolicyCreate, request: Request, tenant: Tenant) -> PolicyOut:
    stored = R.checked_actions(request, body.actions)
    record = {"tenant": tenant, "id": "ntf_" + secrets.token_hex(8), "name": body.name,
              "min_severity": body.min_severity, "agent_id": body.agent_id, "actions": json.dumps(stored),
              "enabled": body.enabled, "created_at": _now(), "updated_at": None}
    await _write(request, record, record["id"])
    return _out(record, stored, R.warnings(request, tenant, stored))


@router.get("/api/notifications", response_model=PolicyList, responses=_ERRORS)
async def list_policies(request: Request, tenant: Tenant) -> PolicyList:
    return PolicyList(policies=[_out(p) for p in _policies(request).of(tenant)])


@router.patch("/api/notifications/{policy_id}", response_model=PolicyOut, responses=_ERRORS)
async def update_policy(policy_id: str, body: PolicyPatch, request: Request, tenant: Tenant) -> PolicyOut:
    policy = _find(request, tenant, policy_id)
    changes, shown = body.model_dump(exclude_none=True, exclude={"actions"}), None
    if body.actions is not None:
        shown = R.checked_actions(request, body.actions)
        changes["actions"] = json.dumps(shown)
    record = {**policy, **changes, "updated_at": _now()}
    await _write(request, record, policy_id)
    return _out(record, shown, R.warnings(request, tenant, json.loads(record["actions"])))


@router.delete("/api/notifications/{policy_id}", status_code=204, response_class=Response, responses=_ERRORS)
async def delete_policy(policy_id: str, request: Request, tenant: Tenant) -> Response:
    _find(request, tenant, policy_id)
    await _write(request, None, policy_id)
    return Response(status_code=204)


@router.put("/v1/integrations/slack", response_model=SlackStatus, responses=_ERRORS)
async def set_slack_token(body: SlackToken, request: Request, tenant: Tenant) -> SlackStatus:
    record = {"tenant": tenant, "id": f"{tenant}/slack", "kind": "slack", "secret": body.bot_token,
              "created_at": _now()}
    await write_config(request.app.state.producer, _integrations(request), "integration", record["id"], record)
    return SlackStatus(configured=True, set_at=iso_s(record["created_at"]))


@router.get("/v1/integrations/slack", response_model=SlackStatus, responses=_ERRORS)
async def slack_status(request: Request, tenant: Tenant) -> SlackStatus:
    record = _integrations(request).get(tenant, f"{tenant}/slack")
    return SlackStatus(configured=record is not None, set_at=iso_s(record["created_at"]) if record else None)


@router.delete("/v1/integrations/slack", status_code=204, response_class=Response, responses=_ERRORS)
async def delete_slack_token(request: Request, tenant: Tenant) -> Response:
    if _integrations(request).get(tenant, f"{tenant}/slack") is not None:
        await write_config(request.app.state.producer, _integrations(request), "integration", f"{tenant}/slack", None)
    return Response(status_code=204)
