"""The api's Kafka producer: idempotent, acks=all, batched, never blocking the event loop.

`send` enqueues into librdkafka (non-blocking) and awaits the delivery report, so the
api acknowledges a record only once every in-sync replica has it; there is no flush
per request. A daemon thread serves delivery callbacks and hands the results of each
poll back to the event loop in one call (a call_soon_threadsafe per record would wake
the loop once per record). A full local queue raises `Backpressure` instead of waiting.

While every broker is down (librdkafka reports _ALL_BROKERS_DOWN) `send` refuses at once
with `BrokerUnavailable`: nothing is enqueued, so the caller's 503 is certain ("not
stored") and immediate, instead of a request waiting up to delivery.timeout.ms (30 s)
for a broker that is gone. The delivery thread asks for metadata every PROBE_S while
down and lifts the refusal as soon as a broker answers. Records already handed to
librdkafka when the broker died still wait for their delivery report: answering those
early could tell a client "not stored" about a record that is then stored.
"""
import asyncio
import threading
import time
from collections import deque
from functools import partial
from typing import Callable

from confluent_kafka import KafkaError, KafkaException, Producer


class Backpressure(Exception):
    """The producer's queue is full: the caller should answer 503 and let the client retry."""


class DeliveryFailed(Exception):
    pass


class BrokerUnavailable(DeliveryFailed):
    """No broker is reachable: the record was not enqueued."""


PROBE_S = 0.5


def producer_config(bootstrap: str, **extra) -> dict:
    return {
        "bootstrap.servers": bootstrap,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
        "compression.type": "lz4",
        # murmur2 matches the Java client and aiokafka (the worker), so one key maps to the
        # same partition whoever produces it.
        "partitioner": "murmur2_random",
        "delivery.timeout.ms": 30_000,
        # a broker that comes back is found within a second, not after a 10 s backoff
        "reconnect.backoff.max.ms": 1000,
        **extra,
    }


class RecordProducer:
    def __init__(self, bootstrap: str, *, observe: Callable[[str, float], None] | None = None, **extra):
        self.down_since: float | None = None  # monotonic time all brokers went down, while they are
        self._producer = Producer(producer_config(bootstrap, error_cb=self._on_error, **extra))
        # Told ("ok" | "failed", seconds from produce to the outcome) for every send.
        self._observe = observe or (lambda outcome, seconds: None)
        # (future, err, msg) of delivered records, from whichever thread served the report
        # (the poller, or close()'s flush); a deque, so taking and adding need no lock.
        self._reports: deque = deque()
        self._running = True
        self._poller = threading.Thread(target=self._poll, name="kafka-delivery", daemon=True)
        self._poller.start()

    def _on_error(self, err: KafkaError) -> None:
        if err.code() == KafkaError._ALL_BROKERS_DOWN and self.down_since is None:
            self.down_since = time.monotonic()

    def _delivered(self, done: asyncio.Future, err, msg) -> None:
        self._reports.append((done, err, msg))

    def _hand_over(self) -> None:
        """Settle every report taken so far, one loop wake-up per event loop."""
        popleft = self._reports.popleft
        by_loop: dict = {}
        while True:
            try:
                report = popleft()
            except IndexError:
                break
            by_loop.setdefault(report[0].get_loop(), []).append(report)
        for loop, batch in by_loop.items():
            try:
                loop.call_soon_threadsafe(_settle_all, batch)
            except RuntimeError:  # that loop is closed: nobody waits for these any more
                pass

    def _poll(self) -> None:
        probed = 0.0
        while self._running:
            self._producer.poll(0.05)
            if self._reports:
                self._hand_over()
            if self.down_since is not None and time.monotonic() - probed >= PROBE_S:
                probed = time.monotonic()
                try:
                    self._producer.list_topics(timeout=PROBE_S)
                    self.down_since = None  # a broker answered
                except KafkaException:
                    pass

    async def send(self, topic: str, key: bytes, value: bytes) -> tuple[int, int]:
        """Produce one record; returns (partition, offset) once the broker acknowledged it."""
        if self.down_since is not None:
            raise BrokerUnavailable(f"Kafka unreachable for {time.monotonic() - self.down_since:.0f}s")
        done = asyncio.get_running_loop().create_future()
        started = time.perf_counter()
        outcome = "failed"
        try:
            self._producer.produce(topic, value=value, key=key, on_delivery=partial(self._delivered, done))
            at = await done
            outcome = "ok"
            return at
        except BufferError as exc:
            raise Backpressure(str(exc)) from exc
        except KafkaException as exc:
            raise DeliveryFailed(str(exc)) from exc
        finally:
            self._observe(outcome, time.perf_counter() - started)

    def close(self, timeout: float = 30) -> int:
        """Deliver what is queued, then stop; returns the number of records left undelivered."""
        left = self._producer.flush(timeout)
        self._running = False
        self._poller.join(timeout=1)
        self._hand_over()  # what flush served after the poller's last look
        return left


def _settle_all(reports: list) -> None:
    for fut, err, msg in reports:
        if fut.done():  # its request was cancelled
            continue
        if err is not None:
            fut.set_exception(DeliveryFailed(str(err)))
        else:
            fut.set_result((msg.partition(), msg.offset()))
