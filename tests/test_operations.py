"""What an operator watches, on the real broker and engine: /metrics counts every answer
by route template (never by raw path), times produces, reports the embedded sink and the
consumer groups' lag and the dead letters; /readyz says which dependency is not ready;
the embedded ClickHouse keeps no system log tables that could grow its disk."""
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient
from prometheus_client import CONTENT_TYPE_LATEST

from pipeline.topics import AGENT_VITALS

from .conftest import RunningApi, eventually, free_port

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[1]


def sample(text: str, name: str, **labels) -> float | None:
    """The value of one sample of the exposition, or None when it is absent."""
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$", line)
        if m and m.group(1) == name:
            got = ",".join(sorted(filter(None, (m.group(2) or "").split(","))))
            if got == want:
                return float(m.group(3))
    return None


def test_metrics_count_answers_by_route_and_report_the_pipeline(running_api):
    api = running_api(lag_interval_s=0.2)
    with api.client() as http:
        for agent in ("m-1", "m-2"):
            assert http.post("/api/vitals", json={"agentId": agent}).status_code == 200
        assert http.post("/api/vitals", json={"agentId": ""}).status_code == 400
        assert http.get("/api/agents/m-1/events").status_code in (200, 404)
        assert http.get("/no/such/path").status_code == 404
        # An undecodable record on agent.vitals: the sink dead-letters it.
        p = Producer({"bootstrap.servers": api.settings.kafka_bootstrap_servers})
        p.produce(api.settings.topic(AGENT_VITALS.name), value=b"not avro", key=b"x")
        assert p.flush(10) == 0
        dlq = api.settings.topic(AGENT_VITALS.name) + ".dlq"

        def scraped():
            text = http.get("/metrics").text
            done = (sample(text, "sophra_sink_rows_total") == 2.0
                    and sample(text, "sophra_dead_letters", topic=dlq) == 1.0
                    and sample(text, "sophra_consumer_lag_records", group=api.settings.sink_group,
                               topic=api.settings.topic(AGENT_VITALS.name)) == 0.0)
            return done and text
        text = eventually(scraped, 20)
    assert text, "the sink's rows, the dead letter and a zero lag never showed"
    assert http_count(text, "POST", "/api/vitals", "200") == 2.0
    assert http_count(text, "POST", "/api/vitals", "400") == 1.0
    assert http_count(text, "GET", "/api/agents/{agent_id}/events", "200") or \
        http_count(text, "GET", "/api/agents/{agent_id}/events", "404")
    assert http_count(text, "GET", "unmatched", "404") == 1.0
    assert "m-1" not in text and "m-2" not in text  # ids are never labels
    assert sample(text, "sophra_kafka_produce_seconds_count", outcome="ok") >= 2.0  # the key's record too
    assert sample(text, "sophra_sink_dead_letters_total") == 1.0
    assert sample(text, "sophra_lag_read_age_seconds") < 5


def http_count(text: str, method: str, route: str, status: str) -> float | None:
    return sample(text, "sophra_http_requests_total", method=method, route=route, status=status)


def test_metrics_can_require_the_operators_token(running_api):
    api = running_api(metrics_token="s3cret-token")
    with api.client(None) as http:
        refused = http.get("/metrics")
        assert (refused.status_code, refused.headers["www-authenticate"]) == (401, "Bearer")
        assert http.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
        ok = http.get("/metrics", headers={"Authorization": "Bearer s3cret-token"})
        assert ok.status_code == 200 and ok.headers["content-type"] == CONTENT_TYPE_LATEST
        assert "sophra_http_requests_total" in ok.text


def test_readyz_checks_kafka_clickhouse_and_the_sink(running_api):
    api = running_api()
    with api.client(None) as http:
        assert http.get("/healthz").json() == {"ok": True}
        ready = eventually(lambda: (r := http.get("/readyz")).status_code == 200 and r.json(), 20)
        assert ready["ready"] is True
        assert {k: v["ok"] for k, v in ready["checks"].items()} == {"kafka": True, "clickhouse": True, "sink": True}
        assert ready["checks"]["sink"]["records_behind"] == 0
        assert ready["checks"]["kafka"]["partitions"] > 0

        api.app.state.sink.stop()  # the embedded sink is gone: not ready, whatever the lag
        res = http.get("/readyz")
        assert res.status_code == 503 and res.json()["checks"]["sink"] == {
            "ok": False, "error": "RuntimeError: the embedded sink is not running", "ms": res.json()["checks"]["sink"]["ms"]}
        assert res.json()["checks"]["kafka"]["ok"] and res.json()["checks"]["clickhouse"]["ok"]

        # Kafka unreachable: the check fails within its timeout instead of hanging
        api.app.state.observability._admin = AdminClient({"bootstrap.servers": f"127.0.0.1:{free_port()}"})
        res = http.get("/readyz", timeout=15)
        kafka = res.json()["checks"]["kafka"]
        assert res.status_code == 503 and kafka["ok"] is False and kafka["ms"] < 5000, kafka


def test_readyz_fails_while_the_sink_is_too_far_behind(make_settings):
    # No sink in this api (as when the sink runs in its own process, here stopped): its lag grows.
    with RunningApi(make_settings(ready_max_sink_lag=2), run_sink=False) as api, api.client() as http:
        for i in range(3):
            assert http.post("/api/vitals", json={"agentId": f"lag-{i}"}).status_code == 200
        res = http.get("/readyz")
        assert res.status_code == 503
        assert res.json()["checks"]["sink"]["error"] == "RuntimeError: 3 records behind, more than 2"


def test_the_embedded_engine_keeps_no_system_log_tables(running_api, clickhouse_dsn):
    if not clickhouse_dsn.startswith("chdb://"):
        pytest.skip("about the embedded engine; a server's logs are bounded by deploy/clickhouse/system_logs.xml")
    api = running_api()
    with api.client() as http:
        for i in range(50):
            http.get("/api/agents")
    rows = api.app.state.store.query_rows(
        "SELECT name, engine FROM system.tables WHERE database = 'system' AND (engine LIKE '%MergeTree' "
        "OR name LIKE '%\\_log')")
    # query_log, part_log, trace_log, ... are not kept; user_query_log is a view of the session's memory
    assert rows == [{"name": "user_query_log", "engine": "SystemUserQueryLog"}]
    data = Path(api.settings.clickhouse_dsn.removeprefix("chdb://"))
    assert not (data / "data" / "system").exists()


def test_a_clickhouse_server_bounds_its_system_logs():
    config = ET.parse(ROOT / "deploy" / "clickhouse" / "system_logs.xml").getroot()
    logs = {child.tag: child.findtext("ttl") for child in config}
    assert set(logs) == {"query_log", "query_thread_log", "query_views_log", "part_log", "trace_log", "text_log",
                         "metric_log", "asynchronous_metric_log", "processors_profile_log", "opentelemetry_span_log",
                         "error_log", "query_metric_log", "latency_log", "asynchronous_insert_log", "backup_log"}
    assert all(ttl and re.fullmatch(r"event_date \+ INTERVAL \d+ DAY DELETE", ttl) for ttl in logs.values()), logs
    compose = (ROOT / "docker-compose.yml").read_text()
    assert "./deploy/clickhouse/system_logs.xml:/etc/clickhouse-server/config.d/system_logs.xml:ro" in compose
