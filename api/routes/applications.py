"""/v1/applications: reference 000's applications, plus update and delete.

Applications live on the compacted `app.applications` topic; every api process keeps
them in memory (pipeline/applications.py). A write answers once its own record has
been applied locally, so a client reads its write back at once from this replica.
"""
import json
import secrets
import time
from datetime import datetime, timezone
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field, HttpUrl

from pipeline.applications import ENVIRONMENTS, STATUSES, ConfigRegistry

from ..auth import Tenant
from ..config_write import write_config
from ..deps import ProducerDep
from ..errors import ApiError
from ..json_body import stored
from ..models import ErrorOut

router = APIRouter(prefix="/v1", tags=["applications"])

Status = Literal["active", "inactive", "maintenance"]
Environment = Literal["production", "staging", "development", "test"]
assert set(Status.__args__) == set(STATUSES) and set(Environment.__args__) == set(ENVIRONMENTS)


def iso_s(epoch_ms: int) -> str:
    """`2024-01-15T12:30:00Z`, reference 000's time format."""
    return datetime.fromtimestamp(epoch_ms // 1000, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class ApplicationCreate(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    description: str | None = Field(None, max_length=2000)
    environment: Environment = "production"
    status: Status = "active"
    base_url: HttpUrl | None = Field(None, description="Where the application answers; deployment health checks use it")
    config: dict[str, Any] = Field(default_factory=dict, description='e.g. {"monitoring": true, "alerts": true}')


class ApplicationUpdate(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")
    name: str | None = Field(None, min_length=1, max_length=200)
    description: str | None = Field(None, max_length=2000)
    environment: Environment | None = None
    status: Status | None = None
    base_url: HttpUrl | None = None
    config: dict[str, Any] | None = None


class Summary(BaseModel):
    id: str
    name: str
    status: Status
    environment: Environment
    created_at: str
    updated_at: str


class AppMetrics(BaseModel):
    uptime: float | None = Field(description="% of the last 24 h's minutes with data whose error rate was below 1; "
                                             "null without data")
    response_time: float | None = Field(description="Mean response time (ms) over the last 24 h; null without data")
    error_rate: float | None = Field(description="Mean error rate (0..1) over the last 24 h; null without data")


class Application(Summary):
    description: str | None
    base_url: str | None
    config: dict[str, Any]
    metrics: AppMetrics


class ApplicationList(BaseModel):
    applications: list[Summary]
    total: int
    page: int
    per_page: int


NOT_FOUND = {404: {"model": ErrorOut}, 401: {"model": ErrorOut}}


def registry(request: Request) -> ConfigRegistry:
    return request.app.state.applications


def require_application(request: Request, tenant: str, app_id: str) -> dict:
    """The caller's application, or 404 (another account's is indistinguishable from none)."""
    app = registry(request).get(tenant, app_id)
    if app is None:
        raise ApiError(404, "Not found", f"No application {app_id!r} for this API key")
    return app


def _summary(a: dict) -> dict:
    return {"id": a["id"], "name": a["name"], "status": a["status"], "environment": a["environment"],
            "created_at": iso_s(a["created_at"]), "updated_at": iso_s(a["updated_at"])}


async def _full(request: Request, a: dict) -> Application:
    from .app_metrics import summary_24h  # the metrics module owns how they are computed

    return Application(**_summary(a), description=a["description"], base_url=a["base_url"],
                       config=stored(a["config"]), metrics=await summary_24h(request, a["tenant"], a["id"]))


async def _write(request: Request, producer, app_id: str, record: dict | None) -> None:
    await write_config(producer, registry(request), "application", app_id, record)


@router.post("/applications", status_code=201, response_model=Application,
             responses={400: {"model": ErrorOut}, 401: {"model": ErrorOut}})
async def create_application(body: ApplicationCreate, request: Request, tenant: Tenant,
                             producer: ProducerDep) -> Application:
    return await _full(request, await add_application(request, producer, tenant, body))


async def add_application(request: Request, producer, tenant: str, body: ApplicationCreate,
                          app_id: str | None = None) -> dict:
    """Write a new application (a random id unless `app_id`) and return its record: the
    one create path, for this route and for OTLP ingest's applications (api/otlp/)."""
    now = time.time_ns() // 1_000_000
    record = {"tenant": tenant, "id": app_id or "app_" + secrets.token_hex(8), "name": body.name,
              "description": body.description, "status": body.status, "environment": body.environment,
              "base_url": str(body.base_url) if body.base_url else None,
              "config": json.dumps(body.config, separators=(",", ":")), "created_at": now, "updated_at": now}
    await _write(request, producer, record["id"], record)
    return record


@router.get("/applications", response_model=ApplicationList, responses={401: {"model": ErrorOut}})
async def list_applications(request: Request, tenant: Tenant,
                            page: Annotated[int, Query(ge=1)] = 1,
                            per_page: Annotated[int, Query(ge=1, le=100)] = 20) -> ApplicationList:
    apps = registry(request).of(tenant)
    start = (page - 1) * per_page
    return ApplicationList(applications=[_summary(a) for a in apps[start:start + per_page]],
                           total=len(apps), page=page, per_page=per_page)


@router.get("/applications/{app_id}", response_model=Application, responses=NOT_FOUND)
async def get_application(app_id: str, request: Request, tenant: Tenant) -> Application:
    return await _full(request, require_application(request, tenant, app_id))


@router.patch("/applications/{app_id}", response_model=Application,
              responses={**NOT_FOUND, 400: {"model": ErrorOut}})
async def update_application(app_id: str, body: ApplicationUpdate, request: Request, tenant: Tenant,
                             producer: ProducerDep) -> Application:
    current = require_application(request, tenant, app_id)
    changes = body.model_dump(exclude_unset=True)
    if "name" in changes and changes["name"] is None:
        raise ApiError(400, "Invalid request", "name: cannot be null", field="name")
    if "base_url" in changes and changes["base_url"] is not None:
        changes["base_url"] = str(changes["base_url"])
    if "config" in changes:
        changes["config"] = json.dumps(changes["config"] or {}, separators=(",", ":"))
    for field in ("status", "environment"):
        if field in changes and changes[field] is None:
            raise ApiError(400, "Invalid request", f"{field}: cannot be null", field=field)
    record = {**current, **changes, "updated_at": time.time_ns() // 1_000_000}
    await _write(request, producer, app_id, record)
    return await _full(request, record)


@router.delete("/applications/{app_id}", status_code=204, response_class=Response, responses=NOT_FOUND)
async def delete_application(app_id: str, request: Request, tenant: Tenant,
                             producer: ProducerDep) -> Response:
    require_application(request, tenant, app_id)
    await _write(request, producer, app_id, None)  # tombstone: compaction forgets it
    return Response(status_code=204)
