"""The Faust worker on the real broker: per-agent state in a changelogged table that a
restarted worker recovers."""
import json
import os
import subprocess
import sys

import pytest
from confluent_kafka import Consumer, Producer

from pipeline.producer import producer_config
from pipeline.topics import AGENT_VITALS, ensure_topics, entity_key, worker_state_changelog
from schemas import codec
from sophra.processes import terminate

from .conftest import eventually

pytestmark = pytest.mark.integration


def vital(i: int, agent: str) -> bytes:
    return codec.encode("agent_vital", {
        "tenant": "t_w", "id": 1000 + i, "agent_id": agent, "agent_name": None, "token_consumption": 1, "token_limit": 10,
        "hallucination_rate": 0.0, "loop_frequency": 0, "directive_conflicts": 0, "overall_health": "green",
        "metadata": "{}", "recorded_at": 1_795_000_000_000 + i})


def start_worker(settings):
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
           "SOPHRA_TOPIC_PREFIX": settings.topic_prefix, "SOPHRA_WORKER_ID": settings.worker_id}
    return subprocess.Popen([sys.executable, "-m", "sophra", "worker"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def test_snapshot_counts_survive_a_worker_restart_exactly_once(make_settings):
    s = make_settings()
    bootstrap = s.kafka_bootstrap_servers
    ensure_topics(bootstrap, s.topic_prefix)
    producer = Producer(producer_config(bootstrap))  # the api's settings, lz4 compression included

    source_partition = {}

    def send(agent, ids):
        for i in ids:
            producer.produce(s.topic(AGENT_VITALS.name), key=entity_key("t_w", agent), value=vital(i, agent),
                             on_delivery=lambda err, m: source_partition.__setitem__(m.key(), m.partition()))
        assert producer.flush(10) == 0

    changelog = Consumer({"bootstrap.servers": bootstrap, "group.id": "reader-" + s.worker_id,
                          "auto.offset.reset": "earliest"})
    changelog.subscribe([worker_state_changelog(s.worker_id)])
    latest, changelog_partition = {}, {}

    def state_is(expected):
        for m in changelog.consume(100, timeout=0.3):
            if not m.error():
                latest[m.key()] = json.loads(m.value())["snapshots"]
                changelog_partition[m.key()] = m.partition()
        return latest == expected

    worker = start_worker(s)
    try:
        send("A", range(3))
        send("B", range(3, 5))
        assert eventually(lambda: state_is({b"t_w/A": 3, b"t_w/B": 2}), 60), latest
        assert terminate(worker) == 0
        worker = start_worker(s)
        send("A", [5])  # continue from 3, not start over (redeliveries: tests/test_worker_offsets.py)
        assert eventually(lambda: state_is({b"t_w/A": 4, b"t_w/B": 2}), 60), latest
        # A key's state lives in the changelog partition of its records, or recovery after a
        # rebalance would load another worker's agents.
        assert changelog_partition == source_partition
    finally:
        terminate(worker)
        changelog.close()
