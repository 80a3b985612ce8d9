"""How far behind a consumer group is: records on its topics it has not committed yet.

Read with Kafka's admin API (committed offsets of the group, earliest and latest offsets
of the partitions), so it works for any deployment: the api reports the lag of the sink,
the worker and the notifier wherever they run. Blocking calls: run them on a thread.
"""
from dataclasses import dataclass

from confluent_kafka import ConsumerGroupTopicPartitions, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec


@dataclass(frozen=True)
class GroupLag:
    group: str
    by_topic: dict[str, int]  # topic -> records not yet committed, summed over its partitions

    @property
    def total(self) -> int:
        return sum(self.by_topic.values())


def _offsets(admin: AdminClient, parts: list[TopicPartition], spec, timeout: float) -> dict[tuple[str, int], int]:
    futures = admin.list_offsets({tp: spec for tp in parts}, request_timeout=timeout)
    return {(tp.topic, tp.partition): f.result().offset for tp, f in futures.items()}


def partitions_of(admin: AdminClient, topics: list[str], timeout: float) -> list[TopicPartition]:
    meta = admin.list_topics(timeout=timeout).topics
    return [TopicPartition(t, p) for t in topics if t in meta and not meta[t].error for p in meta[t].partitions]


def group_lag(admin: AdminClient, group: str, topics: list[str] | None = None, timeout: float = 5) -> GroupLag:
    """The group's lag on `topics` (a partition it never committed counts from its
    earliest offset: the group starts there), or, without `topics`, on the partitions it
    has committed (a group that never committed has no lag to report: empty)."""
    request = [ConsumerGroupTopicPartitions(group)]
    committed_parts = admin.list_consumer_group_offsets(request, request_timeout=timeout)[group].result().topic_partitions
    committed = {(tp.topic, tp.partition): tp.offset for tp in committed_parts or () if tp.offset >= 0}
    if topics is None:
        parts = [TopicPartition(t, p) for t, p in committed]
    else:
        parts = partitions_of(admin, topics, timeout)
    if not parts:
        return GroupLag(group, {})
    latest = _offsets(admin, parts, OffsetSpec.latest(), timeout)
    earliest = _offsets(admin, parts, OffsetSpec.earliest(), timeout)
    by_topic: dict[str, int] = {}
    for tp in parts:
        at = (tp.topic, tp.partition)
        start = max(committed.get(at, earliest[at]), earliest[at])
        by_topic[tp.topic] = by_topic.get(tp.topic, 0) + max(latest[at] - start, 0)
    return GroupLag(group, by_topic)


def produced(admin: AdminClient, topics: list[str], timeout: float = 5) -> dict[str, int]:
    """Records ever written to each topic (its partitions' latest offsets, summed; retention
    does not lower it), for the topics that exist."""
    parts = partitions_of(admin, topics, timeout)
    latest = _offsets(admin, parts, OffsetSpec.latest(), timeout) if parts else {}
    out: dict[str, int] = {}
    for (topic, _), offset in latest.items():
        out[topic] = out.get(topic, 0) + offset
    return out


__all__ = ["GroupLag", "group_lag", "produced", "KafkaException"]
