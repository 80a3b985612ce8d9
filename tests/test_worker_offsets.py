"""The worker applies every record once, by Kafka offset rather than record id, and a
derived record it cannot encode is dead-lettered while the rest of its batch goes on."""
import asyncio
import json
import os
import subprocess
import sys

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka import ConsumerGroupTopicPartitions
from confluent_kafka.admin import AdminClient

from pipeline.ari.engine import new_state, step_vital
from pipeline.producer import producer_config
from pipeline.topics import (AGENT_VITALS, ARI_INTERVENTIONS, ARI_STATUS, TopicSpec, dlq, ensure_topics, entity_key,
                             worker_state_changelog)
from pipeline.worker.app import apply_batch
from pipeline.worker.failstop import finish
from pipeline.worker.offsets import applied_before_offsets, mark
from schemas import codec
from sophra.processes import terminate

from . import ari_histories as H
from .conftest import eventually
from .test_replay import read_topic

VITALS = "agent.vitals"


def test_records_out_of_id_order_are_all_applied_and_a_redelivered_offset_is_skipped():
    later, earlier = H.steady(50, "a"), H.steady(10, "a")  # id 10050 produced before id 10010
    records = [(b"t_ari/a", codec.encode("agent_vital", later), (VITALS, 3, 7)),
               (b"t_ari/a", codec.encode("agent_vital", earlier), (VITALS, 3, 8))]
    step = apply_batch({}.get, records)
    assert step.states[b"t_ari/a"]["snapshots"] == 2
    assert step.states[b"t_ari/a"]["offsets"] == {"agent.vitals/3": 8}
    assert step.outputs[("status", b"t_ari/a")][2]["version"] == earlier["id"]  # the last applied
    # After a restart the batch is redelivered (and one new record follows it)
    again = apply_batch(step.states.get, records + [(b"t_ari/a", codec.encode("agent_vital", H.steady(51, "a")),
                                                      (VITALS, 3, 9))])
    assert again.states[b"t_ari/a"]["snapshots"] == 3 and again.states[b"t_ari/a"]["offsets"] == {"agent.vitals/3": 9}


def test_a_state_saved_before_offsets_skips_what_it_held_by_id_once():
    # what the worker of issue 9 wrote: ids of the last vital and event applied, no offsets
    old = step_vital(new_state(), H.steady(10, "a"))[0]
    old.update(last_vital_id=H.steady(10, "a")["id"], last_event_id=500)
    redelivered = [(b"t_ari/a", codec.encode("agent_vital", H.steady(i, "a")), (VITALS, 3, 40 + i)) for i in (9, 10)]
    new = [(b"t_ari/a", codec.encode("agent_vital", H.steady(11, "a")), (VITALS, 3, 51))]
    step = apply_batch({b"t_ari/a": old}.get, redelivered + new)
    assert step.states[b"t_ari/a"]["snapshots"] == 2  # 10 (held) + 11; 9 and 10 were not applied again
    assert step.states[b"t_ari/a"]["offsets"] == {"agent.vitals/3": 51}
    # once the partition has a mark, offsets decide: an id below last_vital_id at a new offset is applied
    late = [(b"t_ari/a", codec.encode("agent_vital", H.steady(5, "a")), (VITALS, 3, 52))]
    assert apply_batch(step.states.get, late).states[b"t_ari/a"]["snapshots"] == 3


def test_a_record_whose_step_raises_is_dead_lettered_and_its_state_kept():
    crafted = {**new_state(), "snapshots": 9, "window": [[2000.0, 0.0, 5.0, 0.0]] * 4,
               "episodes": {"2": {"id": "iv_x_p2", "opened_at": 1, "tokens_saved": 0, "severity": "catastrophic",
                                  "calm": 0, "description": "d", "details": {}}}}
    value = codec.encode("agent_vital", H.steady(10, "x", conflicts=4))
    step = apply_batch({b"t_ari/x": crafted}.get, [(b"t_ari/x", value, (VITALS, 0, 5))])
    [(key, dead_value, source, reason)] = step.dead
    assert (key, dead_value, source, reason) == (b"t_ari/x", value, (VITALS, 0, 5),
                                                 "ARI step failed: KeyError: 'catastrophic'")
    assert step.states[b"t_ari/x"] == {**crafted, "offsets": {"agent.vitals/0": 5}} and step.outputs == {}


def _state(agent: str, steps: int) -> dict:
    state = new_state()
    for i in range(steps):
        state = step_vital(state, H.steady(i, agent))[0]
    return state


def _start_worker(s):
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": s.kafka_bootstrap_servers, "SOPHRA_TOPIC_PREFIX": s.topic_prefix,
           "SOPHRA_WORKER_ID": s.worker_id}
    return subprocess.Popen([sys.executable, "-m", "sophra", "worker"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@pytest.mark.integration
def test_worker_clamps_dead_letters_and_applies_each_offset_once(make_settings):
    s = make_settings()
    bootstrap = s.kafka_bootstrap_servers
    ensure_topics(bootstrap, s.topic_prefix)
    changelog = worker_state_changelog(s.worker_id)
    ensure_topics(bootstrap, specs=[TopicSpec(changelog, AGENT_VITALS.partitions, retention_ms=-1, compacted=True)])
    vitals = s.topic(AGENT_VITALS.name)
    p = Producer(producer_config(bootstrap))
    where = {}

    def send(topic, key, value, partition=None):
        p.produce(topic, key=key, value=value, **({} if partition is None else {"partition": partition}),
                  on_delivery=lambda err, m: where.__setitem__(m.key(), m.partition()))
        assert p.flush(10) == 0

    # Crafted states, as a worker (or replay) left them: one whose savings overflow a
    # long, one whose episode can't be encoded (opened_at is no time).
    clamped, broken = _state("c", 10), _state("b", 10)
    episode = {"severity": "high", "description": "Data trauma indicators: overflow", "details": {"flags": []},
               "calm": 0}
    clamped["episodes"]["3"] = {**episode, "id": "iv_c_p3", "opened_at": H.T0, "tokens_saved": 10**30}
    broken["episodes"]["3"] = {**episode, "id": "iv_b_p3", "opened_at": "not a time", "tokens_saved": 0}
    for agent in "cb":  # the partition of the agent's records, found by producing its first one
        send(vitals, entity_key("t_ari", agent), codec.encode("agent_vital", H.steady(0, agent)))
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "marks"})
    for agent, state in (("c", clamped), ("b", broken)):
        key = entity_key("t_ari", agent)
        _, end = consumer.get_watermark_offsets(TopicPartition(vitals, where[key]), timeout=10)
        state["offsets"] = {f"{vitals}/{where[key]}": end - 1}
        send(changelog, key, json.dumps(state).encode(), partition=where[key])
    consumer.close()

    worker = _start_worker(s)
    try:
        overflow = {"tokens": 500_000, "limit": 1000}  # over its limit: the data-trauma episode goes on
        send(vitals, b"t_ari/b", codec.encode("agent_vital", H.vital(10, "b", **overflow)))
        send(vitals, b"t_ari/c", codec.encode("agent_vital", H.vital(10, "c", **overflow)))
        send(vitals, b"t_ari/o", codec.encode("agent_vital", H.steady(50, "o")))  # ids out of order
        send(vitals, b"t_ari/o", codec.encode("agent_vital", H.steady(10, "o")))

        def statuses():
            got = {}
            for _, key, value in read_topic(bootstrap, s.topic(ARI_STATUS.name)):
                got[key] = codec.decode(value)[1]["snapshots"]
            return got
        assert eventually(lambda: statuses() == {b"t_ari/b": 11, b"t_ari/c": 11, b"t_ari/o": 2}, 150), statuses()
        ivs = [codec.decode(v)[1] for _, _, v in read_topic(bootstrap, s.topic(ARI_INTERVENTIONS.name))]
        assert [(i["intervention_id"], i["tokens_saved"]) for i in ivs] == [("iv_c_p3", 2**63 - 1)]
        [(_, key, letter)] = read_topic(bootstrap, s.topic(dlq(ARI_INTERVENTIONS).name))
        assert key == b"t_ari/b" and json.loads(letter)["opened_at"] == "not a time"
        assert terminate(worker) == 0

        # Every record delivered again (the group's offsets back at 0): none applied twice.
        admin = AdminClient({"bootstrap.servers": bootstrap})
        back = [TopicPartition(vitals, part, 0) for part in range(AGENT_VITALS.partitions)]
        admin.alter_consumer_group_offsets([ConsumerGroupTopicPartitions(s.worker_id, back)])[s.worker_id].result(10)
        worker = _start_worker(s)
        send(vitals, b"t_ari/o", codec.encode("agent_vital", H.steady(51, "o")))
        assert eventually(lambda: statuses() == {b"t_ari/b": 11, b"t_ari/c": 11, b"t_ari/o": 3}, 150), statuses()
        assert len(read_topic(bootstrap, s.topic(ARI_INTERVENTIONS.name))) == 1
    finally:
        terminate(worker)


def _run_batch_in_an_agent(setup: str, batch: str) -> subprocess.CompletedProcess:
    """A fresh interpreter runs an agent whose batch is `batch` (lines, after `setup`)
    inside the try whose finally acks it, as faust's take_events does: 'acked' in its
    output means the ack was reached."""
    body = "".join(f"        {line}\n" for line in batch.splitlines())
    code = (f"import asyncio\n{setup}\nasync def agent():\n    try:\n{body}    finally:\n"
            "        print('acked')\nasyncio.run(agent())\n")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)


def test_a_batch_that_fails_unexpectedly_stops_the_worker_before_faust_acks_it():
    run = _run_batch_in_an_agent("from pipeline.worker.failstop import fail_stop",
                                 "with fail_stop('ARI'):\n    raise RuntimeError('no rule expected this')")
    assert (run.returncode, run.stdout) == (70, "")
    assert "ARI failed on a batch; exiting before it is acknowledged" in run.stderr
    assert "RuntimeError: no rule expected this" in run.stderr


def test_an_agent_cancelled_mid_batch_finishes_the_batch_before_the_cancellation_reaches_take_events():
    # A cancelled agent leaves take_events through its finally, which acks the batch:
    # the batch's writes must all be done by then, and the cancellation still stop the agent.
    async def scenario():
        written, acked = [], []

        async def work():
            for n in range(3):
                await asyncio.sleep(0.02)
                written.append(n)

        async def agent():
            try:
                await finish("ARI", work())
            finally:
                acked.append(list(written))
        task = asyncio.ensure_future(agent())
        await asyncio.sleep(0.01)
        task.cancel()
        await asyncio.sleep(0.005)
        task.cancel()  # faust's AgentManager cancels twice on stop
        with pytest.raises(asyncio.CancelledError):
            await task
        return acked
    assert asyncio.run(scenario()) == [[0, 1, 2]]


def test_a_batch_whose_work_is_cancelled_itself_stops_the_worker_before_faust_acks_it():
    run = _run_batch_in_an_agent("from pipeline.worker.failstop import finish\n"
                                 "async def work():\n    asyncio.current_task().cancel()\n    await asyncio.sleep(1)",
                                 "await finish('alerts', work())")
    assert (run.returncode, run.stdout) == (70, "")
    assert "alerts failed on a batch; exiting before it is acknowledged" in run.stderr
    assert "the batch's work was cancelled before it finished" in run.stderr


def test_an_application_state_saved_before_offsets_holds_its_metric_batches_by_id():
    # what the per-application watch of issue 5 wrote: the id of the last metric batch applied
    old = {"minutes": {}, "newest": None, "last_batch_id": 700, "open": {}, "done": []}
    held = {"id": 700, "tenant": "t", "application_id": "app_1", "received_at": 0, "points": []}
    assert applied_before_offsets(old, "app.metrics", 2, "app_metric_batch", held)
    assert not applied_before_offsets(old, "app.metrics", 2, "app_metric_batch", {**held, "id": 701})
    assert not applied_before_offsets(old, "app.deployments", 2, "app_deployment", {"id": "dep_1"})
    mark(old, "app.metrics", 2, 90)  # once the partition has a mark, offsets decide
    assert not applied_before_offsets(old, "app.metrics", 2, "app_metric_batch", held)
