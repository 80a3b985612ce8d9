"""The throttle signal of token budgets (docs/budgets.md on the server): the latest
`budget` each agent's POST /api/vitals answer carried, and a user function called when an
agent's budget use crosses a threshold upward, so the agent can slow down or stop."""
from __future__ import annotations

import json
import math
import threading
from typing import Any, Callable, Dict, Optional, Sequence

DEFAULT_THRESHOLDS = (80.0, 100.0)
# on_budget(agent_id, threshold, budget): budget is the answer's `budget` object
OnBudget = Callable[[str, float, Dict[str, Any]], Any]


class BudgetWatch:
    def __init__(self, thresholds: Sequence[float] = DEFAULT_THRESHOLDS, on_budget: Optional[OnBudget] = None):
        for t in thresholds:
            if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t) or t <= 0:
                raise ValueError("budget_thresholds must be positive numbers (percent used)")
        if on_budget is not None and not callable(on_budget):
            raise TypeError("on_budget must be callable")
        self.thresholds = tuple(sorted(float(t) for t in thresholds))
        self.on_budget = on_budget
        self._latest: Dict[str, Optional[Dict[str, Any]]] = {}
        self._lock = threading.Lock()

    def get(self, agent_id: str) -> Optional[Dict[str, Any]]:
        with self._lock:
            return self._latest.get(agent_id)

    def seen(self, prepared, answer: Any) -> None:
        """Note the answer to a request (only POST /api/vitals carries a budget)."""
        method, path, data = prepared
        if method != "POST" or path != "/api/vitals" or not isinstance(answer, dict) or data is None:
            return
        agent_id = json.loads(data)["agentId"]
        budget = answer.get("budget")  # absent: no budget covers the agent
        with self._lock:
            before = self._latest.get(agent_id)
            self._latest[agent_id] = budget
        if budget is None or self.on_budget is None:
            return
        # a new period (or another budget becoming the tightest) starts again from 0
        was = before["percent_used"] if before and before.get("id") == budget.get("id") else 0.0
        for t in self.thresholds:
            if was < t <= budget["percent_used"]:
                try:
                    self.on_budget(agent_id, t, budget)
                except Exception:  # noqa: BLE001 - the user's function must not fail a report that was stored
                    pass
