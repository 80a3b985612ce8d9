"""The sink's steps, each small and testable on its own: decode a message into a row,
gather rows into a batch, insert the batch with a deduplication token.

Offsets advance only through `Batch`, and are committed by the sink loop only after
`insert_batch` returned, so a crash anywhere replays the batch instead of losing it.
"""
import hashlib
import time
from dataclasses import dataclass, field

from schemas import codec

from ..store.schema import TABLE_FOR_KIND, Table


@dataclass(frozen=True)
class Row:
    table: Table
    values: list


@dataclass(frozen=True)
class DeadLetter:
    reason: str


def to_row(data: bytes | None) -> Row | DeadLetter:
    """Decode one record and map it onto its table's columns, or say why it can't be."""
    if not data:
        return DeadLetter("empty message")
    try:
        kind, record = codec.decode(data)
    except codec.DecodeError as exc:
        return DeadLetter(f"undecodable: {exc}")
    table = TABLE_FOR_KIND.get(kind)
    if table is None:
        return DeadLetter(f"no table for record kind {kind!r}")
    if not record.get("tenant"):
        return DeadLetter("record has no tenant")
    try:  # Avro field names are the column names; recorded_at (epoch ms) fits DateTime64(3)
        return Row(table, [record[c] for c in table.column_names])
    except KeyError as exc:
        return DeadLetter(f"record kind {kind!r} lacks column {exc.args[0]!r}")


@dataclass
class Batch:
    """Rows per table plus, per (topic, partition), the offset range they came from."""
    started: float = field(default_factory=time.monotonic)
    rows: dict[str, list[list]] = field(default_factory=dict)
    tables: dict[str, Table] = field(default_factory=dict)
    ranges: dict[tuple[str, int], list[int]] = field(default_factory=dict)  # -> [first, last]
    size: int = 0

    def track(self, topic: str, partition: int, offset: int) -> None:
        span = self.ranges.setdefault((topic, partition), [offset, offset])
        span[1] = offset

    def add(self, row: Row) -> None:
        self.tables[row.table.name] = row.table
        self.rows.setdefault(row.table.name, []).append(row.values)
        self.size += 1

    def due(self, max_rows: int, max_ms: int) -> bool:
        return bool(self.ranges) and (
            self.size >= max_rows or (time.monotonic() - self.started) * 1000 >= max_ms)

    def commit_offsets(self) -> dict[tuple[str, int], int]:
        """Next offset to read per partition: one past the last message of the batch."""
        return {tp: last + 1 for tp, (_, last) in self.ranges.items()}

    def dedup_token(self, table: str) -> str:
        # The same messages give the same token, so an insert retried after ClickHouse
        # took it but the answer was lost is dropped by ClickHouse instead of doubled.
        spans = ",".join(f"{t}:{p}:{a}-{b}" for (t, p), (a, b) in sorted(self.ranges.items()))
        return hashlib.sha256(f"{table}|{spans}".encode()).hexdigest()


def insert_batch(client, batch: Batch) -> None:
    for name, rows in batch.rows.items():
        client.insert(name, rows, column_names=batch.tables[name].column_names,
                      settings={"insert_deduplication_token": batch.dedup_token(name)})
