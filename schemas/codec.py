"""Avro codec for Sophra's Kafka records.

Wire format is Avro *single-object encoding* (Avro spec, "Single object encoding"):

    C3 01 | 8-byte little-endian CRC-64-AVRO fingerprint of the writer schema's
          | Parsing Canonical Form | Avro binary body

Each record kind is one ``schemas/<kind>.avsc`` (the current schema). Every version
ever released is kept verbatim in ``schemas/history/<kind>/<fingerprint>.avsc`` so
``decode`` can read old data and resolve it to the current schema (new fields get
their defaults). Timestamps are plain ``long`` epoch-ms fields without the
``timestamp-millis`` logicalType, so decode yields ints, never datetimes.

Everything is parsed once at import; ``encode``/``decode`` only do dict lookups,
a cheap type check and fastavro's (C-accelerated) schemaless writer/reader.
"""

from __future__ import annotations

import copy
import io
import json
from pathlib import Path
from typing import Any, Callable

from fastavro import parse_schema, schemaless_reader, schemaless_writer
from fastavro.schema import to_parsing_canonical_form
from fastavro.validation import validate

__all__ = [
    "EncodeError", "DecodeError", "Registry", "encode", "decode", "kinds",
    "current_schema", "fingerprint", "history", "rabin_fingerprint",
    "schema_fingerprint", "history_name", "SCHEMA_DIR", "MARKER",
]

SCHEMA_DIR = Path(__file__).resolve().parent
MARKER = b"\xc3\x01"
HEADER_LEN = len(MARKER) + 8


class EncodeError(ValueError):
    """The record does not match the kind's current schema (or the kind is unknown)."""


class DecodeError(ValueError):
    """The bytes are not a readable single-object-encoded Sophra record."""


# --- CRC-64-AVRO (Rabin) fingerprint, exactly as in the Avro spec -------------------

EMPTY = 0xC15D213AA4D7A795


def _fp_table() -> list[int]:
    table = []
    for i in range(256):
        fp = i
        for _ in range(8):
            fp = (fp >> 1) ^ (EMPTY & -(fp & 1))  # -(bit) is all-ones or 0
        table.append(fp)
    return table


_FP_TABLE = _fp_table()


def rabin_fingerprint(data: bytes) -> int:
    """CRC-64-AVRO of ``data`` as an unsigned 64-bit int (Java's value & 2**64-1)."""
    fp = EMPTY
    for b in data:
        fp = (fp >> 8) ^ _FP_TABLE[(fp ^ b) & 0xFF]
    return fp


def schema_fingerprint(schema: Any) -> int:
    """Fingerprint of a schema's Parsing Canonical Form (docs/defaults/aliases excluded)."""
    return rabin_fingerprint(to_parsing_canonical_form(schema).encode("utf-8"))


def history_name(fp: int) -> str:
    """File name of a historical version: the fingerprint as 16 lowercase hex digits."""
    return f"{fp:016x}.avsc"


# --- Cheap per-field type checks for encode ------------------------------------------
# fastavro's writer silently coerces some wrong values (e.g. floats into longs) and its
# errors rarely name the field, so encode checks each field first with these predicates.

def _is_int(lo: int, hi: int) -> Callable[[Any], bool]:
    return lambda v: isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi


_PRIMITIVE_CHECKS: dict[str, Callable[[Any], bool]] = {
    "null": lambda v: v is None,
    "boolean": lambda v: isinstance(v, bool),
    "int": _is_int(-(2**31), 2**31 - 1),
    "long": _is_int(-(2**63), 2**63 - 1),
    "float": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "double": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "string": lambda v: isinstance(v, str),
    "bytes": lambda v: isinstance(v, (bytes, bytearray)),
}
PRIMITIVES = frozenset(_PRIMITIVE_CHECKS)


def _predicate(t: Any) -> Callable[[Any], bool]:
    if isinstance(t, list):
        preds = tuple(_predicate(b) for b in t)
        return lambda v: any(p(v) for p in preds)
    if isinstance(t, dict) and t.get("type") in PRIMITIVES and "logicalType" not in t:
        t = t["type"]
    if isinstance(t, str) and t in PRIMITIVES:
        return _PRIMITIVE_CHECKS[t]
    return lambda v: validate(v, t, raise_errors=False)  # complex types: defer to fastavro


def type_name(t: Any) -> str:
    """Short human-readable type: 'long', 'null|string', 'long(timestamp-millis)', ..."""
    if isinstance(t, list):
        return "|".join(type_name(b) for b in t)
    if isinstance(t, dict):
        base = t.get("type")
        if base in PRIMITIVES:
            return f"{base}({t['logicalType']})" if "logicalType" in t else base
        return t.get("name", base)
    return t


# --- Registry of all schema versions -------------------------------------------------

class _Current:
    """A kind's current schema, pre-digested for the hot path."""

    __slots__ = ("kind", "schema", "parsed", "fp", "prefix", "checks", "nfields")

    def __init__(self, kind: str, schema: dict):
        self.kind = kind
        self.schema = schema
        self.parsed = parse_schema(schema)
        self.fp = schema_fingerprint(schema)
        self.prefix = MARKER + self.fp.to_bytes(8, "little")
        # (name, type check, required?, type name) per field, in schema order.
        self.checks = [
            (f["name"], _predicate(f["type"]), "default" not in f, type_name(f["type"]))
            for f in schema["fields"]
        ]
        self.nfields = len(self.checks)

    def check(self, record: Any) -> None:
        kind = self.kind
        if not isinstance(record, dict):
            raise EncodeError(f"{kind}: record must be a dict, got {type(record).__name__}")
        present = 0
        for name, ok, required, tname in self.checks:
            if name in record:
                present += 1
                v = record[name]
                if not ok(v):
                    raise EncodeError(
                        f"{kind}.{name}: expected {tname}, got {type(v).__name__} {v!r:.80}")
            elif required:
                raise EncodeError(f"{kind}.{name}: required field is missing")
        if present != len(record):  # unknown keys would be dropped silently: refuse them
            extra = sorted(map(str, record.keys() - {c[0] for c in self.checks}))
            raise EncodeError(f"{kind}: unknown field(s) {', '.join(extra)}")


def _load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


class Registry:
    """All kinds under ``root``: ``<kind>.avsc`` plus ``history/<kind>/*.avsc``.

    The module-level functions use one Registry built at import; tests and
    ``schemas.snapshot`` can build their own from another directory.
    """

    def __init__(self, root: Path | str = SCHEMA_DIR):
        self.root = Path(root)
        self._current: dict[str, _Current] = {}
        self._history: dict[str, dict[int, dict]] = {}
        # fingerprint -> (kind, writer schema, reader schema or None if identical)
        self._writers: dict[int, tuple[str, Any, Any]] = {}
        for path in sorted(self.root.glob("*.avsc")):
            cur = self._current[path.stem] = _Current(path.stem, _load(path))
            self._register(cur.fp, cur.kind, cur.parsed, None)
        for kind, cur in self._current.items():
            versions = self._history[kind] = {}
            for path in sorted((self.root / "history" / kind).glob("*.avsc")):
                schema = _load(path)
                fp = schema_fingerprint(schema)
                versions[fp] = schema
                if fp != cur.fp:
                    self._register(fp, kind, parse_schema(schema), cur.parsed)

    def _register(self, fp: int, kind: str, writer: Any, reader: Any) -> None:
        other = self._writers.get(fp)
        if other is not None and other[0] != kind:
            raise RuntimeError(f"fingerprint {fp:016x} used by both {other[0]} and {kind}")
        self._writers[fp] = (kind, writer, reader)

    def kinds(self) -> list[str]:
        return sorted(self._current)

    def _get(self, kind: str) -> _Current:
        try:
            return self._current[kind]
        except KeyError:
            raise KeyError(f"unknown kind {kind!r}; known kinds: {', '.join(self.kinds())}") from None

    def current_schema(self, kind: str) -> dict:
        return copy.deepcopy(self._get(kind).schema)  # a copy: callers can't corrupt the cache

    def fingerprint(self, kind: str) -> int:
        return self._get(kind).fp

    def history(self, kind: str) -> dict[int, dict]:
        """Released versions of ``kind`` from history/, by fingerprint (copies)."""
        self._get(kind)
        return copy.deepcopy(self._history[kind])

    def path(self, kind: str) -> Path:
        self._get(kind)
        return self.root / f"{kind}.avsc"

    def encode(self, kind: str, record: dict) -> bytes:
        cur = self._current.get(kind)
        if cur is None:
            raise EncodeError(f"unknown kind {kind!r}; known kinds: {', '.join(self.kinds())}")
        cur.check(record)
        buf = io.BytesIO()
        buf.write(cur.prefix)
        try:
            schemaless_writer(buf, cur.parsed, record)
        except Exception as e:  # e.g. a str with lone surrogates
            raise EncodeError(f"{kind}: cannot encode record: {e}") from e
        return buf.getvalue()

    def decode(self, data: bytes) -> tuple[str, dict]:
        n = len(data)
        if n < HEADER_LEN:
            raise DecodeError(
                f"short data: {n} bytes, need at least {HEADER_LEN} (2-byte marker + 8-byte fingerprint)")
        if data[:2] != MARKER:
            raise DecodeError(
                f"bad marker {bytes(data[:2]).hex()}, expected c301 (Avro single-object encoding)")
        fp = int.from_bytes(data[2:HEADER_LEN], "little")
        entry = self._writers.get(fp)
        if entry is None:
            raise DecodeError(
                f"unknown schema fingerprint {fp:016x}: not a current or historical version of any kind")
        kind, writer, reader = entry
        buf = io.BytesIO(data)
        buf.seek(HEADER_LEN)
        try:
            record = schemaless_reader(buf, writer, reader)
        except Exception as e:  # EOFError, bad union index, invalid UTF-8, ...
            raise DecodeError(f"corrupt body for {kind} (schema {fp:016x}): {type(e).__name__}: {e}") from e
        if buf.tell() != n:
            raise DecodeError(f"corrupt body for {kind} (schema {fp:016x}): {n - buf.tell()} trailing bytes")
        return kind, record


# --- Module-level API, backed by one registry built at import ------------------------

_registry = Registry()
encode: Callable[[str, dict], bytes] = _registry.encode
decode: Callable[[bytes], tuple[str, dict]] = _registry.decode
kinds: Callable[[], list[str]] = _registry.kinds
current_schema: Callable[[str], dict] = _registry.current_schema
fingerprint: Callable[[str], int] = _registry.fingerprint
history: Callable[[str], dict[int, dict]] = _registry.history
