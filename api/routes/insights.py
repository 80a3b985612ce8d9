"""GET /v1/applications/{id}/insights: reference 000's AI insights, newest first.

The worker derives them from the application's metrics and deployments
(pipeline/insights.py, docs/insights.md); the sink lands them in `app_insights`.
"""
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from ..auth import Tenant
from ..deps import StoreDep
from ..models import ErrorOut
from .applications import iso_s, require_application

router = APIRouter(prefix="/v1", tags=["insights"])


class Insight(BaseModel):
    id: str = Field(examples=["insight_5f0c2a9e81d4b7c3"])
    type: Literal["performance", "reliability", "deployment"]
    severity: Literal["medium", "high"]
    title: str
    description: str
    recommendation: str
    timestamp: str = Field(examples=["2024-01-15T12:30:00Z"], description="Data time of the detection (UTC)")


class InsightList(BaseModel):
    insights: list[Insight]


_LIST = """
SELECT id, type, severity, title, description, recommendation, toUnixTimestamp64Milli(timestamp) AS ms
FROM app_insights FINAL
WHERE tenant = %(tenant)s AND application_id = %(app)s
ORDER BY timestamp DESC, id DESC
LIMIT %(limit)s
"""


@router.get("/applications/{app_id}/insights", response_model=InsightList,
            responses={400: {"model": ErrorOut}, 401: {"model": ErrorOut}, 404: {"model": ErrorOut}})
async def list_insights(app_id: str, request: Request, tenant: Tenant, store: StoreDep,
                        limit: Annotated[int, Query(ge=1, le=200, description="Default 50, max 200")] = 50
                        ) -> InsightList:
    require_application(request, tenant, app_id)
    rows = await store.rows(_LIST, {"tenant": tenant, "app": app_id, "limit": limit})
    return InsightList(insights=[Insight(**{k: r[k] for k in ("id", "type", "severity", "title", "description",
                                                                  "recommendation")}, timestamp=iso_s(r["ms"]))
                                 for r in rows])
