"""ARI's part of `sophra replay` (the whole: pipeline/replay/__init__.py).

1. Read `agent.vitals` and `agent.events` from the beginning of their retained history
   (baselines need the history before --from) up to the high watermarks taken at start,
   with a plain consumer (all partitions assigned, no group, no commits). The topics are
   co-partitioned (same key, same partition), so one partition of both is read at a
   time, which bounds memory to one partition's history; with more than one core and a
   long history, child processes (one per core) each read and derive one partition at a
   time, which gives the same result (an agent's records are all in one partition) in
   less time. Per agent key the records are merged in `recorded_at` order (ties: events
   before vitals, then by id), so the result is deterministic whatever order they were
   produced in, and the engine (pipeline/ari/engine.py) runs over them from a fresh
   state. Undecodable records are skipped, as the worker skips them. Before anything is
   read or deleted, replay refuses when retention emptied a partition (nothing retained,
   records once there) that holds an agent with interventions in the window; and after
   reading, when retention dropped the start of a partition whose first retained record
   is later than --from. Either way it would delete interventions it cannot recompute.
2. Replace: land what the sink had not landed yet of `agent.interventions` and
   `agent.ari_status`, then `DELETE FROM ari_interventions WHERE opened_at >= <from>
   [AND opened_at < <to>]`, then produce the recomputed interventions opened in that
   window (only the last version of each id) and every agent's last status, and insert
   the same records straight into ClickHouse. Interventions opened before --from (or
   at/after --to) are left as they are, later updates included. Statuses always come
   from the recomputation (for equal versions the last insert wins).
3. Rewrite the worker's state: each agent's final recomputed state is produced to the
   worker table's changelog (`<worker id>-agent_state-changelog`: key = the record key
   bytes `b"<tenant>/<agent>"`, value = the state as JSON, partition = the partition of
   the agent's records), with the offsets replay read up to as the state's applied
   offsets (pipeline/worker/offsets.py). The states carry no anomaly watch: each agent's
   watch starts again (docs/insights.md).

The recomputation only sees the retained history (30 days by default), so an agent's
snapshot count restarts there.
"""
from __future__ import annotations

import atexit
import multiprocessing
import os
import time
from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field

from confluent_kafka import Consumer, TopicPartition

from schemas import codec
from sophra.settings import Settings

from ..ari.engine import new_state, step_event, step_vital
from ..history import TIMEOUT, Progress, read_until, reader
from ..store.clickhouse import connect
from ..topics import AGENT_EVENTS, AGENT_VITALS, ARI_INTERVENTIONS, ARI_STATUS, worker_state_changelog
from ..worker.offsets import mark
from .common import (Context, ReplayError, Writer, delete, ensure_changelog, in_window, iso,
                     land_unlanded, refuse_emptied, window_sql)


def changelog_topic(settings: Settings) -> str:
    return worker_state_changelog(settings.worker_id)


@dataclass
class AriResult:
    records: int = 0            # read from the source topics
    skipped: int = 0            # undecodable or keyless, ignored like the worker does
    agents: int = 0
    interventions: int = 0      # written (produced and inserted)
    statuses: int = 0
    deleted: int = 0            # intervention rows deleted from ClickHouse
    landed: int = 0             # derived records the sink had not landed yet, landed first
    states: dict = field(default_factory=dict, repr=False)  # key -> (partition, state)

    def summary(self) -> str:
        return (f"{self.records} records read ({self.skipped} skipped), {self.agents} agents, "
                f"{self.interventions} interventions written, {self.deleted} rows deleted, "
                f"{self.statuses} statuses")


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
            raise ReplayError(f"{topic}[{p}] keeps history only from {iso(kept_from)}; "
                              "choose a later --from (nothing was changed)")
    out = _Partition(records, skipped)
    for key, history in per_key.items():
        state, ivs, status = derive(history)
        for (topic, _), (_, hi) in part.items():  # what the state holds, for the worker's offset check
            if hi > 0:
                mark(state, topic, p, hi - 1)
        out.states[key] = state
        out.interventions += [(key, v) for v in ivs.values() if in_window(v["opened_at"], since, until)]
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


# -- the whole part -------------------------------------------------------------------

def replay_ari(ctx: Context, phases: dict) -> AriResult:
    """Recompute and replace ARI's derived records opened in the window; `phases` gets the
    seconds of each step."""
    settings, bootstrap, since, until = ctx.settings, ctx.bootstrap, ctx.since, ctx.until
    t0 = time.monotonic()
    result = AriResult()
    vitals_t, events_t = settings.topic(AGENT_VITALS.name), settings.topic(AGENT_EVENTS.name)
    consumer = reader(bootstrap)
    try:
        meta = consumer.list_topics(timeout=TIMEOUT).topics
        n = len(meta[vitals_t].partitions)
        if len(meta[events_t].partitions) != n:
            raise ReplayError(f"{vitals_t} and {events_t} must have the same partitions (co-partitioned)")
        changelog = changelog_topic(settings)
        ensure_changelog(bootstrap, ctx.admin, changelog, n)
        marks = {(t, p): consumer.get_watermark_offsets(TopicPartition(t, p), timeout=TIMEOUT)
                 for p in range(n) for t in (vitals_t, events_t)}
    finally:
        consumer.close()
    refuse_emptied(connect(settings.clickhouse_dsn, settings.clickhouse_database), marks, n,
                   f"SELECT DISTINCT tenant, agent_id FROM ari_interventions FINAL "
                   f"WHERE {window_sql('opened_at', since, until)}", "agents with interventions")
    t1 = time.monotonic()
    progress = Progress(sum(hi - lo for lo, hi in marks.values()), ctx.out, label="replay ari")
    interventions, statuses = [], []
    for p, part in enumerate(_derive_partitions(bootstrap, marks, n, since, until, progress, ctx.processes)):
        result.records += part.records
        result.skipped += part.skipped
        result.states.update((key, (p, state)) for key, state in part.states.items())
        interventions += part.interventions
        statuses += part.statuses
    progress.close()
    result.agents = len(result.states)
    t2 = time.monotonic()

    # Replace: land what the sink had not landed yet, delete, produce, land the same rows.
    result.landed = land_unlanded(settings, bootstrap, ctx.admin,
                                  [settings.topic(ARI_INTERVENTIONS.name), settings.topic(ARI_STATUS.name)])
    ch = connect(settings.clickhouse_dsn, settings.clickhouse_database)
    result.deleted = delete(ch, "ari_interventions", window_sql("opened_at", since, until))
    writer = Writer(bootstrap)
    writer.derived(ch, "derived records", [(settings.topic(ARI_INTERVENTIONS.name), "ari_intervention", interventions),
                                           (settings.topic(ARI_STATUS.name), "ari_status", statuses)])
    result.interventions, result.statuses = len(interventions), len(statuses)
    t3 = time.monotonic()

    # The worker's state, where its table recovers from.
    writer.states("worker states", ((changelog, key, partition, state)
                                    for key, (partition, state) in result.states.items()))
    t4 = time.monotonic()
    phases["preconditions"] = phases.get("preconditions", 0.0) + t1 - t0
    phases.update({"read and derive": t2 - t1, "replace": t3 - t2, "worker states": t4 - t3})
    return result
