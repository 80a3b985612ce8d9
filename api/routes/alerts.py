"""/v1/applications/{id}/alerts: alert rules, stored and validated.

Rules live on the compacted `app.alert_rules` topic: the api keeps them in memory for
these routes, and the worker keeps them in a table (pipeline/worker/app.py) for the
evaluation that comes next. Nothing evaluates or delivers them yet (docs/alerts.md).
"""
import json
import math
import secrets
import time
from typing import Annotated, Literal

from fastapi import APIRouter, Request, Response
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, HttpUrl

from pipeline.accounts import EMAIL
from pipeline.applications import ConfigRegistry

from ..auth import Tenant
from ..config_write import write_config
from ..deps import ProducerDep
from ..errors import ApiError
from ..models import ErrorOut
from .applications import iso_s, require_application

router = APIRouter(prefix="/v1", tags=["alerts"])

STANDARD_METRICS = ("response_time", "error_rate", "throughput")
METRIC_PATTERN = r"^[a-z][a-z0-9_.]{0,63}$"  # standard metrics or a custom metric's name
WINDOW_PATTERN = r"^([1-9][0-9]*)(m|h)$"


def _window_minutes(window: str) -> str:
    n, unit = int(window[:-1]), window[-1]
    minutes = n * (60 if unit == "h" else 1)
    if not 1 <= minutes <= 1440:
        raise ValueError("must be between 1m and 24h")
    return window


def _finite(v: float) -> float:
    if not math.isfinite(v):
        raise ValueError("must be a finite number")
    return v


class Condition(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")
    metric: str = Field(pattern=METRIC_PATTERN, description="response_time, error_rate, throughput or a custom metric")
    operator: Literal[">", ">=", "<", "<=", "==", "!="]
    threshold: Annotated[float, AfterValidator(_finite)]
    window: Annotated[str, Field(pattern=WINDOW_PATTERN), AfterValidator(_window_minutes)] = Field(
        "5m", description="Evaluation window, 1m to 24h, e.g. 5m or 1h")


class EmailAction(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")
    type: Literal["email"]
    recipients: list[Annotated[str, Field(pattern=EMAIL.pattern, max_length=254)]] = Field(min_length=1, max_length=20)


class SlackAction(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")
    type: Literal["slack"]
    channel: str = Field(pattern=r"^#[a-z0-9_-]{1,80}$")


class WebhookAction(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")
    type: Literal["webhook"]
    url: HttpUrl


Action = Annotated[EmailAction | SlackAction | WebhookAction, Field(discriminator="type")]


class AlertCreate(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    condition: Condition
    actions: list[Action] = Field(min_length=1, max_length=10)
    enabled: bool = True


class AlertOut(BaseModel):
    id: str
    application_id: str
    name: str
    condition: Condition
    actions: list[Action]
    enabled: bool
    created_at: str


class AlertList(BaseModel):
    alerts: list[AlertOut]


def alert_rules(request: Request) -> ConfigRegistry:
    return request.app.state.alert_rules


def _out(r: dict) -> AlertOut:
    return AlertOut(id=r["id"], application_id=r["application_id"], name=r["name"],
                    condition=json.loads(r["condition"]), actions=json.loads(r["actions"]),
                    enabled=r["enabled"], created_at=iso_s(r["created_at"]))


@router.post("/applications/{app_id}/alerts", status_code=201, response_model=AlertOut,
             responses={400: {"model": ErrorOut}, 401: {"model": ErrorOut}, 404: {"model": ErrorOut}})
async def create_alert(app_id: str, body: AlertCreate, request: Request, tenant: Tenant,
                       producer: ProducerDep) -> AlertOut:
    require_application(request, tenant, app_id)
    record = {"tenant": tenant, "id": "alert_" + secrets.token_hex(8), "application_id": app_id, "name": body.name,
              "condition": body.condition.model_dump_json(),
              "actions": json.dumps([a.model_dump(mode="json") for a in body.actions]),
              "enabled": body.enabled, "created_at": time.time_ns() // 1_000_000}
    await write_config(producer, alert_rules(request), "alert_rule", record["id"], record)
    return _out(record)


@router.get("/applications/{app_id}/alerts", response_model=AlertList,
            responses={401: {"model": ErrorOut}, 404: {"model": ErrorOut}})
async def list_alerts(app_id: str, request: Request, tenant: Tenant) -> AlertList:
    require_application(request, tenant, app_id)
    return AlertList(alerts=[_out(r) for r in alert_rules(request).of(tenant) if r["application_id"] == app_id])


@router.delete("/applications/{app_id}/alerts/{alert_id}", status_code=204, response_class=Response,
               responses={401: {"model": ErrorOut}, 404: {"model": ErrorOut}})
async def delete_alert(app_id: str, alert_id: str, request: Request, tenant: Tenant,
                       producer: ProducerDep) -> Response:
    require_application(request, tenant, app_id)
    rule = alert_rules(request).get(tenant, alert_id)
    if rule is None or rule["application_id"] != app_id:
        raise ApiError(404, "Not found", f"No alert {alert_id!r} on application {app_id!r}")
    await write_config(producer, alert_rules(request), "alert_rule", alert_id, None)
    return Response(status_code=204)
