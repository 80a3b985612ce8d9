"""The worker's alert evaluation: application rules over app.metrics, agent rules over
agent.vitals, budget rules over the budgets' counts (budgets.usage), and a wall-clock
timer for no_data and reminders (rules: pipeline/alerts/evaluate.py, docs/alerts.md).

A budget's counts arrive as one cumulative partial per vitals partition (budgets.usage
is compacted, keyed `<budget id>/<partition>`): its state keeps the latest partial of
each, and on each one computes the whole budget's figures (pipeline/budgets.py) at the
record's Kafka timestamp and steps its rules on them.

Each subject's alert state lives in a changelogged table keyed like its records, so it
sits in the changelog partition of its records and a restarted worker resumes it: a
firing rule is not fired again, a pending one is not forgotten. As everywhere in the
worker, per batch: derive; produce the transitions and statuses and wait for Kafka;
only then write the state. Records already applied are skipped by offset (a subject's
records all live in one partition). A record is evaluated at the time Sophra received
it (its Kafka timestamp), not when the worker got to it: the state is then a function of
the log and the clock's ticks, which replay reproduces (pipeline/replay/alerts.py). The timer and the stream share one lock, so neither
writes a state the other read before its own write.
"""
import asyncio
import logging
import time

import faust
from aiokafka.partitioner import murmur2

from schemas import codec

from ..alerts.evaluate import SOURCES, apply_record, budget_points, new_state, observe, tick
from ..alerts.rulebook import RuleBook
from ..budget_book import BudgetBook
from ..budgets import figures
from ..topics import (AGENT_VITALS, APP_ALERT_STATUS, APP_ALERTS, APP_METRICS, BUDGET_USAGE, TopicSpec,
                      table_changelog)
from .failstop import finish
from .outlet import Outlet

log = logging.getLogger("sophra.worker.alerts")

BATCH = 500
BATCH_WITHIN_S = 0.05
TICK_S = 1.0


def _now() -> int:
    return time.time_ns() // 1_000_000


def received(event) -> int:
    """When Sophra received the record (its Kafka timestamp, epoch ms): the wall time its
    points are evaluated at, so replay, reading the same log, derives the same."""
    ts = event.message.timestamp
    return round(ts * 1000) if ts else _now()


def _partition(key: bytes, partitions: int) -> int:
    return (murmur2(key) & 0x7FFFFFFF) % partitions  # Kafka's default partitioner, as every producer here


TOPICS = {"application": APP_METRICS, "agent": AGENT_VITALS}


def changelogs(worker_id: str) -> list[TopicSpec]:
    """The alert tables' changelog topics, created before Faust starts (app.changelogs): the
    clock writes to the tables outside any stream, so their partition comes from the key."""
    return [table_changelog(worker_id, f"{scope}_alert_state", spec.partitions)
            for scope, spec in {**TOPICS, "budget": BUDGET_USAGE}.items()]


def apply_usage(state: dict | None, rules, budget: dict | None, key: bytes, record: dict | None,
                wall: int) -> tuple[dict | None, list]:
    """One budgets.usage record (None: a tombstone, the budget was deleted) for a budget's
    state: keep it as its partition's latest partial; step the rules on the figures at
    `wall`. Partials are kept with or without rules, so a rule made later starts from the
    whole count."""
    partition = key.decode().rsplit("/", 1)[1]
    if record is None and state is None:
        return None, []
    state = state or new_state()
    state.setdefault("partials", {})  # a state the clock made for a rule before any count
    if record is None:
        state["partials"].pop(partition, None)
        return state, []
    state["partials"][partition] = record
    if budget is None or budget["tenant"] != record["tenant"] or not any(r.enabled for r in rules):
        return state, []
    state["name"] = budget["name"]
    f = figures(budget, list(state["partials"].values()), wall)
    return state, observe(state, list(rules), budget_points(f, wall), wall)


def register(app: faust.App, settings, raw: dict, book: RuleBook, budgets: BudgetBook) -> dict[str, faust.Table]:
    outlets = {"alert_transition": Outlet(app, settings, APP_ALERTS, raw),
               "alert_status": Outlet(app, settings, APP_ALERT_STATUS, raw)}
    lock = asyncio.Lock()
    scopes = {}  # scope -> (source topic name, partitions, table)

    async def deliver(outputs: list[tuple[str, dict]]) -> None:
        last: dict[tuple, tuple[str, dict]] = {}
        for kind, record in outputs:  # every transition, but only each rule's last status
            last[(kind, record["rule_id"], record.get("id"))] = (kind, record)
        pending = [await outlets[kind].send(record["rule_id"].encode(), kind, record) for kind, record in last.values()]
        if pending:
            await asyncio.gather(*pending)

    def evaluator(scope: str, spec):
        kind, subject_field, _ = SOURCES[scope]
        topic_name = settings.topic(spec.name)
        table = app.Table(f"{scope}_alert_state", partitions=spec.partitions, key_type=bytes, use_partitioner=True)
        scopes[scope] = (topic_name, spec.partitions, table)

        async def evaluate(stream):
            async for batch in stream.take_events(BATCH, within=BATCH_WITHIN_S):
                await finish(f"{scope} alert evaluation", _evaluate(batch))

        async def _evaluate(batch) -> None:
            async with lock:
                states, outputs = {}, []
                for event in batch:
                    key = event.key
                    state = states.get(key) or table.get(key)
                    if state is not None and event.message.offset <= state["offset"]:
                        continue  # applied before a restart
                    try:
                        got, record = codec.decode(event.value)
                    except codec.DecodeError as exc:
                        log.warning("skipping undecodable record: %s", exc)
                        continue
                    if got != kind:
                        continue
                    rules = book.for_subject(record["tenant"], scope, record[subject_field])
                    state, out = apply_record(state, rules, scope, record, received(event))
                    if state is None:
                        continue
                    state["offset"] = event.message.offset
                    outputs += out
                    states[key] = state
                await deliver(outputs)
                for key, state in states.items():
                    table[key] = state
        evaluate.__name__ = f"evaluate_{scope}_alerts"
        app.agent(app.topic(topic_name, partitions=spec.partitions, **raw), name=evaluate.__name__)(evaluate)
        return table

    app_table = evaluator("application", TOPICS["application"])
    agent_table = evaluator("agent", TOPICS["agent"])

    usage_name = settings.topic(BUDGET_USAGE.name)
    budget_table = app.Table("budget_alert_state", partitions=BUDGET_USAGE.partitions, key_type=bytes,
                             use_partitioner=True)  # keyed by budget id: a tombstone's key names no tenant
    scopes["budget"] = (usage_name, BUDGET_USAGE.partitions, budget_table)

    @app.agent(app.topic(usage_name, partitions=BUDGET_USAGE.partitions, **raw), name="evaluate_budget_alerts")
    async def evaluate_budget_alerts(stream):
        async for batch in stream.take_events(BATCH, within=BATCH_WITHIN_S):
            await finish("budget alert evaluation", _evaluate_budgets(batch))

    async def _evaluate_budgets(batch) -> None:
        # No catch_up of the book: the partial was counted against it, in this worker or one
        # that had read it; a budget still unknown here is met at its next partial.
        async with lock:
            states, outputs = {}, []
            for event in batch:
                budget_id = event.key.decode().rsplit("/", 1)[0]
                key = budget_id.encode()
                state = states.get(key) or budget_table.get(key)
                if state is not None and event.message.offset <= state["offset"]:
                    continue  # applied before a restart
                record = None
                if event.value is not None:
                    try:
                        record = codec.decode(event.value)[1]
                    except codec.DecodeError as exc:
                        log.warning("skipping undecodable record: %s", exc)
                        continue
                budget = budgets.by_id.get(budget_id)
                rules = book.for_subject(budget["tenant"], "budget", budget_id) if budget else ()
                state, out = apply_usage(state, rules, budget, event.key, record, received(event))
                if state is None:
                    continue
                state["offset"] = event.message.offset
                outputs += out
                states[key] = state
            await deliver(outputs)
            for key, state in states.items():
                budget_table[key] = state

    @app.timer(interval=TICK_S)
    async def alert_clock():
        if app.in_recovery:
            return  # tables are being restored: a state read now may be stale
        async with lock:
            wall = _now()
            actives = app.assignor.assigned_actives()
            for scope, (topic_name, partitions, table) in scopes.items():
                mine = {tp.partition for tp in actives if tp.topic == topic_name}
                if not mine:
                    continue
                with_rules = book.subjects(scope)
                if scope == "budget":  # its table is keyed by budget id alone
                    with_rules = {k.rsplit(b"/", 1)[1]: rules for k, rules in with_rules.items()}
                keys = {k for k in list(table.keys()) if _partition(k, partitions) in mine}
                keys |= {k for k in with_rules if _partition(k, partitions) in mine}
                outputs, changed = [], {}
                for key in keys:
                    state = table.get(key) or new_state()
                    known = set(state["rules"]), set(state["series"])
                    out = tick(state, list(with_rules.get(key, ())), wall)
                    outputs += out
                    if not state["rules"] and not state["series"] and not state.get("partials"):
                        changed[key] = None  # no rule left (nor a budget's counts): forget the subject
                    elif out or known != (set(state["rules"]), set(state["series"])):
                        changed[key] = state  # a transition, or a rule it met or forgot
                await deliver(outputs)
                for key, state in changed.items():
                    if state is None:
                        table.pop(key, None)
                    else:
                        table[key] = state

    return {"application_alert_state": app_table, "agent_alert_state": agent_table,
            "budget_alert_state": budget_table}
