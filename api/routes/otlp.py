"""POST /otlp/v1/metrics: OTLP/HTTP metrics export (docs/otlp.md).

`OTEL_EXPORTER_OTLP_ENDPOINT=http://host:8000/otlp` plus the header
`Authorization=Bearer sk_live_...` points any OpenTelemetry SDK here. The export is
decoded (api/otlp/body.py), mapped and checked point by point with the /v1 metrics'
rule (api/otlp/mapping.py), then written with the api's own write paths: one
`app_metric_batch` per application (as POST /v1/applications/{id}/metrics, in records
of at most 10,000 points) and one vitals report per GenAI agent (as POST /api/vitals).

Answers follow OTLP/HTTP: 200 with ExportMetricsServiceResponse (partial_success
counts and explains rejected data points; those are not to be retried), 400 for a body
that cannot be read, 401/403 for the key, 415 for another Content-Type or
Content-Encoding, 429 (hourly quota) and 503 (Kafka) with Retry-After, which clients
retry: a 503 only when nothing of the export was stored, so a retry never doubles a part
(a later write Kafka refuses is reported in partial_success instead). Bodies in the request's encoding (api/otlp/body.py).
"""
import asyncio
import hashlib
import time

from fastapi import APIRouter, Request, Response
from pydantic import ValidationError

from pipeline.topics import APP_METRICS, entity_key
from schemas import codec

from ..auth import key_of
from ..errors import ApiError
from ..models import VitalsIn
from ..otlp import body as otlp_body
from ..otlp.mapping import Export, map_export
from ..publish import send
from .app_metrics import MAX_POINTS
from .applications import ApplicationCreate, add_application, registry
from .vitals import store_vitals

router = APIRouter(prefix="/otlp", tags=["otlp"])

THREAD_ABOVE = 16 * 1024  # bytes of body; bigger exports are decoded and checked on a thread

def service_app_id(tenant: str, service: str) -> str:
    """The id OTLP gives the application it creates for `service`: derived, so two
    replicas (or two concurrent exports) creating it write one application, not two."""
    return "app_" + hashlib.sha256(f"{tenant}\0{service}".encode()).hexdigest()[:16]


async def _application(request: Request, tenant: str, service: str) -> dict:
    """The account's application for `service.name`: the one OTLP created for it (even if
    renamed since), else the oldest one of that name, else a new one."""
    apps, app_id = registry(request), service_app_id(tenant, service)
    app = apps.get(tenant, app_id) or next((a for a in apps.of(tenant) if a["name"] == service), None)
    if app is None:
        try:
            spec = ApplicationCreate(name=service, description="Created by OTLP metrics ingest for this service.name")
        except ValidationError as exc:
            raise ApiError(400, "Invalid request", f"service.name {service[:64]!r}...: "
                                                   f"{exc.errors()[0]['msg'].lower()}") from None
        app = await add_application(request, request.app.state.producer, tenant, spec, app_id)
    return app


def _read(data: bytes, content_type: str | None, content_encoding: str | None, now_ms: int) -> Export:
    return map_export(otlp_body.decode(data, content_type, content_encoding), now_ms)


# Once part of an export is stored, a 503 would make the client send all of it again and
# double that part: a write Kafka refuses after another one succeeded is answered as
# rejected points instead (partial_success: reported, not retried). Only an export of which
# nothing was stored gets the retryable 503.
UNSTORED = "Kafka could not take these points ({why}); they were not stored"


def _split(results: list, covers: list[list[int]], export: Export, stored_before: int) -> int:
    """Of gathered write results (each the sources it covers): raise the 503 if none was
    stored, anywhere in the export; else reject the sources of the failed ones. How many
    writes were stored."""
    failed = [(c, r) for c, r in zip(covers, results) if isinstance(r, BaseException)]
    for _, r in failed:
        if not (isinstance(r, ApiError) and r.status == 503):
            raise r
    stored = len(results) - len(failed)
    if failed and stored + stored_before == 0:
        raise failed[0][1]
    for sources, r in failed:
        for source in sources:
            export.reject(source, UNSTORED.format(why=r.body["message"]))
    return stored


async def _write_points(request: Request, tenant: str, export: Export) -> int:
    """Produce the export's points; how many records Kafka took."""
    state = request.app.state
    topic = state.settings.topic(APP_METRICS.name)
    sends, covers = [], []
    for service, points in export.points.items():
        try:
            app_id = (await _application(request, tenant, service))["id"]
        except ApiError as exc:
            if exc.status != 400:
                raise  # nothing produced yet (a created application is idempotent: its id is derived)
            for source in set(export.sources[service]):
                export.reject(source, exc.body["message"])
            continue
        for start in range(0, len(points), MAX_POINTS):  # Kafka's record size: the /v1 batch's cap
            record = {"tenant": tenant, "application_id": app_id, "id": state.ids.next_id(),
                      "received_at": time.time_ns() // 1_000_000, "points": points[start:start + MAX_POINTS]}
            sends.append(send(state.producer, topic, entity_key(tenant, app_id), codec.encode("app_metric_batch", record)))
            covers.append(export.sources[service][start:start + MAX_POINTS])
    return _split(await asyncio.gather(*sends, return_exceptions=True), covers, export, 0)


async def _write_vitals(request: Request, tenant: str, export: Export, stored_before: int) -> None:
    async def report_of(report) -> str | None:
        """Nothing once stored, or why this agent's report was refused (a 503 is raised)."""
        try:
            await store_vitals(request.app.state, tenant, VitalsIn.model_validate(report.vitals_body()))
        except ValidationError as exc:
            err = exc.errors()[0]
            return f"agent {report.agent_id[:64]!r}: {'.'.join(map(str, err['loc']))} {err['msg'].lower()}"
        except ApiError as exc:
            if exc.status != 429:  # the per-agent vitals limit refuses this agent only
                raise
            return f"agent {report.agent_id[:64]!r}: {exc.body['message']}"
        return None

    reports = list(export.agents.values())
    results = await asyncio.gather(*map(report_of, reports), return_exceptions=True)  # all agents at once
    refused = [(report, why) for report, why in zip(reports, results) if isinstance(why, str)]
    written = [(report, r) for report, r in zip(reports, results) if not isinstance(r, str)]
    _split([r for _, r in written], [report.sources for report, _ in written], export,
           stored_before)
    for report, why in refused:
        for source in report.sources:
            export.reject(source, why)


# Out of /openapi.json: the protocol is OpenTelemetry's (opentelemetry-proto), its bodies
# are not this api's JSON models, and its errors are google.rpc.Status (docs/otlp.md).
@router.post("/v1/metrics", response_class=Response, include_in_schema=False)
async def export_metrics(request: Request) -> Response:
    """Take an OTLP metrics export; see docs/otlp.md for how its data points map."""
    headers = request.headers
    # errors answer in the request's encoding; to an unsupported one, in JSON
    encoding = otlp_body.PROTOBUF if (headers.get("content-type") or "").lower().startswith(otlp_body.PROTOBUF) \
        else otlp_body.JSON
    try:
        tenant = (await key_of(request)).tenant
        data = await request.body()
        args = (data, headers.get("content-type"), headers.get("content-encoding"), time.time_ns() // 1_000_000)
        # decoding and checking take CPU in proportion to the body: big ones off the event loop
        export = await asyncio.to_thread(_read, *args) if len(data) > THREAD_ABOVE else _read(*args)
        stored = await _write_points(request, tenant, export)
        await _write_vitals(request, tenant, export, stored)
        return Response(otlp_body.success(len(export.rejected), export.message(), encoding), media_type=encoding)
    except ApiError as exc:
        return Response(otlp_body.failure(exc, encoding), status_code=exc.status, headers=exc.headers,
                        media_type=encoding)
