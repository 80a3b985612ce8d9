import pytest

from pipeline.health import score, status

BASE = dict(token_consumption=0, token_limit=100_000, hallucination_rate=0.0, loop_count=0, conflict_count=0)


@pytest.mark.parametrize("field,value,expected", [
    ("hallucination_rate", 0.0499, "green"), ("hallucination_rate", 0.05, "amber"),
    ("hallucination_rate", 0.15, "amber"), ("hallucination_rate", 0.1501, "red"),
    ("conflict_count", 1, "green"), ("conflict_count", 2, "amber"), ("conflict_count", 4, "amber"),
    ("conflict_count", 5, "red"),
    ("loop_count", 49, "green"), ("loop_count", 50, "amber"), ("loop_count", 100, "amber"), ("loop_count", 101, "red"),
    ("token_consumption", 74_999, "green"), ("token_consumption", 75_000, "amber"),
    ("token_consumption", 95_000, "amber"), ("token_consumption", 95_001, "red"),
])
def test_each_threshold_boundary(field, value, expected):
    assert score(**{**BASE, field: value}) == expected


def test_worst_metric_wins():
    assert score(**{**BASE, "loop_count": 60, "conflict_count": 7}) == "red"
    assert score(**{**BASE, "loop_count": 60, "hallucination_rate": 0.01}) == "amber"


def test_token_ratio_uses_the_limit():
    assert score(**{**BASE, "token_consumption": 800, "token_limit": 1000}) == "amber"


def test_status_mapping():
    assert [status(h) for h in ("green", "amber", "red")] == ["active", "warning", "critical"]
