"""What every part of `sophra replay` shares: the error, times, landing what the sink has
not landed yet, producing with delivery reports, inserting produced records with the
sink's own steps, and the worker tables' changelogs."""
from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TextIO

from aiokafka.partitioner import murmur2
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from sophra.settings import Settings

from schemas import codec

from ..history import TIMEOUT, HistoryError, group_members, read_until
from ..producer import producer_config
from ..sink.steps import Batch, DeadLetter, insert_batch, to_row
from ..topics import TopicSpec, ensure_topics, entity_key

log = logging.getLogger("sophra.replay")

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


class ReplayError(HistoryError):
    """A precondition failed or a step could not complete; the message says what to do."""


@dataclass(frozen=True)
class Context:
    """One replay's arguments, handed to each part."""
    settings: Settings
    bootstrap: str
    admin: AdminClient
    since: int                  # epoch ms
    until: int | None           # epoch ms, exclusive; None: no end
    out: TextIO | None          # where progress bars go
    processes: int | None = None


def parse_time(text: str) -> int:
    """ISO 8601 date or time (no zone = UTC) -> epoch milliseconds."""
    try:
        dt = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"not an ISO 8601 time: {text!r} (e.g. 2026-05-01T00:00:00Z)") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return (dt - _EPOCH) // timedelta(milliseconds=1)


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, timezone.utc).isoformat()


def ms_sql(ms: int) -> str:
    return f"fromUnixTimestamp64Milli(toInt64({int(ms)}), 'UTC')"


def window_sql(column: str, since: int, until: int | None) -> str:
    return f"{column} >= {ms_sql(since)}" + (f" AND {column} < {ms_sql(until)}" if until is not None else "")


def in_window(t: int, since: int, until: int | None) -> bool:
    return t >= since and (until is None or t < until)


def partition_of(key: bytes, partitions: int) -> int:
    return (murmur2(key) & 0x7FFFFFFF) % partitions  # Kafka's default partitioner, as every producer here


def emptied(marks: dict) -> set[tuple[str, int]]:
    """Topic partitions retention emptied: nothing retained, records once there."""
    return {(t, p) for (t, p), (lo, hi) in marks.items() if lo > 0 and lo == hi}


def refuse_emptied(ch, marks: dict, partitions: int, subjects_sql: str, holding: str,
                   parameters: dict | None = None) -> None:
    """Refuse when retention emptied a partition (`marks`: (topic, partition) -> watermarks)
    that holds a subject with derived rows in the window (`subjects_sql` selects their
    (tenant, subject id)): none of its records are left to recompute them, and replay
    would delete them. `holding` names those subjects in the message."""
    gone = emptied(marks)
    if not gone:
        return
    subjects = ch.query(subjects_sql, parameters=parameters or {}).result_rows
    needed = {partition_of(entity_key(tenant, subject), partitions) for tenant, subject in subjects}
    for topic, p in sorted(gone):
        if p in needed:
            raise ReplayError(f"retention emptied {topic}[{p}] (offsets 0..{marks[(topic, p)][0] - 1} are gone), "
                              f"which holds {holding} since --from; replay would delete what it cannot recompute "
                              "(nothing was changed)")


# -- landing what the sink has not landed yet ------------------------------------------

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


def land_unlanded(settings: Settings, bootstrap: str, admin: AdminClient, topics: list[str],
                  timeout: float = 120) -> int:
    """Make the sink land the records of `topics` it hasn't landed yet (so an old record
    can't land after the replacement and win); returns how many there were."""
    lag = _sink_lag(bootstrap, settings.sink_group, topics)
    if not lag:
        return 0
    sink = None
    if not group_members(admin, settings.sink_group):
        from ..sink.consumer import Sink

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


def delete(ch, table: str, where: str, parameters: dict | None = None) -> int:
    """Delete the rows `where` selects (synchronously); how many there were (FINAL)."""
    n = ch.query(f"SELECT count() FROM {table} FINAL WHERE {where}", parameters=parameters).result_rows[0][0]
    if n:
        ch.command(f"DELETE FROM {table} WHERE {where}", parameters=parameters,
                   settings={"lightweight_deletes_sync": 2})
    return n


# -- writing --------------------------------------------------------------------------

class Writer:
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

    def derived(self, ch, what: str, outputs: list[tuple[str, str, list[tuple[bytes, dict]]]]) -> None:
        """Each (topic, kind, [(key, record)]) encoded and produced; once Kafka has them
        all, the same rows landed (land_delivered), so the sink's copies collapse on them."""
        for topic, kind, keyed in outputs:
            for key, record in keyed:
                self.send(topic, key, codec.encode(kind, record))
        land_delivered(ch, self.flush(what))

    def states(self, what: str, states) -> None:
        """Each worker state, (changelog topic, key, partition, state), written where its
        table recovers from."""
        for topic, key, partition, state in states:
            self.send(topic, key, json.dumps(state).encode(), partition=partition)
        self.flush(what)

    def flush(self, what: str) -> list[tuple[str, int, int, bytes]]:
        left = self.producer.flush(TIMEOUT)
        if left or self.errors:
            raise ReplayError(f"{what}: {left} records not delivered, errors: {self.errors[:3]}; run replay again")
        delivered, self.delivered = self.delivered, []
        return delivered


def land_delivered(ch, delivered: list[tuple[str, int, int, bytes]]) -> None:
    """Insert records replay produced with the sink's own steps, so the rows are there when
    replay returns; when the sink consumes the same records it inserts the same rows (same
    key and version), which the ReplacingMergeTree tables collapse."""
    batch = Batch()
    for topic, partition, offset, value in delivered:
        row = to_row(value)
        if isinstance(row, DeadLetter):  # replay encoded it itself: a bug, not bad data
            raise ReplayError(f"a derived record does not fit its table: {row.reason}")
        batch.track(topic, partition, offset)
        batch.add(row)
    insert_batch(ch, batch)


class PartitionRead:
    """A partition's records up to the marks (history.read_until), decoded: iterating
    yields (message, kind, record) for the kinds given (kind -> the field with its time)
    that have a key. `records` counts what was read, `skipped` what was not such a record,
    `first` holds the time of each topic partition's first one (what retention kept)."""

    def __init__(self, consumer: Consumer, part: dict, advance, kinds: dict[str, str]):
        self.consumer, self.part, self.advance, self.kinds = consumer, part, advance, kinds
        self.records = self.skipped = 0
        self.first: dict[tuple[str, int], int] = {}

    def __iter__(self):
        for batch in read_until(self.consumer, self.part, self.advance):
            for msg in batch:
                self.records += 1
                try:
                    kind, record = codec.decode(msg.value())
                except codec.DecodeError:
                    kind = None
                if kind not in self.kinds or msg.key() is None:
                    self.skipped += 1
                    continue
                self.first.setdefault((msg.topic(), msg.partition()), record[self.kinds[kind]])
                yield msg, kind, record


def ensure_changelog(bootstrap: str, admin: AdminClient, topic: str, partitions: int) -> None:
    """A worker table's changelog, as the worker creates it on its first start (compacted):
    replay may run before that."""
    ensure_topics(bootstrap, "", specs=[TopicSpec(topic, partitions, retention_ms=-1, compacted=True)])
    deadline = time.monotonic() + TIMEOUT
    while True:  # a topic just created takes a moment to show its partitions
        found = len(admin.list_topics(topic, timeout=TIMEOUT).topics[topic].partitions)
        if found or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    if found != partitions:
        raise ReplayError(f"{topic} has {found} partitions, the source topics {partitions}")
