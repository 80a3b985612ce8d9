"""Write one record to its topic and answer for it: the api's single write path.

A record is acknowledged only when Kafka has it (acks=all). When the producer's queue
is full or the delivery failed, the client gets 503 with Retry-After: nothing was
stored, and a retry is safe.
"""
from pipeline.producer import Backpressure, DeliveryFailed, RecordProducer
from pipeline.topics import entity_key
from schemas import codec

from .errors import ApiError


async def send(producer: RecordProducer, topic: str, key: bytes, value: bytes | None) -> tuple[int, int]:
    """Produce an encoded record (or a tombstone); (partition, offset) once Kafka has it,
    or the 503 every write answers when it can't."""
    try:
        return await producer.send(topic, key, value)
    except (Backpressure, DeliveryFailed) as exc:
        why = "Too many writes in flight" if isinstance(exc, Backpressure) else f"Record not stored: {exc}"
        raise ApiError(503, "Service unavailable", f"{why}; retry shortly", headers={"Retry-After": "1"}) from None


async def publish(producer: RecordProducer, topic: str, kind: str, record: dict, key: str | None = None) -> None:
    """Produce `record`; its key is `<tenant>/<agent_id>` unless `key` says otherwise."""
    await send(producer, topic, key.encode() if key else entity_key(record["tenant"], record["agent_id"]),
               codec.encode(kind, record))
