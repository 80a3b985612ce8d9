"""The write path of /v1 configuration (applications, alert rules): produce the new state
(or a tombstone) to its compacted topic, then wait until this process has applied it,
so the answer and any read after it see the write."""
from pipeline.applications import ConfigRegistry
from pipeline.producer import Backpressure, DeliveryFailed, RecordProducer
from schemas import codec

from .errors import ApiError


async def write_config(producer: RecordProducer, registry: ConfigRegistry, kind: str, record_id: str,
                       record: dict | None) -> None:
    try:
        _, offset = await producer.send(registry.topic, record_id.encode(),
                                        codec.encode(kind, record) if record else None)
    except (Backpressure, DeliveryFailed) as exc:
        raise ApiError(503, "Service unavailable", f"Not stored, retry shortly: {exc}",
                       headers={"Retry-After": "1"}) from None
    await registry.caught_up(offset)
