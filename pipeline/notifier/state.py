"""The notifier's outbox: the latest state of every delivery, on the compacted
`notify.state` topic (key = delivery id), kept in memory by the notifier.

A delivery is written `pending` before the source record's offset is committed, and
again after every attempt (`pending` with the next time, or `done` with the outcome).
So a restarted notifier re-sends nothing that was recorded as done, resumes what was
pending, and only the one attempt in flight at a kill can be repeated.
"""
import json

from ..applications import ConfigRegistry


class DeliveryBook(ConfigRegistry):
    """The outbox in memory, by delivery id (a compacted topic, like the config records)."""

    def remember(self, state: dict) -> None:
        # Our own writes are remembered at once; the reader applies the same records
        # again later, in log order, ending on the same latest state.
        self.by_id[state["delivery_id"]] = state

    def pending(self, sources: set[str]) -> list[dict]:
        return [s for s in list(self.by_id.values()) if s["status"] == "pending" and s["source"] in sources]


def state_record(tenant: str, delivery_id: str, source: str, notification: dict, action: dict, *, status: str,
                 attempts: int, next_at: int, first_at: int, outcome: str | None = None) -> dict:
    return {"tenant": tenant, "delivery_id": delivery_id, "source": source,
            "notification": json.dumps(notification, separators=(",", ":")),
            "action": json.dumps(action, separators=(",", ":")), "status": status, "attempts": attempts,
            "next_at": next_at, "first_at": first_at, "outcome": outcome}
