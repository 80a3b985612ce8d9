"""The FastAPI application and its lifecycle.

Start-up creates missing topics and applies ClickHouse migrations (both idempotent),
then opens the producer and the query pool; with `run_sink` (the embedded default,
where chdb allows only one process per data folder) the ClickHouse sink runs in this
process on its own thread.
"""
import asyncio
import logging
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from pipeline.accounts import KeyRegistry
from pipeline.applications import ConfigRegistry
from pipeline.budget_book import BudgetBook
from pipeline.ids import IdGenerator
from pipeline.limits import VITALS_INTERVAL_S, IntervalLimiter
from pipeline.producer import RecordProducer
from pipeline.shared_limits import VitalsTail
from pipeline.sink.consumer import Sink
from pipeline.store.clickhouse import Store
from pipeline.store.migrate import migrate
from pipeline.outbound import Outbound
from pipeline.topics import (ACCOUNT_KEYS, AGENT_VITALS, ALERT_RULES, APPLICATIONS, BUDGET_USAGE, BUDGETS, INTEGRATIONS,
                             NOTIFICATION_POLICIES, ensure_topics)
from sophra.settings import Settings

from . import errors
from .body_limit import BodyLimit
from .budgets import UsageTail
from .json_body import JsonCheck
from .observability import MetricsMiddleware, Observability
from .quota import QuotaMiddleware, QuotaService
from .routes import (agents, alerts, app_metrics, applications, ari, budgets, dashboard, deployments, events, health,
                     insights, keys, notifications, otlp, overview, predictions, sql, static, vitals)
from .routes.sql import AccountSqlService

log = logging.getLogger("sophra.api")


def create_app(settings: Settings, bootstrap: str, *, run_sink: bool = False) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await asyncio.to_thread(ensure_topics, bootstrap, settings.topic_prefix)
        applied = await asyncio.to_thread(migrate, settings.clickhouse_dsn, settings.clickhouse_database)
        if applied:
            log.info("applied migrations: %s", ", ".join(applied))
        app.state.settings = settings
        app.state.ids = IdGenerator(settings.node_id)
        app.state.vitals_limiter = IntervalLimiter(VITALS_INTERVAL_S)
        app.state.vitals_tail = await asyncio.to_thread(  # shares the limit with the other replicas
            lambda: VitalsTail(bootstrap, settings.topic(AGENT_VITALS.name), app.state.vitals_limiter).start())
        app.state.producer = RecordProducer(
            bootstrap, observe=lambda outcome, s: obs.produce.labels(outcome).observe(s))
        app.state.keys = await asyncio.to_thread(
            lambda: KeyRegistry(bootstrap, settings.topic(ACCOUNT_KEYS.name)).start())
        app.state.applications = await asyncio.to_thread(
            lambda: ConfigRegistry(bootstrap, settings.topic(APPLICATIONS.name)).start())
        app.state.alert_rules, app.state.notification_policies, app.state.integrations = await asyncio.gather(*(
            asyncio.to_thread(lambda t=t: ConfigRegistry(bootstrap, settings.topic(t.name)).start())
            for t in (ALERT_RULES, NOTIFICATION_POLICIES, INTEGRATIONS)))
        # token budgets and the worker's counts of them, for /api/budgets and the vitals answer's throttle signal
        app.state.budgets, app.state.budget_usage = await asyncio.gather(
            asyncio.to_thread(lambda: BudgetBook(bootstrap, settings.topic(BUDGETS.name)).start()),
            asyncio.to_thread(lambda: UsageTail(bootstrap, settings.topic(BUDGET_USAGE.name)).start()))
        app.state.outbound = Outbound.from_settings(settings)  # checks user-given URLs when they are set
        app.state.quota = await QuotaService(settings, bootstrap, app.state.producer).start()
        app.state.store = Store(settings.clickhouse_dsn, settings.clickhouse_database)
        app.state.account_sql = AccountSqlService(settings)
        app.state.sink = Sink(settings, bootstrap).start() if run_sink else None
        # Announce readiness only once records written now become readable promptly.
        if app.state.sink and not await asyncio.to_thread(app.state.sink.wait_ready):
            raise RuntimeError("the ClickHouse sink did not join its consumer group")
        obs.start(bootstrap, app.state.sink)
        try:
            yield
        finally:
            await obs.stop()
            await app.state.quota.stop()  # its last usage reports need the producer
            left = await asyncio.to_thread(app.state.producer.close)
            if left:
                log.error("%d records were not delivered to Kafka at shutdown", left)
            if app.state.sink:
                await asyncio.to_thread(app.state.sink.stop)
            app.state.store.close()
            app.state.account_sql.close()
            app.state.keys.stop()
            app.state.vitals_tail.stop()
            app.state.applications.stop()
            for table in (app.state.alert_rules, app.state.notification_policies, app.state.integrations,
                          app.state.budgets, app.state.budget_usage):
                table.stop()
            await app.state.outbound.close()

    app = FastAPI(title="Sophra", version="0.1.0", lifespan=lifespan,
                  description="Monitoring for AI agents and the applications around them")
    app.state.observability = obs = Observability(settings)
    errors.install(app)
    app.openapi = errors.truthful_openapi(app)
    app.include_router(keys.router)
    app.include_router(vitals.router)
    app.include_router(events.router)
    app.include_router(overview.router)
    app.include_router(agents.router)
    app.include_router(ari.router)
    app.include_router(applications.router)
    app.include_router(app_metrics.router)
    app.include_router(otlp.router)
    app.include_router(alerts.router)
    app.include_router(alerts.agent_router)
    app.include_router(alerts.budget_router)
    app.include_router(notifications.router)
    app.include_router(budgets.router)
    app.include_router(deployments.router)
    app.include_router(insights.router)
    app.include_router(predictions.router)
    app.include_router(sql.router)
    app.include_router(static.router)
    app.include_router(dashboard.router)

    app.include_router(health.router)

    app.add_middleware(JsonCheck)  # inside BodyLimit: it reads bodies already capped
    app.add_middleware(BodyLimit)
    app.add_middleware(QuotaMiddleware)  # outside BodyLimit, so its 400s carry the quota headers too
    # The browser SDK is loaded into any page and calls the api from that page's origin;
    # it authenticates with a Bearer key, never cookies, so any origin may call.
    app.add_middleware(CORSMiddleware, allow_origins=["*"], allow_methods=["GET", "POST", "PATCH", "DELETE"],
                       allow_headers=["Authorization", "Content-Type"],
                       expose_headers=["Retry-After", "X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"])
    app.add_middleware(MetricsMiddleware)  # outermost: every answer is counted, the others' own too
    return app
