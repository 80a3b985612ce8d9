"""The write path of /v1 configuration (applications, alert rules): produce the new state
(or a tombstone) to its compacted topic, then wait until this process has applied it,
so the answer and any read after it see the write."""
from pipeline.applications import ConfigRegistry
from pipeline.producer import RecordProducer
from schemas import codec

from .publish import send


async def write_config(producer: RecordProducer, registry: ConfigRegistry, kind: str, record_id: str,
                       record: dict | None) -> None:
    _, offset = await send(producer, registry.topic, record_id.encode(), codec.encode(kind, record) if record else None)
    await registry.caught_up(offset)
