"""Derived integers fit their Avro field and their ClickHouse column: one home for the clamp.

The worker sums and counts (ARI's tokens_saved, snapshot counts, revisions). A crafted
series can push a sum past what an Avro `long` or a ClickHouse `UInt8` holds; encoding
such a record fails, and a record that can't be encoded must not stop a partition. So
every derived record goes through `fit` before it is encoded: each integer field is
clamped to the narrower of its Avro type and its ClickHouse column (both read from the
declarations, schemas/*.avsc and pipeline/store/schema.py, so they can't drift).
"""
import logging

from schemas import codec

from .store.schema import TABLE_FOR_KIND

log = logging.getLogger("sophra.bounds")

AVRO = {"int": (-2**31, 2**31 - 1), "long": (-2**63, 2**63 - 1)}
CLICKHOUSE = {f"{s}Int{b}": ((0, 2**b - 1) if s == "U" else (-2**(b - 1), 2**(b - 1) - 1))
              for s in ("", "U") for b in (8, 16, 32, 64)}
LONG_MAX = AVRO["long"][1]


def _avro_int(field_type) -> str | None:
    types = field_type if isinstance(field_type, list) else [field_type]
    found = [t for t in types if isinstance(t, str) and t in AVRO]
    return found[0] if found else None


def _column(ch_type: str) -> str:
    for wrapper in ("Nullable(", "LowCardinality("):
        if ch_type.startswith(wrapper):
            ch_type = ch_type[len(wrapper):-1]
    return ch_type


def _bounds(kind: str) -> dict[str, tuple[int, int]]:
    columns = dict(TABLE_FOR_KIND[kind].columns) if kind in TABLE_FOR_KIND else {}
    out = {}
    for field in codec.current_schema(kind)["fields"]:
        avro = _avro_int(field["type"])
        if avro is None:
            continue
        lo, hi = AVRO[avro]
        ch = CLICKHOUSE.get(_column(columns.get(field["name"], "")))
        if ch:
            lo, hi = max(lo, ch[0]), min(hi, ch[1])
        out[field["name"]] = (lo, hi)
    return out


BOUNDS = {kind: _bounds(kind) for kind in codec.kinds()}


def clamp(value: int, lo: int = -LONG_MAX - 1, hi: int = LONG_MAX) -> int:
    return lo if value < lo else hi if value > hi else value


def fit(kind: str, record: dict) -> dict:
    """`record` with every integer field clamped to its bounds (a warning names each clamp)."""
    for name, (lo, hi) in BOUNDS.get(kind, {}).items():
        value = record.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and not lo <= value <= hi:
            log.warning("%s.%s = %d does not fit [%d, %d]: clamped", kind, name, value, lo, hi)
            record = {**record, name: clamp(value, lo, hi)}
    return record
