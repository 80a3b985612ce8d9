"""The ClickHouse sink: consume every record topic, insert in batches, then commit.

A batch closes at `sink_batch_rows` rows or `sink_batch_ms` milliseconds. Its order of
work is fixed: insert into ClickHouse, make sure its dead letters are on the DLQ topic
(each acknowledged by Kafka; a failed one is produced again), and only then commit the
offsets. The insert runs on a thread of its own (chdb releases the GIL while it works)
while the next batch is consumed and decoded; at most one insert is in flight, and its
batch is committed, from the consumer's thread, before the next one is handed over, so
commits stay in order and never run ahead of what ClickHouse holds. A batch that is due
while an insert runs keeps growing until that insert ends (or it is full). Each step is
retried with backoff (0.1 s doubling to 10 s) inside the loop. A sink that could not get
a step through for `sink_give_up_s` (SOPHRA_SINK_GIVE_UP_S, 300 s by default) gives up:
it records why in `failed` and its thread ends, and a process running it exits non-zero
(sophra/cli.py) rather than acknowledge writes that nothing lands. A commit refused because the group moved on (rebalance) is dropped: the
rows are in ClickHouse and the records go to the sink that now holds the partition,
which skips or collapses them (below). A crash at any point re-reads the uncommitted
messages; the dedup token and the ReplacingMergeTree tables (keyed by record id) keep
that from doubling rows.

Application metrics and agent vitals are also summed by rollups that a re-read batch
would count twice (a merge can't take a point back out of a sum). For their topics the
sink therefore skips records it already landed: on every partition assignment it reads,
per partition, the highest offset whose rows are in ClickHouse (`app_metrics_landed`,
`agent_vitals_landed`, written by the same insert as the rows) and drops re-read
records at or below it.
"""
import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from sophra.settings import Settings

from ..producer import producer_config
from ..store.clickhouse import connect
from ..topics import AGENT_VITALS, APP_METRICS, RECORD_TOPICS, dlq
from .steps import Batch, DeadLetter, dead_letter, insert_batch, to_rows

log = logging.getLogger("sophra.sink")

# A commit refused for these means this sink no longer holds the partitions: not retried.
_MOVED_ON = {KafkaError.ILLEGAL_GENERATION, KafkaError.UNKNOWN_MEMBER_ID, KafkaError.REBALANCE_IN_PROGRESS,
             KafkaError._ASSIGNMENT_LOST}


class SinkStalled(RuntimeError):
    """A step of the sink could not get through within its give-up time."""


class Sink:
    DLQ_DELIVERY_TIMEOUT_MS = 10_000  # one attempt at a dead letter; a failed one is produced again

    def __init__(self, settings: Settings, bootstrap: str):
        self.settings = settings
        self.bootstrap = bootstrap
        self.dlq_topic = {settings.topic(t.name): settings.topic(dlq(t).name) for t in RECORD_TOPICS}
        # Topics whose rows feed rollups -> the table of their highest landed offsets.
        self.landed_tables = {settings.topic(APP_METRICS.name): "app_metrics_landed",
                              settings.topic(AGENT_VITALS.name): "agent_vitals_landed"}
        self.landed: dict[str, dict[int, int]] = {}  # topic -> partition -> highest offset already in ClickHouse
        self.inserted_rows = 0
        self.dead_letters = 0
        self.skipped = 0  # records re-read after a crash whose rows had already landed
        self._stop = threading.Event()
        self.ready = threading.Event()  # set once the group gave this sink its partitions
        self._thread: threading.Thread | None = None
        self._batch = Batch()
        self._client = None  # the consumer thread's (landed offsets)
        self._insert_client = None  # the insert thread's (clients are not shared between threads)
        self._inserter: ThreadPoolExecutor | None = None
        self._pending: tuple[Batch, list[dict], Future] | None = None  # the batch being inserted
        self._consumer: Consumer | None = None
        self._dlq_producer = None
        self._letters: list[dict] = []  # this batch's dead letters and their delivery state
        self.failed: str | None = None  # why the sink gave up, once it did
        self.letter_failures = 0  # dead-letter deliveries Kafka refused (each produced again)

    # -- lifecycle -------------------------------------------------------------------
    def start(self) -> "Sink":
        self._thread = threading.Thread(target=self.run, name="clickhouse-sink", daemon=True)
        self._thread.start()
        return self

    def wait_ready(self, timeout: float = 60) -> bool:
        """Block until the sink holds partitions (a fresh group takes seconds to form)."""
        deadline = time.monotonic() + timeout
        while not self.ready.wait(0.05):
            if time.monotonic() > deadline or not (self._thread and self._thread.is_alive()):
                return False
        return True

    @property
    def alive(self) -> bool:
        return bool(self._thread and self._thread.is_alive())

    def stop(self, timeout: float = 30) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout)

    def run(self) -> None:
        from confluent_kafka import Producer

        self._client = connect(self.settings.clickhouse_dsn, self.settings.clickhouse_database)
        self._insert_client = connect(self.settings.clickhouse_dsn, self.settings.clickhouse_database)
        self._inserter = ThreadPoolExecutor(max_workers=1, thread_name_prefix="clickhouse-sink-insert")
        self._dlq_producer = Producer(producer_config(self.bootstrap,
                                                      **{"delivery.timeout.ms": self.DLQ_DELIVERY_TIMEOUT_MS}))
        self._consumer = Consumer({
            "bootstrap.servers": self.bootstrap,
            "group.id": self.settings.sink_group,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "enable.partition.eof": False,
        })
        # Before partitions move to another sink, land and commit what we hold of them.
        self._consumer.subscribe(list(self.dlq_topic), on_assign=self._on_assign,
                                 on_revoke=lambda c, parts: self._flush())
        try:
            while not self._stop.is_set():
                for msg in self._consumer.consume(num_messages=1000, timeout=0.05):
                    self._take(msg)
                    if self._batch.size >= self.settings.sink_batch_rows:  # one record can be 10,000 rows
                        self._hand_off()
                if self._pending and self._pending[2].done():
                    self._settle()
                # While an insert runs the batch keeps growing (up to sink_batch_rows): when
                # the sink is behind, its inserts get bigger instead of queueing up.
                if self._pending is None and self._batch.due(self.settings.sink_batch_rows,
                                                             self.settings.sink_batch_ms):
                    self._hand_off()
            self._flush()
        except Exception as exc:
            self.failed = f"{type(exc).__name__}: {exc}"
            log.critical("the ClickHouse sink gives up: %s", self.failed)
            self._stop.set()  # an insert still retrying gives up within 5 s
        finally:
            self._inserter.shutdown(wait=True)
            try:
                self._consumer.close()
            except Exception as exc:  # e.g. the broker is gone: nothing is committed on close anyway
                log.warning("closing the sink's consumer: %s", exc)
            self._dlq_producer.flush(10)

    def _on_assign(self, consumer, partitions) -> None:
        for topic, table in self.landed_tables.items():
            mine = [tp.partition for tp in partitions if tp.topic == topic]
            if mine:
                self.landed[topic] = self._landed_offsets(consumer, topic, table, mine)
        self.ready.set()

    def _landed_offsets(self, consumer, topic: str, table: str, partitions: list[int]) -> dict[int, int]:
        """Highest landed offset per partition of `topic`, read before consuming them."""
        delay = 0.1
        while True:
            try:
                rows = self._client.query(
                    f"SELECT partition, max(offset) FROM {table} GROUP BY partition").result_rows
                break
            except Exception as exc:  # ClickHouse down: consuming now could double-count
                if self._stop.is_set():
                    raise
                log.warning("reading landed offsets failed, retrying in %.1fs: %s", delay, exc)
                time.sleep(delay)
                delay = min(delay * 2, 10)
        landed = {}
        for partition, offset in rows:
            if partition not in partitions:
                continue
            try:  # an offset the partition never reached: the topic was re-created, forget it
                _, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
            except Exception as exc:
                log.warning("no end offset for %s[%d], keeping landed offset %d: %s", topic, partition, offset, exc)
                high = offset + 1
            if offset >= high:
                log.warning("%s[%d] ends at %d but offset %d was landed: topic re-created? not skipping",
                            topic, partition, high, offset)
                continue
            landed[partition] = offset
        return landed

    # -- steps -----------------------------------------------------------------------
    def _take(self, msg) -> None:
        if msg.error():
            if msg.error().code() != KafkaError._PARTITION_EOF:
                log.warning("consume error: %s", msg.error())
            return
        self._batch.track(msg.topic(), msg.partition(), msg.offset())
        landed = self.landed.get(msg.topic())
        if landed is not None and msg.offset() <= landed.get(msg.partition(), -1):
            self.skipped += 1  # its rows are in ClickHouse: committing past it is all that is left
            return
        result = to_rows(msg.value(), msg.partition(), msg.offset())
        if isinstance(result, DeadLetter):
            self._dead_letter(msg, result.reason)
        else:
            self._batch.add(result)

    def _dead_letter(self, msg, reason: str) -> None:
        log.warning("dead letter %s[%d]@%d: %s", msg.topic(), msg.partition(), msg.offset(), reason)
        letter = {**dead_letter(self.dlq_topic[msg.topic()], msg, reason), "state": ""}
        self._letters.append(letter)
        self._produce_letter(letter)
        self.dead_letters += 1

    def _produce_letter(self, letter: dict) -> None:
        def done(err, _msg):
            letter["state"] = f"failed: {err}" if err is not None else "delivered"
            self.letter_failures += err is not None

        letter["state"] = "pending"
        self._dlq_producer.produce(letter["topic"], value=letter["value"], key=letter["key"],
                                   headers=letter["headers"], on_delivery=done)

    def _deliver_letters(self, letters: list[dict]) -> None:
        """Every dead letter of the batch acknowledged by Kafka, or raise (and be retried)."""
        for letter in letters:
            if letter["state"].startswith("failed"):
                self._produce_letter(letter)
        self._dlq_producer.flush(self.DLQ_DELIVERY_TIMEOUT_MS / 1000 + 1)
        left = [letter["state"] for letter in letters if letter["state"] != "delivered"]
        if left:
            raise RuntimeError(f"{len(left)} dead letters not acknowledged by Kafka ({left[0]}); not committing")

    def _commit(self, batch: Batch) -> None:
        offsets = [TopicPartition(t, p, o) for (t, p), o in batch.commit_offsets().items()]
        try:
            self._consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            err = exc.args[0] if exc.args else None
            if not (isinstance(err, KafkaError) and err.code() in _MOVED_ON):
                raise
            log.warning("commit dropped, the partitions moved to another member: %s", err)

    @property
    def uncommitted_rows(self) -> int:
        """Rows taken from Kafka whose offsets are not committed yet (building or inserting)."""
        return self._batch.size + (self._pending[0].size if self._pending else 0)

    def _hand_off(self) -> None:
        """Start the batch's insert on the insert thread, once the one before is committed."""
        batch = self._batch
        if not batch.ranges:
            return
        self._settle()
        insert = self._inserter.submit(self._retry, f"insert of {batch.size} rows",
                                       lambda: insert_batch(self._insert_client, batch))
        self._pending = (batch, self._letters, insert)
        self._batch, self._letters = Batch(), []

    def _settle(self) -> None:
        """Wait for the insert in flight, then deliver its batch's dead letters and commit it."""
        if self._pending is None:
            return
        batch, letters, insert = self._pending
        insert.result()  # raises SinkStalled if the insert gave up
        self._retry("dead letters", lambda: self._deliver_letters(letters))
        self._retry("commit", lambda: self._commit(batch))
        self.inserted_rows += batch.size
        self._pending = None

    def _flush(self) -> None:
        """Land and commit everything taken so far (before a revoke, and on stop)."""
        self._hand_off()
        self._settle()

    def _retry(self, what: str, step) -> None:
        """Run `step` until it succeeds, with backoff; raise SinkStalled after the give-up time
        (or, once the sink is stopping, after 5 s: a shutdown doesn't wait on a dead store)."""
        delay, first = 0.1, time.monotonic()
        while True:
            try:
                return step()
            except Exception as exc:  # ClickHouse or Kafka down or busy: keep the batch, try again
                stalled = time.monotonic() - first
                if stalled >= self.settings.sink_give_up_s or (self._stop.is_set() and stalled > 5):
                    raise SinkStalled(f"{what} failed for {stalled:.0f}s: {exc}") from exc
                log.warning("%s failed, retrying in %.1fs: %s", what, delay, exc)
                time.sleep(min(delay, max(0.05, self.settings.sink_give_up_s - stalled)))
                delay = min(delay * 2, 10)
