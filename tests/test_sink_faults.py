"""The sink under real faults: ClickHouse refusing inserts, the dead-letter topic gone.
It retries inside its loop and commits nothing it has not landed; past its give-up time
it stops, and the api running it exits non-zero."""
import asyncio
import threading

import httpx
import pytest
from confluent_kafka.admin import AdminClient

from pipeline.sink.consumer import Sink
from pipeline.topics import AGENT_VITALS, dlq, ensure_topics, entity_key
from schemas import codec

from .conftest import eventually, free_port
from .test_sink import committed, env, produce, vital  # noqa: F401 - env is a fixture

pytestmark = pytest.mark.integration


def records(n):
    return [(entity_key("t_a", v["agent_id"]), codec.encode("agent_vital", v)) for v in map(vital, range(n))]


def test_inserts_refused_for_a_while_are_retried_and_land_once(env):
    s, bootstrap, ch = env
    topic = s.topic(AGENT_VITALS.name)
    ch.command("DETACH TABLE agent_vitals")  # ClickHouse refuses every insert into it
    sink = Sink(s, bootstrap).start()
    try:
        produce(bootstrap, topic, records(5))
        assert eventually(lambda: sink.uncommitted_rows == 5, 20)  # taken, and its insert failing
        assert committed(bootstrap, s.sink_group, topic, AGENT_VITALS.partitions) == 0
        ch.command("ATTACH TABLE agent_vitals")
        assert eventually(lambda: committed(bootstrap, s.sink_group, topic, AGENT_VITALS.partitions) == 5, 30)
        assert sink.alive and sink.failed is None
    finally:
        sink.stop()
    assert ch.query("SELECT count(), uniqExact(id) FROM agent_vitals").result_rows == [(5, 5)]


def test_a_dead_letter_kafka_refused_is_produced_again_before_the_commit(env):
    s, bootstrap, ch = env
    topic, letters = s.topic(AGENT_VITALS.name), s.topic(dlq(AGENT_VITALS).name)
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.delete_topics([letters])[letters].result(10)
    assert eventually(lambda: letters not in admin.list_topics(timeout=10).topics, 10)
    sink = Sink(s, bootstrap)
    sink.DLQ_DELIVERY_TIMEOUT_MS = 1000
    sink.start()
    try:
        produce(bootstrap, topic, [(b"t_a/x", b"not avro")] + records(2))
        assert eventually(lambda: sink.letter_failures >= 1, 30)  # the dead-letter topic is gone
        assert committed(bootstrap, s.sink_group, topic, AGENT_VITALS.partitions) == 0
        ensure_topics(bootstrap, s.topic_prefix)  # back
        assert eventually(lambda: committed(bootstrap, s.sink_group, topic, AGENT_VITALS.partitions) == 3, 60)
    finally:
        sink.stop()
    assert sink.dead_letters == 1 and ch.query("SELECT count() FROM agent_vitals").result_rows == [(2,)]


def test_an_api_whose_sink_gives_up_exits_non_zero_and_loses_nothing(env):
    from sophra.cli import _serve

    s, bootstrap, ch = env
    s = s.model_copy(update={"sink_give_up_s": 1.0, "port": free_port()})
    result = {}
    serving = threading.Thread(target=lambda: result.update(code=asyncio.run(_serve(s, bootstrap, run_sink=True))))
    serving.start()
    base = f"http://127.0.0.1:{s.port}"
    assert eventually(lambda: _answers(base), 60)
    key = httpx.post(f"{base}/api/keys", json={"email": "gives-up@test.sophra"}).json()["key"]
    ch.command("DETACH TABLE agent_vitals")
    posted = httpx.post(f"{base}/api/vitals", headers={"Authorization": f"Bearer {key}"}, json={"agentId": "a"})
    assert posted.status_code == 200  # in Kafka: acknowledged
    serving.join(60)
    assert result == {"code": 1}
    ch.command("ATTACH TABLE agent_vitals")
    again = Sink(s, bootstrap).start()  # the restarted process's sink lands it
    try:
        vital_id = posted.json()["vital"]["id"]
        assert eventually(lambda: ch.query(f"SELECT count() FROM agent_vitals WHERE id = {vital_id}").result_rows
                          == [(1,)], 30)
    finally:
        again.stop()


def _answers(base):
    try:
        return httpx.get(f"{base}/healthz").status_code == 200
    except httpx.HTTPError:
        return False
