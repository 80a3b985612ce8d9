"""/v1/applications/{id}/deployments: create and list, as reference 000.

A deployment is accepted as pending; the worker moves it to in_progress and then, from
the application's metrics around it and its health check, to success, failed or
rolled_back (pipeline/deployments.py). Reads come from ClickHouse; until the sink has
landed a deployment (about half a second), the replica that accepted it lists it from
memory (`Recent`), so a client sees its deployment right after the 201.
"""
import json
import secrets
import time
from collections import OrderedDict
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


LIST_LIMIT = 100
_LIST = f"""
SELECT id, version, status, toUnixTimestamp64Milli(started_at) AS started_ms,
       toUnixTimestamp64Milli(completed_at) AS completed_ms, changes, description, reason,
       rollback_on_error, health_check_url
FROM app_deployments FINAL
WHERE tenant = %(tenant)s AND application_id = %(app)s
ORDER BY started_at DESC, id DESC
LIMIT {LIST_LIMIT}
"""


class Recent:
    """The deployments this process accepted in the last KEEP_S seconds (at most MAX), per
    (tenant, application), until ClickHouse lists them. Used from the event loop only."""
    KEEP_S = 300.0
    MAX = 5000

    def __init__(self):
        # (tenant, app_id, id) -> (accepted at, monotonic s; started_at ms; out), oldest first
        self._items: OrderedDict[tuple[str, str, str], tuple[float, int, DeploymentOut]] = OrderedDict()
        self._by_app: dict[tuple[str, str], set[str]] = {}

    def add(self, tenant: str, app_id: str, started_ms: int, out: DeploymentOut) -> None:
        self._items[(tenant, app_id, out.id)] = (time.monotonic(), started_ms, out)
        self._by_app.setdefault((tenant, app_id), set()).add(out.id)
        self._prune()

    def merge(self, tenant: str, app_id: str, rows: list[dict]) -> list[tuple[int, str, DeploymentOut]]:
        """(started_at ms, id, out) of the remembered deployments ClickHouse did not return;
        those it returned are forgotten (its row wins: it may be a later revision)."""
        landed = {r["id"] for r in rows}
        self._prune()
        for dep_id in self._by_app.get((tenant, app_id), set()) & landed:
            self._drop((tenant, app_id, dep_id))
        kept = []
        for dep_id in self._by_app.get((tenant, app_id), ()):
            _, started_ms, out = self._items[(tenant, app_id, dep_id)]
            kept.append((started_ms, dep_id, out))
        return kept

    def _prune(self) -> None:
        cutoff = time.monotonic() - self.KEEP_S
        while self._items:
            key, (at, _, _) = next(iter(self._items.items()))
            if at >= cutoff and len(self._items) <= self.MAX:
                break
            self._drop(key)

    def _drop(self, key: tuple[str, str, str]) -> None:
        self._items.pop(key, None)
        ids = self._by_app.get(key[:2])
        if ids is not None:
            ids.discard(key[2])
            if not ids:
                del self._by_app[key[:2]]


def recent(request: Request) -> Recent:
    # one per api app (tests run several in one process); made on first use
    state = request.app.state
    if not hasattr(state, "recent_deployments"):
        state.recent_deployments = Recent()
    return state.recent_deployments


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
    out = _out({**record, "started_ms": record["started_at"], "completed_ms": None})
    recent(request).add(tenant, app_id, record["started_at"], out)
    return out


@router.get("/applications/{app_id}/deployments", response_model=DeploymentList,
            responses={401: {"model": ErrorOut}, 404: {"model": ErrorOut}})
async def list_deployments(app_id: str, request: Request, tenant: Tenant, store: StoreDep) -> DeploymentList:
    require_application(request, tenant, app_id)
    rows = await store.rows(_LIST, {"tenant": tenant, "app": app_id})
    listed = [(r["started_ms"], r["id"], _out(r)) for r in rows] + recent(request).merge(tenant, app_id, rows)
    listed.sort(key=lambda t: (t[0], t[1]), reverse=True)  # the query's order: started_at DESC, id DESC
    return DeploymentList(deployments=[out for _, _, out in listed[:LIST_LIMIT]])
