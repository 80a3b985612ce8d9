"""`sophra replay --from <ISO 8601> [--to <ISO 8601>]`: after a rule change, recompute
ARI's derived records and replace what was derived before, without duplicates.

What it does, in this order:

1. Preconditions. The worker's state is rewritten, so the worker must be stopped: its
   consumer group (`SOPHRA_WORKER_ID`) must have no members, else replay refuses. With
   the embedded default (no KAFKA_BOOTSTRAP_SERVERS) `sophra up` must be stopped too
   (chdb allows one process per data folder): replay starts the local broker from
   `<data dir>/kafka` itself and stops it at the end; a running `sophra up` holds that
   folder and replay says so.
2. Read `agent.vitals` and `agent.events` from the beginning of their retained history
   (baselines need the history before --from) up to the high watermarks taken at start,
   with a plain consumer (all partitions assigned, no group, no commits). The topics are
   co-partitioned (same key, same partition), so one partition of both is read at a
   time, which bounds memory to one partition's history; with more than one core and a
   long history, child processes (one per core) each read and derive one partition at a
   time, which gives the same result (an agent's records are all in one partition) in
   less time. Per agent key the records are
   merged in `recorded_at` order (ties: events before vitals, then by id), so the result
   is deterministic whatever order they were produced in, and the engine
   (pipeline/ari/engine.py) runs over them from a fresh state. Undecodable records are
   skipped, as the worker skips them. Before anything is read or deleted, replay
   refuses when retention emptied a partition (nothing retained, records once there)
   that holds an agent with interventions in the window; and after reading, when
   retention dropped the start of a partition whose first retained record is later
   than --from. Either way it would delete interventions it cannot recompute.
3. Replace, in ClickHouse and on the derived topics. Derived records the ClickHouse
   sink has not landed yet are landed first (by the sink itself: waited for if the sink
   group has members, else run in this process until caught up), so an old record can't
   land after the replacement and win with its higher version. Then
   `DELETE FROM ari_interventions WHERE opened_at >= <from> [AND opened_at < <to>]`,
   then produce, with the idempotent producer (pipeline/producer.py), the recomputed
   interventions opened in that window (only the last version of each id) and every
   agent's last status to `agent.interventions` / `agent.ari_status`, and flush. The
   same records are inserted straight into ClickHouse with the sink's own steps
   (`to_row` + `insert_batch` of pipeline/sink/steps.py), so the rows are there when
   replay returns; when the sink later consumes those records it inserts the same rows
   (same intervention id / agent, same version), which the ReplacingMergeTree tables
   collapse. Interventions opened before --from (or at/after --to) are left as they
   are, later updates included. Statuses always come from the recomputation (for equal
   versions the last insert wins).
4. Rewrite the worker's state: each agent's final recomputed state is produced to the
   worker table's changelog (`<worker id>-agent_state-changelog`: key = the record key
   bytes `b"<tenant>/<agent>"`, value = the state as JSON, partition = the partition of
   the agent's records), with the offsets replay read up to as the state's applied
   offsets (pipeline/worker/offsets.py). The restarted worker recovers the table from
   there, skips the records it already has (by offset) and derives from the new rules
   from then on.
5. A progress bar on stderr (records read / total from the watermarks, percentage,
   rate, ETA; at most ~10 redraws a second) and a summary line at the end.

Replay is idempotent: running it again with the same arguments deletes and rewrites
the same rows and appends the same states, so a failed run is fixed by running it
again. Caveats: records produced while it runs (after the watermarks) are not in the
recomputed state; the restarted worker applies them. The derived topics keep the old
records as well: re-landing those topics from their beginning after a replay would
bring old versions back (run replay again instead). The recomputation only sees the
retained history (30 days by default), so an agent's snapshot count restarts there.
"""
from __future__ import annotations

import atexit
import json
import logging
import multiprocessing
import os
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import TextIO

from confluent_kafka import Consumer, Producer, TopicPartition
from aiokafka.partitioner import murmur2
from confluent_kafka.admin import AdminClient

from schemas import codec
from sophra.settings import Settings

from .ari.engine import new_state, step_event, step_vital
from .history import TIMEOUT, HistoryError, Progress, group_members, on_broker, read_until, reader
from .producer import producer_config
from .sink.steps import Batch, DeadLetter, insert_batch, to_row
from .store.clickhouse import connect
from .store.migrate import migrate
from .worker.offsets import mark
from .topics import (AGENT_EVENTS, AGENT_VITALS, ARI_INTERVENTIONS, ARI_STATUS, TopicSpec, ensure_topics,
                     entity_key, worker_state_changelog)

log = logging.getLogger("sophra.replay")

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


class ReplayError(HistoryError):
    """A precondition failed or a step could not complete; the message says what to do."""


def parse_time(text: str) -> int:
    """ISO 8601 date or time (no zone = UTC) -> epoch milliseconds."""
    try:
        dt = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"not an ISO 8601 time: {text!r} (e.g. 2026-05-01T00:00:00Z)") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return (dt - _EPOCH) // timedelta(milliseconds=1)


def changelog_topic(settings: Settings) -> str:
    return worker_state_changelog(settings.worker_id)


# -- result ---------------------------------------------------------------------------

@dataclass
class ReplayResult:
    records: int = 0            # read from the source topics
    skipped: int = 0            # undecodable or keyless, ignored like the worker does
    agents: int = 0
    interventions: int = 0      # written (produced and inserted)
    statuses: int = 0
    deleted: int = 0            # intervention rows deleted from ClickHouse
    landed: int = 0             # derived records the sink had not landed yet, landed first
    seconds: float = 0.0
    phases: dict = field(default_factory=dict)  # phase -> seconds, in order, adding up to `seconds`
    states: dict = field(default_factory=dict, repr=False)  # key -> (partition, state)

    def summary(self) -> str:
        return (f"replay done: {self.records} records read ({self.skipped} skipped), {self.agents} agents, "
                f"{self.interventions} interventions written, {self.deleted} rows deleted, "
                f"{self.statuses} statuses, {self.seconds:.1f}s"
                + (" (" + ", ".join(f"{k} {v:.1f}s" for k, v in self.phases.items()) + ")" if self.phases else ""))


# -- preconditions --------------------------------------------------------------------

def _sink_lag(bootstrap: str, group: str, topics: list[str]) -> int:
    """Records of `topics` that `group` has not committed yet."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        tps = [TopicPartition(t, p) for t in topics for p in c.list_topics(t, timeout=TIMEOUT).topics[t].partitions]
        lag = 0
        for tp in c.committed(tps, timeout=TIMEOUT):
            lo, hi = c.get_watermark_offsets(tp, timeout=TIMEOUT)
            lag += hi - max(tp.offset, lo)
        return lag
    finally:
        c.close()


def land_unlanded_derived(settings: Settings, bootstrap: str, admin: AdminClient, timeout: float = 120) -> int:
    """Make the sink land the derived records it hasn't landed yet; returns how many there were."""
    topics = [settings.topic(ARI_INTERVENTIONS.name), settings.topic(ARI_STATUS.name)]
    lag = _sink_lag(bootstrap, settings.sink_group, topics)
    if not lag:
        return 0
    sink = None
    if not group_members(admin, settings.sink_group):
        from .sink.consumer import Sink

        log.info("landing %d derived records the sink has not landed yet", lag)
        sink = Sink(settings, bootstrap).start()
    else:
        log.info("waiting for the running sink to land %d derived records", lag)
    try:
        deadline = time.monotonic() + timeout
        while _sink_lag(bootstrap, settings.sink_group, topics):
            if time.monotonic() > deadline or (sink and not sink._thread.is_alive()):
                raise ReplayError(f"the sink ({settings.sink_group}) did not land the derived records within "
                                  f"{timeout:.0f}s; replay changed nothing")
            time.sleep(0.1)
    finally:
        if sink:
            sink.stop()
    return lag


# -- reading and deriving ---------------------------------------------------------------

def _order(kind: str, record: dict) -> tuple:
    return record["recorded_at"], 0 if kind == "agent_event" else 1, record["id"]


def _read_partition(consumer: Consumer, marks: dict, advance) -> tuple[dict, dict, int, int]:
    """Every record of one partition of both source topics up to the marks: key -> [(kind, record)],
    the `recorded_at` of each topic partition's first retained record, records read and skipped.
    `advance(n)` is told of every n records read."""
    per_key: dict[bytes, list] = {}
    first: dict[tuple[str, int], int] = {}
    records = skipped = 0
    decode, DecodeError = codec.decode, codec.DecodeError
    for batch in read_until(consumer, marks, advance):
        for msg in batch:
            records += 1
            try:
                kind, record = decode(msg.value())
            except DecodeError:
                kind = None
            key = msg.key()
            if kind not in ("agent_vital", "agent_event") or key is None:
                skipped += 1
                continue
            per_key.setdefault(key, []).append((kind, record))
            first.setdefault((msg.topic(), msg.partition()), record["recorded_at"])
    return per_key, first, records, skipped


def derive(records: list[tuple[str, dict]]) -> tuple[dict, dict, dict | None]:
    """Run the engine over one agent's records in replay order: (state, last version per id, last status)."""
    state, interventions, status = new_state(), {}, None
    ordered = sorted(records, key=lambda kr: _order(*kr))
    last = next((i for i in range(len(ordered) - 1, -1, -1) if ordered[i][0] == "agent_vital"), -1)
    for i, (kind, record) in enumerate(ordered):
        if kind == "agent_event":
            state = step_event(state, record)
            continue
        # only the last status is kept: the others are not built (the state is the same)
        state, versions, st = step_vital(state, record, status=i == last)
        for v in versions:
            interventions[v["intervention_id"]] = v
        status = st or status
    return state, interventions, status


@dataclass
class _Partition:
    """One partition's share of a replay, derived in this process or in a child."""
    records: int = 0
    skipped: int = 0
    states: dict = field(default_factory=dict)       # key -> state, its offsets marked
    interventions: list = field(default_factory=list)  # (key, last version) opened in the window
    statuses: list = field(default_factory=list)     # (key, last status)


def _replay_partition(consumer: Consumer, part: dict, p: int, since: int, until: int | None, advance) -> _Partition:
    """Read partition p of both source topics up to `part`'s marks and derive every agent in it."""
    per_key, first, records, skipped = _read_partition(consumer, part, advance)
    for (topic, _), kept_from in first.items():
        if part[(topic, p)][0] > 0 and kept_from > since:  # retention dropped records after --from
            raise ReplayError(f"{topic}[{p}] keeps history only from "
                              f"{datetime.fromtimestamp(kept_from / 1000, timezone.utc).isoformat()}; "
                              "choose a later --from (nothing was changed)")
    out = _Partition(records, skipped)
    for key, history in per_key.items():
        state, ivs, status = derive(history)
        for (topic, _), (_, hi) in part.items():  # what the state holds, for the worker's offset check
            if hi > 0:
                mark(state, topic, p, hi - 1)
        out.states[key] = state
        out.interventions += [(key, v) for v in ivs.values()
                              if v["opened_at"] >= since and (until is None or v["opened_at"] < until)]
        if status:
            out.statuses.append((key, status))
    return out


# Records per extra process: a child costs about a second to start (a fresh interpreter
# importing the pipeline), which pays off from about this many records on.
RECORDS_PER_PROCESS = 100_000
_child: dict = {}


def _start_child(bootstrap: str, counter) -> None:
    _child["consumer"], _child["counter"] = reader(bootstrap), counter
    atexit.register(_child["consumer"].close)


def _child_advance(n: int) -> None:
    with _child["counter"].get_lock():
        _child["counter"].value += n


def _child_partition(part: dict, p: int, since: int, until: int | None) -> _Partition:
    return _replay_partition(_child["consumer"], part, p, since, until, _child_advance)


def _derive_partitions(bootstrap: str, marks: dict, n: int, since: int, until: int | None, progress: Progress,
                       processes: int | None) -> list[_Partition]:
    """Every partition derived, in partition order: here, or in up to `processes` child
    processes (None: one per core, fewer for a short history) that each read and derive
    one partition at a time. The partitions are independent (an agent's records all live
    in its key's partition), so the result is the same either way."""
    parts = [{tp: m for tp, m in marks.items() if tp[1] == p} for p in range(n)]
    busy = sum(1 for part in parts if any(hi > lo for lo, hi in part.values()))
    if processes is None:
        processes = min(os.cpu_count() or 1, 1 + progress.total // RECORDS_PER_PROCESS)
    processes = min(processes, busy)
    if processes <= 1:
        consumer = reader(bootstrap)
        try:
            return [_replay_partition(consumer, parts[p], p, since, until, progress.advance) for p in range(n)]
        finally:
            consumer.close()
    ctx = multiprocessing.get_context("spawn")  # not fork: this process runs librdkafka's threads
    counter = ctx.Value("q", 0)
    pool = ProcessPoolExecutor(processes, mp_context=ctx, initializer=_start_child, initargs=(bootstrap, counter))
    try:
        futures = [pool.submit(_child_partition, parts[p], p, since, until) for p in range(n)]
        pending = set(futures)
        while pending:
            done, pending = wait(pending, timeout=progress.every, return_when=FIRST_EXCEPTION)
            progress.advance(counter.value - progress.done)
            for f in done:
                if f.exception() is not None:
                    raise f.exception()
        return [f.result() for f in futures]
    except BrokenProcessPool:
        raise ReplayError("a replay process died; nothing was changed: run replay again") from None
    finally:
        pool.shutdown(cancel_futures=True)


def _window(since: int, until: int | None) -> str:
    return f"opened_at >= {_ms(since)}" + (f" AND opened_at < {_ms(until)}" if until is not None else "")


def _refuse_emptied(settings: Settings, marks: dict, partitions: int, since: int, until: int | None) -> None:
    """Refuse when retention emptied a partition holding an agent whose interventions in the
    window replay would delete: with none of its records left, none could be recomputed."""
    emptied = {(t, p) for (t, p), (lo, hi) in marks.items() if lo > 0 and lo == hi}
    if not emptied:
        return
    ch = connect(settings.clickhouse_dsn, settings.clickhouse_database)
    agents = ch.query(f"SELECT DISTINCT tenant, agent_id FROM ari_interventions FINAL "
                      f"WHERE {_window(since, until)}").result_rows
    needed = {_partition(entity_key(tenant, agent), partitions) for tenant, agent in agents}
    for topic, p in sorted(emptied):
        if p in needed:
            raise ReplayError(f"retention emptied {topic}[{p}] (offsets 0..{marks[(topic, p)][0] - 1} are gone), "
                              "which holds agents with interventions since --from; replay would delete what it "
                              "cannot recompute (nothing was changed)")


def _partition(key: bytes, partitions: int) -> int:
    return (murmur2(key) & 0x7FFFFFFF) % partitions  # Kafka's default partitioner, as every producer here


# -- writing --------------------------------------------------------------------------

class _Writer:
    """Produces with the idempotent producer and records where each record landed."""

    def __init__(self, bootstrap: str):
        self.producer = Producer(producer_config(bootstrap))
        self.delivered: list[tuple[str, int, int, bytes]] = []  # topic, partition, offset, value
        self.errors: list[str] = []

    def send(self, topic: str, key: bytes, value: bytes, partition: int | None = None) -> None:
        kw = {} if partition is None else {"partition": partition}
        while True:
            try:
                self.producer.produce(topic, key=key, value=value, on_delivery=self._done, **kw)
                return
            except BufferError:  # local queue full: serve delivery reports, then retry
                self.producer.poll(0.1)

    def _done(self, err, msg) -> None:
        if err is not None:
            self.errors.append(str(err))
        else:
            self.delivered.append((msg.topic(), msg.partition(), msg.offset(), msg.value()))

    def flush(self, what: str) -> list[tuple[str, int, int, bytes]]:
        left = self.producer.flush(TIMEOUT)
        if left or self.errors:
            raise ReplayError(f"{what}: {left} records not delivered, errors: {self.errors[:3]}; run replay again")
        delivered, self.delivered = self.delivered, []
        return delivered


def _ms(ms: int) -> str:
    return f"fromUnixTimestamp64Milli(toInt64({int(ms)}), 'UTC')"


def _ensure_changelog(bootstrap: str, admin: AdminClient, topic: str, partitions: int) -> None:
    # The worker creates it on its first start (compacted); replay may run before that.
    ensure_topics(bootstrap, "", specs=[TopicSpec(topic, partitions, retention_ms=-1, compacted=True)])
    deadline = time.monotonic() + TIMEOUT
    while True:  # a topic just created takes a moment to show its partitions
        found = len(admin.list_topics(topic, timeout=TIMEOUT).topics[topic].partitions)
        if found or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    if found != partitions:
        raise ReplayError(f"{topic} has {found} partitions, the source topics {partitions}")


# -- the whole thing ------------------------------------------------------------------

def replay(settings: Settings, bootstrap: str, since: int, until: int | None = None,
           out: TextIO | None = None, processes: int | None = None) -> ReplayResult:
    """Recompute and replace ARI's derived records opened in [since, until) (epoch ms); see the module doc.

    `out`: where the progress bar goes (the CLI passes stderr; None = no bar).
    `processes`: how many processes read and derive the partitions (None: one per core,
    fewer for a short history; 1: this process only).
    """
    if until is not None and until <= since:
        raise ReplayError("--to must be later than --from")
    t0 = time.monotonic()
    result = ReplayResult()
    admin = AdminClient({"bootstrap.servers": bootstrap})
    members = group_members(admin, settings.worker_id)
    if members:
        raise ReplayError(f"the worker ({settings.worker_id}) is running ({len(members)} member(s): "
                          f"{', '.join(m.client_id for m in members)}); stop it first: replay rewrites its state")
    ensure_topics(bootstrap, settings.topic_prefix)
    migrate(settings.clickhouse_dsn, settings.clickhouse_database)

    vitals_t, events_t = settings.topic(AGENT_VITALS.name), settings.topic(AGENT_EVENTS.name)
    consumer = reader(bootstrap)
    try:
        meta = consumer.list_topics(timeout=TIMEOUT).topics
        n = len(meta[vitals_t].partitions)
        if len(meta[events_t].partitions) != n:
            raise ReplayError(f"{vitals_t} and {events_t} must have the same partitions (co-partitioned)")
        changelog = changelog_topic(settings)
        _ensure_changelog(bootstrap, admin, changelog, n)
        marks = {(t, p): consumer.get_watermark_offsets(TopicPartition(t, p), timeout=TIMEOUT)
                 for p in range(n) for t in (vitals_t, events_t)}
    finally:
        consumer.close()
    _refuse_emptied(settings, marks, n, since, until)
    t1 = time.monotonic()
    progress = Progress(sum(hi - lo for lo, hi in marks.values()), out)
    interventions, statuses = [], []
    for p, part in enumerate(_derive_partitions(bootstrap, marks, n, since, until, progress, processes)):
        result.records += part.records
        result.skipped += part.skipped
        result.states.update((key, (p, state)) for key, state in part.states.items())
        interventions += part.interventions
        statuses += part.statuses
    progress.close()
    result.agents = len(result.states)
    t2 = time.monotonic()

    # Replace: land what the sink had not landed yet, delete, produce, land the same rows.
    result.landed = land_unlanded_derived(settings, bootstrap, admin)
    ch = connect(settings.clickhouse_dsn, settings.clickhouse_database)
    where = _window(since, until)
    result.deleted = ch.query(f"SELECT count() FROM ari_interventions FINAL WHERE {where}").result_rows[0][0]
    ch.command(f"DELETE FROM ari_interventions WHERE {where}", settings={"lightweight_deletes_sync": 2})

    writer = _Writer(bootstrap)
    for key, record in interventions:
        writer.send(settings.topic(ARI_INTERVENTIONS.name), key, codec.encode("ari_intervention", record))
    for key, record in statuses:
        writer.send(settings.topic(ARI_STATUS.name), key, codec.encode("ari_status", record))
    batch = Batch()
    for topic, partition, offset, value in writer.flush("derived records"):
        row = to_row(value)
        if isinstance(row, DeadLetter):  # replay encoded it itself: a bug, not bad data
            raise ReplayError(f"a derived record does not fit its table: {row.reason}")
        batch.track(topic, partition, offset)
        batch.add(row)
    insert_batch(ch, batch)
    result.interventions, result.statuses = len(interventions), len(statuses)
    t3 = time.monotonic()

    # The worker's state, where its table recovers from.
    for key, (partition, state) in result.states.items():
        writer.send(changelog, key, json.dumps(state).encode(), partition=partition)
    writer.flush("worker states")
    t4 = time.monotonic()
    result.seconds = t4 - t0
    result.phases = {"preconditions": t1 - t0, "read and derive": t2 - t1, "replace": t3 - t2,
                     "worker states": t4 - t3}
    return result


def run(settings: Settings, since: int, until: int | None = None, out: TextIO | None = None) -> ReplayResult:
    """`sophra replay`: on the configured cluster, or on the local broker it starts and stops itself."""
    return on_broker(settings, lambda bootstrap: replay(settings, bootstrap, since, until, out), ReplayError,
                     "replay needs the broker and ClickHouse folder for itself, and rewrites the worker's state")
