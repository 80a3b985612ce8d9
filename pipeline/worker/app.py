"""The Faust worker: ARI per agent, with its state in a changelogged table; beside it,
per application the deployment watch (deployments.py), the anomaly watch and its
insights for applications and agents (anomalies.py), alert evaluation for applications
and agents (alerts.py), the /v1 quota sums (quota.py) and token budget counts (budgets.py).

One agent consumes the vitals and events topics (co-partitioned: same key, same
partition count, same murmur2 partitioner), runs the drift engine (pipeline/ari) and
produces interventions and status records. Per batch, the order of work is what makes
a crash safe: derive; produce the outputs and wait until Kafka has them; only then
write the new state to the table (its changelog). A crash before the state write
replays the batch and re-derives the same outputs (same ids, collapsed by ClickHouse);
records already applied are skipped by their Kafka offset (offsets.py), so none changes
the state twice and none is skipped for arriving out of id order. A derived record that
can't be encoded, or a source record whose step raises, is dead-lettered with its
reason (outlet.py) and the batch goes on.

Batching: `take_events` hands over up to BATCH records at a time; within a batch only
each agent's last status and each intervention's last version are produced, and each
agent's state is written once.
"""
import asyncio
import json
import logging
from dataclasses import dataclass, field

import faust

from schemas import codec
from sophra.settings import Settings

from ..alerts.rulebook import RuleBook
from ..ari.engine import new_state, step_event, step_vital
from ..budget_book import BudgetBook
from ..topics import (ALERT_RULES, AGENT_EVENTS, AGENT_VITALS, APP_INSIGHTS, APP_METRICS, ARI_INTERVENTIONS, ARI_STATUS,
                      BUDGETS, WORKER_STATE_TABLE, TopicSpec, ensure_topics, table_changelog)
from . import alerts, anomalies, budgets, deployments, quota
from .failstop import finish
from .offsets import applied, applied_before_offsets, mark
from .outlet import Outlet
from .resume import WorkerApp
from .state import write_states

log = logging.getLogger("sophra.worker")

BATCH = 500
BATCH_WITHIN_S = 0.05


def _datadir(settings: Settings):
    """Faust's own folder (it keeps little with in-memory tables): beside the rest of the
    data rather than in whatever folder the worker was started from."""
    folder = settings.data_dir / f"{settings.worker_id}-worker"
    folder.mkdir(parents=True, exist_ok=True)  # faust makes only the last level
    return folder


def create_app(settings: Settings, bootstrap: str, rules: RuleBook, book: BudgetBook) -> faust.App:
    """The worker's Faust app; `rules` is the started book of alert rules it evaluates,
    `book` the started book of token budgets it counts."""
    app = WorkerApp(  # resume.py: faust, less two ways it lost records on a restart
        settings.worker_id,
        broker=f"kafka://{bootstrap}",
        store="memory://",
        topic_partitions=AGENT_VITALS.partitions,
        producer_acks=-1,
        web_enabled=False,
        datadir=str(_datadir(settings)),
        table_cleanup_interval=60.0,
        # static membership: a replica restarted after a crash rejoins as itself, so the group
        # does not wait out the dead member's session (60 s without input) before resuming
        consumer_group_instance_id=settings.worker_instance_id,
    )
    raw = {"key_serializer": "raw", "value_serializer": "raw"}
    source = app.topic(settings.topic(AGENT_VITALS.name), settings.topic(AGENT_EVENTS.name),
                       partitions=AGENT_VITALS.partitions, **raw)
    outlets = {"ari_intervention": Outlet(app, settings, ARI_INTERVENTIONS, raw),
               "ari_status": Outlet(app, settings, ARI_STATUS, raw)}
    sources = {settings.topic(AGENT_VITALS.name): Outlet(app, settings, AGENT_VITALS, raw),
               settings.topic(AGENT_EVENTS.name): Outlet(app, settings, AGENT_EVENTS, raw)}
    # use_partitioner: a batch holds several agents, so the changelog partition must come
    # from the key (murmur2, like every producer here), not from the batch's last event.
    # key_type=bytes keeps keys raw (so they hash as the producers' do); values are JSON.
    agents = app.Table(WORKER_STATE_TABLE, partitions=AGENT_VITALS.partitions, key_type=bytes, use_partitioner=True)
    detectors = anomalies.Detectors(app, "agent")  # the anomaly watch runs in this step (anomalies.py)
    insights = Outlet(app, settings, APP_INSIGHTS, raw)

    @app.agent(source)
    async def ari(stream):
        async for batch in stream.take_events(BATCH, within=BATCH_WITHIN_S):
            await finish("ARI and agent anomalies", _step(batch))

    async def _step(batch) -> None:
        step = apply_batch(agents.get, ((e.key, e.value, (e.message.topic, e.message.partition, e.message.offset))
                                        for e in batch), detectors)
        pending = [await outlets[kind].send(key, kind, record) for key, kind, record in step.outputs.values()]
        pending += [await insights.send(key, "app_insight", record) for key, record in step.insights.values()]
        pending += [await sources[topic].dead_letter(key, value, reason, f"{topic}/{partition}/{offset}")
                    for key, value, (topic, partition, offset), reason in step.dead]
        if pending:
            await asyncio.gather(*pending)
        detectors.save(step.detectors)
        await write_states(agents, step.states)

    quota.register(app, settings)  # /v1 quota: usage sums per key and hour
    app.sophra_tables = {WORKER_STATE_TABLE: agents, anomalies.table_name("agent"): detectors.table,
                         **deployments.register(app, settings, raw), **alerts.register(app, settings, raw, rules, book),
                         **budgets.register(app, settings, raw, book)}
    return app


@dataclass
class Step:
    states: dict = field(default_factory=dict)    # key -> new state
    outputs: dict = field(default_factory=dict)   # (what, key[, id]) -> (key, kind, record), the last of each
    dead: list = field(default_factory=list)      # (key, value, source, reason) of records that raised
    detectors: dict = field(default_factory=dict)  # key -> anomaly detectors to save (Detectors.save)
    insights: dict = field(default_factory=dict)   # insight id -> (key, record), the last version of each


def apply_batch(lookup, records, detectors=None) -> Step:
    """Run the engine over a batch of (key, value, (topic, partition, offset)) records,
    starting from `lookup(key)`'s state, and, given the agents' anomaly detectors
    (anomalies.Detectors or .Delivered), the anomaly watch over the same records (its
    watch in the state's anomalies.WATCH). Also the plain-consumer benchmark's work, so both measure the same
    thing."""
    step = Step()
    watched = []  # (key, kind, record) applied here, for the anomaly watch
    for key, value, source in records:
        before = step.states.get(key) or lookup(key)
        if applied(before, *source):
            continue  # applied before a restart
        try:
            kind, record = codec.decode(value)
        except codec.DecodeError as exc:  # the sink dead-letters it; ARI ignores it
            log.warning("skipping undecodable record: %s", exc)
            continue
        if applied_before_offsets(before, source[0], source[1], kind, record):
            continue  # held by a state saved before offsets were kept (upgrade)
        watched.append((key, kind, record))
        # the engine steps a copy: a record that raises half-way leaves the state as it was
        state = _copy(before)
        try:
            if kind == "agent_vital":
                state, versions, status = step_vital(state, record)
                # an intervention id is unique per agent only (iv_<snapshot id>_p<protocol>)
                found = [(("iv", key, v["intervention_id"]), (key, "ari_intervention", v)) for v in versions]
                if status:
                    found.append((("status", key), (key, "ari_status", status)))
                step.outputs.update(found)
            elif kind == "agent_event":
                state = step_event(state, record)
        except Exception as exc:  # a state no rule expected: this record can't be applied, the others can
            log.exception("ARI step failed for %r", key)
            step.dead.append((key, value, source, f"ARI step failed: {type(exc).__name__}: {exc}"))
            state = _copy(before)
        mark(state, *source)
        step.states[key] = state
    if detectors is not None and watched:
        # every watched key has its state copy in step.states: the watch is stepped in it
        watches, step.detectors, step.insights = anomalies.step(
            "agent", lambda key: step.states[key].get(anomalies.WATCH), detectors.get, watched, detectors.confirmed,
            detectors.saving)
        for key, w in watches.items():
            step.states[key][anomalies.WATCH] = w
    return step


def _copy(state: dict | None) -> dict:
    """A deep copy of an agent's state for the engine to step, or a new one. The anomaly
    watch is not the engine's and is stepped once per batch, so it is shared, not copied."""
    if not state:
        return new_state()
    watch = state.get(anomalies.WATCH)
    copy = json.loads(json.dumps({k: v for k, v in state.items() if k != anomalies.WATCH}))
    if watch is not None:
        copy[anomalies.WATCH] = watch
    return copy


def changelogs(worker_id: str) -> list[TopicSpec]:
    """Every changelog of a table whose writes pick their partition by key (use_partitioner),
    as Faust names and configures them. The worker creates them before Faust starts: on a
    first start the producer may not yet know a topic Faust has only just created, and the
    first state write fails (it did, in a fault run, for app_state)."""
    return [table_changelog(worker_id, WORKER_STATE_TABLE, AGENT_VITALS.partitions),
            table_changelog(worker_id, deployments.TABLE, APP_METRICS.partitions), *alerts.changelogs(worker_id),
            *anomalies.changelogs(worker_id), *budgets.changelogs(worker_id)]


def run(settings: Settings, bootstrap: str, loglevel: str = "warn") -> None:
    """Run the worker in the foreground until SIGINT/SIGTERM."""
    ensure_topics(bootstrap, settings.topic_prefix)
    ensure_topics(bootstrap, specs=changelogs(settings.worker_id))
    # Every rule is known before the first record is evaluated; the book then follows the topic.
    rules = RuleBook(bootstrap, settings.topic(ALERT_RULES.name)).start()
    book = BudgetBook(bootstrap, settings.topic(BUDGETS.name)).start()
    app = create_app(settings, bootstrap, rules, book)
    worker = faust.Worker(app, loglevel=loglevel, quiet=True)
    # Faust's terminal spinner sets the root logger to DEBUG (Worker._setup_spinner_handler),
    # so every aiokafka and Faust debug call built a record: 8 % of the worker's time under
    # bench/stage_worker.py. It is only drawn on a terminal (faust/worker.py), nothing else reads it.
    worker.spinner = None
    try:
        worker.execute_from_commandline()
    finally:
        rules.stop()
        book.stop()
