"""A single-partition topic kept in memory by every api process, like a Kafka Streams
KTable: the home of configuration that must be consistent across replicas (API keys,
applications). One partition gives every change one order; `caught_up(offset)` gives
the writer read-your-writes: it waits until its own record has been applied locally.
"""
import asyncio
import threading
import time
from collections.abc import Callable

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition


class TopicTable:
    """Tails partition 0 of `topic` from its start and hands each record to `apply(key, value)`.

    `value` is None for a tombstone. `apply` runs on the reader thread, one record at a
    time, in log order.
    """

    def __init__(self, bootstrap: str, topic: str, apply: Callable[[bytes, bytes | None], None]):
        self.topic, self._apply = topic, apply
        self._consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "sophra-table-reader",
                                   "enable.auto.commit": False, "enable.partition.eof": False})
        self._consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        self._position = 0  # next offset to apply
        self._waiters: list[tuple[int, asyncio.AbstractEventLoop, asyncio.Future]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"table-{topic}", daemon=True)

    def start(self, timeout: float = 30) -> "TopicTable":
        """Replay the topic up to its current end before the api serves anything."""
        high = self._end_offset(timeout)
        while self._position < high:
            for msg in self._consumer.consume(500, timeout=0.2):
                self._take(msg)
        self._thread.start()
        return self

    def _end_offset(self, timeout: float) -> int:
        # A topic created a moment ago may not have a leader yet: retry until it does.
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self._consumer.get_watermark_offsets(TopicPartition(self.topic, 0), timeout=5)[1]
            except KafkaException:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._consumer.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            for msg in self._consumer.consume(500, timeout=0.1):
                self._take(msg)

    def _take(self, msg) -> None:
        if msg.error():
            return
        self._apply(msg.key(), msg.value())
        with self._lock:
            self._position = msg.offset() + 1
            if not self._waiters:  # the replay at start, and most records after it
                return
            ready = [w for w in self._waiters if w[0] < self._position]
            self._waiters = [w for w in self._waiters if w[0] >= self._position]
        for _, loop, fut in ready:
            loop.call_soon_threadsafe(lambda f=fut: f.done() or f.set_result(None))

    def wait_applied(self, offset: int, timeout: float) -> bool:
        """For a command without an event loop: wait until the record at `offset` has been applied."""
        deadline = time.monotonic() + timeout
        while self._position <= offset:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return True

    async def caught_up(self, offset: int, timeout: float = 10) -> None:
        """Wait until the record at `offset` has been applied."""
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        with self._lock:
            if offset < self._position:
                return
            self._waiters.append((offset, loop, fut))
        await asyncio.wait_for(fut, timeout)


class PromptTopicTable(TopicTable):
    """A TopicTable whose reader applies a record as soon as it arrives: `poll` returns on
    the first one (`consume(n)` waits to fill its batch or time out), then whatever else is
    waiting is taken at once. For figures the api answers with (quota sums, budget counts)."""

    def _run(self) -> None:
        while not self._stop.is_set():
            msg = self._consumer.poll(0.1)
            if msg is not None:
                self._take(msg)
                for msg in self._consumer.consume(500, timeout=0):
                    self._take(msg)
