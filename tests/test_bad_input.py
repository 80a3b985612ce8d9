"""Bad input of every kind gets a 400 naming the field, never a 5xx (issue 11): lone
surrogates, deep nesting, odd query parameters, agent ids that could not be read back,
oversized chunked bodies; and a vitals report that fails gives its rate-limit slot back.
All on the real api, broker and engine."""
import asyncio
import json
import time
import uuid

import httpx
import pytest

from api.json_body import MAX_DEPTH
from pipeline.producer import RecordProducer
from pipeline.topics import AGENT_VITALS, entity_key
from schemas import codec
from sophra.settings import Settings

from .conftest import RunningApi, eventually

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def api(kafka_bootstrap, clickhouse_dsn, tmp_path_factory):
    # one api for the module (like make_settings, at module scope): each test reads only what it wrote
    tag = uuid.uuid4().hex[:10]
    s = Settings(data_dir=tmp_path_factory.mktemp("bad-input"), kafka_bootstrap_servers=kafka_bootstrap,
                 clickhouse_url=clickhouse_dsn, clickhouse_database=f"test_{tag}", topic_prefix=f"t{tag}.",
                 sink_group=f"sink-{tag}", worker_id=f"worker-{tag}", sink_batch_ms=100)
    with RunningApi(s) as running:
        yield running


def post_raw(http, path: str, payload) -> httpx.Response:
    """JSON with \\uXXXX escapes, as a client's encoder writes a lone surrogate."""
    return http.post(path, content=json.dumps(payload).encode(), headers={"Content-Type": "application/json"})


def nested(levels: int, leaf=1):
    value = leaf
    for _ in range(levels):
        value = {"a": value}
    return value


@pytest.mark.parametrize("path,payload,field", [
    ("/api/vitals", {"agentId": "s1", "metadata": {"note": "ok \ud800"}}, "metadata.note"),
    ("/api/vitals", {"agentId": "s1", "metrics": {"model": "\udfff"}}, "metrics.model"),
    ("/api/vitals", {"agentId": "s\ud83d"}, "agentId"),
    ("/api/vitals", {"agentId": "s1", "agentName": "\udc00 name"}, "agentName"),
    ("/api/vitals", {"agentId": "s1", "metadata": {"\ud800key": 1}}, "metadata.\\ud800key"),
    ("/api/vitals", {"agentId": "s1", "metadata": {"list": [1, {"x": "\ud800"}]}}, "metadata.list[1].x"),
    ("/api/events", {"agentId": "s1", "type": "tool_error", "details": "\ud800"}, "details"),
    ("/api/events", {"agentId": "s1", "type": "tool_error", "metadata": {"a": {"b": "\udbff"}}}, "metadata.a.b"),
    ("/v1/applications", {"name": "app \ud800"}, "name"),
    ("/v1/applications", {"name": "app", "config": {"k": "\ud800"}}, "config.k"),
    ("/api/notifications", {"name": "\ud800", "actions": [{"type": "email", "recipients": ["a@b.co"]}]}, "name"),
    ("/api/keys", {"email": "\ud800@test.sophra"}, "email"),
])
def test_a_lone_surrogate_anywhere_is_a_400_naming_the_field(api, path, payload, field):
    with api.client() as http:
        res = post_raw(http, path, payload)
    assert res.status_code == 400, res.text
    why = "this key holds" if field.endswith("\\ud800key") else "holds"
    assert res.json() == {"success": False, "error": "Invalid request", "field": field,
                          "message": f"{field}: {why} a lone UTF-16 surrogate (\\ud800-\\udfff), which is not valid Unicode"}


def test_raw_surrogate_bytes_and_a_valid_pair_and_the_slot_is_not_kept(api):
    with api.client() as http:
        # CESU-style bytes for U+D800 (Python's JSON decoder lets them through as a surrogate)
        raw = b'{"agentId": "s2", "metadata": {"note": "\xed\xa0\x80"}}'
        res = http.post("/api/vitals", content=raw, headers={"Content-Type": "application/json"})
        assert (res.status_code, res.json()["field"]) == (400, "metadata.note")
        # a valid surrogate pair is an ordinary character, and the refused report kept no slot
        res = post_raw(http, "/api/vitals", {"agentId": "s2", "metadata": {"note": "\ud83d\ude00"}})
        assert res.status_code == 200, res.text
        got = eventually(lambda: (g := http.get("/api/agents/s2/vitals")).status_code == 200 and g.json()["vitals"])
        assert got[0]["metadata"] == {"note": "\U0001F600"}


def test_nesting_is_limited_to_the_stated_depth_with_the_path_where_it_is_passed(api):
    deepest = nested(MAX_DEPTH - 1)  # metadata is level 2 of the body: 31 levels of its own is the most
    too_deep = nested(MAX_DEPTH)
    where = "metadata" + ".a" * (MAX_DEPTH - 1)  # the 33rd level: body, metadata, then 31 more
    with api.client() as http:
        assert http.post("/api/vitals", json={"agentId": "d1", "metadata": deepest}).status_code == 200
        res = http.post("/api/vitals", json={"agentId": "d2", "metadata": too_deep})
        assert res.json() == {"success": False, "error": "Invalid request", "field": where,
                              "message": f"{where}: is nested deeper than 32 levels of objects and arrays"}
        res = http.post("/api/events", json={"agentId": "d2", "type": "t", "metadata": nested(300)})
        assert (res.status_code, res.json()["field"]) == (400, where)
        res = http.post("/v1/applications", json={"name": "deep", "config": {"x": [nested(40)]}})
        assert (res.status_code, res.json()["field"]) == (400, "config.x[0]" + ".a" * (MAX_DEPTH - 3))
        # deeper than the parser's own stack (this one is 60,000 levels)
        res = http.post("/api/vitals", content=b"[" * 60_000, headers={"Content-Type": "application/json"})
        assert res.json() == {"success": False, "error": "Invalid request", "field": "body",
                              "message": "body: is nested deeper than 32 levels of objects and arrays"}
        assert http.post("/api/vitals", content=b"{\"agentId\": ").json()["message"] == "body: is not valid JSON"
        got = eventually(lambda: (g := http.get("/api/agents/d1/vitals")).status_code == 200 and g.json()["vitals"])
        assert got[0]["metadata"] == deepest


def test_rows_stored_before_the_limit_are_answered_cut_at_it(api):
    """A vitals record with 300 levels of metadata (as the api accepted before the limit),
    produced straight to the topic: its reads answer, with the levels below 31 as null."""
    s = api.settings
    tenant = api.app.state.keys.book.authenticate(api.key).tenant
    record = {"tenant": tenant, "id": 7_000_001, "agent_id": "old-deep", "agent_name": None,
              "token_consumption": 1, "token_limit": 100, "hallucination_rate": 0.0, "loop_frequency": 0,
              "directive_conflicts": 0, "overall_health": "green", "metadata": json.dumps(nested(300)),
              "recorded_at": time.time_ns() // 1_000_000}
    producer = RecordProducer(s.kafka_bootstrap_servers)
    try:
        asyncio.run(producer.send(s.topic(AGENT_VITALS.name), entity_key(tenant, "old-deep"),
                                  codec.encode("agent_vital", record)))
    finally:
        producer.close()
    with api.client() as http:
        res = eventually(lambda: (g := http.get("/api/agents/old-deep/vitals")).status_code == 200 and g)
        assert res.json()["vitals"][0]["metadata"] == nested(MAX_DEPTH - 1, None)  # 31 object levels, then null
        assert http.get("/api/agents").status_code == 200


def test_a_report_whose_write_fails_gives_its_slot_back(api):
    """The broker is unreachable for one report (a real producer to a closed port): 503,
    and the agent's next report is taken, not refused as a second one in 10 s."""
    real = api.app.state.producer
    api.app.state.producer = RecordProducer("127.0.0.1:9", **{"message.timeout.ms": 300})
    try:
        with api.client() as http:
            res = http.post("/api/vitals", json={"agentId": "f1"})
            assert (res.status_code, res.json()["error"]) == (503, "Service unavailable")
    finally:
        api.app.state.producer.close(timeout=0)
        api.app.state.producer = real
    with api.client() as http:
        assert http.post("/api/vitals", json={"agentId": "f1"}).status_code == 200
        assert http.post("/api/vitals", json={"agentId": "f1"}).status_code == 429


@pytest.mark.parametrize("agent_id,message", [
    ("team/agent", "agentId: string should match pattern '^[^\\x00-\\x1f\\x7f/]+$'"),
    ("..", 'agentId: value error, must not be "." or ".." (it could not be read back at /api/agents/{agentId})'),
    (".", 'agentId: value error, must not be "." or ".." (it could not be read back at /api/agents/{agentId})'),
])
def test_an_agent_id_that_could_not_be_read_back_is_refused_at_write(api, agent_id, message):
    with api.client() as http:
        for path, body in (("/api/vitals", {"agentId": agent_id}),
                           ("/api/events", {"agentId": agent_id, "type": "t"}),
                           ("/api/notifications", {"agent_id": agent_id,
                                                   "actions": [{"type": "email", "recipients": ["a@b.co"]}]})):
            res = http.post(path, json=body)
            field = "agentId" if path != "/api/notifications" else "agent_id"
            assert (res.status_code, res.json()["field"]) == (400, field), (path, res.text)
            if field == "agentId":
                assert res.json()["message"] == message


def test_the_references_agent_ids_and_other_punctuation_are_fine(api):
    with api.client() as http:
        for ok in ("my-agent", "customer-support-v2-prod", "a.b:c@d", "..x", "...", "a b"):
            assert http.post("/api/vitals", json={"agentId": ok}).status_code == 200, ok
            assert http.post("/api/events", json={"agentId": ok, "type": "t"}).status_code == 200, ok
            assert eventually(lambda: http.get(f"/api/agents/{ok}/events").status_code == 200), ok


def test_an_agent_alert_path_with_an_unusable_agent_id_is_a_400(api):
    rule = {"name": "r", "condition": {"metric": "loopCount", "operator": ">", "threshold": 1},
            "actions": [{"type": "email", "recipients": ["a@b.co"]}]}
    with api.client() as http:
        res = http.post("/api/agents/%01x/alerts", json=rule)
        assert (res.status_code, res.json()["field"]) == (400, "agent_id")
        res = http.post("/api/agents/..%2E/alerts", json=rule)  # "..." is a fine id
        assert res.status_code == 201, res.text


@pytest.mark.parametrize("value", ["\u0661\u0662\u0663", "\u00b2", "9" * 5000, "1" * 17, "12 34", "-5", "１２"])
def test_times_in_query_strings_take_ascii_digits_or_iso_8601_only(api, value):
    with api.client() as http:
        app_id = http.post("/v1/applications", json={"name": "q"}).json()["id"]
        for path in ("/api/agents/x/events", "/api/agents/x/metrics", "/api/agents/x/metric-names",
                     f"/v1/applications/{app_id}/metrics"):
            for name in ("start", "end"):
                res = http.get(path, params={name: value})
                assert (res.status_code, res.json()["field"], res.json()["success"]) == (400, name, False), (path, name)


@pytest.mark.parametrize("path,params,field", [
    ("/api/agents/x/vitals", {"limit": "\u0661\u0660"}, "limit"),
    ("/api/agents/x/vitals", {"limit": "9" * 5000}, "limit"),
    ("/api/agents/x/events", {"limit": "-1"}, "limit"),
    ("/api/agents/x/ari", {"limit": "1e3"}, "limit"),
    ("/api/agents/x/metrics", {"granularity": "2m"}, "granularity"),
    ("/api/agents/x/metrics", {"stat": "p42"}, "stat"),
    ("/api/agents/x/metrics", {"metric": "no spaces"}, "metric"),
    ("/v1/applications", {"page": "0"}, "page"),
    ("/v1/applications", {"per_page": "\u00b9"}, "per_page"),
])
def test_every_other_query_parameter_is_checked(api, path, params, field):
    with api.client() as http:
        res = http.get(path, params=params)
    assert (res.status_code, res.json()["field"]) == (400, field), res.text


def test_app_query_parameters_and_builtin_bounds(api):
    with api.client() as http:
        app_id = http.post("/v1/applications", json={"name": "b"}).json()["id"]
        for params, field in (({"horizon": "2h"}, "horizon"), ({"metric": "Bad"}, "metric")):
            res = http.get(f"/v1/applications/{app_id}/predictions", params=params)
            assert (res.status_code, res.json()["field"]) == (400, field)
        now = time.time_ns() // 1_000_000
        for metric, value, rule in (("response_time", 1e16, "between 0 and 1e+15 for response_time (milliseconds)"),
                                    ("throughput", 1e300, "between 0 and 1e+15 for throughput (requests per minute)"),
                                    ("error_rate", 1.5, "between 0 and 1 for error_rate (a fraction 0..1)")):
            res = http.post(f"/v1/applications/{app_id}/metrics",
                            json={"points": [{"metric": metric, "value": value, "timestamp": now}]})
            assert res.json() == {"success": False, "error": "Invalid request", "field": "points[0].value",
                                  "message": f"points[0].value: must be {rule}"}
        top = [{"metric": "response_time", "value": 1e15, "timestamp": now - i} for i in range(3)]
        assert http.post(f"/v1/applications/{app_id}/metrics", json=top).status_code == 202


def test_extreme_custom_values_never_make_a_stat_or_a_prediction_non_finite(api):
    """Custom metrics take any finite value: sums that overflow read as null, and the
    predictions over a history of +-1.7e308 are finite."""
    with api.client() as http:
        app_id = http.post("/v1/applications", json={"name": "x"}).json()["id"]
        now_s = int(time.time())
        hour = now_s - now_s % 3600
        points = [{"metric": "huge", "value": 1.7e308 * (-1) ** h, "timestamp": (hour - h * 3600) * 1000}
                  for h in range(1, 6)]
        points += [{"metric": "huge", "value": -1.7e308, "timestamp": (hour - 3600) * 1000 + 1}]  # its sum overflows
        assert http.post(f"/v1/applications/{app_id}/metrics", json=points).status_code == 202
        params = {"metric": "huge", "granularity": "1h", "stat": "sum",
                  "start": (hour - 6 * 3600) * 1000, "end": hour * 1000}
        res = eventually(lambda: (g := http.get(f"/v1/applications/{app_id}/metrics", params=params)).json()["data"][-2]
                         ["value"] is not None and g)
        assert [d["value"] for d in res.json()["data"]] == [None, -1.7e308, 1.7e308, -1.7e308, 1.7e308, None]
        res = http.get(f"/v1/applications/{app_id}/predictions", params={"metric": "huge", "horizon": "6h"})
        assert res.status_code == 200, res.text
        body = res.json()
        assert body["basis"]["buckets"] == 4  # the overflowing bucket's mean is -inf and is not fitted
        assert len(body["predictions"]) == 6
        assert all(abs(p["predicted_value"]) <= 1.7976931348623157e308 and 0 <= p["confidence"] <= 1
                   for p in body["predictions"])


def test_an_oversized_chunked_body_gets_the_documented_400(api):
    def chunks(n):
        for _ in range(n):
            yield b" " * 1024

    with api.client() as http:
        res = http.post("/api/vitals", content=chunks(80), headers={"Content-Type": "application/json"})
        assert "content-length" not in res.request.headers
        assert res.json() == {"success": False, "error": "Invalid request", "field": "body",
                              "message": "body: larger than 65536 bytes"}
        small = (c for c in (b'{"agentId": ', b'"chunked"}'))
        assert http.post("/api/vitals", content=small, headers={"Content-Type": "application/json"}).status_code == 200
