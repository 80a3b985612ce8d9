"""Where the worker's derived records go: their topic, or its dead-letter topic.

Every derived record is clamped to its types (pipeline/bounds.py) and encoded here. One
that still can't be encoded (a state that a bug or a crafted history made impossible) is
dead-lettered with its reason, and the batch goes on: a record that can't be written
must not stop every other subject of its partition, forever. The dead letter is the
record as JSON (it has no Avro form), headers `reason` and `kind`.

Source records whose processing raised go to their own topic's dead-letter topic, with
the same headers, by `dead_letter`.
"""
import json
import logging

from schemas import codec

from ..bounds import fit
from ..topics import dlq, TopicSpec

log = logging.getLogger("sophra.worker")


class Outlet:
    def __init__(self, app, settings, spec: TopicSpec, raw: dict):
        self.topic = app.topic(settings.topic(spec.name), **raw)
        self.dead = app.topic(settings.topic(dlq(spec).name), **raw)
        self.dead_letters = 0

    async def send(self, key: bytes, kind: str, record: dict):
        """Send now (force) and return the delivery future, to be awaited with the batch's others."""
        try:
            value = codec.encode(kind, fit(kind, record))
        except codec.EncodeError as exc:
            log.error("dead letter: %s for %r not encodable: %s", kind, key, exc)
            self.dead_letters += 1
            return await self.dead.send(key=key, value=json.dumps(record, default=str).encode(), force=True,
                                        headers={"reason": str(exc).encode(), "kind": kind.encode()})
        return await self.topic.send(key=key, value=value, force=True)

    async def dead_letter(self, key: bytes | None, value: bytes, reason: str, source: str):
        """A source record this worker could not apply, to its topic's dead-letter topic."""
        log.error("dead letter %s: %s", source, reason)
        self.dead_letters += 1
        return await self.dead.send(key=key, value=value, force=True,
                                    headers={"reason": reason.encode(), "source": source.encode()})
