"""The Faust worker: ARI per agent, with its state in a changelogged table; beside it,
per application the deployment watch and insights (deployments.py), alert evaluation for
applications and agents (alerts.py) and the /v1 quota sums (quota.py).

One agent consumes the vitals and events topics (co-partitioned: same key, same
partition count, same murmur2 partitioner), runs the drift engine (pipeline/ari) and
produces interventions and status records. Per batch, the order of work is what makes
a crash safe: derive; produce the outputs and wait until Kafka has them; only then
write the new state to the table (its changelog). A crash before the state write
replays the batch and re-derives the same outputs (same ids, collapsed by ClickHouse);
records already applied are skipped by id, so none changes the state twice.

Batching: `take_events` hands over up to BATCH records at a time; within a batch only
each agent's last status and each intervention's last version are produced, and each
agent's state is written once.
"""
import asyncio
import logging

import faust

from schemas import codec
from sophra.settings import Settings

from ..alerts.rulebook import RuleBook
from ..ari.engine import new_state, step_event, step_vital
from ..topics import ALERT_RULES, AGENT_EVENTS, AGENT_VITALS, ARI_INTERVENTIONS, ARI_STATUS, WORKER_STATE_TABLE, ensure_topics
from . import alerts, deployments, quota

log = logging.getLogger("sophra.worker")

BATCH = 500
BATCH_WITHIN_S = 0.05


def create_app(settings: Settings, bootstrap: str, rules: RuleBook) -> faust.App:
    """The worker's Faust app; `rules` is the started book of alert rules it evaluates."""
    app = faust.App(
        settings.worker_id,
        broker=f"kafka://{bootstrap}",
        store="memory://",
        topic_partitions=AGENT_VITALS.partitions,
        producer_acks=-1,
        web_enabled=False,
        table_cleanup_interval=60.0,
    )
    raw = {"key_serializer": "raw", "value_serializer": "raw"}
    source = app.topic(settings.topic(AGENT_VITALS.name), settings.topic(AGENT_EVENTS.name),
                       partitions=AGENT_VITALS.partitions, **raw)
    interventions = app.topic(settings.topic(ARI_INTERVENTIONS.name), **raw)
    statuses = app.topic(settings.topic(ARI_STATUS.name), **raw)
    # use_partitioner: a batch holds several agents, so the changelog partition must come
    # from the key (murmur2, like every producer here), not from the batch's last event.
    # key_type=bytes keeps keys raw (so they hash as the producers' do); values are JSON.
    agents = app.Table(WORKER_STATE_TABLE, partitions=AGENT_VITALS.partitions, key_type=bytes, use_partitioner=True)

    @app.agent(source)
    async def ari(stream):
        async for batch in stream.take_events(BATCH, within=BATCH_WITHIN_S):
            states, outputs = apply_batch(agents.get, ((e.key, e.value) for e in batch))
            await _deliver(outputs, interventions, statuses)
            for key, state in states.items():
                agents[key] = state

    quota.register(app, settings)  # /v1 quota: usage sums per key and hour
    app.sophra_tables = {WORKER_STATE_TABLE: agents, "app_state": deployments.register(app, settings, raw),
                         **alerts.register(app, settings, raw, rules)}
    return app


def apply_batch(lookup, records) -> tuple[dict, dict]:
    """Run the engine over a batch of (key, value) records, starting from `lookup(key)`'s
    state; returns (new state per key, last output per id). Also the plain-consumer
    benchmark's work, so both measure the same thing."""
    states: dict[bytes, dict] = {}
    outputs: dict[tuple, tuple[bytes, str, dict]] = {}
    for key, value in records:
        try:
            kind, record = codec.decode(value)
        except codec.DecodeError as exc:  # the sink dead-letters it; ARI ignores it
            log.warning("skipping undecodable record: %s", exc)
            continue
        state = states.get(key) or lookup(key) or new_state()
        if kind == "agent_vital":
            state, versions, status = step_vital(state, record)
            for version in versions:
                outputs[("iv", version["intervention_id"])] = (key, "ari_intervention", version)
            if status:
                outputs[("status", key)] = (key, "ari_status", status)
        elif kind == "agent_event":
            state = step_event(state, record)
        states[key] = state
    return states, outputs


async def _deliver(outputs: dict, interventions, statuses) -> None:
    pending = []
    for key, kind, record in outputs.values():
        topic = interventions if kind == "ari_intervention" else statuses
        # force: send now rather than attach to the batch's last offset, and wait below
        pending.append(await topic.send(key=key, value=codec.encode(kind, record), force=True))
    if pending:
        await asyncio.gather(*pending)


def run(settings: Settings, bootstrap: str, loglevel: str = "warn") -> None:
    """Run the worker in the foreground until SIGINT/SIGTERM."""
    ensure_topics(bootstrap, settings.topic_prefix)
    ensure_topics(bootstrap, specs=alerts.changelogs(settings.worker_id))
    # Every rule is known before the first record is evaluated; the book then follows the topic.
    rules = RuleBook(bootstrap, settings.topic(ALERT_RULES.name)).start()
    app = create_app(settings, bootstrap, rules)
    worker = faust.Worker(app, loglevel=loglevel, quiet=True)
    try:
        worker.execute_from_commandline()
    finally:
        rules.stop()
