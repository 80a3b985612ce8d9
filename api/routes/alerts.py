"""Alert rules of applications (/v1/applications/{id}/alerts: reference 000's Create
Alert and, beyond it, state, history, changes and silences), of agents
(/api/agents/{id}/alerts, beyond reference 003) and of token budgets
(/api/budgets/{id}/alerts, issue 16): the same routes for all, made by `rule_routes`. Logic: api/rules.py; what the rules do: docs/alerts.md."""
from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response

from .. import budgets as B
from .. import rules as R
from ..auth import Tenant
from ..models import AgentId, ErrorOut
from .applications import require_application

_ERRORS = {400: {"model": ErrorOut}, 401: {"model": ErrorOut}, 404: {"model": ErrorOut}}


def rule_routes(router: APIRouter, base: str, param: str, scope: str, create_model: type, condition_model: type,
                require: Callable[[Request, str, str], object], subject_id: object = str) -> APIRouter:
    """Add the rule routes under `base` (a path naming the subject {`param`}) for `scope`;
    `require` answers 404 for a subject the caller may not see; `subject_id` is the type
    (with its checks) of the subject's id."""
    SubjectId = Annotated[subject_id, Path(alias=param)]

    def rule(request: Request, tenant: str, subject_id: str, alert_id: str) -> dict:
        require(request, tenant, subject_id)
        return R.find(request, tenant, alert_id, scope=scope, subject_id=subject_id)

    @router.post(base, status_code=201, response_model=R.RuleOut, responses=_ERRORS, name=f"create_{scope}_alert")
    async def create(subject_id: SubjectId, body: create_model, request: Request, tenant: Tenant) -> R.RuleOut:
        require(request, tenant, subject_id)
        return await R.create(request, tenant, body, scope=scope, subject_id=subject_id)

    @router.get(base, response_model=R.RuleList, responses=_ERRORS, name=f"list_{scope}_alerts")
    async def listing(subject_id: SubjectId, request: Request, tenant: Tenant) -> R.RuleList:
        require(request, tenant, subject_id)
        return await R.listing(request, tenant, scope, subject_id)

    @router.patch(base + "/{alert_id}", response_model=R.RuleOut, responses=_ERRORS, name=f"update_{scope}_alert")
    async def update(subject_id: SubjectId, alert_id: str, body: R.RulePatch, request: Request, tenant: Tenant) -> R.RuleOut:
        return await R.update(request, tenant, rule(request, tenant, subject_id, alert_id), body, condition_model)

    @router.post(base + "/{alert_id}/silence", response_model=R.RuleOut, responses=_ERRORS,
                 name=f"silence_{scope}_alert")
    async def silence(subject_id: SubjectId, alert_id: str, body: R.Silence, request: Request, tenant: Tenant) -> R.RuleOut:
        return await R.silence(request, tenant, rule(request, tenant, subject_id, alert_id), body)

    @router.get(base + "/{alert_id}/history", response_model=R.History, responses=_ERRORS,
                name=f"{scope}_alert_history")
    async def history(subject_id: SubjectId, alert_id: str, request: Request, tenant: Tenant,
                      limit: Annotated[int, Query(ge=1, le=500, description="Per list; default 100")] = 100
                      ) -> R.History:
        return await R.history(request, tenant, rule(request, tenant, subject_id, alert_id), limit)

    @router.delete(base + "/{alert_id}", status_code=204, response_class=Response, responses=_ERRORS,
                   name=f"delete_{scope}_alert")
    async def delete(subject_id: SubjectId, alert_id: str, request: Request, tenant: Tenant) -> Response:
        await R.delete(request, rule(request, tenant, subject_id, alert_id))
        return Response(status_code=204)

    return router


def _any_agent(request: Request, tenant: str, agent_id: str) -> None:
    """Rules may be set up before an agent first reports: every agent id is the caller's own."""


router = rule_routes(APIRouter(prefix="/v1", tags=["alerts"]), "/applications/{app_id}/alerts", "app_id",
                     "application", R.RuleCreate, R.Condition, require_application)
agent_router = rule_routes(APIRouter(prefix="/api", tags=["agent alerts"]), "/agents/{agent_id}/alerts", "agent_id",
                           "agent", R.AgentRuleCreate, R.AgentCondition, _any_agent, AgentId)
budget_router = rule_routes(APIRouter(prefix="/api", tags=["budget alerts"]), "/budgets/{budget_id}/alerts",
                            "budget_id", "budget", R.BudgetRuleCreate, R.BudgetCondition, B.find)
