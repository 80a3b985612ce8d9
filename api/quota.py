"""The /v1 hourly quota in the api: `QuotaService` (this process's counts, its view of
the worker's sums and of the plans, its usage reports) and `QuotaMiddleware`, which
applies it to every /v1 request that carries a valid key. Rules: pipeline/quota.py;
behaviour and numbers: docs/quota.md.

Every /v1 response to a valid key carries X-RateLimit-Limit, X-RateLimit-Remaining and
X-RateLimit-Reset (epoch seconds of the end of the UTC hour); an enterprise account gets
`unlimited` in the first two. The count is the account's: all its keys share it. A request without a valid key is left to the route,
which answers 401 without them: there is no key to count against.
"""
import asyncio
import json
import logging
import secrets
import time
from datetime import datetime, timezone

from fastapi.security.utils import get_authorization_scheme_param

from pipeline.accounts import KeyState
from pipeline.producer import RecordProducer
from pipeline.quota import (CONFIRM_WAIT_S, REPORT_INTERVAL_S, WAIT_POLL_S, Decision, PlanBook, UsageCounter,
                            UsageTail, limit_of)
from pipeline.topics import ACCOUNT_PLANS, API_USAGE, QUOTA_USAGE
from schemas import codec
from sophra.settings import Settings

from .errors import INTERNAL

log = logging.getLogger("sophra.api.quota")


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class QuotaService:
    def __init__(self, settings: Settings, bootstrap: str, producer: RecordProducer):
        # One reporter per process start: a restarted process must not take over its
        # former counts (the worker keeps the largest count per reporter).
        self.node = f"{settings.node_id}-{secrets.token_hex(4)}"
        self.counter = UsageCounter(self.node)
        self.plans = PlanBook(bootstrap, settings.topic(ACCOUNT_PLANS.name))
        self.usage = UsageTail(bootstrap, settings.topic(QUOTA_USAGE.name), self.counter)
        self._topic = settings.topic(API_USAGE.name)
        self._producer = producer
        self._report_now = asyncio.Event()
        self._reporter: asyncio.Task | None = None
        self._worker_late = False

    async def start(self) -> "QuotaService":
        await asyncio.to_thread(self.plans.start)
        await asyncio.to_thread(self.usage.start)
        self._reporter = asyncio.create_task(self._report_loop(), name="quota-reports")
        return self

    async def stop(self) -> None:
        if self._reporter:
            self._reporter.cancel()
            await asyncio.gather(self._reporter, return_exceptions=True)
        await self.report()  # the last counts, before the producer closes
        self.plans.stop()
        self.usage.stop()

    def plan_of(self, key: KeyState) -> str:
        return self.plans.plan_of(key.tenant)

    async def acquire(self, key: KeyState, plan: str) -> Decision:
        """Count one request of `key`'s account, or refuse it. Over this process's budget of
        unconfirmed grants, report at once and wait (up to CONFIRM_WAIT_S) for the worker."""
        limit = limit_of(plan)
        deadline = None
        while True:
            decision = self.counter.decide(key.tenant, key.tenant, limit, _now_ms())  # per account, not per key
            if not decision.wait:
                return decision
            self._report_now.set()
            if deadline is None:
                # the counter stops waiting for the worker after CONFIRM_WAIT_S; this is a safety net
                deadline = time.monotonic() + CONFIRM_WAIT_S + 1
            elif time.monotonic() > deadline:
                return decision
            await asyncio.sleep(WAIT_POLL_S)

    async def _report_loop(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._report_now.wait(), REPORT_INTERVAL_S)
            except TimeoutError:
                pass
            self._report_now.clear()
            try:
                await self.report()
            except Exception:  # never let the loop die: the counts stay and go next time
                log.exception("usage report failed")
            late = self.counter.check_worker(_now_ms())
            if late != self._worker_late:
                self._worker_late = late
                if late:
                    log.warning("the worker has not confirmed this process's usage for %.0f s: each api process "
                                "now enforces the quota on what it knows (docs/quota.md)", CONFIRM_WAIT_S)
                else:
                    log.info("the worker confirms usage again: the quota is shared")

    async def report(self) -> None:
        """Produce this process's running count of every key counted since the last report.
        Off the request path: requests only count in memory."""
        reports = self.counter.take_reports(_now_ms())
        if not reports:
            return
        results = await asyncio.gather(*(
            self._producer.send(self._topic, r["key_id"].encode(), codec.encode("api_usage", r)) for r in reports),
            return_exceptions=True)
        failed = [r for r, res in zip(reports, results) if isinstance(res, BaseException)]
        if failed:
            log.warning("%d usage reports not delivered (%s); sending again", len(failed),
                        next(res for res in results if isinstance(res, BaseException)))
            self.counter.report_failed(failed)


def rate_limit_headers(d: Decision) -> list[tuple[bytes, bytes]]:
    unlimited = d.limit is None
    return [(b"x-ratelimit-limit", b"unlimited" if unlimited else str(d.limit).encode()),
            (b"x-ratelimit-remaining", b"unlimited" if unlimited else str(d.remaining).encode()),
            (b"x-ratelimit-reset", str(d.reset).encode())]


def refusal_body(d: Decision, plan: str) -> dict:
    if d.wait:
        message = (f"This account's usage is being confirmed across api processes; retry in {d.retry_after} s "
                   f"({d.remaining} requests left this hour)")
    else:
        reset = datetime.fromtimestamp(d.reset, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        message = (f"This account has used its {d.limit} requests of this hour ({plan} plan); "
                   f"the quota resets at {reset}, in {d.retry_after} s")
    return {"success": False, "error": "Rate limit exceeded", "message": message,
            "retry_after_ms": d.retry_after * 1000, "retry_after_seconds": d.retry_after}


def _is_v1(path: str) -> bool:
    # OTLP exports write /v1 application metrics: each request counts like a /v1 one
    return path == "/v1" or path.startswith(("/v1/", "/otlp/"))


def _bearer(scope) -> str | None:
    """The Bearer credentials, read as fastapi's HTTPBearer reads them."""
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, credentials = get_authorization_scheme_param(value.decode("latin-1"))
            return credentials if scheme.lower() == "bearer" and credentials else None
    return None


async def _send_json(send, status: int, body: dict, headers: list[tuple[bytes, bytes]]) -> None:
    payload = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode()),
                            *headers]})
    await send({"type": "http.response.body", "body": payload})


class QuotaMiddleware:
    """Counts every /v1 request of a valid key against its hourly quota before the route
    runs, answers 429 when it is used up, and puts the X-RateLimit-* headers on every
    response to it (errors included; an unhandled error becomes a 500 in the one error
    shape here, so it carries them too)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not _is_v1(scope["path"]):
            return await self.app(scope, receive, send)
        state = scope["app"].state
        token = _bearer(scope)
        key = state.keys.book.authenticate(token) if token else None
        if key is None:  # the route's authentication answers 401
            return await self.app(scope, receive, send)
        quota: QuotaService = state.quota
        plan = quota.plan_of(key)
        decision = await quota.acquire(key, plan)
        headers = rate_limit_headers(decision)
        if not decision.granted:
            return await _send_json(send, 429, refusal_body(decision, plan),
                                    [*headers, (b"retry-after", str(decision.retry_after).encode())])
        started = False

        async def send_with_headers(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message = {**message, "headers": [*message.get("headers", []), *headers]}
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        except Exception:
            if not started:
                await _send_json(send, INTERNAL.status, INTERNAL.body, headers)
            raise
