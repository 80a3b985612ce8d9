"""The api's Kafka producer: idempotent, acks=all, batched, never blocking the event loop.

`send` enqueues into librdkafka (non-blocking) and awaits the delivery report, so the
api acknowledges a record only once every in-sync replica has it; there is no flush
per request. A daemon thread serves delivery callbacks and hands results back to the
event loop. A full local queue raises `Backpressure` instead of waiting.
"""
import asyncio
import threading
import time
from typing import Callable

from confluent_kafka import KafkaException, Producer


class Backpressure(Exception):
    """The producer's queue is full: the caller should answer 503 and let the client retry."""


class DeliveryFailed(Exception):
    pass


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
        **extra,
    }


class RecordProducer:
    def __init__(self, bootstrap: str, *, observe: Callable[[str, float], None] | None = None, **extra):
        self._producer = Producer(producer_config(bootstrap, **extra))
        # Told ("ok" | "failed", seconds from produce to the outcome) for every send.
        self._observe = observe or (lambda outcome, seconds: None)
        self._running = True
        self._poller = threading.Thread(target=self._poll, name="kafka-delivery", daemon=True)
        self._poller.start()

    def _poll(self) -> None:
        while self._running:
            self._producer.poll(0.05)

    async def send(self, topic: str, key: bytes, value: bytes) -> tuple[int, int]:
        """Produce one record; returns (partition, offset) once the broker acknowledged it."""
        loop = asyncio.get_running_loop()
        done = loop.create_future()

        def on_delivery(err, msg):
            loop.call_soon_threadsafe(_settle, done, err, msg)

        started = time.perf_counter()
        outcome = "failed"
        try:
            self._producer.produce(topic, value=value, key=key, on_delivery=on_delivery)
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
        return left


def _settle(fut: asyncio.Future, err, msg) -> None:
    if fut.done():
        return
    if err is not None:
        fut.set_exception(DeliveryFailed(str(err)))
    else:
        fut.set_result((msg.partition(), msg.offset()))
