"""Token budgets of an account (issue 16, beyond reference 003): /api/budgets.

    POST   /api/budgets          create one: an agent's, an agent group's or the account's
    GET    /api/budgets          every budget of the account, with what it has used
    GET    /api/budgets/{id}     one budget
    PATCH  /api/budgets/{id}     its name or limit
    DELETE /api/budgets/{id}

Logic: api/budgets.py; what is counted and when: docs/budgets.md."""
from fastapi import APIRouter, Request, Response

from .. import budgets as B
from ..auth import Tenant
from ..models import ErrorOut

router = APIRouter(prefix="/api", tags=["budgets"])
_ERRORS = {400: {"model": ErrorOut}, 401: {"model": ErrorOut}, 404: {"model": ErrorOut}}


@router.post("/budgets", status_code=201, response_model=B.BudgetOut, responses=_ERRORS)
async def create_budget(body: B.BudgetCreate, request: Request, tenant: Tenant) -> B.BudgetOut:
    return await B.create(request, tenant, body)


@router.get("/budgets", response_model=B.BudgetList, responses=_ERRORS)
async def list_budgets(request: Request, tenant: Tenant) -> B.BudgetList:
    return B.listing(request, tenant)


@router.get("/budgets/{budget_id}", response_model=B.BudgetOut, responses=_ERRORS)
async def get_budget(budget_id: str, request: Request, tenant: Tenant) -> B.BudgetOut:
    return B.out(request, B.find(request, tenant, budget_id))


@router.patch("/budgets/{budget_id}", response_model=B.BudgetOut, responses=_ERRORS)
async def update_budget(budget_id: str, body: B.BudgetPatch, request: Request, tenant: Tenant) -> B.BudgetOut:
    return await B.update(request, B.find(request, tenant, budget_id), body)


@router.delete("/budgets/{budget_id}", status_code=204, response_class=Response, responses=_ERRORS)
async def delete_budget(budget_id: str, request: Request, tenant: Tenant) -> Response:
    await B.delete(request, B.find(request, tenant, budget_id))
    return Response(status_code=204)
