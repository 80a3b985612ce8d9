"""Schemathesis over every operation of /openapi.json on the real api (broker, sink,
ClickHouse), with a valid key: 0 responses of 5xx, every 4xx in the error shape. The
rules and what is run: tests/fuzzing.py; the long run (10,000+ requests):
bench/fuzz_api.py."""
import httpx
import pytest

from . import fuzzing

pytestmark = pytest.mark.integration

EXAMPLES = 6  # per operation and generation mode: about 500 requests, about a minute of CPU


def test_no_input_gets_a_server_error_or_an_error_outside_the_shape(running_api):
    api = running_api()
    key = fuzzing.unlimited_key(api)
    report = fuzzing.run(api.url, key, EXAMPLES, ids=fuzzing.fixtures(api.url, key))
    spec = httpx.get(f"{api.url}/openapi.json").json()
    every = {f"{m.upper()} {p}" for p, item in spec["paths"].items() for m in item}
    assert set(report.by_operation) == every  # nothing left out
    assert all(report.by_operation[op] for op in every), fuzzing.summary(report)  # each was called
    assert [s for s in report.statuses if s >= 500] == [], fuzzing.summary(report)
    assert report.problems == [], fuzzing.summary(report)
    assert report.requests >= 40 * EXAMPLES, fuzzing.summary(report)  # 45 operations, two modes


@pytest.mark.parametrize("status,body,why", [
    (500, b'{"success": false, "error": "x", "message": "y"}', "a server error"),
    (400, b'{"success": false, "error": "x", "message": "y"}', "a 400 that names no field"),
    (404, b'{"detail": "Not Found"}', "a 4xx without success: false, error and message"),
    (401, b"nope", "a 4xx that is not JSON"),
    (429, b'{"success": false, "error": "x", "message": "y", "retry_after_ms": 1, "retry_after_seconds": 1}', None),
    (400, b'{"success": false, "error": "x", "message": "y", "field": "f"}', None),
    (404, b'{"success": false, "error": "x", "message": "y", "trace": "..."}', "a 4xx with unknown keys ['trace']"),
    (200, b"anything", None),
])
def test_the_shape_rule_itself(status, body, why):
    assert fuzzing.shape_problem(status, body) == why
