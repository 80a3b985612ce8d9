"""The sink's steps, each small and testable on its own: decode a message into its rows,
gather rows into a batch, insert the batch with a deduplication token.

Most record kinds are one row of their table (`to_row`); an `app_metric_batch` record
is one row per point (`to_rows` handles both). Tables that feed rollups (app_metrics,
agent_vitals) also record the Kafka partition and offset each row came from, so the
sink can skip records it already landed (see consumer.py). Offsets advance only through `Batch`, and
are committed by the sink loop only after `insert_batch` returned, so a crash anywhere
replays the batch instead of losing it.
"""
import hashlib
import time
from dataclasses import dataclass, field

from schemas import codec

from ..store.schema import APP_METRICS, TABLE_FOR_KIND, Table


@dataclass(frozen=True)
class Row:
    table: Table
    values: list


@dataclass(frozen=True)
class Rows:
    """Several rows of one table, from one record."""
    table: Table
    values: list[list]


@dataclass(frozen=True)
class DeadLetter:
    reason: str


def _decode(data: bytes | None) -> tuple[str, dict, Table] | DeadLetter:
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
    return kind, record, table


def _metric_points(record: dict, partition: int, offset: int) -> list[list]:
    """One app_metrics row per point, columns in APP_METRICS order; idx is the point's
    position in its batch, so (batch_id, idx) names it."""
    tenant, app, batch = record["tenant"], record["application_id"], record["id"]
    return [[tenant, app, p["metric"], p["timestamp"], p["value"], batch, i, partition, offset]
            for i, p in enumerate(record["points"])]


# Record kinds that are several rows, with the function that makes them from a record
# and its Kafka source (partition, offset).
EXPLODE = {APP_METRICS.record_kind: _metric_points}


# The partition of rows that did not come from a Kafka record (the landed views ignore it).
NO_PARTITION = 2**32 - 1


def to_rows(data: bytes | None, partition: int, offset: int) -> Rows | DeadLetter:
    """Decode one record from (partition, offset) and map it onto its table's rows, or
    say why it can't be."""
    decoded = _decode(data)
    if isinstance(decoded, DeadLetter):
        return decoded
    kind, record, table = decoded
    explode = EXPLODE.get(kind)
    try:
        if explode is not None:
            return Rows(table, explode(record, partition, offset))
        return Rows(table, [_row(record, table, partition, offset)])
    except KeyError as exc:
        return DeadLetter(f"record kind {kind!r} lacks column {exc.args[0]!r}")


def _row(record: dict, table: Table, partition: int, offset: int) -> list:
    # Avro field names are the column names; epoch ms fits DateTime64(3)
    source = {"kafka_partition": partition, "kafka_offset": offset}
    return [record[c] if c in record else source[c] for c in table.column_names]


def to_row(data: bytes | None) -> Row | DeadLetter:
    """The single row of a one-row record kind that does not come from a Kafka record of
    its own (replay lands derived records with it)."""
    decoded = _decode(data)
    if isinstance(decoded, DeadLetter):
        return decoded
    kind, record, table = decoded
    if kind in EXPLODE:
        return DeadLetter(f"record kind {kind!r} is several rows: use to_rows")
    try:
        return Row(table, _row(record, table, NO_PARTITION, 0))
    except KeyError as exc:
        return DeadLetter(f"record kind {kind!r} lacks column {exc.args[0]!r}")


def dead_letter(dlq_topic: str, msg, reason: str) -> dict:
    """What a record that can't be landed becomes on its dead-letter topic (produce keyword
    arguments): the record as it was, with why and where it came from."""
    return {"topic": dlq_topic, "key": msg.key(), "value": msg.value(),
            "headers": [("reason", reason.encode()),
                        ("source", f"{msg.topic()}/{msg.partition()}/{msg.offset()}".encode())]}


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

    def add(self, row: Row | Rows) -> None:
        self.tables[row.table.name] = row.table
        into = self.rows.setdefault(row.table.name, [])
        if isinstance(row, Rows):
            into.extend(row.values)
            self.size += len(row.values)
        else:
            into.append(row.values)
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


def insert_batch(client, batch: Batch, settings: dict | None = None) -> None:
    """Insert the batch's rows, table by table; `settings`: more ClickHouse settings for
    each insert (rebuild's parallel view processing)."""
    for name, rows in batch.rows.items():
        if not rows:
            continue
        # The token also deduplicates what the table's materialized views derive from the
        # insert (the app_metrics rollups): a retried insert must not count twice there.
        table = batch.tables[name]
        # The declared types (schema.py, tested equal to the migrated tables) spare
        # clickhouse-connect a DESCRIBE TABLE before every insert.
        client.insert(name, rows, column_names=table.column_names, column_type_names=[t for _, t in table.columns],
                      settings={"insert_deduplication_token": batch.dedup_token(name),
                                "deduplicate_blocks_in_dependent_materialized_views": 1, **(settings or {})})
