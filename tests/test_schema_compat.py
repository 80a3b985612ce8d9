"""Schema evolution rule (schemas/README.md), judged by apache-avro's checker: what it
refuses and allows, with the exact report, and every released version of every kind."""

import copy
import itertools
import json

import pytest

from schemas import codec
from schemas.compat import compatibility_problems

BACKWARD = "backward (new schema cannot read data written with the released one)"
FORWARD = "forward (released schema cannot read data written with the new one)"

V1_VITAL = json.loads((codec.SCHEMA_DIR / "history/agent_vital/10015257c020e30a.avsc").read_text("utf-8"))

# The kinds have no enum and only nullable unions; this record has what they lack.
PROBE = {"type": "record", "name": "Probe", "namespace": "sophra.test", "fields": [
    {"name": "level", "type": {"type": "enum", "name": "Level", "symbols": ["LOW", "HIGH"]}},
    {"name": "tags", "type": {"type": "map", "values": "long"}, "default": {}},
    {"name": "items", "type": {"type": "array", "items": "int"}, "default": []},
    {"name": "n", "type": "int"},
]}


def _edited(schema, edit):
    schema = copy.deepcopy(schema)
    edit(schema["fields"])
    return schema


def _field(fields, name):
    return next(f for f in fields if f["name"] == name)


@pytest.mark.parametrize("edit,expected", [
    (lambda fs: fs.append({"name": "cost_usd", "type": "double"}),
     [f"{BACKWARD}: reader_field_missing_default_value: cost_usd at /fields/12"]),
    (lambda fs: fs.remove(_field(fs, "token_limit")),
     [f"{FORWARD}: reader_field_missing_default_value: token_limit at /fields/5"]),
    (lambda fs: _field(fs, "id").update(type="string"),
     [f"{BACKWARD}: type_mismatch: reader type: string not compatible with writer type: long at /fields/1/type",
      f"{FORWARD}: type_mismatch: reader type: long not compatible with writer type: string at /fields/1/type"]),
    # A promotion reads old data, but a released reader cannot read the new type.
    (lambda fs: _field(fs, "loop_frequency").update(type="double"),
     [f"{FORWARD}: type_mismatch: reader type: long not compatible with writer type: double at /fields/7/type"]),
    (lambda fs: _field(fs, "recorded_at").update(type="int"),
     [f"{BACKWARD}: type_mismatch: reader type: int not compatible with writer type: long at /fields/11/type"]),
    # Union narrowed: released null values have no branch in the new schema.
    (lambda fs: _field(fs, "agent_name").update(type="string", default="?"),
     [f"{BACKWARD}: type_mismatch: reader type: string not compatible with writer type: null at /"]),
    # Union widened: released readers lack the new branch.
    (lambda fs: _field(fs, "agent_name").update(type=["null", "string", "long"]),
     [f"{FORWARD}: missing_union_branch: reader union lacking writer type: LONG at /fields/3/type/2"]),
    # Renamed field without a default: an alias lets the new schema read old data, but
    # released readers find nothing to fill it with.
    (lambda fs: _field(fs, "overall_health").update(name="health", aliases=["overall_health"]),
     [f"{FORWARD}: reader_field_missing_default_value: overall_health at /fields/9"]),
], ids=["added-without-default", "removed-without-default", "retyped", "promoted", "narrowed",
        "union-narrowed", "union-widened", "renamed-without-default"])
def test_vital_changes_the_rule_refuses(edit, expected):
    assert compatibility_problems(V1_VITAL, _edited(V1_VITAL, edit)) == expected


@pytest.mark.parametrize("edit", [
    lambda fs: fs.append({"name": "cost_usd", "type": "double", "default": 0.0}),
    lambda fs: fs.insert(3, {"name": "model", "type": ["null", "string"], "default": None}),
    lambda fs: fs.remove(_field(fs, "metadata")),  # had a default: released readers use it
    lambda fs: _field(fs, "tenant").update(doc="changed doc"),
], ids=["added-with-default", "nullable-added", "removed-with-default", "doc"])
def test_vital_changes_the_rule_allows(edit):
    assert compatibility_problems(V1_VITAL, _edited(V1_VITAL, edit)) == []


@pytest.mark.parametrize("edit,expected", [
    (lambda fs: _field(fs, "level")["type"].update(symbols=["LOW", "HIGH", "CRITICAL"]),
     [f"{FORWARD}: missing_enum_symbols: {{'CRITICAL'}} at /fields/0/type/symbols"]),
    (lambda fs: _field(fs, "level")["type"].update(symbols=["LOW"]),
     [f"{BACKWARD}: missing_enum_symbols: {{'HIGH'}} at /fields/0/type/symbols"]),
    (lambda fs: _field(fs, "level")["type"].update(name="Severity"),
     [f"{BACKWARD}: name_mismatch: expected: sophra.test.Level at /fields/0/type/name",
      f"{FORWARD}: name_mismatch: expected: sophra.test.Severity at /fields/0/type/name"]),
    (lambda fs: _field(fs, "tags")["type"].update(values="string"),
     [f"{BACKWARD}: type_mismatch: reader type: string not compatible with writer type: long at /fields/1/type/values",
      f"{FORWARD}: type_mismatch: reader type: long not compatible with writer type: string at /fields/1/type/values"]),
    (lambda fs: _field(fs, "items")["type"].update(items="long"),
     [f"{FORWARD}: type_mismatch: reader type: int not compatible with writer type: long at /fields/2/type/items"]),
    (lambda fs: _field(fs, "n").update(type="long"),
     [f"{FORWARD}: type_mismatch: reader type: int not compatible with writer type: long at /fields/3/type"]),
], ids=["enum-symbol-added", "enum-symbol-removed", "enum-renamed", "map-values-retyped",
        "array-items-promoted", "int-to-long"])
def test_complex_type_changes_the_rule_refuses(edit, expected):
    assert compatibility_problems(PROBE, _edited(PROBE, edit)) == expected


def test_enum_symbol_may_be_added_when_the_released_enum_has_a_default():
    released = _edited(PROBE, lambda fs: _field(fs, "level")["type"].update(default="LOW"))
    new = _edited(released, lambda fs: _field(fs, "level")["type"].update(symbols=["LOW", "HIGH", "CRITICAL"]))
    assert compatibility_problems(released, new) == []


def test_record_rename_and_invalid_schemas_are_refused():
    assert compatibility_problems(V1_VITAL, {**V1_VITAL, "name": "Vitals"}) == [
        f"{BACKWARD}: name_mismatch: expected: sophra.agent.Vital at /name",
        f"{FORWARD}: name_mismatch: expected: sophra.agent.Vitals at /name"]
    bad_default = _edited(V1_VITAL, lambda fs: fs.append({"name": "n", "type": "long", "default": "x"}))
    assert compatibility_problems(V1_VITAL, bad_default) == [
        "new schema is invalid: Default value <x> must match schema type: long"]
    assert compatibility_problems(V1_VITAL, {"type": "string"}) == ["new schema is not a record"]
    assert compatibility_problems([], V1_VITAL) == ["released schema is not a record"]


def test_every_released_version_of_every_kind_follows_the_rule():
    checked = 0
    for kind in codec.kinds():
        versions = {**codec.history(kind), codec.fingerprint(kind): codec.current_schema(kind)}
        for (fa, a), (fb, b) in itertools.combinations(sorted(versions.items()), 2):
            assert compatibility_problems(a, b) == [], (kind, f"{fa:016x}", f"{fb:016x}")
            checked += 1
    # 21 kinds; alert_rule has three versions (3 pairs), api_key, app_deployment, app_insight and
    # ari_intervention two.
    assert (len(codec.kinds()), checked) == (21, 7)
