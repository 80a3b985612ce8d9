"""Every token budget, in memory: the api's and the worker's view of `accounts.budgets`
(a compacted, single-partition config topic, like the alert rules), indexed by tenant.
The worker also brings it up to the topic's end before counting a batch (`catch_up`)."""
from confluent_kafka import Consumer, KafkaException, TopicPartition

from .applications import ConfigRegistry

CATCH_UP_TIMEOUT_S = 30


class BudgetBook(ConfigRegistry):
    """Every budget, in memory, with an index by tenant (replaced whole, so the event loop
    never sees one half-updated), and a way to catch up to the topic's end."""

    def __init__(self, bootstrap: str, topic: str):
        self.by_tenant: dict[str, tuple[dict, ...]] = {}
        self._bootstrap, self._ends = bootstrap, None
        super().__init__(bootstrap, topic)

    def _put(self, key: bytes, value: bytes | None) -> None:
        budget_id = key.decode()
        old = self.by_id.get(budget_id)
        super()._put(key, value)
        new = self.by_id.get(budget_id)
        for tenant in {r["tenant"] for r in (old, new) if r is not None}:
            kept = tuple(r for r in self.by_tenant.get(tenant, ()) if r["id"] != budget_id)
            kept += (new,) if new is not None and new["tenant"] == tenant else ()
            if kept:
                self.by_tenant[tenant] = kept
            else:
                self.by_tenant.pop(tenant, None)

    def of_tenant(self, tenant: str) -> tuple[dict, ...]:
        return self.by_tenant.get(tenant, ())

    def catch_up(self, timeout: float = CATCH_UP_TIMEOUT_S) -> None:
        """Block until every budget record in the topic now has been applied."""
        if self._ends is None:  # its own consumer: the reader thread's is busy consuming
            self._ends = Consumer({"bootstrap.servers": self._bootstrap, "group.id": "sophra-budget-book",
                                   "enable.auto.commit": False})
        try:
            end = self._ends.get_watermark_offsets(TopicPartition(self.topic, 0), timeout=timeout)[1]
        except KafkaException as exc:
            raise RuntimeError(f"could not read the end of {self.topic}: {exc}") from None
        if end > 0 and not self.wait_applied(end - 1, timeout):
            raise RuntimeError(f"the budget book did not reach offset {end} of {self.topic} in {timeout} s")

    def stop(self) -> None:
        super().stop()
        if self._ends is not None:
            self._ends.close()
