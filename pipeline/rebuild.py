"""`sophra rebuild [--tables T ...] [--accept-loss]`: land the record topics again into
fresh ClickHouse tables and swap them in, after a schema change or a lost or damaged
engine. The api keeps answering from the old tables until the new ones are complete.

What it does, in this order:

1. Preconditions. The sink's consumer group (SOPHRA_SINK_GROUP) must have no members,
   else rebuild refuses: a running sink would land records into tables about to be
   replaced and commit past what the new ones hold. The embedded default as replay
   (pipeline/history.py): rebuild starts the local broker from `<data dir>/kafka`
   itself, so a running `sophra up` must be stopped first.
2. The chosen tables (default: every table the sink lands, one per record topic) and
   the watermarks of every partition of their topics, taken at start: the rebuild lands
   each partition from its earliest retained offset up to its high watermark.
3. Retention, before anything is written. Where a partition's earliest retained offset
   is above 0, rebuild asks whether the current tables hold rows of records that are no
   longer on the topic. For tables that keep each row's source offset (app_metrics,
   agent_vitals) that is exact: the lowest offset held per partition (rows from before
   those columns existed count as offset 0). For the others: the sink group committed
   offsets in that partition and the table has rows. If so it refuses, naming topic,
   partition and offsets, unless `accept_loss`: then those rows are not in the new
   tables (the replaced database below still has them). Compacted topics keep every
   key's latest record, so they are not checked (the sink lands none today).
4. Land. A fresh database `<db>_replaced_<UTC time>`, migrated by the same migrations
   (pipeline/store/migrations), receives the chosen topics read with a plain consumer:
   every record mapped by the sink's own `to_rows` and inserted by the sink's own
   `insert_batch` (pipeline/sink/steps.py) in batches of `batch_rows`, one insert in
   flight on a thread while the next batch is decoded, the views fed in parallel. The database's materialized
   views build the rollups, `agent_latest`/`agent_names` and the `*_landed` offsets
   from exactly these rows, so every record is counted once. A record that can't be
   landed is a dead letter as in the sink; only those at or past the sink group's
   committed offset are produced to the dead-letter topic (the sink already sent the
   ones before it).
5. Swap. Just before, rebuild checks again that the sink group has no members and did
   not commit past the watermarks (else it drops the new database: nothing changed).
   Then `EXCHANGE TABLES <db>.t AND <new>.t` for every chosen table and every table its
   views feed (read from the engine: system.tables), one pair after another within
   milliseconds; a pair that fails undoes the ones before it. Each pair is atomic (a
   query sees the old table or the new one, never none); the set is not (ClickHouse
   exchanges several pairs in sequence even in one statement), so a query at that
   instant could see a new raw table beside an old rollup. Views are
   not exchanged: a view names its tables (`FROM <db>.app_metrics`, `TO <db>.app_metrics_1m`),
   so after the exchange the live views feed the new tables and the replaced database's
   views its old ones (tested on chdb). Not `RENAME DATABASE`: a renamed database's views
   keep naming the old database, so they would feed whatever later takes that name.
6. The sink group's offsets are committed at the watermarks: the new tables hold every
   record below them, so the restarted sink continues with the first record produced
   after the rebuild started, once. Were that commit refused (a sink joined in that
   instant), nothing doubles: the sink re-reads from its old offsets, skips the records
   whose rows are in the `*_landed` tables (the rollups' sources), and the other tables
   replace rows by record id.

The replaced tables stay in `<db>_replaced_<UTC time>` (tables not rebuilt are empty
there); drop it once the new tables look right:
`sophra sql -e 'DROP DATABASE <db>_replaced_<time>'`. A rebuild that fails before the
swap drops its database and changes nothing; run it again.
"""
from __future__ import annotations

import logging
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TextIO

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from sophra.settings import Settings

from .history import TIMEOUT, HistoryError, Progress, group_members, on_broker, read_until, reader, watermarks
from .producer import producer_config
from .sink.steps import NO_PARTITION, Batch, DeadLetter, dead_letter, insert_batch, to_rows
from .store.clickhouse import connect
from .store.migrate import migrate
from .store.schema import TABLE_FOR_KIND, Table
from .topics import RECORD_TOPICS, TopicSpec, dlq, ensure_topics

log = logging.getLogger("sophra.rebuild")

# The tables rebuild can land: the one each record topic's kind is landed into by the sink.
SOURCES: dict[str, tuple[Table, TopicSpec]] = {TABLE_FOR_KIND[spec.kind].name: (TABLE_FOR_KIND[spec.kind], spec)
                                               for spec in RECORD_TOPICS}

BATCH_ROWS = 100_000  # rows per insert: each insert has a fixed cost in the views, so big ones
# A vitals row feeds six views; pushed to them in parallel, an insert of 20,000 vitals rows
# from memory ran 1.5x faster (bench/README.md, "rebuild"). The sink does not set it (yet).
INSERT_SETTINGS = {"parallel_view_processing": 1}


class RebuildError(HistoryError):
    """A precondition failed or a step could not complete; the message says what to do."""


@dataclass
class RebuildResult:
    records: int = 0         # read from the topics
    dead_letters: int = 0    # records that can't be landed (as the sink: the dead-letter topic has them)
    rows: dict = field(default_factory=dict)  # table -> rows inserted
    swapped: list = field(default_factory=list)  # every table exchanged, views' targets included
    replaced: str = ""       # the database that now holds the replaced tables
    lost: list = field(default_factory=list)  # accepted losses (accept_loss), as the refusal names them
    seconds: float = 0.0
    note: str = ""

    def summary(self) -> str:
        rate = self.records / self.seconds if self.seconds else 0
        rows = ", ".join(f"{t} {n}" for t, n in sorted(self.rows.items())) or "none"
        return (f"rebuild done: {self.records} records ({self.dead_letters} dead letters), rows: {rows}; "
                f"{self.seconds:.1f}s, {rate:,.0f} records/s; {len(self.swapped)} tables swapped in, the replaced "
                f"ones are in {self.replaced} (drop it: sophra sql -e 'DROP DATABASE {self.replaced}')"
                + (f"; lost as accepted: {'; '.join(self.lost)}" if self.lost else "")
                + (f"; {self.note}" if self.note else ""))


def choose(tables: list[str] | None) -> dict[str, tuple[Table, TopicSpec]]:
    """The chosen tables (None: all), or a RebuildError naming the ones rebuild knows."""
    if not tables:
        return dict(SOURCES)
    unknown = [t for t in tables if t not in SOURCES]
    if unknown:
        raise RebuildError(f"cannot rebuild {', '.join(unknown)}: choose among {', '.join(SOURCES)} (the tables "
                           "the sink lands; the tables their views feed are rebuilt with them)")
    return {t: SOURCES[t] for t in tables}


# -- offsets --------------------------------------------------------------------------

def committed(bootstrap: str, group: str, tps: list[tuple[str, int]]) -> dict[tuple[str, int], int]:
    """The group's committed offset per (topic, partition); 0 where it never committed."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        got = c.committed([TopicPartition(t, p) for t, p in tps], timeout=TIMEOUT)
        return {(tp.topic, tp.partition): max(tp.offset, 0) for tp in got}
    finally:
        c.close()


def commit_at(bootstrap: str, group: str, marks: dict[tuple[str, int], tuple[int, int]]) -> None:
    """Commit `group` at each partition's high watermark (from outside the group: it has no members)."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        c.commit(offsets=[TopicPartition(t, p, hi) for (t, p), (_, hi) in marks.items() if hi > 0],
                 asynchronous=False)
    finally:
        c.close()


# -- retention ------------------------------------------------------------------------

def losses(ch, settings: Settings, chosen: dict, marks: dict, done: dict) -> list[str]:
    """Rows the current tables hold of records retention dropped from the topics (see the module doc)."""
    out = []
    for name, (table, spec) in chosen.items():
        if spec.compacted:
            continue
        topic = settings.topic(spec.name)
        dropped = {p: (lo, hi) for (t, p), (lo, hi) in marks.items() if t == topic and lo > 0}
        if not dropped:
            continue
        if "kafka_offset" in table.column_names:  # exact: the lowest source offset held per partition
            held = dict(ch.query(f"SELECT kafka_partition, min(kafka_offset) FROM {name} "
                                 "GROUP BY kafka_partition").result_rows)
            legacy = held.pop(NO_PARTITION, None) is not None  # rows from before the offsets were kept
            spans = {p: (0 if legacy else held.get(p, lo), lo) for p, (lo, _) in dropped.items()}
        elif ch.query(f"SELECT count() FROM (SELECT 1 FROM {name} LIMIT 1)").result_rows[0][0]:
            spans = {p: (0, min(lo, done.get((topic, p), 0))) for p, (lo, _) in dropped.items()}
        else:
            continue  # an empty table (a lost engine) has nothing to lose
        for p, (first, end) in sorted(spans.items()):
            if first < end:
                lo, hi = dropped[p]
                kept = f"offsets {lo}..{hi - 1}" if hi > lo else "no records"
                out.append(f"{topic}[{p}] keeps {kept}, but {name} holds rows of offsets {first}..{end - 1}")
    return out


# -- landing --------------------------------------------------------------------------

class _Lander:
    """The sink's steps into the new database: map, batch, insert (one insert in flight)."""

    def __init__(self, settings: Settings, bootstrap: str, database: str, done: dict, batch_rows: int,
                 result: RebuildResult):
        self.client = connect(settings.clickhouse_dsn, database)  # used by the insert thread only
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rebuild-insert")
        self.pending: Future | None = None
        self.batch = Batch()
        self.batch_rows, self.done, self.result = batch_rows, done, result
        self.dlq = {settings.topic(t.name): settings.topic(dlq(t).name) for t in RECORD_TOPICS}
        self.bootstrap = bootstrap
        self.producer: Producer | None = None
        self.errors: list[str] = []

    def take(self, msg) -> None:
        self.batch.track(msg.topic(), msg.partition(), msg.offset())
        rows = to_rows(msg.value(), msg.partition(), msg.offset())
        if isinstance(rows, DeadLetter):
            self.result.dead_letters += 1
            if msg.offset() >= self.done.get((msg.topic(), msg.partition()), 0):  # the sink never read it
                self._dead_letter(msg, rows.reason)
            return
        self.batch.add(rows)
        if self.batch.size >= self.batch_rows:
            self.hand_off()

    def _dead_letter(self, msg, reason: str) -> None:
        if self.producer is None:
            self.producer = Producer(producer_config(self.bootstrap))
        letter = dead_letter(self.dlq[msg.topic()], msg, reason)
        self.producer.produce(letter.pop("topic"), **letter,
                              on_delivery=lambda err, _m: err and self.errors.append(str(err)))

    def hand_off(self) -> None:
        batch, self.batch = self.batch, Batch()
        self.wait()
        self.pending = self.pool.submit(insert_batch, self.client, batch, INSERT_SETTINGS)
        for table, rows in batch.rows.items():
            self.result.rows[table] = self.result.rows.get(table, 0) + len(rows)

    def wait(self) -> None:
        if self.pending is not None:
            self.pending.result()
            self.pending = None

    def finish(self) -> None:
        self.hand_off()
        self.wait()
        if self.producer is not None and (self.producer.flush(TIMEOUT) or self.errors):
            raise RebuildError(f"dead letters not delivered ({self.errors[:3]}); nothing was swapped, run it again")

    def close(self) -> None:
        self.pool.shutdown(wait=True)


def _family(ch, database: str, tables) -> list[str]:
    """The tables and every table their materialized views feed, as the engine has them."""
    views = dict(ch.query("SELECT name, dependencies_table FROM system.tables WHERE database = {db:String}",
                          parameters={"db": database}).result_rows)
    targets = dict(ch.query("SELECT name, target_table FROM system.tables WHERE database = {db:String} "
                            "AND engine = 'MaterializedView'", parameters={"db": database}).result_rows)
    out = []
    for t in tables:
        out += [t] + sorted(targets[v] for v in views.get(t, []))
    return list(dict.fromkeys(out))  # a table two views feed is exchanged once


def _swap(ch, db: str, new: str, tables: list[str]) -> list[str]:
    """Exchange each table of `db` with its twin in `new`, a pair at a time (each pair is
    atomic; ClickHouse runs the pairs of one statement in sequence too, and would not say
    which were done when one fails). If one fails, the pairs done are exchanged back."""
    pair = lambda t: f"EXCHANGE TABLES `{db}`.`{t}` AND `{new}`.`{t}`"  # noqa: E731
    done = []
    try:
        for t in tables:
            ch.command(pair(t))
            done.append(t)
    except Exception as exc:
        failed = t
        try:
            for back in reversed(list(done)):
                ch.command(pair(back))
                done.remove(back)
        except Exception as undo:
            err = RebuildError(f"swapping {failed} failed ({exc}) and swapping back failed ({undo}): these tables "
                               f"of {db} are the rebuilt ones, their old versions in {new}: {', '.join(done)}; "
                               f"run `{pair('<table>')}` for each to go back, or rebuild again")
            err.keep_database = True
            raise err from exc
        raise RebuildError(f"swapping {failed} failed ({exc}); the tables swapped before it were swapped back, "
                           "nothing was changed") from exc
    return done


def _stamp() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")


# -- the whole thing ------------------------------------------------------------------

def rebuild(settings: Settings, bootstrap: str, tables: list[str] | None = None, out: TextIO | None = None,
            accept_loss: bool = False, batch_rows: int = BATCH_ROWS) -> RebuildResult:
    """Land the chosen tables' topics into fresh tables and swap them in; see the module doc.
    `out`: where the progress bar goes (the CLI passes stderr; None = no bar)."""
    t0 = time.monotonic()
    chosen = choose(tables)
    result = RebuildResult()
    admin = AdminClient({"bootstrap.servers": bootstrap})
    _refuse_running_sink(admin, settings, "it would land records into the tables rebuild replaces; "
                                          "nothing was changed")
    ensure_topics(bootstrap, settings.topic_prefix)
    db = settings.clickhouse_database
    migrate(settings.clickhouse_dsn, db)
    topics = [settings.topic(spec.name) for _, spec in chosen.values()]
    consumer = reader(bootstrap)
    try:
        marks = watermarks(consumer, topics)
        done = committed(bootstrap, settings.sink_group, list(marks))
        ch = connect(settings.clickhouse_dsn, db)
        found = losses(ch, settings, chosen, marks, done)
        if found and not accept_loss:
            raise RebuildError("retention dropped records whose rows the current tables hold; the rebuilt tables "
                               f"would lose them: {'; '.join(found)}. Nothing was changed. Pass --accept-loss to "
                               "rebuild from what the topics keep (those rows will be missing from the new tables; "
                               "the replaced database keeps them)")
        result.lost = found
        new = result.replaced = f"{db}_replaced_{_stamp()}"
        migrate(settings.clickhouse_dsn, new)
        try:
            progress = Progress(sum(hi - lo for lo, hi in marks.values()), out, label="rebuild")
            lander = _Lander(settings, bootstrap, new, done, batch_rows, result)
            try:
                for msgs in read_until(consumer, marks, progress.advance, most=10_000):
                    result.records += len(msgs)
                    for msg in msgs:
                        lander.take(msg)
                lander.finish()
            finally:
                lander.close()
            progress.close()
            _refuse_running_sink(admin, settings, "it may have landed records into the old tables; nothing was "
                                                  "swapped, run rebuild again once it is stopped")
            moved = {tp: c for tp, c in committed(bootstrap, settings.sink_group, list(marks)).items()
                     if c > marks[tp][1]}
            if moved:
                raise RebuildError(f"the sink committed past the watermarks while rebuild ran ({moved}); nothing "
                                   "was swapped, run rebuild again with the sink stopped")
            result.swapped = _swap(ch, db, new, _family(ch, db, chosen))
        except BaseException as exc:
            if not getattr(exc, "keep_database", False):  # nothing of it is live: a rerun starts afresh
                connect(settings.clickhouse_dsn).command(f"DROP DATABASE IF EXISTS `{new}`")
            raise
    finally:
        consumer.close()
    try:
        commit_at(bootstrap, settings.sink_group, marks)
    except KafkaException as exc:
        result.note = (f"the sink group's offsets were not moved ({exc}): the sink re-reads from its own offsets, "
                       "and skips or replaces what the new tables hold")
        log.warning("rebuild: %s", result.note)
    result.seconds = time.monotonic() - t0
    return result


def _refuse_running_sink(admin: AdminClient, settings: Settings, why: str) -> None:
    members = group_members(admin, settings.sink_group)
    if members:
        raise RebuildError(f"the sink ({settings.sink_group}) is running ({len(members)} member(s): "
                           f"{', '.join(m.client_id for m in members)}); stop it first: {why}")


def run(settings: Settings, tables: list[str] | None = None, out: TextIO | None = None,
        accept_loss: bool = False) -> RebuildResult:
    """`sophra rebuild`: on the configured cluster, or on the local broker it starts and stops itself."""
    return on_broker(settings, lambda bootstrap: rebuild(settings, bootstrap, tables, out, accept_loss),
                     RebuildError, "rebuild needs the broker and ClickHouse folder for itself")
