"""Which source records a subject's state already holds: by Kafka offset, per partition.

Record ids are not applied in id order (a large batch validated on a thread is produced
after a smaller, later one; api replicas' clocks differ), so "skip ids at or below the
last one" drops records. What Kafka guarantees is order within a partition: a subject's
records all live in one partition (its key's), so a record at or below the highest
offset its state applied from that topic partition was applied before (a redelivery
after a restart). The offsets live in the state itself, so the changelog restores them
with it.

States saved before offsets existed (up to issue 9) carry `last_vital_id` and
`last_event_id` (agents) or `last_batch_id` (applications' metric batches) instead. Until a partition of such a state has an offset mark, the old
rule decides once more (`applied_before_offsets`): the first restart after the upgrade
then skips what that state held, instead of applying it a second time.
"""


def _tp(topic: str, partition: int) -> str:
    return f"{topic}/{partition}"


def applied(state: dict | None, topic: str, partition: int, offset: int) -> bool:
    return state is not None and offset <= state.get("offsets", {}).get(_tp(topic, partition), -1)


def mark(state: dict, topic: str, partition: int, offset: int) -> None:
    state.setdefault("offsets", {})[_tp(topic, partition)] = offset


_LEGACY = {"agent_vital": "last_vital_id", "agent_event": "last_event_id", "app_metric_batch": "last_batch_id"}


def applied_before_offsets(state: dict | None, topic: str, partition: int, kind: str, record: dict) -> bool:
    """A state from before offsets: did it apply this record (by the id rule it then used)?"""
    if state is None or _tp(topic, partition) in state.get("offsets", {}):
        return False
    last = state.get(_LEGACY.get(kind, ""))
    return last is not None and record.get("id", 0) <= last
