"""/v1/applications/{id}/deployments: create and list, as reference 000.

A deployment is accepted as pending; the worker moves it to in_progress and then, from
the application's metrics around it and its health check, to success, failed or
rolled_back (pipeline/deployments.py). Reads come from ClickHouse, so a new deployment
is listed once the sink landed it (within about half a second).
"""
import json
import secrets
import time
from typing import Literal
from urllib.parse import urljoin

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from pipeline.topics import APP_DEPLOYMENTS

from ..auth import Tenant
from ..deps import ProducerDep, SettingsDep, StoreDep
from ..models import ErrorOut
from ..publish import publish
from .applications import iso_s, require_application

router = APIRouter(prefix="/v1", tags=["deployments"])


class DeploymentConfig(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")
    rollback_on_error: bool = False
    health_check_url: str | None = Field(None, max_length=2000, pattern=r"^(/|https?://)\S*$",
                                         description="A path joined to the application's base_url, or an absolute "
                                                     "URL; a path is not probed while the application has no base_url")


class DeploymentCreate(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")
    version: str = Field(min_length=1, max_length=100)
    description: str | None = Field(None, max_length=2000)
    changes: list[str] = Field(default_factory=list, max_length=100)
    config: DeploymentConfig = Field(default_factory=DeploymentConfig)


class DeploymentOut(BaseModel):
    id: str
    version: str
    status: Literal["pending", "in_progress", "success", "failed", "rolled_back"]
    started_at: str
    completed_at: str | None
    changes: list[str]
    description: str | None
    reason: str | None
    config: DeploymentConfig


class DeploymentList(BaseModel):
    deployments: list[DeploymentOut]


_LIST = """
SELECT id, version, status, toUnixTimestamp64Milli(started_at) AS started_ms,
       toUnixTimestamp64Milli(completed_at) AS completed_ms, changes, description, reason,
       rollback_on_error, health_check_url
FROM app_deployments FINAL
WHERE tenant = %(tenant)s AND application_id = %(app)s
ORDER BY started_at DESC, id DESC
LIMIT 100
"""


def _out(r: dict) -> DeploymentOut:
    return DeploymentOut(
        id=r["id"], version=r["version"], status=r["status"], started_at=iso_s(r["started_ms"]),
        completed_at=iso_s(r["completed_ms"]) if r["completed_ms"] is not None else None,
        changes=json.loads(r["changes"]), description=r["description"], reason=r["reason"],
        config=DeploymentConfig(rollback_on_error=r["rollback_on_error"], health_check_url=r["health_check_url"]))


@router.post("/applications/{app_id}/deployments", status_code=201, response_model=DeploymentOut,
             responses={400: {"model": ErrorOut}, 401: {"model": ErrorOut}, 404: {"model": ErrorOut}})
async def create_deployment(app_id: str, body: DeploymentCreate, request: Request, tenant: Tenant,
                            settings: SettingsDep, producer: ProducerDep) -> DeploymentOut:
    application = require_application(request, tenant, app_id)
    check = body.config.health_check_url
    # A path needs the application's base_url to be probed. Reference 000 creates
    # applications without one and deployments with "/health", so a path without a base
    # is accepted and not probed: the verdict then rests on the metrics alone.
    health_url = urljoin(application["base_url"] or "", check) if check else None
    if health_url and not health_url.startswith(("http://", "https://")):
        health_url = None
    record = {"tenant": tenant, "id": "deploy_" + secrets.token_hex(8), "application_id": app_id,
              "version": body.version, "description": body.description, "changes": json.dumps(body.changes),
              "rollback_on_error": body.config.rollback_on_error, "health_check_url": check,
              "health_url": health_url,
              "status": "pending", "reason": None, "started_at": time.time_ns() // 1_000_000,
              "completed_at": None, "revision": 0}
    await publish(producer, settings.topic(APP_DEPLOYMENTS.name), "app_deployment", record,
                  key=f"{tenant}/{app_id}")
    return _out({**record, "started_ms": record["started_at"], "completed_ms": None})


@router.get("/applications/{app_id}/deployments", response_model=DeploymentList,
            responses={401: {"model": ErrorOut}, 404: {"model": ErrorOut}})
async def list_deployments(app_id: str, request: Request, tenant: Tenant, store: StoreDep) -> DeploymentList:
    require_application(request, tenant, app_id)
    rows = await store.rows(_LIST, {"tenant": tenant, "app": app_id})
    return DeploymentList(deployments=[_out(r) for r in rows])
