"""The sink on the real broker and engine: rows land exactly once, offsets are committed
only after the insert, undecodable records go to the dead-letter topic with a reason."""
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from pipeline.sink.consumer import Sink
from pipeline.sink.steps import Batch, insert_batch, to_row
from pipeline.store.clickhouse import connect
from pipeline.store.migrate import migrate
from pipeline.topics import AGENT_VITALS, ensure_topics, entity_key
from schemas import codec

from .conftest import eventually

pytestmark = pytest.mark.integration


def vital(i: int, tenant="t_a") -> dict:
    return {"tenant": tenant, "id": 1000 + i, "agent_id": f"agent-{i % 3}", "agent_name": None,
            "token_consumption": 100 * i, "token_limit": 100_000, "hallucination_rate": 0.01,
            "loop_frequency": i, "directive_conflicts": 0, "overall_health": "green",
            "metadata": "{}", "recorded_at": 1_795_000_000_000 + i}


@pytest.fixture
def env(make_settings):
    s = make_settings()
    bootstrap = s.kafka_bootstrap_servers
    ensure_topics(bootstrap, s.topic_prefix)
    migrate(s.clickhouse_dsn, s.clickhouse_database)
    return s, bootstrap, connect(s.clickhouse_dsn, s.clickhouse_database)


def produce(bootstrap, topic, items):
    p = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all",
                  "partitioner": "murmur2_random"})
    for key, value in items:
        p.produce(topic, key=key, value=value)
    assert p.flush(10) == 0


def committed(bootstrap, group, topic, partitions) -> int:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    offsets = c.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=10)
    c.close()
    return sum(max(tp.offset, 0) for tp in offsets)


def test_sink_lands_every_record_once_and_dead_letters_garbage(env):
    s, bootstrap, ch = env
    topic = s.topic(AGENT_VITALS.name)
    good = [vital(i) for i in range(50)]
    produce(bootstrap, topic, [(entity_key(v["tenant"], v["agent_id"]), codec.encode("agent_vital", v)) for v in good]
            + [(b"t_a/x", b"not avro"), (b"t_a/y", b"\xc3\x01" + b"\x00" * 8 + b"zz")])

    sink = Sink(s, bootstrap).start()
    try:
        assert eventually(lambda: committed(bootstrap, s.sink_group, topic, AGENT_VITALS.partitions) == 52, 20)
    finally:
        sink.stop()
    rows = ch.query("SELECT id, agent_id, token_consumption, loop_frequency, toUnixTimestamp64Milli(recorded_at) "
                    "FROM agent_vitals ORDER BY id").result_rows
    assert rows == [(v["id"], v["agent_id"], v["token_consumption"], v["loop_frequency"], v["recorded_at"])
                    for v in good]
    assert sink.inserted_rows == 50 and sink.dead_letters == 2

    dlq = Consumer({"bootstrap.servers": bootstrap, "group.id": "dlq-reader-" + s.topic_prefix,
                    "auto.offset.reset": "earliest"})
    dlq.subscribe([topic + ".dlq"])
    letters = []
    eventually(lambda: letters.extend(m for m in dlq.consume(10, timeout=0.5) if not m.error()) or len(letters) == 2, 20)
    dlq.close()
    reasons = sorted(dict(m.headers())["reason"].decode() for m in letters)
    assert reasons == [
        "undecodable: short data: 8 bytes, need at least 10 (2-byte marker + 8-byte fingerprint)",
        "undecodable: unknown schema fingerprint 0000000000000000: not a current or historical version of any kind",
    ]
    assert sorted(m.value() for m in letters) == [b"not avro", b"\xc3\x01" + b"\x00" * 8 + b"zz"]


def test_redelivery_after_crash_does_not_duplicate_rows(env):
    s, bootstrap, ch = env
    topic = s.topic(AGENT_VITALS.name)
    produce(bootstrap, topic, [(b"t_a/agent", codec.encode("agent_vital", vital(i))) for i in range(20)])
    sink = Sink(s, bootstrap).start()
    eventually(lambda: committed(bootstrap, s.sink_group, topic, AGENT_VITALS.partitions) == 20, 20)
    sink.stop()
    # A sink that crashed before committing re-reads everything: model it with a fresh group.
    again = Sink(s.model_copy(update={"sink_group": s.sink_group + "-replay"}), bootstrap).start()
    eventually(lambda: committed(bootstrap, s.sink_group + "-replay", topic, AGENT_VITALS.partitions) == 20, 20)
    again.stop()
    assert ch.query("SELECT count(), uniqExact(id) FROM agent_vitals FINAL").result_rows == [(20, 20)]


def test_retried_insert_of_the_same_batch_is_deduplicated_by_clickhouse(env):
    s, _, ch = env
    batch = Batch()
    for i in range(5):
        batch.track("topic", 0, i)
        batch.add(to_row(codec.encode("agent_vital", vital(i))))
    insert_batch(ch, batch)
    insert_batch(ch, batch)  # the answer to the first insert was "lost"
    assert ch.query("SELECT count() FROM agent_vitals").result_rows == [(5,)]  # no FINAL: really one copy


def test_to_row_rejects_records_without_tenant():
    assert to_row(codec.encode("agent_vital", vital(1, tenant=""))).reason == "record has no tenant"
    assert to_row(b"").reason == "empty message"
