"""GET /api/agents/{id}/metrics, /metric-names, events by range and the dashboard's
agents overview, on the real broker and engine: vitals produced to agent.vitals land in
the agent_vitals rollups with exact bucket values for every built-in and custom metric,
a record re-read after a sink crash is not counted twice, rows from before migration
0009 are rolled up once, and another account sees none of it."""
import itertools
import json
import random
import time
import uuid

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from pipeline import accounts, health
from pipeline.alerts.evaluate import vital_points
from pipeline.sink.consumer import Sink
from pipeline.sink.steps import Batch, insert_batch, to_rows
from pipeline.store.clickhouse import connect
from pipeline.store.migrate import migrate, migrations
from pipeline.topics import AGENT_VITALS, ARI_INTERVENTIONS, ensure_topics, entity_key
from schemas import codec

from api.models import iso_ms

from .conftest import eventually
from .test_v1_metrics import STATS, STEP_S, expected_series, iso

pytestmark = pytest.mark.integration

DAY_MS = 86_400_000
_IDS = itertools.count((time.time_ns() // 1_000_000) << 10)  # increasing, as the api's ids are over time
BUILTIN = ["tokenConsumption", "hallucinationRate", "loopCount", "conflictCount", "tokenUsagePercent"]


def vital(tenant: str, agent: str, at: int, *, tokens: int = 1000, limit: int = 8000, rate: float = 0.0,
          loops: int = 0, conflicts: int = 0, metadata: dict | None = None, name: str | None = None) -> dict:
    return {"tenant": tenant, "id": next(_IDS), "agent_id": agent, "agent_name": name,
            "token_consumption": tokens, "token_limit": limit, "hallucination_rate": rate,
            "loop_frequency": loops, "directive_conflicts": conflicts,
            "overall_health": health.score(token_consumption=tokens, token_limit=limit, hallucination_rate=rate,
                                           loop_count=loops, conflict_count=conflicts),
            "metadata": json.dumps(metadata or {}), "recorded_at": at}


def produce(settings, kind: str, topic, records: list[dict], key_of) -> None:
    p = Producer({"bootstrap.servers": settings.kafka_bootstrap_servers, "enable.idempotence": True})
    for r in records:
        p.produce(settings.topic(topic.name), key=key_of(r), value=codec.encode(kind, r))
    assert p.flush(20) == 0


def produce_vitals(settings, records: list[dict]) -> None:
    produce(settings, "agent_vital", AGENT_VITALS, records, lambda r: entity_key(r["tenant"], r["agent_id"]))


def account(api) -> tuple[str, str]:
    email = f"{uuid.uuid4().hex[:12]}@test.sophra"
    return api.new_key(email), accounts.tenant_for(email)


def generated_vitals(tenant: str, agent: str, t0: int) -> list[dict]:
    """Two days of reports at bucket edges and in bursts; values are multiples of 1/4 (or
    integers, and token usage multiples of 1/64), so sums and means are exact in binary. A custom metric comes and goes, a
    string and a boolean in the metadata are not metrics, and a metadata key named like
    a built-in does not override it."""
    rnd = random.Random(9)
    out = []
    for day in (0, 1):
        for hour, minutes in ((0, (0, 1, 5, 59)), (9, (30,)), (17, (0, 14, 15)), (23, (59,))):
            for minute in minutes:
                base = t0 + day * DAY_MS + hour * 3_600_000 + minute * 60_000
                for i in range(rnd.choice((1, 2, 5))):
                    at = base + (0 if i == 0 else 59_999 if i == 1 else rnd.randrange(60_000))
                    meta = {"model": "gpt-x", "cached": True, "loopCount": 999}
                    if minute % 2 == 0:
                        meta["latency_ms"] = rnd.randrange(0, 4000) / 4
                    out.append(vital(tenant, agent, at, tokens=rnd.randrange(0, 6401), limit=6400,
                                     rate=rnd.randrange(0, 5) / 4, loops=rnd.randrange(0, 200),
                                     conflicts=rnd.randrange(0, 7), metadata=meta))
    return out


def points_of(records: list[dict], metric: str) -> list[tuple[int, float]]:
    return [(t, v) for r in records for m, v, t in vital_points(r) if m == metric]


@pytest.fixture(scope="module")
def seeded(make_settings):
    """One api with two days of one agent's vitals landed (shared: seeding takes seconds)."""
    from .conftest import RunningApi
    api = RunningApi(make_settings()).__enter__()
    key, tenant = account(api)
    now = int(time.time() * 1000)
    t0 = now - now % DAY_MS - 3 * DAY_MS
    records = generated_vitals(tenant, "agent-1", t0)
    produce_vitals(api.settings, records)
    with api.client(key) as http:
        def landed():
            res = http.get("/api/agents/agent-1/metrics", params={
                "metric": "loopCount", "stat": "count", "granularity": "1d", "start": t0, "end": t0 + 2 * DAY_MS})
            return res.status_code == 200 and sum(d["value"] for d in res.json()["data"]) == len(records)
        assert eventually(landed, 30)
    yield api, key, tenant, t0, records
    api.__exit__()


@pytest.fixture(scope="module")
def make_settings(kafka_bootstrap, clickhouse_dsn, tmp_path_factory):
    from sophra.settings import Settings

    def make(**overrides):
        tag = uuid.uuid4().hex[:10]
        values = dict(data_dir=tmp_path_factory.mktemp("agent-metrics"), kafka_bootstrap_servers=kafka_bootstrap,
                      clickhouse_url=clickhouse_dsn, clickhouse_database=f"test_{tag}", topic_prefix=f"t{tag}.",
                      sink_group=f"sink-{tag}", worker_id=f"worker-{tag}", sink_batch_ms=100)
        return Settings(**{**values, **overrides})
    return make


def test_every_metric_is_exact_at_every_granularity_and_stat(seeded):
    api, key, _, t0, records = seeded
    start, end = t0 - 3_600_000, t0 + 2 * DAY_MS + 3_600_000
    with api.client(key) as http:
        for metric in (*BUILTIN, "latency_ms"):
            points = points_of(records, metric)
            assert points, metric
            for granularity in ("5m", "1h", "1d") if metric != "latency_ms" else tuple(STEP_S):
                for stat in STATS:
                    res = http.get("/api/agents/agent-1/metrics", params={
                        "metric": metric, "granularity": granularity, "stat": stat, "start": iso(start), "end": iso(end)})
                    assert res.status_code == 200, res.text
                    body = res.json()
                    assert (body["agent_id"], body["metric"], body["granularity"]) == ("agent-1", metric, granularity)
                    assert body["data"] == expected_series(points, start, end, granularity, stat), (metric, granularity, stat)


def test_one_minute_buckets_and_the_token_usage_percentage(seeded):
    api, key, _, t0, records = seeded
    start, end = t0 + 17 * 3_600_000, t0 + 17 * 3_600_000 + 20 * 60_000
    with api.client(key) as http:
        res = http.get("/api/agents/agent-1/metrics", params={
            "metric": "tokenUsagePercent", "granularity": "1m", "start": iso(start), "end": iso(end), "stat": "max"})
    data = res.json()["data"]
    assert len(data) == 20 and [i for i, d in enumerate(data) if d["value"] is not None] == [0, 14, 15]
    expected = max(100 * r["token_consumption"] / 6400 for r in records if start <= r["recorded_at"] < start + 60_000)
    assert data[0]["value"] == expected


def test_metric_names_are_built_ins_then_custom(seeded):
    api, key, _, t0, _ = seeded
    with api.client(key) as http:
        assert http.get("/api/agents/agent-1/metric-names").json() == {
            "agent_id": "agent-1", "metrics": BUILTIN + ["latency_ms"]}
        assert http.get("/api/agents/agent-1/metric-names", params={"start": t0 + 3 * DAY_MS}).json()["metrics"] == []


def test_bad_parameters_name_the_field_and_unknown_agents_are_404(seeded):
    api, key, _, _, _ = seeded
    with api.client(key) as http:
        for params, field in (({"metric": "1bad"}, "metric"), ({"granularity": "2m"}, "granularity"),
                              ({"stat": "median"}, "stat"), ({"start": "yesterday"}, "start"),
                              ({"start": "2024-01-02T00:00:00Z", "end": "2024-01-01T00:00:00Z"}, "start"),
                              ({"granularity": "1m", "start": "2020-01-01T00:00:00Z"}, "granularity")):
            res = http.get("/api/agents/agent-1/metrics", params=params)
            assert (res.status_code, res.json().get("field")) == (400, field), (params, res.text)
        assert http.get("/api/agents/nobody/metrics").status_code == 404
        assert http.get("/api/agents/nobody/metric-names").status_code == 404
        assert http.get("/api/agents/agent-1/events", params={"start": "x"}).json()["field"] == "start"


def test_another_account_sees_nothing(seeded):
    api, _, _, _, _ = seeded
    other, _ = account(api)
    with api.client(other) as http:
        assert http.get("/api/agents/agent-1/metrics").status_code == 404
        assert http.get("/api/agents/agent-1/metric-names").status_code == 404
        assert http.get("/api/dashboard/agents").json()["agents"] == []


def test_events_by_range(running_api):
    api = running_api()
    with api.client() as http:
        assert http.post("/api/vitals", json={"agentId": "ev-agent"}).status_code == 200
        ids = []
        for kind in ("tool_error", "task_completed", "directive_conflict"):
            res = http.post("/api/events", json={"agentId": "ev-agent", "type": kind, "details": kind})
            assert res.status_code == 200, res.text
            ids.append(res.json())
            time.sleep(0.01)
        def landed():
            res = http.get("/api/agents/ev-agent/events")
            return res.status_code == 200 and len(res.json()["events"]) == 3 and res.json()["events"]
        events = eventually(landed)
        assert [e["event_type"] for e in events] == ["directive_conflict", "task_completed", "tool_error"]
        middle = events[1]["recorded_at"]
        after = http.get("/api/agents/ev-agent/events", params={"start": middle}).json()["events"]
        before = http.get("/api/agents/ev-agent/events", params={"end": middle}).json()["events"]
        assert [e["event_type"] for e in after] == ["directive_conflict", "task_completed"]
        assert [e["event_type"] for e in before] == ["tool_error"]


def test_the_agents_overview(running_api):
    api = running_api()
    key, tenant = account(api)
    now = int(time.time() * 1000)
    hour = now - now % 3_600_000
    # busy: every 60 s for the last 3 hours, up to now; quiet: every 60 s for an hour, silent
    # for the last 10 minutes; lonely: one report two days ago
    busy = [vital(tenant, "busy", now - 10_795_000 + i * 60_000, tokens=4000 + i, limit=6400, name="Busy bot")
            for i in range(180)]
    quiet = [vital(tenant, "quiet", now - 4_200_000 + i * 60_000, tokens=6400, limit=8000, loops=60)
             for i in range(61)]
    lonely = [vital(tenant, "lonely", now - 2 * DAY_MS, tokens=10, limit=1000)]
    produce_vitals(api.settings, busy + quiet + lonely)
    produce(api.settings, "ari_intervention", ARI_INTERVENTIONS, [
        {"tenant": tenant, "agent_id": "quiet", "intervention_id": f"iv_{i}", "protocol": 1, "severity": "medium",
         "description": "d", "tokens_saved": 0, "details": "{}", "opened_at": now - 60_000,
         "closed_at": None if i < 2 else now, "version": 1} for i in range(3)],
        lambda r: entity_key(r["tenant"], r["agent_id"]))
    with api.client(key) as http:
        def overview():
            body = http.get("/api/dashboard/agents").json()
            agents = {a["agent_id"]: a for a in body["agents"]}
            return len(agents) == 3 and agents["quiet"]["open_interventions"] == 2 and agents
        agents = eventually(overview, 30)
    b, q, lone = agents["busy"], agents["quiet"], agents["lonely"]
    assert (b["name"], b["token_consumption"], b["token_limit"], b["stale"]) == ("Busy bot", 4179, 6400, False)
    assert (b["status"], b["overall_health"], b["last_vitals_at"]) == ("active", "green", iso_ms(busy[-1]["recorded_at"]))
    assert (q["name"], q["loop_frequency"], q["status"], q["stale"], q["open_interventions"]) == (
        "quiet", 60, "warning", True, 2)
    assert (lone["usual_interval_s"], lone["stale"], lone["trend"]) == (None, True, [None] * 24)
    # 180 reports spread over 179 minutes: the estimate starts at the first 5-minute bucket's middle
    first_bucket = busy[0]["recorded_at"] // 300_000 * 300
    assert b["usual_interval_s"] == pytest.approx((busy[-1]["recorded_at"] / 1000 - (first_bucket + 150)) / 179)
    # within half a 5-minute bucket over the span: 60 s ± 150 s / 179 and ± 150 s / 60
    assert 59.1 < b["usual_interval_s"] < 60.9 and 57.5 <= q["usual_interval_s"] < 62.5
    hours = [hour - (23 - i) * 3_600_000 for i in range(24)]
    assert b["trend"] == expected_trend(busy, hours) and q["trend"] == expected_trend(quiet, hours)
    assert [v for v in q["trend"] if v is not None] and set(q["trend"]) - {None} == {80.0}


def expected_trend(records: list[dict], hours: list[int]) -> list[float | None]:
    by_hour: dict[int, list[float]] = {}
    for r in records:
        by_hour.setdefault(r["recorded_at"] - r["recorded_at"] % 3_600_000, []).append(
            100 * r["token_consumption"] / r["token_limit"])
    return [round(sum(v) / len(v), 2) if (v := by_hour.get(h)) else None for h in hours]


def test_health_thresholds_are_the_scoring_ones(running_api):
    from pipeline.health import THRESHOLDS
    api = running_api()
    with api.client(None) as http:
        assert http.get("/api/health-thresholds").json() == THRESHOLDS


def test_keys_say_which_key_is_asking(running_api):
    api = running_api()
    with api.client() as http:
        res = http.post("/api/keys", json={"email": http.get("/api/keys").json()["email"], "read_only": True})
        read_only = res.json()
        listed = http.get("/api/keys").json()
    assert listed["read_only"] is False and listed["current_key_id"] != read_only["key_id"]
    with api.client(read_only["key"]) as http:
        listed = http.get("/api/keys").json()
    assert (listed["current_key_id"], listed["read_only"]) == (read_only["key_id"], True)


# -- exactly once, and the migration ------------------------------------------------------
@pytest.fixture
def env(make_settings):
    s = make_settings()
    ensure_topics(s.kafka_bootstrap_servers, s.topic_prefix)
    migrate(s.clickhouse_dsn, s.clickhouse_database)
    return s, s.kafka_bootstrap_servers, connect(s.clickhouse_dsn, s.clickhouse_database)


def rollup_counts(ch) -> list[int]:
    return [ch.query(f"SELECT sum(count) FROM agent_vitals_{g} WHERE metric = 'loopCount'").result_rows[0][0]
            for g in STEP_S]


def test_a_vitals_record_re_read_after_a_crash_is_not_counted_twice(env):
    s, bootstrap, ch = env
    topic = s.topic(AGENT_VITALS.name)
    t = int(time.time() * 1000) - 3_600_000
    delivered = []
    p = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all"})
    for i in range(12):
        p.produce(topic, key=entity_key("t_v", f"a{i}"), value=codec.encode("agent_vital", vital("t_v", f"a{i}", t + i)),
                  partition=0 if i < 8 else 1, on_delivery=lambda err, msg: delivered.append(msg))
    assert p.flush(10) == 0 and len(delivered) == 12
    crashed = Batch()  # what the sink that crashed had landed: the first 5 records of partition 0
    for msg in sorted(delivered, key=lambda m: (m.partition(), m.offset()))[:5]:
        crashed.track(topic, msg.partition(), msg.offset())
        crashed.add(to_rows(msg.value(), msg.partition(), msg.offset()))
    insert_batch(ch, crashed)
    assert rollup_counts(ch) == [5] * 4

    sink = Sink(s, bootstrap).start()
    try:
        def committed():
            c = Consumer({"bootstrap.servers": bootstrap, "group.id": s.sink_group})
            offsets = c.committed([TopicPartition(topic, i) for i in range(AGENT_VITALS.partitions)], timeout=10)
            c.close()
            return sum(max(tp.offset, 0) for tp in offsets)
        assert eventually(lambda: committed() == 12, 20)
    finally:
        sink.stop()
    assert sink.skipped == 5
    assert rollup_counts(ch) == [12] * 4
    assert ch.query("SELECT count() FROM agent_vitals").result_rows == [(12,)]


def test_vitals_from_before_the_rollups_are_rolled_up_once(make_settings):
    s = make_settings()
    client = connect(s.clickhouse_dsn)
    client.command(f"CREATE DATABASE `{s.clickhouse_database}`")
    ch = connect(s.clickhouse_dsn, s.clickhouse_database)
    before = [m for m in migrations() if m.version < 9]
    for m in before:
        for statement in m.statements():
            ch.command(statement)
    t = int(time.time() * 1000) - DAY_MS
    old = [vital("t_old", "a", t + i * 60_000, tokens=100 * i, limit=1000, metadata={"score": i / 4}) for i in range(6)]
    assert [r["id"] for r in old] == sorted(r["id"] for r in old)  # the last one is the newest
    columns = ["tenant", "id", "agent_id", "agent_name", "token_consumption", "token_limit", "hallucination_rate",
               "loop_frequency", "directive_conflicts", "overall_health", "metadata", "recorded_at"]
    ch.insert("agent_vitals", [[r[c] for c in columns] for r in old], column_names=columns)
    ch.command("CREATE TABLE schema_migrations (version UInt32, name String, applied_at DateTime64(3, 'UTC') "
               "DEFAULT now64(3)) ENGINE = ReplacingMergeTree ORDER BY version")
    ch.insert("schema_migrations", [[m.version, m.name] for m in before], column_names=["version", "name"])

    assert migrate(s.clickhouse_dsn, s.clickhouse_database) == ["0009_agent_vitals_rollups", "0010_insight_episodes",
                                                              "0011_intervention_outcomes"]
    again = next(m for m in migrations() if m.version == 9)
    for statement in again.statements():  # a crash before the migration was recorded: it runs again
        ch.command(statement)
    for g in STEP_S:
        assert ch.query(f"SELECT metric, sum(count), sum(sum) FROM agent_vitals_{g} WHERE metric IN "
                        "('tokenUsagePercent', 'score') GROUP BY metric ORDER BY metric").result_rows == [
            ("score", 6, 3.75), ("tokenUsagePercent", 6, 150.0)], g
    assert ch.query("SELECT agent_id, token_limit, token_consumption FROM agent_latest FINAL").result_rows == [
        ("a", 1000, 500)]
