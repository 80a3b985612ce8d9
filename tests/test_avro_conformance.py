"""The codec against apache-avro (the Apache Avro project's own Python library), for every
record kind: what the codec encodes, apache-avro reads; what apache-avro writes with any
released schema version, the codec decodes. Values are the largest and smallest each
type allows, nulls and non-nulls, empty and filled maps and arrays."""

import io
import json
import struct

import avro.io
import avro.schema
import pytest

from schemas import codec

MARKER = b"\xc3\x01"  # Avro specification, "Single object encoding"

# Three records per schema. Each names, per type, the value it takes; a union (and an
# enum) takes its first member (null in every kind's unions), its last, or its second.
FLOAT32_MAX = struct.unpack("<f", b"\xff\xff\x7f\x7f")[0]
FLOAT32_TINY = struct.unpack("<f", b"\x01\x00\x00\x00")[0]  # smallest positive subnormal
VARIANTS = {
    "smallest": {"union": 0, "boolean": False, "int": -2**31, "long": -2**63, "float": -FLOAT32_MAX,
                 "double": -1.7976931348623157e308, "string": "", "bytes": b"", "fixed": b"\x00", "entries": 0},
    "largest": {"union": -1, "boolean": True, "int": 2**31 - 1, "long": 2**63 - 1, "float": FLOAT32_MAX,
                "double": 1.7976931348623157e308, "string": "ä名🙂\x00" * 300, "bytes": bytes(range(256)) * 4,
                "fixed": b"\xff", "entries": 3},
    "tiny": {"union": 1, "boolean": False, "int": 0, "long": 0, "float": FLOAT32_TINY,
             "double": 5e-324, "string": "\U0010ffff", "bytes": b"\x00", "fixed": b"\x01", "entries": 1},
}
MAP_KEYS = ["", "ключ", "🙂"]


def _member(members: list, v: dict):
    return members[v["union"] if v["union"] < len(members) else -1]


def value(t, v: dict):
    """The variant's value of Avro type ``t`` (schema JSON)."""
    if isinstance(t, list):
        return value(_member(t, v), v)
    if isinstance(t, dict):
        kind = t["type"]
        if kind == "record":
            return {f["name"]: value(f["type"], v) for f in t["fields"]}
        if kind == "enum":
            return _member(t["symbols"], v)
        if kind == "fixed":
            return v["fixed"] * t["size"]
        if kind == "array":
            return [value(t["items"], v) for _ in range(v["entries"])]
        if kind == "map":
            return {k: value(t["values"], v) for k in MAP_KEYS[:v["entries"]]}
        return value(kind, v)  # a primitive in object form
    return None if t == "null" else v[t]


def exact(x):
    """``x`` with every float spelled exactly (so -0.0, float32 rounding or NaN can't hide)."""
    if isinstance(x, float):
        return x.hex()
    if isinstance(x, dict):
        return {k: exact(w) for k, w in x.items()}
    if isinstance(x, list):
        return [exact(w) for w in x]
    return x


def avro_schema(schema: dict) -> avro.schema.Schema:
    return avro.schema.parse(json.dumps(schema))


def avro_read(data: bytes, history, kind: str):
    """Read a single-object-encoded record the way the specification says, with apache-avro;
    ``history(kind)`` gives the released versions by fingerprint."""
    assert data[:2] == MARKER
    fp = data[2:10]  # little-endian, as apache-avro's fingerprint() returns it
    writer_json = history(kind)[int.from_bytes(fp, "little")]  # KeyError: not released
    writer = avro_schema(writer_json)
    assert writer.fingerprint("CRC-64-AVRO") == fp  # apache-avro's own CRC-64-AVRO of the canonical form
    body = io.BytesIO(data[10:])
    record = avro.io.DatumReader(writer).read(avro.io.BinaryDecoder(body))
    assert body.tell() == len(data) - 10, "apache-avro left bytes unread"
    return record


def avro_write(schema_json: dict, record: dict) -> bytes:
    schema = avro_schema(schema_json)
    body = io.BytesIO()
    avro.io.DatumWriter(schema).write(record, avro.io.BinaryEncoder(body))
    return MARKER + schema.fingerprint("CRC-64-AVRO") + body.getvalue()


def resolved(record: dict, reader: dict) -> dict:
    """``record`` as the reader schema sees it: its fields, in its order, defaults filled."""
    return {f["name"]: record[f["name"]] if f["name"] in record else f["default"] for f in reader["fields"]}


def released_versions():
    return [(kind, fp) for kind in codec.kinds() for fp in sorted(codec.history(kind))]


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("kind", codec.kinds())
def test_apache_avro_reads_what_the_codec_writes(kind, variant):
    schema = codec.current_schema(kind)
    record = value(schema, VARIANTS[variant])
    data = codec.encode(kind, record)
    assert exact(avro_read(data, codec.history, kind)) == exact(record)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("kind,fp", released_versions(), ids=[f"{k}-{fp:016x}" for k, fp in released_versions()])
def test_codec_reads_what_apache_avro_writes_with_every_released_version(kind, fp, variant):
    writer = codec.history(kind)[fp]
    record = value(writer, VARIANTS[variant])
    decoded_kind, decoded = codec.decode(avro_write(writer, record))
    assert decoded_kind == kind
    assert exact(decoded) == exact(resolved(record, codec.current_schema(kind)))
    assert list(decoded) == [f["name"] for f in codec.current_schema(kind)["fields"]]


def test_the_variants_reach_every_branch_the_kinds_use():
    """Guards the generator: nulls and non-nulls, empty and filled collections all occur."""
    seen = {name: set() for name in VARIANTS}

    def walk(t, x, name):
        if x is None:
            seen[name].add("null")
        elif isinstance(x, dict) and isinstance(t, dict) and t.get("type") == "map":
            seen[name].add(f"map of {len(x)}")
        elif isinstance(x, list):
            seen[name].add(f"array of {len(x)}")
        elif isinstance(x, dict):  # a record
            for f in t["fields"]:
                ft = f["type"]
                if isinstance(ft, list):
                    ft = next((b for b in ft if b != "null"), "null") if x[f["name"]] is not None else "null"
                walk(ft, x[f["name"]], name)
    for kind in codec.kinds():
        schema = codec.current_schema(kind)
        for name, v in VARIANTS.items():
            walk(schema, value(schema, v), name)
    assert seen == {"smallest": {"null", "map of 0", "array of 0"},
                    "largest": {"map of 3", "array of 3"},
                    "tiny": {"map of 1", "array of 1"}}


# Every Avro type, including those no kind uses yet (enum, fixed, bytes, float, nested
# unions), through a Registry of a made-up kind: the codec's conformance doesn't wait for
# the first schema that uses them.
EVERY_TYPE = {"type": "record", "name": "Everything", "namespace": "sophra.test", "fields": [
    {"name": "b", "type": "boolean"}, {"name": "i", "type": "int"}, {"name": "l", "type": "long"},
    {"name": "f", "type": "float"}, {"name": "d", "type": "double"}, {"name": "s", "type": "string"},
    {"name": "by", "type": "bytes"},
    {"name": "e", "type": {"type": "enum", "name": "Level", "symbols": ["LOW", "MID", "HIGH"]}},
    {"name": "fx", "type": {"type": "fixed", "name": "Hash", "size": 4}},
    {"name": "a", "type": {"type": "array", "items": ["null", "long", "string"]}},
    {"name": "m", "type": {"type": "map", "values": {"type": "record", "name": "Point", "fields": [
        {"name": "x", "type": "double"}, {"name": "tag", "type": ["null", "string"], "default": None}]}}},
    {"name": "u", "type": ["null", "int", "bytes"], "default": None},
]}


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_avro_type_both_ways(tmp_path, variant):
    (tmp_path / "everything.avsc").write_text(json.dumps(EVERY_TYPE))
    fp = codec.schema_fingerprint(EVERY_TYPE)
    (tmp_path / "history" / "everything").mkdir(parents=True)
    (tmp_path / "history" / "everything" / codec.history_name(fp)).write_text(json.dumps(EVERY_TYPE))
    registry = codec.Registry(tmp_path)
    record = value(EVERY_TYPE, VARIANTS[variant])
    assert exact(avro_read(registry.encode("everything", record), registry.history, "everything")) == exact(record)
    assert exact(registry.decode(avro_write(EVERY_TYPE, record))[1]) == exact(record)
    assert registry.encode("everything", record) == avro_write(EVERY_TYPE, record)  # byte for byte
