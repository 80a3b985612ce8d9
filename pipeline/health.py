"""Health scoring: the one home of reference 003's "Health Scoring" thresholds.

Used by the api (response, stored record and the dashboard's bands), the worker and
replay. Boundaries as in DESIGN.md: each metric is green below its amber bound, amber
from the amber bound up to its red bound, red beyond; the worst metric wins.
"""
from typing import Literal

Health = Literal["green", "amber", "red"]
STATUS = {"green": "active", "amber": "warning", "red": "critical"}
_RANK = {"green": 0, "amber": 1, "red": 2}

# Per metric (named as agent rules and GET /api/agents/{id}/metrics name them): amber
# from `amber` on, red above `red`. Token usage is consumption as a percentage of the limit.
THRESHOLDS = {
    "tokenUsagePercent": {"amber": 75, "red": 95},
    "hallucinationRate": {"amber": 0.05, "red": 0.15},
    "loopCount": {"amber": 50, "red": 100},
    "conflictCount": {"amber": 2, "red": 4},
}


def level(metric: str, value: float) -> Health:
    t = THRESHOLDS[metric]
    return "green" if value < t["amber"] else "amber" if value <= t["red"] else "red"


def score(*, token_consumption: int, token_limit: int, hallucination_rate: float,
          loop_count: int, conflict_count: int) -> Health:
    # Token usage compares consumption with the bounds' share of the limit, without a
    # division, so 75,000 of 100,000 is exactly at the amber bound.
    t = THRESHOLDS["tokenUsagePercent"]
    tokens: Health = ("green" if token_consumption * 100 < t["amber"] * token_limit
                      else "amber" if token_consumption * 100 <= t["red"] * token_limit else "red")
    levels = (
        level("hallucinationRate", hallucination_rate),
        level("conflictCount", conflict_count),
        level("loopCount", loop_count),
        tokens,
    )
    return max(levels, key=_RANK.__getitem__)


def status(health: Health) -> str:
    return STATUS[health]
