"""SQL analytics for an account: POST /v1/sql runs one read-only SELECT over that account's
data only (its views: docs/sql.md). What keeps a query inside the account is
pipeline/store/account_sql.py; this module is the HTTP side: the body, the format, the
errors, and a thread pool of its own so a slow analyst query never holds up the api's
other reads.
"""
import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from pipeline.store.account_sql import FORMATS, VIEWS, AccountSql, Limits, Refused
from sophra.settings import Settings

from ..auth import Tenant
from ..errors import ApiError
from ..models import ErrorOut

router = APIRouter(tags=["sql"])

MEDIA_TYPES = {"json": "application/json", "csv": "text/csv; charset=utf-8"}


class AccountSqlService:
    """AccountSql on two threads of its own (queries may take up to the time limit)."""

    def __init__(self, settings: Settings):
        self.sql = AccountSql(settings.clickhouse_dsn, settings.clickhouse_database, Limits(
            seconds=settings.sql_timeout_s, memory_bytes=settings.sql_max_memory_bytes,
            rows_read=settings.sql_max_rows_read, rows_returned=settings.sql_max_rows))
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="account-sql")

    async def run(self, tenant: str, query: str, fmt: str) -> bytes:
        return await asyncio.get_running_loop().run_in_executor(self._pool, self.sql.run, tenant, query, fmt)

    def close(self) -> None:
        self._pool.shutdown(wait=True)


async def _service(request: Request) -> AccountSqlService:
    return request.app.state.account_sql


class Column(BaseModel):
    name: str
    type: str = Field(examples=["Float64"], description="The ClickHouse type")


class Statistics(BaseModel):
    elapsed: float = Field(description="Seconds the engine took")
    rows_read: int
    bytes_read: int


class SqlAnswer(BaseModel):
    """The engine's JSONCompact output, as it writes it."""
    meta: list[Column]
    data: list[list] = Field(description="One array per row, values in the order of `meta`")
    rows: int
    statistics: Statistics


class SqlQuery(BaseModel):
    query: str = Field(min_length=1, max_length=100_000, examples=[
        "SELECT metric, avg(value) FROM app_metrics WHERE timestamp > now() - INTERVAL 1 DAY GROUP BY metric"],
        description="One SELECT over the account's tables: " + ", ".join(sorted(VIEWS)))
    format: Literal[tuple(FORMATS)] = Field("json", description="json: the engine's JSONCompact (meta, data, rows, "
                                            "statistics); csv: CSV with a header row")


@router.post("/v1/sql", summary="Run a read-only SQL query over the account's data",
             responses={200: {"model": SqlAnswer, "content": {"text/csv": {}},
                              "description": "The answer: JSONCompact for `json`, CSV with a header row for `csv`"},
                        400: {"model": ErrorOut, "description": "Refused or failed query; `message` says why"},
                        408: {"model": ErrorOut, "description": "The query ran past the time limit"}})
async def run_sql(body: SqlQuery, tenant: Tenant,
                  service: Annotated[AccountSqlService, Depends(_service)]) -> Response:
    try:
        answer = await service.run(tenant, body.query, body.format)
    except Refused as exc:
        error = "Query timeout" if exc.status == 408 else "Invalid query"
        raise ApiError(exc.status, error, str(exc), field="query") from None
    return Response(answer, media_type=MEDIA_TYPES[body.format])
