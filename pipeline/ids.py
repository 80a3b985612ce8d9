"""Record ids: numeric, unique across api replicas, roughly time-ordered.

They must stay below 2**53 so JavaScript clients read them exactly (the reference
shows `"id": 1234`), which rules out 64-bit snowflakes. Layout, 53 bits:

    41 bits  milliseconds since 2026-01-01T00:00:00Z  (lasts until 2095)
     5 bits  node id of the api replica (SOPHRA_NODE_ID, 0-31)
     7 bits  sequence within the millisecond (128 ids/ms per node)

When a millisecond's sequence runs out, the generator borrows the next millisecond
instead of sleeping, so it never blocks; the clock is never allowed to go backwards.
"""
import threading
import time

EPOCH_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
NODE_BITS = 5
SEQ_BITS = 7
MAX_NODE = (1 << NODE_BITS) - 1
_SEQ_MASK = (1 << SEQ_BITS) - 1


class IdGenerator:
    def __init__(self, node_id: int, clock=time.time_ns):
        if not 0 <= node_id <= MAX_NODE:
            raise ValueError(f"node_id must be 0..{MAX_NODE}, got {node_id}")
        self._node = node_id
        self._clock = clock
        self._lock = threading.Lock()
        self._last_ms = 0
        self._seq = 0

    def next_id(self) -> int:
        now = self._clock() // 1_000_000 - EPOCH_MS
        with self._lock:
            if now > self._last_ms:
                self._last_ms, self._seq = now, 0
            elif self._seq < _SEQ_MASK:
                self._seq += 1
            else:  # sequence exhausted (or clock stepped back): borrow the next millisecond
                self._last_ms, self._seq = self._last_ms + 1, 0
            return (self._last_ms << (NODE_BITS + SEQ_BITS)) | (self._node << SEQ_BITS) | self._seq


def id_time_ms(record_id: int) -> int:
    """Epoch milliseconds encoded in an id (at or after the moment it was made)."""
    return (record_id >> (NODE_BITS + SEQ_BITS)) + EPOCH_MS
