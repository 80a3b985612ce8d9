"""The worker's part of token budgets: count vitals' token consumption per budget,
exactly once, and publish the counts for the api (rules: pipeline/budgets.py;
docs/budgets.md).

A budget's agents spread over every vitals partition, so each partition keeps its own
partial count, in a changelogged table keyed `<tenant>@<partition>` and written to that
partition of the changelog: the partial moves with its partition when the group
rebalances, and a restarted worker restores it. As in every worker step: derive; produce
each changed partial to the compacted `budgets.usage` (key `<budget id>/<partition>`) and
wait for Kafka; only then write the states. The partials are cumulative, so a batch read
again after a crash produces the same figures; records already applied are skipped by
their Kafka offset (offsets.py), so none is counted twice.

Before each batch the book of budgets is brought up to the end of `accounts.budgets`, so
a budget acknowledged to its creator (201) before a report was sent counts that report.
"""
import asyncio
import json
import time

import faust

from schemas import codec

from ..budget_book import BudgetBook
from ..budgets import count, covers, metadata_of
from ..topics import AGENT_VITALS, BUDGET_USAGE, TopicSpec, table_changelog
from .failstop import finish
from .offsets import applied, mark
from .state import write_states

TABLE = "budget_usage"
BATCH = 500
BATCH_WITHIN_S = 0.05


def state_key(tenant: str, partition: int) -> bytes:
    return f"{tenant}@{partition}".encode()


def partition_of(key: bytes) -> int:
    return int(key.rsplit(b"@", 1)[1])


def usage_record(tenant: str, budget_id: str, partition: int, partial: dict) -> dict:
    return {"tenant": tenant, "budget_id": budget_id, "partition": partition,
            "counts": [{"start": int(s), "used": u}
                       for s, u in sorted(partial["counts"].items(), key=lambda kv: int(kv[0]))],
            "counted_through": partial["through"], "forecast_exhaustion_at": None,
            "updated_at": time.time_ns() // 1_000_000}


def apply_batch(lookup, budgets_of, records) -> tuple[dict, dict]:
    """Count a batch of (value, (topic, partition, offset)) vitals from `lookup(key)`'s
    states; returns (states by key, the latest partial record by (budget id, partition))."""
    states, outputs = {}, {}
    for value, (topic, partition, offset) in records:
        try:
            kind, record = codec.decode(value)
        except codec.DecodeError:
            continue  # the sink dead-letters it
        if kind != "agent_vital":
            continue
        tenant = record["tenant"]
        key = state_key(tenant, partition)
        state = states.get(key)  # this batch's copy, stepped in place
        before = state if state is not None else lookup(key)
        if applied(before, topic, partition, offset):
            continue  # applied before a restart
        budgets = budgets_of(tenant)
        if not budgets and before is None:
            continue  # nothing counts it: keep no state
        if state is None:  # the table's value stays as it was until the batch's outputs are in Kafka
            state = json.loads(json.dumps(before)) if before else {"budgets": {}}
        live = {b["id"] for b in budgets}
        state["budgets"] = {i: p for i, p in state["budgets"].items() if i in live}  # deleted budgets go
        metadata = None
        for b in budgets:
            if record["recorded_at"] < b["created_at"]:
                continue
            if b["scope"] == "group" and metadata is None:
                metadata = metadata_of(record)
            if covers(b, record["agent_id"], metadata):
                partial = count(state["budgets"].get(b["id"]), b, record["recorded_at"], record["token_consumption"])
                state["budgets"][b["id"]] = partial
                outputs[(b["id"], partition)] = usage_record(tenant, b["id"], partition, partial)
        mark(state, topic, partition, offset)
        states[key] = state
    return states, outputs


def changelogs(worker_id: str) -> list[TopicSpec]:
    return [table_changelog(worker_id, TABLE, AGENT_VITALS.partitions)]


def register(app: faust.App, settings, raw: dict, book: BudgetBook) -> dict[str, faust.Table]:
    vitals = app.topic(settings.topic(AGENT_VITALS.name), partitions=AGENT_VITALS.partitions, **raw)
    usage = app.topic(settings.topic(BUDGET_USAGE.name), **raw)
    table = app.Table(TABLE, partitions=AGENT_VITALS.partitions, key_type=bytes)

    @app.agent(vitals, name="count_budgets")
    async def count_budgets(stream):
        async for batch in stream.take_events(BATCH, within=BATCH_WITHIN_S):
            await finish("budget counting", _step(batch))

    async def _step(batch) -> None:
        await asyncio.to_thread(book.catch_up)
        states, outputs = apply_batch(table.get, book.of_tenant, (
            (e.value, (e.message.topic, e.message.partition, e.message.offset)) for e in batch))
        pending = [await usage.send(key=f"{budget_id}/{partition}".encode(),
                                    value=codec.encode("budget_usage", record), force=True)
                   for (budget_id, partition), record in outputs.items()]
        if pending:
            await asyncio.gather(*pending)
        await write_states(table, states, partition_of)

    return {TABLE: table}
