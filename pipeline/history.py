"""What `sophra replay` and `sophra rebuild` share: reading a topic's retained history up
to the watermarks taken at start, the progress bar, the check that a consumer group is
stopped, and the embedded default's broker.

Both read with a plain consumer (partitions assigned, no group, no commits), so reading
moves no group's offsets; both refuse while the group whose work they redo has members;
and with the embedded default (no KAFKA_BOOTSTRAP_SERVERS) both start the local broker
from `<data dir>/kafka` themselves, which a running `sophra up` holds (chdb also allows
one process per data folder), so they refuse while it runs.
"""
from __future__ import annotations

import time
import uuid
from datetime import timedelta
from typing import Callable, Iterator, TextIO

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient

from sophra.settings import Settings

TIMEOUT = 30


class HistoryError(RuntimeError):
    """A precondition failed or a step could not complete; the message says what to do."""


# -- progress -------------------------------------------------------------------------

class Progress:
    """A one-line progress bar: done/total, percentage, rate and ETA, redrawn ~10x a second."""

    def __init__(self, total: int, out: TextIO | None, label: str = "replay", every: float = 0.1, width: int = 30):
        self.total, self.out, self.label, self.every, self.width = total, out, label, every, width
        self.done = 0
        self.started = self._drawn = time.monotonic()
        self._longest = 0

    def advance(self, n: int = 1) -> None:
        self.done += n
        now = time.monotonic()
        if now - self._drawn >= self.every:
            self._draw(now)

    def close(self) -> None:
        self._draw(time.monotonic(), end="\n")

    def _draw(self, now: float, end: str = "") -> None:
        self._drawn = now
        if self.out is None:
            return
        frac = min(1.0, self.done / self.total) if self.total else 1.0
        filled = int(frac * self.width)
        elapsed = max(now - self.started, 1e-9)
        rate = self.done / elapsed
        eta = (self.total - self.done) / rate if rate > 0 and self.total > self.done else 0
        line = (f"{self.label} [{'#' * filled}{'.' * (self.width - filled)}] {frac:6.1%} "
                f"{self.done}/{self.total} records  {rate:,.0f} rec/s  ETA {timedelta(seconds=round(eta))}")
        self.out.write("\r" + line.ljust(self._longest) + end)  # pad over a longer previous line
        self._longest = max(self._longest, len(line))
        self.out.flush()


# -- preconditions --------------------------------------------------------------------

def group_members(admin: AdminClient, group: str) -> list:
    """The members of a consumer group (none if the group doesn't exist)."""
    deadline = time.monotonic() + TIMEOUT
    while True:
        future = admin.describe_consumer_groups([group], request_timeout=TIMEOUT)[group]
        try:
            return list(future.result(TIMEOUT).members)
        except KafkaException as exc:
            err = exc.args[0] if exc.args else None
            if isinstance(err, KafkaError) and err.code() == KafkaError.GROUP_ID_NOT_FOUND:
                return []
            retry = isinstance(err, KafkaError) and err.code() in (
                KafkaError.COORDINATOR_LOAD_IN_PROGRESS, KafkaError.COORDINATOR_NOT_AVAILABLE,
                KafkaError.NOT_COORDINATOR)  # a broker just started, or the coordinator moved
            if not retry or time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def on_broker(settings: Settings, work: Callable[[str], object], error: type[Exception], why: str):
    """`work(bootstrap)` on the configured cluster, or on the local broker started from
    `<data dir>/kafka` and stopped at the end (a running `sophra up` holds it: `error`)."""
    if settings.kafka_bootstrap_servers:
        return work(settings.kafka_bootstrap_servers)
    from deploy.local_kafka import LocalKafka, LocalKafkaError, fetch

    fetch()
    kafka = LocalKafka(settings.data_dir / "kafka", port=settings.kafka_port)
    try:
        bootstrap = kafka.start()
    except LocalKafkaError as exc:
        raise error(f"{exc}: stop `sophra up` first ({why})") from None
    try:
        return work(bootstrap)
    finally:
        kafka.stop()


# -- reading --------------------------------------------------------------------------

def reader(bootstrap: str) -> Consumer:
    """A plain consumer for reading history: no group offsets are read or committed."""
    return Consumer({"bootstrap.servers": bootstrap, "group.id": f"sophra-history-{uuid.uuid4().hex[:8]}",
                     "enable.auto.commit": False, "enable.auto.offset.store": False,
                     "enable.partition.eof": False,
                     # Everything read is already there; a short broker-side wait keeps a
                     # fetch pending at the end of one partition from delaying the next.
                     "fetch.wait.max.ms": 20})


def watermarks(consumer: Consumer, topics: list[str]) -> dict[tuple[str, int], tuple[int, int]]:
    """(topic, partition) -> (earliest retained offset, high watermark), taken now."""
    meta = consumer.list_topics(timeout=TIMEOUT).topics
    return {(t, p): consumer.get_watermark_offsets(TopicPartition(t, p), timeout=TIMEOUT)
            for t in topics for p in sorted(meta[t].partitions)}


def read_until(consumer: Consumer, marks: dict[tuple[str, int], tuple[int, int]], advance: Callable[[int], None],
               most: int = 5000) -> Iterator[list]:
    """Every message of each (topic, partition) from offset lo up to (not including) hi, as
    `marks` gives them, in lists of at most `most`; records produced after the marks were
    taken are left out. `advance(n)` is told of each list once the caller is done with it."""
    todo = {tp: (lo, hi) for tp, (lo, hi) in marks.items() if hi > lo}
    if not todo:
        return
    consumer.assign([TopicPartition(t, p, lo) for (t, p), (lo, _) in todo.items()])
    try:
        left = sum(hi - lo for lo, hi in todo.values())
        while todo:
            # Asking for no more than what is left returns as soon as it arrived.
            got = []
            for msg in consumer.consume(num_messages=max(1, min(most, left)), timeout=0.5):
                if msg.error():
                    if msg.error().code() != KafkaError._PARTITION_EOF:
                        raise HistoryError(f"reading {msg.topic()}[{msg.partition()}]: {msg.error()}")
                    continue
                tp = (msg.topic(), msg.partition())
                if tp not in todo or msg.offset() >= todo[tp][1]:
                    continue  # arrived after the watermarks were taken
                got.append(msg)
            left -= len(got)
            if got:
                yield got
            advance(len(got))
            for tp in consumer.position([TopicPartition(t, p) for t, p in todo]):
                if tp.offset >= todo[(tp.topic, tp.partition)][1]:
                    del todo[(tp.topic, tp.partition)]
    finally:
        consumer.unassign()
