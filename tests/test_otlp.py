"""OTLP/HTTP metrics ingest (docs/otlp.md) against the real server: the real
OpenTelemetry SDK and its OTLP/HTTP exporter, and hand-made protobuf and JSON bodies
(gzip included) through httpx; every value read back through /v1 and /api exactly."""
import gzip
import json
import time
import uuid

import httpx
import pytest
from google.rpc import status_pb2
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (ExportMetricsServiceRequest,
                                                                          ExportMetricsServiceResponse)
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, MetricExportResult
from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View
from opentelemetry.sdk.resources import Resource

from api.otlp.body import MAX_INFLATED
from api.otlp.mapping import quantile
from api.routes.otlp import service_app_id
from pipeline.accounts import tenant_for

from .conftest import RunningApi, cap_topic, eventually, test_settings

pytestmark = pytest.mark.integration

PROTOBUF = {"Content-Type": "application/x-protobuf"}
JSON = {"Content-Type": "application/json"}


@pytest.fixture(scope="module")
def api(kafka_bootstrap, clickhouse_dsn, tmp_path_factory):
    # one api for the module: each test writes under its own account or service.name
    s = test_settings(tmp_path_factory.mktemp("otlp"), kafka_bootstrap, clickhouse_dsn)
    with RunningApi(s) as running:
        yield running


def export(api, key: str, metrics: list[tuple], service: str,
           compression=Compression.NoCompression) -> MetricExportResult:
    """Record `metrics` ((kind, name, value, attributes) with kind gauge, counter or histogram)
    in a fresh SDK MeterProvider, collect them once and export that through the OTLP/HTTP
    exporter (called directly, for its result: a reader's flush does not report failures)."""
    exporter = OTLPMetricExporter(endpoint=f"{api.url}/otlp/v1/metrics", headers={"Authorization": f"Bearer {key}"},
                                  compression=compression)
    reader = InMemoryMetricReader()
    buckets = View(instrument_name="latency", aggregation=ExplicitBucketHistogramAggregation([10, 100, 1000]))
    provider = MeterProvider(resource=Resource.create({"service.name": service}), metric_readers=[reader],
                             views=[buckets])
    meter = provider.get_meter("test_otlp")
    instruments = {}
    for kind, name, value, attributes in metrics:
        if name not in instruments:
            instruments[name] = {"gauge": meter.create_gauge, "counter": meter.create_counter,
                                 "histogram": meter.create_histogram}[kind](name)
        instrument = instruments[name]
        (instrument.set if kind == "gauge" else instrument.add if kind == "counter" else instrument.record)(
            value, attributes)
    try:
        return exporter.export(reader.get_metrics_data(), timeout_millis=10_000)
    finally:
        provider.shutdown()
        exporter.shutdown()


def app_named(http: httpx.Client, name: str) -> dict:
    apps = http.get("/v1/applications", params={"per_page": 100}).json()["applications"]
    [app] = [a for a in apps if a["name"] == name]
    return app


def values(http: httpx.Client, app_id: str, metric: str, stat: str = "max") -> list:
    """The stat of each 1m bucket of the last and next 10 minutes that has points."""
    now = int(time.time() * 1000)
    res = http.get(f"/v1/applications/{app_id}/metrics", params={
        "metric": metric, "stat": stat, "granularity": "1m", "start": now - 600_000, "end": now + 600_000})
    assert res.status_code == 200, res.text
    return [d["value"] for d in res.json()["data"] if d["value"] is not None and (stat != "count" or d["value"])]


def landed(http: httpx.Client, app_id: str, metric: str, stat: str = "max") -> list:
    return eventually(lambda: values(http, app_id, metric, stat), 20)


def protobuf_request(service: str | None, points: list[tuple[str, object, int]]) -> ExportMetricsServiceRequest:
    """One resource (`service.name` unless None) with a gauge per (name, value, time ns)."""
    req = ExportMetricsServiceRequest()
    rm = req.resource_metrics.add()
    if service is not None:
        attr = rm.resource.attributes.add(key="service.name")
        attr.value.string_value = service
    sm = rm.scope_metrics.add()
    for name, value, ns in points:
        dp = sm.metrics.add(name=name).gauge.data_points.add(time_unix_nano=ns)
        if isinstance(value, int):
            dp.as_int = value
        else:
            dp.as_double = value
    return req


def test_the_sdk_exporter_lands_gauge_sum_histogram_and_genai_vitals_exactly(api):
    email = f"{uuid.uuid4().hex[:12]}@test.sophra"
    key = api.new_key(email)
    agent = {"gen_ai.agent.id": "otlp-agent-1", "gen_ai.agent.name": "Support bot", "gen_ai.operation.name": "chat"}
    ok = export(api, key, [
        ("gauge", "queue.depth", 42, {}),
        ("counter", "http.requests", 5, {"route": "/a"}),
        ("counter", "http.requests", 7, {"route": "/a"}),
        *(("histogram", "latency", v, {}) for v in (5, 50, 60, 500)),
        ("histogram", "gen_ai.client.token.usage", 1200, {**agent, "gen_ai.token.type": "input"}),
        ("histogram", "gen_ai.client.token.usage", 300, {**agent, "gen_ai.token.type": "output"}),
        ("histogram", "gen_ai.client.operation.duration", 0.5, agent),
        ("histogram", "gen_ai.client.operation.duration", 1.5, agent),
    ], "checkout")
    assert ok is MetricExportResult.SUCCESS
    with api.client(key) as http:
        app = app_named(http, "checkout")
        assert app["id"] == service_app_id(tenant_for(email), "checkout")
        assert landed(http, app["id"], "queue.depth") == [42.0]
        assert landed(http, app["id"], "http.requests") == [12.0]  # cumulative, as sent
        assert landed(http, app["id"], "latency.count") == [4.0]
        expected = {"sum": 615.0, "min": 5.0, "max": 500.0,
                    # p50: rank 2 in (10, 100] holding 2 of 4 -> 10 + 90 * 1/2; p95, p99 in (100, 1000]
                    # narrowed to max 500: 100 + 400 * (rank - 3)
                    "p50": 55.0, "p95": 100 + 400 * (0.95 * 4 - 3), "p99": 100 + 400 * (0.99 * 4 - 3)}
        for suffix, value in expected.items():
            assert landed(http, app["id"], f"latency.{suffix}") == [value], suffix
        # GenAI metrics are application metrics too (two data points: input and output)
        assert landed(http, app["id"], "gen_ai.client.token.usage.sum", "sum") == [1500.0]

        vitals = eventually(lambda: http.get("/api/agents/otlp-agent-1/vitals").json().get("vitals"), 20)
        assert len(vitals) == 1
        v = vitals[0]
        assert (v["token_consumption"], v["token_limit"], v["overall_health"]) == (1500, 100_000, "green")
        assert v["metadata"] == {"gen_ai.client.token.usage.input": 1200, "gen_ai.client.token.usage.output": 300,
                                 "gen_ai.client.operation.duration": 1.0, "gen_ai.client.operation.count": 2}
        [listed] = [a for a in http.get("/api/agents").json()["agents"] if a["agent_id"] == "otlp-agent-1"]
        assert listed["name"] == "Support bot"


def test_the_sdk_exporter_with_gzip_into_an_existing_application_of_that_name(api):
    key = api.new_key()
    with api.client(key) as http:
        made = http.post("/v1/applications", json={"name": "billing"}).json()
        assert export(api, key, [("gauge", "queue.depth", 7.25, {})], "billing", Compression.Gzip) is MetricExportResult.SUCCESS
        assert landed(http, made["id"], "queue.depth") == [7.25]
        assert [a["id"] for a in http.get("/v1/applications").json()["applications"]] == [made["id"]]


def test_json_encoding_with_int64_strings_and_gzip(api):
    key = api.new_key()
    ns = time.time_ns()
    body = {"resourceMetrics": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "json-svc"}}]},
        "scopeMetrics": [{"scope": {"name": "hand"}, "metrics": [
            {"name": "jobs.done", "sum": {"aggregationTemporality": 1, "isMonotonic": True, "dataPoints": [
                {"timeUnixNano": str(ns), "startTimeUnixNano": str(ns - 10**9), "asInt": "9007199254740993",
                 # exemplar ids are hex in OTLP JSON (not proto3's base64): read past, not refused
                 "exemplars": [{"timeUnixNano": str(ns), "asInt": "1",
                                "traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174"}]}]}},
            {"name": "temperature", "gauge": {"dataPoints": [{"time_unix_nano": ns, "as_double": 21.5}]}},
            {"name": "RPC/Latency", "summary": {"dataPoints": [{"timeUnixNano": str(ns), "count": "3", "sum": 6.0,
                                                                "quantileValues": [{"quantile": 0.5, "value": 2.0},
                                                                                   {"quantile": 1.0, "value": 3.5}]}]}},
        ]}]}]}
    with api.client(key) as http:
        res = http.post("/otlp/v1/metrics", content=gzip.compress(json.dumps(body).encode()),
                        headers={**JSON, "Content-Encoding": "gzip"})
        assert (res.status_code, res.headers["content-type"], res.json()) == (200, "application/json", {})
        assert res.headers["x-ratelimit-limit"] == "1000"  # an export counts against the /v1 hourly quota
        remaining = int(res.headers["x-ratelimit-remaining"])
        app = app_named(http, "json-svc")
        assert landed(http, app["id"], "jobs.done") == [9007199254740992.0]  # 2^53 + 1 as a double
        assert landed(http, app["id"], "temperature") == [21.5]
        for suffix, value in (("count", 3.0), ("sum", 6.0), ("p50", 2.0), ("max", 3.5)):  # name lower-cased, / -> _
            assert landed(http, app["id"], f"rpc_latency.{suffix}") == [value], suffix
        # uncompressed JSON too
        res = http.post("/otlp/v1/metrics", content=json.dumps(body).encode(), headers=JSON)
        assert (res.status_code, res.json()) == (200, {})
        assert int(res.headers["x-ratelimit-remaining"]) < remaining
        assert eventually(lambda: values(http, app["id"], "temperature", "count") == [2.0], 20)


def test_partial_success_counts_each_rejected_data_point_once(api):
    key = api.new_key()
    ns = time.time_ns()
    req = protobuf_request("partial", [
        ("ok.metric", 1.5, ns),
        ("ok.metric", 2, ns),
        ("old.metric", 1.0, 1),                      # 1970: beyond the retention
        ("x" * 70, 1.0, ns),                         # a name over 64 characters
        ("nan.metric", float("nan"), ns),            # not finite
        ("future.metric", 1.0, ns + 3600 * 10**9),   # an hour ahead
    ])
    gap = req.resource_metrics[0].scope_metrics[0].metrics.add(name="gap.metric").gauge.data_points.add(
        time_unix_nano=ns, flags=1)  # "no recorded value": neither stored nor rejected
    assert gap.flags == 1
    req.resource_metrics[0].scope_metrics[0].metrics.add(name="exp.metric").exponential_histogram.data_points.add(
        time_unix_nano=ns, count=1, sum=1.0)  # not supported: rejected
    orphan = protobuf_request(None, [("orphan.metric", 1.0, ns)]).resource_metrics[0]
    req.resource_metrics.append(orphan)  # no service.name: rejected
    with api.client(key) as http:
        res = http.post("/otlp/v1/metrics", content=req.SerializeToString(), headers=PROTOBUF)
        assert (res.status_code, res.headers["content-type"]) == (200, "application/x-protobuf")
        answer = ExportMetricsServiceResponse.FromString(res.content)
        assert answer.partial_success.rejected_data_points == 6
        message = answer.partial_success.error_message
        assert message.startswith("6 of 9 data points rejected: old.metric.dataPoints[0].timestamp: is more than "
                                  "400 days old (the retention); " + "x" * 70 + ".dataPoints[0].metric: must be ")
        assert message.endswith("(and 3 other reasons)")
        app = app_named(http, "partial")
        assert landed(http, app["id"], "ok.metric", "sum") == [3.5]
        assert values(http, app["id"], "old.metric") == [] and values(http, app["id"], "gap.metric") == []

        # The same agent twice within 10 s: its second report is refused by the vitals limit,
        # so the GenAI data points behind it count as rejected (its application points landed).
        def genai(tokens: int) -> bytes:
            r = ExportMetricsServiceRequest()
            rm = r.resource_metrics.add()
            rm.resource.attributes.add(key="service.name").value.string_value = "partial"
            dp = rm.scope_metrics.add().metrics.add(name="gen_ai.client.token.usage").histogram.data_points.add(
                time_unix_nano=time.time_ns(), count=1, sum=tokens, bucket_counts=[0, 1], explicit_bounds=[10])
            dp.attributes.add(key="gen_ai.agent.name").value.string_value = "limited-agent"
            return r.SerializeToString()
        first = http.post("/otlp/v1/metrics", content=genai(40), headers=PROTOBUF)
        assert ExportMetricsServiceResponse.FromString(first.content).partial_success.rejected_data_points == 0
        second = ExportMetricsServiceResponse.FromString(
            http.post("/otlp/v1/metrics", content=genai(50), headers=PROTOBUF).content)
        assert second.partial_success.rejected_data_points == 1
        assert second.partial_success.error_message.startswith(
            "1 of 1 data points rejected: agent 'limited-agent': One vitals report per agent per 10 s; retry in ")
        vitals = eventually(lambda: http.get("/api/agents/limited-agent/vitals").json().get("vitals"), 20)
        assert [v["token_consumption"] for v in vitals] == [40]


def test_unreadable_bodies_are_400s_naming_the_problem(api):
    with api.client() as http:
        res = http.post("/otlp/v1/metrics", content=b"\x0a\xff\xff\xff", headers=PROTOBUF)
        status = status_pb2.Status.FromString(res.content)
        assert (res.status_code, status.code) == (400, 3)
        assert status.message.startswith("body: is not a protobuf ExportMetricsServiceRequest (Error parsing message")

        res = http.post("/otlp/v1/metrics", content=b'{"resourceMetrics": [', headers=JSON)
        assert (res.status_code, res.json()) == (400, {"success": False, "error": "Invalid request", "code": 3,
                                                       "message": "body: is not valid JSON", "field": "body"})
        res = http.post("/otlp/v1/metrics", content=b'{"resourceMetrics": 5}', headers=JSON)
        assert res.status_code == 400
        assert res.json()["message"].startswith("body: is not an ExportMetricsServiceRequest in OTLP JSON (")

        res = http.post("/otlp/v1/metrics", content=b"\x1f\x8b\x08\x00garbage", headers={**PROTOBUF,
                                                                                        "Content-Encoding": "gzip"})
        assert res.status_code == 400
        assert status_pb2.Status.FromString(res.content).message.startswith("body: is not valid gzip (")

        bomb = gzip.compress(b"\0" * (MAX_INFLATED + 1))  # about 8 KiB on the wire
        res = http.post("/otlp/v1/metrics", content=bomb, headers={**PROTOBUF, "Content-Encoding": "gzip"})
        assert (res.status_code, status_pb2.Status.FromString(res.content).message) == (
            400, f"body: larger than {MAX_INFLATED} bytes once decompressed")

        res = http.post("/otlp/v1/metrics", content=b"x", headers={"Content-Type": "text/plain"})
        assert (res.status_code, res.json()["code"]) == (415, 3)
        assert res.json()["message"] == ("Content-Type must be application/x-protobuf or application/json "
                                         "(OTLP/HTTP), got 'text/plain'")
        res = http.post("/otlp/v1/metrics", content=b"", headers={**PROTOBUF, "Content-Encoding": "br"})
        assert res.status_code == 415


def test_401_without_a_valid_key_and_403_with_a_read_only_one(api):
    body = protobuf_request("nobody", [("a", 1.0, time.time_ns())]).SerializeToString()
    for headers in ({}, {"Authorization": "Bearer sk_live_not_a_key"}):
        res = httpx.post(f"{api.url}/otlp/v1/metrics", content=body, headers={**PROTOBUF, **headers})
        status = status_pb2.Status.FromString(res.content)
        assert (res.status_code, status.code) == (401, 16)
        assert status.message == "Clé API invalide ou expirée. Obtenez la vôtre sur /onboarding.html"
    # a read-only key of a real account: 403, nothing written
    email = f"{uuid.uuid4().hex[:12]}@test.sophra"
    full = api.new_key(email)
    res = httpx.post(f"{api.url}/api/keys", json={"email": email, "read_only": True},
                     headers={"Authorization": f"Bearer {full}"})
    read_only = res.json()["key"]
    res = httpx.post(f"{api.url}/otlp/v1/metrics", content=body,
                     headers={**PROTOBUF, "Authorization": f"Bearer {read_only}"})
    assert (res.status_code, status_pb2.Status.FromString(res.content).code) == (403, 7)
    assert httpx.get(f"{api.url}/v1/applications", headers={"Authorization": f"Bearer {full}"}).json()["total"] == 0
    # the SDK's exporter sees the 401 and gives up at once (not retryable)
    assert export(api, "sk_live_not_a_key", [("gauge", "a", 1, {})], "nobody") is MetricExportResult.FAILURE


def test_another_account_can_neither_write_into_nor_read_an_application(api):
    first, second = api.new_key(), api.new_key()
    ns = time.time_ns()
    with api.client(first) as a, api.client(second) as b:
        body = protobuf_request("shared-name", [("m", 1.0, ns)]).SerializeToString()
        assert a.post("/otlp/v1/metrics", content=body, headers=PROTOBUF).status_code == 200
        mine = app_named(a, "shared-name")
        assert landed(a, mine["id"], "m") == [1.0]
        # the same service.name under the second key makes the second account's own application
        body = protobuf_request("shared-name", [("m", 99.0, ns)]).SerializeToString()
        assert b.post("/otlp/v1/metrics", content=body, headers=PROTOBUF).status_code == 200
        theirs = app_named(b, "shared-name")
        assert theirs["id"] != mine["id"]
        assert landed(b, theirs["id"], "m") == [99.0]
        assert b.get(f"/v1/applications/{mine['id']}").status_code == 404
        assert b.get(f"/v1/applications/{mine['id']}/metrics", params={"metric": "m"}).status_code == 404
        assert values(a, mine["id"], "m", "count") == [1.0]  # nothing of the second account's landed in it


def test_quantile_estimates():
    bounds, counts = [10, 100, 1000], [1, 2, 1, 0]
    assert quantile(0.5, bounds, counts, 4, None, None) == 55.0
    assert quantile(0.5, bounds, counts, 4, 20.0, 80.0) == 50.0  # narrowed to [min, max]: 20 + 60 * 1/2
    assert quantile(0.25, bounds, counts, 4, None, None) == 10.0  # first bucket without min: its bound
    assert quantile(0.99, [10], [0, 3], 3, None, None) == 10.0  # overflow bucket without max: the last bound
    assert quantile(0.99, [10], [0, 3], 3, None, 40.0) == 10 + 30 * (0.99 * 3) / 3


def test_a_503_only_when_nothing_of_the_export_was_stored(running_api):
    """An export is several Kafka records. If Kafka refuses one after it took another, a
    503 would have the client send everything again and store the taken part twice: the
    refused part is reported in partial_success instead. A 503 means nothing was stored."""
    from pipeline.topics import AGENT_VITALS, APP_METRICS

    api = running_api()  # its own topics: they are capped below
    key = api.new_key()
    bootstrap = api.settings.kafka_bootstrap_servers
    cap_topic(bootstrap, api.settings.topic(AGENT_VITALS.name), 64)  # every vitals record is refused
    with api.client(key) as http:  # the broker applies the cap a moment after it acknowledged it
        probes = iter(range(100))
        assert eventually(lambda: http.post("/api/vitals", json={"agentId": f"probe-{next(probes)}", "metrics": {}})
                          .status_code == 503, 30)
    ns = time.time_ns()
    req = ExportMetricsServiceRequest()
    rm = req.resource_metrics.add()
    rm.resource.attributes.add(key="service.name").value.string_value = "half-stored"
    dp = rm.scope_metrics.add().metrics.add(name="gen_ai.client.token.usage").histogram.data_points.add(
        time_unix_nano=ns, count=1, sum=40, bucket_counts=[0, 1], explicit_bounds=[10])
    dp.attributes.add(key="gen_ai.agent.name").value.string_value = "unstored-agent"
    with api.client(key) as http:
        res = http.post("/otlp/v1/metrics", content=req.SerializeToString(), headers=PROTOBUF)
        assert res.status_code == 200, res.content
        answer = ExportMetricsServiceResponse.FromString(res.content)
        assert answer.partial_success.rejected_data_points == 1
        assert answer.partial_success.error_message.startswith(
            "1 of 1 data points rejected: Kafka could not take these points (Record not stored: ")
        assert answer.partial_success.error_message.endswith("; retry shortly); they were not stored")
        app = app_named(http, "half-stored")
        assert landed(http, app["id"], "gen_ai.client.token.usage.sum", "sum") == [40.0]  # the taken part, once
        assert http.get("/api/agents/unstored-agent/vitals").status_code == 404

        # Nothing of this export can be stored: the retryable 503, with Retry-After.
        cap_topic(bootstrap, api.settings.topic(APP_METRICS.name), 64)
        # (the broker applies a config change a moment after it acknowledged it: until then a
        # 200 stores the point, under a metric name of its own)
        tries = iter(range(100))

        def export_refused():
            name = f"m{next(tries)}"
            r = http.post("/otlp/v1/metrics", content=protobuf_request("half-stored", [(name, 1.5, ns)])
                          .SerializeToString(), headers=PROTOBUF)
            return r.status_code == 503 and (r, name)
        res, name = eventually(export_refused, 30)
        assert res.headers["retry-after"] == "1"
        status = status_pb2.Status.FromString(res.content)
        assert status.code == 14 and status.message.startswith("Record not stored: ")
        assert values(http, app["id"], name) == []
