"""Health scoring: the one home of reference 003's "Health Scoring" thresholds.

Used by the api (response and stored record), the worker and replay. Boundaries as
in DESIGN.md: each metric is green below its amber bound, amber from the amber
bound up to its red bound, red beyond; the worst metric wins.
"""
from typing import Literal

Health = Literal["green", "amber", "red"]
STATUS = {"green": "active", "amber": "warning", "red": "critical"}
_RANK = {"green": 0, "amber": 1, "red": 2}


def _hallucination(rate: float) -> Health:
    return "green" if rate < 0.05 else "amber" if rate <= 0.15 else "red"


def _conflicts(count: int) -> Health:
    return "green" if count < 2 else "amber" if count <= 4 else "red"


def _loops(count: int) -> Health:
    return "green" if count < 50 else "amber" if count <= 100 else "red"


def _tokens(consumption: int, limit: int) -> Health:
    used = consumption / limit
    return "green" if used < 0.75 else "amber" if used <= 0.95 else "red"


def score(*, token_consumption: int, token_limit: int, hallucination_rate: float,
          loop_count: int, conflict_count: int) -> Health:
    levels = (
        _hallucination(hallucination_rate),
        _conflicts(conflict_count),
        _loops(loop_count),
        _tokens(token_consumption, token_limit),
    )
    return max(levels, key=_RANK.__getitem__)


def status(health: Health) -> str:
    return STATUS[health]
