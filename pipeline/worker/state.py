"""Writing a batch's states to a Faust table without its producer buffer.

`table[key] = value` queues the changelog record in Faust's ProducerBuffer, and once
that holds more than 100 records the conductor stops handing records to every stream
until it drains (ProducerBuffer.wait_until_ebb, faust-streaming#173). A batch writes a
state per subject, so each batch stalled the stream feeding the next one, whose
`take_events` then gave up after its `within` with a few dozen records: small batches,
each paying the per-batch cost and a status and a state record for nearly every vital.

Here each record goes straight to the producer (as the outputs do), with the table's own
partitioner and serializers, so the changelog holds what `table[key] = value` writes.
The records are not awaited: Faust's commit flushes the producer before it commits the
offsets (Consumer.commit), so no offset is committed ahead of the states that hold it.
"""


async def write_states(table, states: dict, partition_of=None) -> None:
    """What `table[key] = state` does for each, sent at once (the store is memory://:
    nothing to record on delivery). `partition_of(key)` picks the changelog partition
    when the key does not hash to it (default: the table's partitioner)."""
    topic = table.changelog_topic
    partition_of = partition_of or table.partition_for_key
    for key, state in states.items():
        table.data[key] = state
        await topic.send(key=key, value=state, partition=partition_of(key),
                         key_serializer=table.key_serializer, value_serializer=table.value_serializer, force=True)
