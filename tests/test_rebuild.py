"""`sophra rebuild` on the real broker and engine: rows lost from ClickHouse come back
exactly as the topics hold them (raw rows, rollups, landed offsets), the sink continues
after it without doubles or gaps, and it refuses while the sink runs or when retention
dropped records whose rows the tables hold."""
import fcntl
import io
import os
import subprocess
import sys
from collections import defaultdict

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from pipeline.producer import producer_config
from pipeline.rebuild import RebuildError, rebuild, run as run_rebuild
from pipeline.sink.consumer import Sink
from pipeline.store.clickhouse import connect
from pipeline.store.migrate import migrate
from pipeline.topics import AGENT_EVENTS, AGENT_VITALS, APP_METRICS, ensure_topics, entity_key
from schemas import codec

from .conftest import eventually

pytestmark = pytest.mark.integration

T0 = 1_795_000_000_000  # 2026-11-18T11:06:40Z
TOPICS = (APP_METRICS, AGENT_VITALS, AGENT_EVENTS)
GARBAGE = b"not avro"


def metric_batches(first: int, n: int) -> list[dict]:
    """n batches of 25 points, three applications, two metrics, spread over four minutes."""
    out = []
    for b in range(first, first + n):
        points = [{"metric": ("response_time", "error_rate")[i % 2], "value": float((b * 25 + i) % 17) + 0.5,
                   "timestamp": T0 + (b * 25 + i) * 700} for i in range(25)]
        out.append({"tenant": "t_r", "application_id": f"app_{b % 3}", "id": 10_000 + b, "received_at": T0,
                    "points": points})
    return out


def vitals(first: int, n: int) -> list[dict]:
    return [{"tenant": "t_r", "id": 20_000 + i, "agent_id": f"agent-{i % 3}", "agent_name": f"bot {i % 3}",
             "token_consumption": 100 * i, "token_limit": 100_000, "hallucination_rate": 0.25 * (i % 4),
             "loop_frequency": i, "directive_conflicts": i % 5, "overall_health": "green", "metadata": "{}",
             "recorded_at": T0 + i * 9_000} for i in range(first, first + n)]


def events(first: int, n: int) -> list[dict]:
    return [{"tenant": "t_r", "id": 30_000 + i, "agent_id": f"agent-{i % 3}", "event_type": "tool_error",
             "details": None, "metadata": "{}", "recorded_at": T0 + i * 5_000} for i in range(first, first + n)]


class Produced:
    """Everything produced, and where each record landed: (topic, partition) -> [(offset, record)]."""

    def __init__(self, s):
        self.s, self.at = s, defaultdict(list)
        self.metrics, self.vitals, self.events = [], [], []

    def send(self, metrics=(), vitals_=(), events_=(), garbage=0):
        p = Producer(producer_config(self.s.kafka_bootstrap_servers))
        for spec, kind, records in ((APP_METRICS, "app_metric_batch", metrics), (AGENT_VITALS, "agent_vital", vitals_),
                                    (AGENT_EVENTS, "agent_event", events_)):
            for r in records:
                key = entity_key(r["tenant"], r.get("application_id") or r["agent_id"])
                p.produce(self.s.topic(spec.name), key=key, value=codec.encode(kind, r),
                          on_delivery=lambda err, m, r=r: self.at[(m.topic(), m.partition())].append((m.offset(), r)))
        for _ in range(garbage):
            p.produce(self.s.topic(APP_METRICS.name), key=b"t_r/app_0", value=GARBAGE)
        assert p.flush(30) == 0
        self.metrics += metrics
        self.vitals += vitals_
        self.events += events_


def expected(metrics, vitals_, events_) -> dict:
    """What the tables must hold for these records, computed here."""
    m1, m1h = defaultdict(lambda: [0, 0.0]), defaultdict(lambda: [0, 0.0])
    for b in metrics:
        for pt in b["points"]:
            for agg, size in ((m1, 60_000), (m1h, 3_600_000)):
                cell = agg[(b["application_id"], pt["metric"], pt["timestamp"] // size * size // 1000)]
                cell[0] += 1
                cell[1] += pt["value"]
    v1 = defaultdict(lambda: [0, 0.0])
    for v in vitals_:
        for metric, x in (("tokenConsumption", v["token_consumption"]), ("hallucinationRate", v["hallucination_rate"]),
                          ("loopCount", v["loop_frequency"]), ("conflictCount", v["directive_conflicts"]),
                          ("tokenUsagePercent", 100 * v["token_consumption"] / v["token_limit"])):
            cell = v1[(v["agent_id"], metric, v["recorded_at"] // 60_000 * 60)]
            cell[0] += 1
            cell[1] += x
    latest = {}
    for v in vitals_:
        latest[v["agent_id"]] = max(latest.get(v["agent_id"], 0), v["id"])
    return {
        "app_metrics": (sum(len(b["points"]) for b in metrics), sum(p["value"] for b in metrics for p in b["points"])),
        "app_metrics_1m": sorted((*k, c, round(s, 6)) for k, (c, s) in m1.items()),
        "app_metrics_1h": sorted((*k, c, round(s, 6)) for k, (c, s) in m1h.items()),
        "agent_vitals": (len(vitals_), sum(v["token_consumption"] for v in vitals_)),
        "agent_vitals_1m": sorted((*k, c, round(s, 6)) for k, (c, s) in v1.items()),
        "agent_latest": sorted(latest.items()),
        "agent_events": (len(events_), sum(e["id"] for e in events_)),
    }


def _rollup(ch, table, subject):
    return sorted((a, m, b, c, round(s, 6)) for a, m, b, c, s in ch.query(
        f"SELECT {subject}, metric, toUnixTimestamp(bucket), sum(count), sum(sum) FROM {table} "
        f"GROUP BY {subject}, metric, bucket").result_rows)


def stored(ch) -> dict:
    """What the tables hold, in expected()'s shape (raw tables read with FINAL, as the api reads them)."""
    one = lambda sql: ch.query(sql).result_rows[0]  # noqa: E731
    return {
        "app_metrics": one("SELECT count(), sum(value) FROM app_metrics FINAL"),
        "app_metrics_1m": _rollup(ch, "app_metrics_1m", "application_id"),
        "app_metrics_1h": _rollup(ch, "app_metrics_1h", "application_id"),
        "agent_vitals": one("SELECT count(), sum(token_consumption) FROM agent_vitals FINAL"),
        "agent_vitals_1m": _rollup(ch, "agent_vitals_1m", "agent_id"),
        "agent_latest": sorted(ch.query("SELECT agent_id, id FROM agent_latest FINAL").result_rows),
        "agent_events": one("SELECT count(), sum(id) FROM agent_events FINAL"),
    }


def ends(s, specs=TOPICS) -> dict:
    c = Consumer({"bootstrap.servers": s.kafka_bootstrap_servers, "group.id": "ends"})
    try:
        return {(s.topic(t.name), p): c.get_watermark_offsets(TopicPartition(s.topic(t.name), p), timeout=10)[1]
                for t in specs for p in range(t.partitions)}
    finally:
        c.close()


def commits(s, specs=TOPICS) -> dict:
    c = Consumer({"bootstrap.servers": s.kafka_bootstrap_servers, "group.id": s.sink_group})
    try:
        tps = [TopicPartition(s.topic(t.name), p) for t in specs for p in range(t.partitions)]
        return {(tp.topic, tp.partition): max(tp.offset, 0) for tp in c.committed(tps, timeout=10)}
    finally:
        c.close()


def land(s) -> Sink:
    """Run the real sink until it committed everything on the test's topics; returns it (stopped)."""
    sink = Sink(s, s.kafka_bootstrap_servers).start()
    try:
        assert eventually(lambda: commits(s) == ends(s), 120), "the sink did not land everything"
    finally:
        sink.stop()
    return sink


def replaced_databases(ch, s) -> list:
    return [r[0] for r in ch.query(f"SELECT name FROM system.databases WHERE startsWith(name, "
                                   f"'{s.clickhouse_database}_replaced_')").result_rows]


@pytest.fixture
def env(make_settings):
    """24 metric batches (600 points), 30 vitals, 6 events and one undecodable record,
    landed by the real sink."""
    s = make_settings()
    ensure_topics(s.kafka_bootstrap_servers, s.topic_prefix)
    migrate(s.clickhouse_dsn, s.clickhouse_database)
    produced = Produced(s)
    produced.send(metric_batches(0, 24), vitals(0, 30), events(0, 6), garbage=1)
    land(s)
    ch = connect(s.clickhouse_dsn, s.clickhouse_database)
    assert stored(ch) == expected(produced.metrics, produced.vitals, produced.events)  # as the sink landed them
    return s, produced, ch


def dlq_count(s) -> int:
    c = Consumer({"bootstrap.servers": s.kafka_bootstrap_servers, "group.id": "ends"})
    try:
        return c.get_watermark_offsets(TopicPartition(s.topic(APP_METRICS.name) + ".dlq", 0), timeout=10)[1]
    finally:
        c.close()


def test_rebuild_after_rows_were_lost_brings_back_exactly_what_the_topics_hold(env):
    s, produced, ch = env
    want = expected(produced.metrics, produced.vitals, produced.events)
    for table in ("app_metrics", "app_metrics_1h", "agent_events", "agent_vitals_1m"):  # rows lost, rollups damaged
        ch.command(f"TRUNCATE TABLE {table}")
    ch.command("DELETE FROM agent_vitals WHERE id < 20010", settings={"lightweight_deletes_sync": 2})
    assert stored(ch) != want

    out = io.StringIO()
    result = rebuild(s, s.kafka_bootstrap_servers, out=out, batch_rows=200)  # several inserts

    assert stored(ch) == want                                # raw rows and every rollup, exactly once
    records = 24 + 30 + 6 + 1
    assert (result.records, result.dead_letters) == (records, 1)
    assert result.rows == {"app_metrics": 600, "agent_vitals": 30, "agent_events": 6}
    assert ch.query("SELECT count() FROM app_metrics").result_rows == [(600,)]  # not merely collapsed by FINAL
    assert f"100.0% {records}/{records} records" in out.getvalue() and "rec/s" in out.getvalue()
    assert result.summary().startswith(f"rebuild done: {records} records (1 dead letters), rows: agent_events 6, "
                                       "agent_vitals 30, app_metrics 600; ")
    # the landed offsets are the topics' last offsets, per partition
    # the landed offsets: each partition's last record with rows (the undecodable one has none)
    landed = dict(ch.query("SELECT partition, max(offset) FROM app_metrics_landed GROUP BY partition").result_rows)
    assert landed == {p: max(o for o, _ in recs) for (t, p), recs in produced.at.items()
                      if t == s.topic(APP_METRICS.name)}
    # the swap: every sink table and each table its views feed; the old ones kept aside
    assert "app_metrics_1m" in result.swapped and "agent_vitals_landed" in result.swapped
    assert len(result.swapped) == 10 + 2 * 5 + 2     # 10 sink tables, 2 x (4 rollups + landed), agent_latest/names
    assert replaced_databases(ch, s) == [result.replaced]
    old = connect(s.clickhouse_dsn, result.replaced)
    assert old.query("SELECT (SELECT count() FROM app_metrics), (SELECT count() FROM agent_vitals FINAL)"
                     ).result_rows == [(0, 20)]     # what the damaged tables held
    assert commits(s) == ends(s)                     # the sink continues after what was read
    assert dlq_count(s) == 1                         # the sink had dead-lettered it already: not again


def test_records_produced_after_the_rebuild_land_exactly_once(env):
    s, produced, ch = env
    ch.command("TRUNCATE TABLE app_metrics_1m")
    rebuild(s, s.kafka_bootstrap_servers, batch_rows=1_000)
    produced.send(metric_batches(24, 6), vitals(30, 9), events(6, 3), garbage=1)
    sink = land(s)
    assert stored(ch) == expected(produced.metrics, produced.vitals, produced.events)
    assert (sink.inserted_rows, sink.skipped, sink.dead_letters) == (150 + 9 + 3, 0, 1)  # only the new records
    assert ch.query("SELECT (SELECT count() FROM app_metrics), (SELECT count() FROM agent_vitals), "
                    "(SELECT count() FROM agent_events)").result_rows == [(750, 39, 9)]
    assert dlq_count(s) == 2


def test_rebuild_of_chosen_tables_leaves_the_others(env):
    s, produced, ch = env
    ch.command("TRUNCATE TABLE app_metrics")
    ch.command("TRUNCATE TABLE agent_events")
    produced.send(garbage=1)  # one the sink never read: rebuild dead-letters it, as the sink would have
    result = rebuild(s, s.kafka_bootstrap_servers, tables=["app_metrics"])
    assert result.swapped == ["app_metrics", "app_metrics_1d", "app_metrics_1h", "app_metrics_1m", "app_metrics_5m",
                              "app_metrics_landed"]
    assert result.rows == {"app_metrics": 600} and (result.records, result.dead_letters) == (24 + 2, 2)
    assert dlq_count(s) == 2                         # the sink's one, and the new one (once)
    want = expected(produced.metrics, produced.vitals, produced.events)
    got = stored(ch)
    assert got["app_metrics"] == want["app_metrics"] and got["app_metrics_1m"] == want["app_metrics_1m"]
    assert got["agent_events"] == (0, 0)                 # not rebuilt: still empty
    with pytest.raises(RebuildError, match="cannot rebuild app_metrics_1m: choose among agent_vitals, "):
        rebuild(s, s.kafka_bootstrap_servers, tables=["app_metrics_1m"])


def test_rebuild_refuses_while_the_sink_runs(env):
    s, _, ch = env
    member = Consumer({"bootstrap.servers": s.kafka_bootstrap_servers, "group.id": s.sink_group})
    member.subscribe([s.topic(APP_METRICS.name)])
    try:
        assert eventually(lambda: (member.poll(0.1), member.assignment())[1], 30)  # joined
        with pytest.raises(RebuildError, match=rf"the sink \({s.sink_group}\) is running \(1 member\(s\): .*\); "
                                               "stop it first"):
            rebuild(s, s.kafka_bootstrap_servers)
    finally:
        member.close()
    assert replaced_databases(ch, s) == []


def test_rebuild_refuses_when_retention_dropped_rows_the_tables_hold(env):
    s, produced, ch = env
    metrics_t, events_t = s.topic(APP_METRICS.name), s.topic(AGENT_EVENTS.name)
    # the partition of app.metrics with the most batches, and one of agent.events, each cut after its second record
    (mp, m_recs) = max(((p, r) for (t, p), r in produced.at.items() if t == metrics_t), key=lambda pr: len(pr[1]))
    (ep, e_recs) = next((p, r) for (t, p), r in sorted(produced.at.items()) if t == events_t and len(r) >= 2)
    admin = AdminClient({"bootstrap.servers": s.kafka_bootstrap_servers})
    for topic, p in ((metrics_t, mp), (events_t, ep)):
        [done] = admin.delete_records([TopicPartition(topic, p, 2)]).values()
        done.result(10)
    hi = ends(s)
    with pytest.raises(RebuildError) as refused:
        rebuild(s, s.kafka_bootstrap_servers)
    msg = str(refused.value)
    assert msg.startswith("retention dropped records whose rows the current tables hold; the rebuilt tables would "
                          "lose them: ")
    assert (f"{events_t}[{ep}] keeps offsets 2..{hi[(events_t, ep)] - 1}, but agent_events holds rows of offsets "
            "0..1") in msg
    assert (f"{metrics_t}[{mp}] keeps offsets 2..{hi[(metrics_t, mp)] - 1}, but app_metrics holds rows of offsets "
            "0..1") in msg
    assert msg.endswith("Pass --accept-loss to rebuild from what the topics keep (those rows will be missing from "
                        "the new tables; the replaced database keeps them)")
    assert replaced_databases(ch, s) == [] and stored(ch)["app_metrics"][0] == 600  # nothing changed

    result = rebuild(s, s.kafka_bootstrap_servers, accept_loss=True)
    gone_m = [r for o, r in sorted(m_recs, key=lambda x: x[0]) if o < 2]
    gone_e = [r for o, r in sorted(e_recs, key=lambda x: x[0]) if o < 2]
    assert len(result.lost) == 2 and "lost as accepted: " in result.summary()
    want = expected([b for b in produced.metrics if b not in gone_m], produced.vitals,
                    [e for e in produced.events if e not in gone_e])
    assert stored(ch) == want and want["app_metrics"][0] == 600 - 50


def test_cli_rebuilds_a_lost_engine(env, tmp_path):
    """A fresh ClickHouse folder (the engine lost): the subprocess lands everything from the topics;
    empty tables lose nothing, so no --accept-loss is needed."""
    s, _, _ = env
    res = subprocess.run([sys.executable, "-m", "sophra", "rebuild", "--help"], capture_output=True, text=True)
    assert res.returncode == 0 and "--tables TABLE [TABLE ...]" in res.stdout and "--accept-loss" in res.stdout
    envs = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": s.kafka_bootstrap_servers, "SOPHRA_TOPIC_PREFIX": s.topic_prefix,
            "SOPHRA_SINK_GROUP": s.sink_group, "CLICKHOUSE_URL": f"chdb://{tmp_path / 'ch'}",
            "CLICKHOUSE_DATABASE": "lost"}
    res = subprocess.run([sys.executable, "-m", "sophra", "rebuild"], capture_output=True, text=True, env=envs,
                         timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("rebuild done: 61 records (1 dead letters), rows: agent_events 6, agent_vitals 30, "
                                 "app_metrics 600; "), res.stdout
    assert "DROP DATABASE lost_replaced_" in res.stdout
    assert "100.0% 61/61 records" in res.stderr


def test_embedded_rebuild_refuses_while_sophra_up_holds_the_data_folder(make_settings, tmp_path):
    from deploy.local_kafka import is_fetched

    if not is_fetched():
        pytest.skip("the local broker's jars are not fetched")
    s = make_settings(kafka_bootstrap_servers=None, data_dir=tmp_path)
    (tmp_path / "kafka").mkdir()
    with open(tmp_path / "kafka" / ".local_kafka.lock", "w") as lock:  # what a running `sophra up` holds
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(RebuildError, match="stop `sophra up` first"):
            run_rebuild(s)


def test_a_failed_swap_is_undone_and_changes_nothing(env, monkeypatch):
    """A table that can't be exchanged (made up here) after some that were: those are exchanged back,
    the rebuilt database is dropped, the live tables are as they were."""
    import pipeline.rebuild as rb

    s, produced, ch = env
    ch.command("TRUNCATE TABLE app_metrics")
    damaged = stored(ch)
    family = rb._family
    monkeypatch.setattr(rb, "_family", lambda *a: family(*a) + ["no_such_table"])
    with pytest.raises(RebuildError, match=r"swapping no_such_table failed \(.*\); the tables swapped before it were "
                                           "swapped back, nothing was changed"):
        rebuild(s, s.kafka_bootstrap_servers)
    assert stored(ch) == damaged and damaged["app_metrics"] == (0, 0)
    assert replaced_databases(ch, s) == []
    assert commits(s) == ends(s)                      # as the sink left them (it had landed everything)
