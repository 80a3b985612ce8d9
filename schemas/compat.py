"""Schema evolution, judged by the Apache Avro project's own library.

The rule (schemas/README.md): a new version of a kind must be backward *and* forward
compatible with every released version, i.e. the new schema reads data written with the
released one (a replay of old records) and the released one reads data written with the
new (a consumer not yet upgraded). Both questions go to ``avro.compatibility``'s
reader/writer checker, the Python port of the checker in Avro's Java library, so the
project does not carry its own reading of the resolution rules. fastavro (the codec's hot
path) must still be able to load the schema, which also checks that defaults match their
types (the avro package does not).
"""

from __future__ import annotations

import json

import avro.schema
from avro.compatibility import ReaderWriterCompatibilityChecker, SchemaCompatibilityType
from fastavro import parse_schema

__all__ = ["compatibility_problems"]

# (reader, writer) label per direction: who must be able to read whom.
_DIRECTIONS = (
    ("backward", "new schema cannot read data written with the released one"),
    ("forward", "released schema cannot read data written with the new one"),
)


def _load(label: str, schema: dict) -> tuple[avro.schema.Schema | None, str | None]:
    if not isinstance(schema, dict) or schema.get("type") != "record":
        return None, f"{label} schema is not a record"
    try:
        parse_schema(schema)
        return avro.schema.parse(json.dumps(schema)), None
    except Exception as e:  # e.g. a default that doesn't match its type
        return None, f"{label} schema is invalid: {e}"


def compatibility_problems(released: dict, new: dict) -> list[str]:
    """Why ``new`` may not follow ``released`` (an empty list: it may).

    One line per failing direction, with the checker's incompatibility kinds, its
    messages (for a missing default: the field's name) and where in the *reader*
    schema it found them, e.g. ``backward (new schema cannot read ...):
    reader_field_missing_default_value: cost_usd at /fields/12``.
    """
    old_schema, error = _load("released", released)
    if error:
        return [error]
    new_schema, error = _load("new", new)
    if error:
        return [error]
    problems = []
    for (name, meaning), (reader, writer) in zip(
            _DIRECTIONS, ((new_schema, old_schema), (old_schema, new_schema))):
        result = ReaderWriterCompatibilityChecker().get_compatibility(reader, writer)
        if result.compatibility is SchemaCompatibilityType.compatible:
            continue
        kinds = ", ".join(sorted({i.value for i in result.incompatibilities}))
        # The checker keeps messages and locations as sets; "/" (the root) only adds noise
        # when a deeper location is known.
        where = sorted(result.locations - {"/"}) or ["/"]
        problems.append(f"{name} ({meaning}): {kinds}: {'; '.join(sorted(result.messages))}"
                        f" at {', '.join(where)}")
    return problems
