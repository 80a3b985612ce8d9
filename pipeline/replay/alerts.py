"""The alerts' part of `sophra replay` (the whole: pipeline/replay/__init__.py): alert
transitions and statuses, and the worker's `application_alert_state` and
`agent_alert_state` tables, under the rules as they are now (`app.alert_rules`). Budget
rules are left out: their source, the compacted `budgets.usage`, keeps only each
partial's latest count, so a budget's past figures cannot be rebuilt.

1. Read `app.metrics` (application rules) and `agent.vitals` (agent rules) from the
   beginning of their retained history up to the watermarks taken at start, one
   partition at a time, and per subject, in offset order (the worker's order), run the
   worker's step (`apply_record` of pipeline/alerts/evaluate.py) at the time Sophra
   received each record (its Kafka timestamp, as the worker does), and between records
   the worker's clock (`run_clock`: the no_data transitions and reminders its ticks would
   have derived), up to the time replay started. A rule is evaluated over the records
   received from its `created_at` on. Transition ids come from the rule, the new state,
   its time and the kind of notice, all of them from the log: a recomputed transition
   that equals one the worker derived has its id, so the notifier, which keys deliveries
   by transition id (pipeline/notifier/service.py), does not deliver it again; a
   transition only the changed rule derives has a new id and is delivered once (or
   recorded `stale` when it happened more than 24 h ago, as for any late notification).
   Refusals, before anything is deleted: retention emptied a partition holding a subject
   with transitions in the window, or dropped the start of a partition, holding a
   subject with rules, whose first retained record (received_at / recorded_at) is later
   than --from.
2. Replace, for the rules of the subjects replayed: land what the sink had not landed
   yet of `app.alerts` and `app.alert_status`, delete their `alert_transitions` rows with
   `at` in [from, to) and their `alert_status` rows, produce the recomputed transitions
   in the window and each rule's last status, and insert the same records. Transitions
   of rules deleted since, or of subjects with no retained records, are left as they are.
3. Rewrite the worker's state: each subject's recomputed state to
   `<worker id>-<scope>_alert_state-changelog`, in its records' partition, applied up to
   the watermark (its `offset`).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

from confluent_kafka import TopicPartition

from ..alerts.evaluate import SOURCES, apply_record, run_clock
from ..alerts.rulebook import RuleBook
from ..history import TIMEOUT, Progress, reader
from ..store.clickhouse import connect
from ..topics import ALERT_RULES, APP_ALERT_STATUS, APP_ALERTS, table_changelog
from ..worker.alerts import TOPICS
from .common import (Context, PartitionRead, ReplayError, Writer, delete, ensure_changelog, in_window, iso,
                     land_unlanded, refuse_emptied, window_sql)

TIME_FIELD = {"application": "received_at", "agent": "recorded_at"}


@dataclass
class AlertsResult:
    records: int = 0            # read from the source topics
    skipped: int = 0            # undecodable, keyless or of another kind
    subjects: int = 0           # with rules: recomputed
    rules: int = 0
    transitions: int = 0        # written (in the window)
    statuses: int = 0
    deleted: int = 0            # transition rows deleted from ClickHouse
    landed: int = 0
    states: dict = field(default_factory=dict, repr=False)  # (scope, key) -> (partition, state)

    def summary(self) -> str:
        return (f"alerts: {self.records} records read ({self.skipped} skipped), {self.subjects} subjects, "
                f"{self.rules} rules, {self.transitions} transitions written, {self.deleted} rows deleted, "
                f"{self.statuses} statuses")


def derive(scope: str, rules, records: list[tuple[int, dict]], now: int) -> tuple[dict | None, dict, dict]:
    """One subject's (received at, record)s in offset order under `rules`, the clock run
    up to `now`: (state or None, transitions by id, last status per rule)."""
    state, transitions, statuses = None, {}, {}

    def take(outputs):
        for kind, record in outputs:
            if kind == "alert_transition":
                transitions[record["id"]] = record
            else:
                statuses[record["rule_id"]] = record

    for wall, record in records:
        live = [r for r in rules if r.created_at <= wall]
        if state is not None:
            take(run_clock(state, live, wall))
        state, out = apply_record(state, live, scope, record, wall)
        take(out)
    if state is not None:
        take(run_clock(state, list(rules), now))
    return state, transitions, statuses


def _read_partition(consumer, part: dict, kind: str, time_field: str, advance) -> tuple[dict, dict, int, int]:
    """Partition p of a scope's topic up to its mark: key -> [(received at, record)] in
    offset order, the time of the first retained record, read, skipped."""
    read = PartitionRead(consumer, part, advance, {kind: time_field})
    per_key: dict[bytes, list] = {}
    for msg, _, record in read:
        per_key.setdefault(msg.key(), []).append((msg.timestamp()[1], record))
    return per_key, read.first, read.records, read.skipped


def replay_alerts(ctx: Context, phases: dict) -> AlertsResult:
    settings, bootstrap, since, until = ctx.settings, ctx.bootstrap, ctx.since, ctx.until
    t0 = time.monotonic()
    result = AlertsResult()
    book = RuleBook(bootstrap, settings.topic(ALERT_RULES.name)).start()
    ch = connect(settings.clickhouse_dsn, settings.clickhouse_database)
    consumer = reader(bootstrap)
    transitions, statuses, rule_ids = [], [], set()
    try:
        scopes = {}  # scope -> (topic, partitions, marks, changelog)
        for scope, spec in TOPICS.items():
            topic = settings.topic(spec.name)
            n = len(consumer.list_topics(topic, timeout=TIMEOUT).topics[topic].partitions)
            changelog = table_changelog(settings.worker_id, f"{scope}_alert_state", n).name
            ensure_changelog(bootstrap, ctx.admin, changelog, n)
            marks = {(topic, p): consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=TIMEOUT)
                     for p in range(n)}
            refuse_emptied(ch, marks, n, f"SELECT DISTINCT tenant, subject_id FROM alert_transitions FINAL "
                                         f"WHERE scope = %(scope)s AND {window_sql('at', since, until)}",
                           "subjects with alert transitions", {"scope": scope})
            scopes[scope] = (topic, n, marks, changelog)
        now = time.time_ns() // 1_000_000  # the worker's clock stopped about here: replay runs it this far
        progress = Progress(sum(hi - lo for _, _, m, _ in scopes.values() for lo, hi in m.values()), ctx.out,
                            label="replay alerts")
        for scope, (topic, n, marks, _) in scopes.items():
            kind, subject_field, _ = SOURCES[scope]
            for p in range(n):
                part = {(topic, p): marks[(topic, p)]}
                per_key, first, records, skipped = _read_partition(consumer, part, kind, TIME_FIELD[scope],
                                                                   progress.advance)
                result.records += records
                result.skipped += skipped
                for key, history in per_key.items():
                    record = history[0][1]
                    rules = book.for_subject(record["tenant"], scope, record[subject_field])
                    state, trs, sts = derive(scope, rules, history, now)
                    if state is None:
                        continue  # no rule watches it
                    kept_from = first[(topic, p)]
                    if marks[(topic, p)][0] > 0 and kept_from > since:  # retention dropped records after --from
                        raise ReplayError(f"{topic}[{p}] keeps history only from {iso(kept_from)}; "
                                          "choose a later --from (nothing was changed)")
                    state["offset"] = marks[(topic, p)][1] - 1
                    result.states[(scope, key)] = (p, state)
                    rule_ids |= {r.id for r in rules}
                    transitions += [t for t in trs.values() if in_window(t["at"], since, until)]
                    statuses += sts.values()
        progress.close()
    finally:
        consumer.close()
        book.stop()
    result.subjects, result.rules = len(result.states), len(rule_ids)

    # Replace: land what the sink had not landed, delete the replayed rules' rows, produce, land.
    result.landed = land_unlanded(settings, bootstrap, ctx.admin, [settings.topic(APP_ALERTS.name),
                                                                   settings.topic(APP_ALERT_STATUS.name)])
    if rule_ids:
        ids = sorted(rule_ids)
        where = window_sql("at", since, until)
        for chunk in range(0, len(ids), 1000):
            bound = {"ids": ids[chunk:chunk + 1000]}
            result.deleted += delete(ch, "alert_transitions", f"{where} AND rule_id IN %(ids)s", bound)
            delete(ch, "alert_status", "rule_id IN %(ids)s", bound)
    writer = Writer(bootstrap)
    writer.derived(ch, "alert transitions and statuses", [
        (settings.topic(APP_ALERTS.name), "alert_transition",
         [(t["rule_id"].encode(), t) for t in sorted(transitions, key=lambda t: (t["rule_id"], t["at"], t["id"]))]),
        (settings.topic(APP_ALERT_STATUS.name), "alert_status", [(s["rule_id"].encode(), s) for s in statuses])])
    result.transitions, result.statuses = len(transitions), len(statuses)

    # The worker's states, where its alert tables recover from.
    writer.states("alert states", ((scopes[scope][3], key, partition, state)
                                   for (scope, key), (partition, state) in result.states.items()))
    phases["alerts"] = time.monotonic() - t0
    return result
