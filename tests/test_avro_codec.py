"""Avro codec: wire format, fingerprints, schema history and evolution. No broker needed."""

import copy
import io
import json
import shutil
import struct
from pathlib import Path

import pytest
from fastavro import parse_schema, schemaless_writer
from fastavro.schema import fingerprint as fastavro_fingerprint
from fastavro.schema import to_parsing_canonical_form

from schemas import codec
from schemas.codec import DecodeError, EncodeError
from schemas.snapshot import snapshot

FIXTURES = Path(__file__).parent / "fixtures" / "avro"
U64 = 2**64 - 1

VITAL = {
    "tenant": "acme", "id": 42, "agent_id": "agent-7", "agent_name": "Triage bot",
    "token_consumption": 1200, "token_limit": 50000, "hallucination_rate": 0.25,
    "loop_frequency": 2, "directive_conflicts": 1, "overall_health": "amber",
    "metadata": '{"region": "eu-west-1"}', "recorded_at": 1717243200000,
}
EVENT = {
    "tenant": "acme", "id": 7, "agent_id": "agent-7", "event_type": "loop_detected",
    "details": None, "metadata": "{}", "recorded_at": 1717243200500,
}


def frames(path: Path) -> list[bytes]:
    """Split a fixture file into messages (4-byte big-endian length prefix each)."""
    data, out, pos = path.read_bytes(), [], 0
    while pos < len(data):
        (n,) = struct.unpack_from(">I", data, pos)
        out.append(data[pos + 4:pos + 4 + n])
        pos += 4 + n
    return out


# --- CRC-64-AVRO -----------------------------------------------------------------

# Canonical form -> fingerprint (signed, as Java prints it), from Avro's
# share/test/data/schema-tests.txt (checked against Java's SchemaNormalization).
RABIN_VECTORS = [
    ('"null"', 7195948357588979594),
    ('"boolean"', -6970731678124411036),
    ('"int"', 8247732601305521295),
    ('"long"', -3434872931120570953),
    ('"float"', 5583340709985441680),
    ('"double"', -8181574048448539266),
    ('"bytes"', 5746618253357095269),
    ('"string"', -8142146995180207161),
    ("[]", -1241056759729112623),
    ('["int","boolean"]', 5392556393470105090),
    ('{"name":"foo","type":"record","fields":[]}', -4824392279771201922),
    ('{"name":"x.y.foo","type":"record","fields":[]}', 5916914534497305771),
    ('{"name":"x.y.z.foo","type":"enum","symbols":["A1","A2"]}', -4448647247586288245),
    ('{"type":"map","values":"string"}', -8732877298790414990),
]


@pytest.mark.parametrize("canonical,java_fp", RABIN_VECTORS)
def test_rabin_fingerprint_matches_spec_vectors(canonical, java_fp):
    fp = codec.rabin_fingerprint(canonical.encode())
    assert fp == java_fp & U64
    # fastavro prints the fingerprint's little-endian bytes as hex.
    assert fastavro_fingerprint(canonical, "CRC-64-AVRO") == fp.to_bytes(8, "little").hex()


def test_rabin_known_values():
    assert codec.rabin_fingerprint(b"") == 0xC15D213AA4D7A795
    assert codec.rabin_fingerprint(b'"int"') == 8247732601305521295
    assert codec.rabin_fingerprint(b'"null"') == 7195948357588979594


def test_schema_fingerprint_ignores_doc_namespace_spelling_and_defaults():
    schema = {"type": "record", "name": "foo", "namespace": "x.y", "doc": "d",
              "fields": [{"name": "f1", "type": {"type": "boolean"}, "default": True}]}
    assert to_parsing_canonical_form(schema) == (
        '{"name":"x.y.foo","type":"record","fields":[{"name":"f1","type":"boolean"}]}')
    assert codec.schema_fingerprint({"fields": [], "type": "record", "name": "foo",
                                     "namespace": "x.y"}) == 5916914534497305771


# --- encode / decode -------------------------------------------------------------

def test_kinds_and_current_schema():
    assert codec.kinds() == ["agent_event", "agent_vital", "alert_delivery", "alert_rule", "alert_status",
                             "alert_transition", "api_key", "api_usage", "app_deployment", "app_insight",
                             "app_metric_batch", "application", "ari_intervention", "ari_status", "budget",
                             "budget_usage", "delivery_state", "integration", "key_grant", "notification_policy",
                             "quota_plan"]
    vital = codec.current_schema("agent_vital")
    assert (vital["namespace"], vital["name"]) == ("sophra.agent", "Vital")
    assert [f["name"] for f in vital["fields"]] == [
        "tenant", "id", "agent_id", "agent_name", "token_consumption", "token_limit",
        "hallucination_rate", "loop_frequency", "directive_conflicts", "overall_health",
        "metadata", "recorded_at"]
    assert all(f.get("doc") for f in vital["fields"])
    event = codec.current_schema("agent_event")
    assert [f["name"] for f in event["fields"]] == [
        "tenant", "id", "agent_id", "event_type", "details", "metadata", "recorded_at"]
    # Timestamps must decode as ints: plain "long", no logicalType.
    assert {f["type"] for f in vital["fields"] + event["fields"] if f["name"] == "recorded_at"} == {"long"}
    vital["fields"].clear()  # a copy: the codec's cache is untouched
    assert len(codec.current_schema("agent_vital")["fields"]) == 12


@pytest.mark.parametrize("kind,record", [("agent_vital", VITAL), ("agent_event", EVENT)])
def test_round_trip_exact(kind, record):
    data = codec.encode(kind, record)
    assert codec.decode(data) == (kind, record)
    assert type(codec.decode(data)[1]["recorded_at"]) is int


@pytest.mark.parametrize("kind,record", [("agent_vital", VITAL), ("agent_event", EVENT)])
def test_wire_format_is_single_object_encoding(kind, record):
    fp = codec.fingerprint(kind)
    canonical = to_parsing_canonical_form(codec.current_schema(kind))
    assert fp == codec.rabin_fingerprint(canonical.encode())
    assert fp.to_bytes(8, "little").hex() == fastavro_fingerprint(canonical, "CRC-64-AVRO")
    data = codec.encode(kind, record)
    assert data[:10] == b"\xc3\x01" + struct.pack("<Q", fp)
    body = io.BytesIO()
    schemaless_writer(body, parse_schema(codec.current_schema(kind)), record)
    assert data[10:] == body.getvalue()


def test_encode_fills_defaults_of_omitted_optional_fields():
    rec = {k: v for k, v in VITAL.items() if k not in ("agent_name", "metadata")}
    assert codec.decode(codec.encode("agent_vital", rec))[1] == {
        **VITAL, "agent_name": None, "metadata": "{}"}


def test_decode_accepts_bytearray_and_memoryview():
    data = codec.encode("agent_event", EVENT)
    assert codec.decode(bytearray(data)) == ("agent_event", EVENT)
    assert codec.decode(memoryview(data)) == ("agent_event", EVENT)


@pytest.mark.parametrize("kind,record,message", [
    ("agent_vital", {**VITAL, "id": "42"}, "agent_vital.id: expected long, got str '42'"),
    ("agent_vital", {**VITAL, "token_limit": 1.5}, "agent_vital.token_limit: expected long, got float 1.5"),
    ("agent_vital", {**VITAL, "loop_frequency": True}, "agent_vital.loop_frequency: expected long, got bool True"),
    ("agent_vital", {**VITAL, "id": 2**63}, "agent_vital.id: expected long, got int 9223372036854775808"),
    ("agent_vital", {**VITAL, "agent_name": 3}, "agent_vital.agent_name: expected null|string, got int 3"),
    ("agent_vital", {**VITAL, "hallucination_rate": None}, "agent_vital.hallucination_rate: expected double, got NoneType None"),
    ("agent_vital", {k: v for k, v in VITAL.items() if k != "tenant"}, "agent_vital.tenant: required field is missing"),
    ("agent_vital", {**VITAL, "colour": "x", "age": 1}, "agent_vital: unknown field(s) age, colour"),
    ("agent_vital", [VITAL], "agent_vital: record must be a dict, got list"),
    ("agent_event", {**EVENT, "details": "\ud800"}, "agent_event: cannot encode record"),
    ("agent_nope", VITAL, "unknown kind 'agent_nope'; known kinds: agent_event, agent_vital"),
])
def test_encode_rejects_mismatching_records(kind, record, message):
    with pytest.raises(EncodeError) as exc:
        codec.encode(kind, record)
    assert message in str(exc.value)
    assert isinstance(exc.value, ValueError)


def _good():
    return codec.encode("agent_vital", VITAL)


@pytest.mark.parametrize("data,message", [
    (b"", "short data: 0 bytes, need at least 10 (2-byte marker + 8-byte fingerprint)"),
    (b"\xc3\x01\x00\x00", "short data: 4 bytes, need at least 10"),
    (b"\x00\x01" + _good()[2:], "bad marker 0001, expected c301 (Avro single-object encoding)"),
    (b"\xc3\x01" + struct.pack("<Q", 0x0123456789ABCDEF) + b"\x00",
     "unknown schema fingerprint 0123456789abcdef: not a current or historical version of any kind"),
    (_good()[:-3], "corrupt body for agent_vital (schema 10015257c020e30a): "),
    (_good()[:10], "corrupt body for agent_vital (schema 10015257c020e30a): EOFError"),
    (_good() + b"\x00\x00", "corrupt body for agent_vital (schema 10015257c020e30a): 2 trailing bytes"),
], ids=["empty", "short", "marker", "fingerprint", "truncated", "no-body", "trailing"])
def test_decode_errors(data, message):
    with pytest.raises(DecodeError) as exc:
        codec.decode(data)
    assert message in str(exc.value)
    assert isinstance(exc.value, ValueError)


def test_decode_error_for_bad_union_index():
    # agent_event body: tenant, id, agent_id, event_type, then the details union index.
    data = codec.encode("agent_event", {**EVENT, "tenant": "", "agent_id": "", "event_type": ""})
    assert data[10:14] == b"\x00\x0e\x00\x00"  # "", 7, "", ""
    bad = data[:14] + b"\x08" + data[15:]        # union index 4 (zigzag 0x08): no such branch
    with pytest.raises(DecodeError) as exc:
        codec.decode(bad)
    assert str(exc.value) == (
        "corrupt body for agent_event (schema 43ed2ebdcbcdfc34): IndexError: list index out of range")


# --- history and evolution -------------------------------------------------------

def test_every_current_schema_is_in_history():
    for kind in codec.kinds():
        fp = codec.fingerprint(kind)
        assert fp in codec.history(kind), (
            f"schemas/{kind}.avsc changed (fingerprint {fp:016x}) but was not snapshotted: "
            f"run `python -m schemas.snapshot` and commit schemas/history/{kind}/{fp:016x}.avsc")


def test_history_files_are_named_by_their_fingerprint():
    files = sorted((codec.SCHEMA_DIR / "history").glob("*/*.avsc"))
    assert {(p.parent.name, p.stem) for p in files} >= {
        ("agent_vital", "10015257c020e30a"), ("agent_event", "43ed2ebdcbcdfc34")}
    for p in files:
        schema = json.loads(p.read_text("utf-8"))
        assert p.stem == f"{codec.schema_fingerprint(schema):016x}", f"{p} is misnamed or was edited"


def test_v1_fixture_decodes_to_exact_records():
    assert [codec.decode(m) for m in frames(FIXTURES / "agent_vital_v1.bin")] == [
        ("agent_vital", {
            "tenant": "acme", "id": 1, "agent_id": "agent-7", "agent_name": "Triage bot",
            "token_consumption": 1200, "token_limit": 50000, "hallucination_rate": 0.125,
            "loop_frequency": 2, "directive_conflicts": 0, "overall_health": "green",
            "metadata": '{"region": "eu-west-1"}', "recorded_at": 1717243200000}),
        ("agent_vital", {
            "tenant": "acme", "id": 2, "agent_id": "agent-8", "agent_name": None,
            "token_consumption": 0, "token_limit": 0, "hallucination_rate": 0.0,
            "loop_frequency": 0, "directive_conflicts": 0, "overall_health": "amber",
            "metadata": "{}", "recorded_at": 0}),
        ("agent_vital", {
            "tenant": "globex", "id": 9223372036854775807, "agent_id": "ägent-ü",
            "agent_name": "名前", "token_consumption": -1, "token_limit": 1099511627776,
            "hallucination_rate": 1.0, "loop_frequency": 17, "directive_conflicts": 3,
            "overall_health": "red", "metadata": '{"tags": ["a", "b"]}',
            "recorded_at": 1893456000123}),
    ]
    assert [codec.decode(m) for m in frames(FIXTURES / "agent_event_v1.bin")] == [
        ("agent_event", {
            "tenant": "acme", "id": 10, "agent_id": "agent-7", "event_type": "loop_detected",
            "details": "same tool call 5x", "metadata": '{"tool": "search"}',
            "recorded_at": 1717243200500}),
        ("agent_event", {
            "tenant": "acme", "id": 11, "agent_id": "agent-7", "event_type": "restart",
            "details": None, "metadata": "{}", "recorded_at": 1717243260000}),
    ]


def _vital_with(fields_edit):
    schema = copy.deepcopy(json.loads((codec.SCHEMA_DIR / "agent_vital.avsc").read_text("utf-8")))
    fields_edit(schema["fields"])
    return schema


def _field(fields, name):
    return next(f for f in fields if f["name"] == name)


@pytest.fixture
def schema_dir(tmp_path):
    """A private copy of schemas/ (avsc + history) to evolve without touching the repo."""
    root = tmp_path / "schemas"
    shutil.copytree(codec.SCHEMA_DIR, root, ignore=shutil.ignore_patterns("*.py", "__pycache__", "*.md"))
    return root


def test_snapshot_then_old_data_decodes_with_new_defaults(schema_dir):
    v2 = _vital_with(lambda fs: fs.append(
        {"name": "cost_usd", "type": "double", "default": 0.0, "doc": "Spend in the window."}))
    (schema_dir / "agent_vital.avsc").write_text(json.dumps(v2, indent=2))
    lines = []
    assert snapshot(schema_dir, out=lines.append) == 0
    fp = codec.schema_fingerprint(v2)
    added = f"agent_vital: added {schema_dir / 'history' / 'agent_vital' / f'{fp:016x}.avsc'} (commit it)"
    assert lines == [added if kind == "agent_vital" else f"{kind}: {codec.fingerprint(kind):016x} already in history"
                     for kind in codec.kinds()]
    assert lines[0] == "agent_event: 43ed2ebdcbcdfc34 already in history"
    assert (schema_dir / "history/agent_vital" / f"{fp:016x}.avsc").read_text() == (
        schema_dir / "agent_vital.avsc").read_text()

    reg = codec.Registry(schema_dir)
    kind, rec = reg.decode(frames(FIXTURES / "agent_vital_v1.bin")[1])
    assert (kind, rec["cost_usd"], rec["id"]) == ("agent_vital", 0.0, 2)
    assert list(rec) == [f["name"] for f in v2["fields"]]
    assert reg.decode(reg.encode("agent_vital", {**VITAL, "cost_usd": 1.5})) == (
        "agent_vital", {**VITAL, "cost_usd": 1.5})


def test_snapshot_refuses_breaking_change(schema_dir):
    broken = _vital_with(lambda fs: _field(fs, "id").update(type="string"))
    (schema_dir / "agent_vital.avsc").write_text(json.dumps(broken))
    before = sorted(p.name for p in (schema_dir / "history/agent_vital").iterdir())
    lines = []
    assert snapshot(schema_dir, out=lines.append) == 1
    assert lines[1:4] == [
        "agent_vital: NOT snapshotted, incompatible with released versions:",
        "  vs 10015257c020e30a: backward (new schema cannot read data written with the released one): "
        "type_mismatch: reader type: string not compatible with writer type: long at /fields/1/type",
        "  vs 10015257c020e30a: forward (released schema cannot read data written with the new one): "
        "type_mismatch: reader type: long not compatible with writer type: string at /fields/1/type"]
    assert sorted(p.name for p in (schema_dir / "history/agent_vital").iterdir()) == before
