"""Streaming anomaly detection for one series: `new_state()`, `update(state, t, x)`."""

from .detector import Result, new_state, update

__all__ = ["Result", "new_state", "update"]
