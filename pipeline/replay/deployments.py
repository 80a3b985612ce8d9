"""The deployment watch's part of `sophra replay` (the whole: pipeline/replay/__init__.py):
deployment verdicts and their insights, and the worker's `app_state` table.

1. Read `app.metrics` and `app.deployments` (co-partitioned by application) from the
   beginning of their retained history up to the watermarks taken at start, one
   partition at a time. `app.deployments` holds the api's pending records, the health
   checks' results (probed revisions) and the worker's own revisions; the step ignores
   the latter, as the worker does. Per application the two topics are merged by Kafka
   timestamp (the order the worker saw them in, as near as the log tells), each topic
   keeping its offset order, and the worker's own step (`apply` of
   pipeline/deployments.py, with the rules of that module) runs over them from a new
   state. Health checks are not run again: a deployment's recorded probe result decides
   it as it did the worker's; one that becomes due only under the new rules is left
   probing, and the restarted worker probes it (Probes.start after recovery).
   Refusals, before anything is deleted: retention emptied a partition holding an
   application with deployments started in the window, or dropped the start of a
   partition whose first retained record (pending: started_at, metric batch:
   received_at) is later than --from.
2. Replace: land what the sink had not landed yet of `app.deployments` and
   `app.insights`; delete the `app_deployments` rows of deployments started in
   [from, to) and their `deployment` insights (one per deployment, id from the
   deployment); produce each recomputed deployment's last revision (in_progress or its
   outcome) to `app.deployments` and each failed one's insight to `app.insights`, and
   insert the same records straight into ClickHouse. The restarted worker reads those
   revisions back and ignores them (only pending and probed records move a deployment).
   Deployments started before --from keep their rows.
3. Rewrite the worker's state: each application's recomputed state to
   `<worker id>-app_state-changelog`, in its records' partition, applied up to the
   watermarks (pipeline/worker/offsets.py). Like ARI's states they carry no anomaly
   watch: each application's watch starts again (docs/insights.md).
"""
from __future__ import annotations

import heapq
import time
from dataclasses import dataclass, field

from confluent_kafka import TopicPartition

from .. import deployments as D
from ..history import TIMEOUT, Progress, reader
from ..insights import insight_id
from ..store.clickhouse import connect
from ..topics import APP_DEPLOYMENTS, APP_INSIGHTS, APP_METRICS, table_changelog
from ..worker.deployments import TABLE
from ..worker.offsets import mark
from .common import (Context, PartitionRead, ReplayError, Writer, delete, ensure_changelog, in_window, iso,
                     land_unlanded, refuse_emptied, window_sql)

KINDS = {"app_metric_batch": "received_at", "app_deployment": "started_at"}  # kind -> its record's time


def changelog_topic(worker_id: str) -> str:
    return table_changelog(worker_id, TABLE, APP_METRICS.partitions).name


@dataclass
class DeploymentsResult:
    records: int = 0            # read from the source topics
    skipped: int = 0            # undecodable, keyless or of another kind
    applications: int = 0
    deployments: int = 0        # started in the window: their last revision written
    insights: int = 0           # deployment insights written
    deleted: int = 0            # deployment rows deleted from ClickHouse
    landed: int = 0
    states: dict = field(default_factory=dict, repr=False)  # key -> (partition, state)

    def summary(self) -> str:
        return (f"deployments: {self.records} records read ({self.skipped} skipped), {self.applications} "
                f"applications, {self.deployments} deployments written, {self.insights} insights, "
                f"{self.deleted} rows deleted")


def derive(records: list[tuple[str, dict]]) -> tuple[dict, dict, dict]:
    """Run the worker's step over one application's records in replay order: (state,
    last revision per deployment id, last insight per id)."""
    state, revisions, insights = D.new_state(), {}, {}
    for kind, record in records:
        for out_kind, _, out in D.apply(state, kind, record):
            (revisions if out_kind == "app_deployment" else insights)[out["id"]] = out
    return state, revisions, insights


def _read_partition(consumer, part: dict, order: list[str], advance) -> tuple[dict, dict, int, int]:
    """Partition p of both topics up to the marks: key -> [(kind, record)] merged by Kafka
    timestamp, the time of each topic partition's first retained record, read, skipped."""
    read = PartitionRead(consumer, part, advance, KINDS)
    per_topic: dict[str, dict[bytes, list]] = {t: {} for t in order}
    for msg, kind, record in read:
        per_topic[msg.topic()].setdefault(msg.key(), []).append((msg.timestamp()[1], kind, record))
    per_key: dict[bytes, list] = {}
    for key in {k for keyed in per_topic.values() for k in keyed}:
        # heapq.merge keeps each topic's own (offset) order; ties: the first topic (deployments) first
        merged = heapq.merge(*(per_topic[t].get(key, []) for t in order), key=lambda r: r[0])
        per_key[key] = [(kind, record) for _, kind, record in merged]
    return per_key, read.first, read.records, read.skipped


def replay_deployments(ctx: Context, phases: dict) -> DeploymentsResult:
    settings, bootstrap, since, until = ctx.settings, ctx.bootstrap, ctx.since, ctx.until
    t0 = time.monotonic()
    result = DeploymentsResult()
    order = [settings.topic(APP_DEPLOYMENTS.name), settings.topic(APP_METRICS.name)]
    changelog = changelog_topic(settings.worker_id)
    consumer = reader(bootstrap)
    try:
        meta = consumer.list_topics(timeout=TIMEOUT).topics
        n = len(meta[order[1]].partitions)
        if len(meta[order[0]].partitions) != n:
            raise ReplayError(f"{order[0]} and {order[1]} must have the same partitions (co-partitioned)")
        ensure_changelog(bootstrap, ctx.admin, changelog, n)
        marks = {(t, p): consumer.get_watermark_offsets(TopicPartition(t, p), timeout=TIMEOUT)
                 for p in range(n) for t in order}
        ch = connect(settings.clickhouse_dsn, settings.clickhouse_database)
        refuse_emptied(ch, marks, n, f"SELECT DISTINCT tenant, application_id FROM app_deployments FINAL "
                                     f"WHERE {window_sql('started_at', since, until)}", "applications with deployments")

        progress = Progress(sum(hi - lo for lo, hi in marks.values()), ctx.out, label="replay deployments")
        revisions, insights = [], []
        for p in range(n):
            part = {tp: m for tp, m in marks.items() if tp[1] == p}
            per_key, first, records, skipped = _read_partition(consumer, part, order, progress.advance)
            for (topic, _), kept_from in first.items():
                if part[(topic, p)][0] > 0 and kept_from > since:  # retention dropped records after --from
                    raise ReplayError(f"{topic}[{p}] keeps history only from {iso(kept_from)}; "
                                      "choose a later --from (nothing was changed)")
            result.records += records
            result.skipped += skipped
            for key, history in per_key.items():
                state, revs, ins = derive(history)
                for (topic, _), (_, hi) in part.items():  # what the state holds, for the worker's offset check
                    if hi > 0:
                        mark(state, topic, p, hi - 1)
                result.states[key] = (p, state)
                for dep_id, rev in sorted(revs.items()):
                    if in_window(rev["started_at"], since, until):
                        revisions.append((key, rev))
                        iid = insight_id(rev["tenant"], rev["application_id"], "deployment", dep_id)
                        if iid in ins:
                            insights.append((key, ins[iid]))
        progress.close()
    finally:
        consumer.close()
    result.applications = len(result.states)

    # Replace: land what the sink had not landed, delete the window's rows, produce, land.
    result.landed = land_unlanded(settings, bootstrap, ctx.admin, [settings.topic(APP_DEPLOYMENTS.name),
                                                                   settings.topic(APP_INSIGHTS.name)])
    where = window_sql("started_at", since, until)
    old = ch.query(f"SELECT tenant, application_id, id FROM app_deployments FINAL WHERE {where}").result_rows
    gone = sorted({insight_id(t, a, "deployment", i) for t, a, i in old}
                  | {r["id"] for _, r in insights})
    for chunk in range(0, len(gone), 1000):
        delete(ch, "app_insights", "type = 'deployment' AND id IN %(ids)s", {"ids": gone[chunk:chunk + 1000]})
    result.deleted = delete(ch, "app_deployments", where)
    writer = Writer(bootstrap)
    writer.derived(ch, "deployment revisions and insights", [
        (settings.topic(APP_DEPLOYMENTS.name), "app_deployment", revisions),
        (settings.topic(APP_INSIGHTS.name), "app_insight", insights)])
    result.deployments, result.insights = len(revisions), len(insights)

    # The worker's state, where its app_state table recovers from.
    writer.states("deployment watch states", ((changelog, key, partition, state)
                                              for key, (partition, state) in result.states.items()))
    phases["deployments"] = time.monotonic() - t0
    return result
