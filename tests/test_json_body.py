"""The one JSON check of every request body (api/json_body.py), on its own."""
import json

import pytest

from api.errors import ApiError
from api.json_body import MAX_DEPTH, check, is_json, stored


def refusal(body: bytes) -> tuple[str, str] | None:
    try:
        check(body)
    except ApiError as exc:
        assert exc.status == 400 and exc.body["message"].startswith(exc.body["field"] + ": ")
        return exc.body["field"], exc.body["message"].split(": ", 1)[1]
    return None


SURROGATE = "holds a lone UTF-16 surrogate (\\ud800-\\udfff), which is not valid Unicode"


@pytest.mark.parametrize("body,found", [
    (b'{"a": "\\ud800"}', ("a", SURROGATE)),
    (b'{"a": ["x", {"b": "\\uDFFF"}]}', ("a[1].b", SURROGATE)),
    (b'["\\udc00"]', ("[0]", SURROGATE)),
    (b'"\\ud800"', ("body", SURROGATE)),
    (b'{"k\\ud800": 1}', ("k\\ud800", "this key " + SURROGATE)),
    (b'{"a": "\xed\xa0\x80"}', ("a", SURROGATE)),  # the surrogate's bytes, CESU-8 style
    ('{"a": "\ud800"}'.encode("utf-16-le", "surrogatepass"), ("a", SURROGATE)),  # a UTF-16 body
    (b'{"a": "\\ud83d\\ude00"}', None),  # a valid pair: one emoji
    (b'{"a": "\\\\ud800"}', None),  # an escaped backslash, then text
    (b'{"a": "\xf0\x9f\x98\x80"}', None),
    (b"{\"a\": ", ("body", "is not valid JSON")),
    (b'{"a": "\xff"}', ("body", "is not valid JSON")),
    (b"[" * 100_000, ("body", "is nested deeper than 32 levels of objects and arrays")),
    (b"1" * 5000, ("body", "is not valid JSON")),  # beyond Python's 4300-digit int limit
])
def test_strings_keys_and_encodings(body, found):
    assert refusal(body) == found


def test_depth_is_counted_from_the_body_with_the_path_of_the_first_level_too_many():
    ok = json.dumps([[[0]]] if MAX_DEPTH < 3 else {"a": [{"b": 1}] * 3}).encode()
    assert refusal(ok) is None
    deepest = "[" * MAX_DEPTH + "]" * MAX_DEPTH
    assert refusal(deepest.encode()) is None
    too_deep = "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1)
    assert refusal(too_deep.encode()) == ("[0]" * MAX_DEPTH, "is nested deeper than 32 levels of objects and arrays")
    # the same answer when the body also needs its strings looked at
    assert refusal((too_deep[:-MAX_DEPTH - 1] + '"\\ud83d\\ude00"' + "]" * (MAX_DEPTH + 1)).encode()) == (
        "[0]" * MAX_DEPTH, "is nested deeper than 32 levels of objects and arrays")


def test_stored_objects_are_answered_cut_at_the_limit():
    assert stored('{"a": {"b": [1, {"c": 2}]}}') == {"a": {"b": [1, {"c": 2}]}}
    assert stored('{"a": {"b": [1, {"c": 2}]}}', levels=2) == {"a": {"b": None}}
    assert stored('{"brackets in a string": "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["}') == {
        "brackets in a string": "[" * 36}
    deep = "{}"
    for _ in range(300):
        deep = '{"a": ' + deep + "}"
    cut = stored(deep)
    for _ in range(MAX_DEPTH - 1):
        cut = cut["a"]
    assert cut is None


@pytest.mark.parametrize("headers,expected", [
    ([], True), ([(b"content-type", b"application/json")], True),
    ([(b"content-type", b"Application/JSON; charset=utf-8")], True),
    ([(b"content-type", b"application/merge-patch+json")], True),
    ([(b"content-type", b"text/plain")], False), ([(b"content-type", b"multipart/form-data")], False),
])
def test_which_bodies_are_json_follows_fastapi(headers, expected):
    assert is_json(headers) is expected
