"""Which source records a subject's state already holds: by Kafka offset, per partition.

Record ids are not applied in id order (a large batch validated on a thread is produced
after a smaller, later one; api replicas' clocks differ), so "skip ids at or below the
last one" drops records. What Kafka guarantees is order within a partition: a subject's
records all live in one partition (its key's), so a record at or below the highest
offset its state applied from that topic partition was applied before (a redelivery
after a restart). The offsets live in the state itself, so the changelog restores them
with it.
"""


def _tp(topic: str, partition: int) -> str:
    return f"{topic}/{partition}"


def applied(state: dict | None, topic: str, partition: int, offset: int) -> bool:
    return state is not None and offset <= state.get("offsets", {}).get(_tp(topic, partition), -1)


def mark(state: dict, topic: str, partition: int, offset: int) -> None:
    state.setdefault("offsets", {})[_tp(topic, partition)] = offset
