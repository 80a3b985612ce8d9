"""The worker's anomaly watch: every series of every application (app.metrics) and every
agent vital (agent.vitals) through the detector, per minute, and the insight episodes it
finds (pipeline/anomaly/watch.py, pipeline/insights.py, docs/insights.md).

Deployments (app.deployments) and agent events (agent.events), co-partitioned with the
series they concern, are remembered as the changes a likely cause can name.

Each subject has two table entries, keyed like its records so both live in the changelog
partition of its records: `<scope>_watch` (the open minutes, the recent changes and the
offsets applied; small, written every batch that touches the subject) and
`<scope>_detectors` (detector state and episode per series; a few kB per series, written
only when a minute closes). Per batch: derive; produce the insights and wait for Kafka;
write the detectors and wait for their changelog; only then write the watch entries. So a
saved watch entry never holds an open minute whose closing the saved detectors lack; a
batch read again after a crash closes the same minutes again, and the detectors skip the
ones they were fed (`fed`). Records already applied are skipped by offset.
"""
import asyncio
import logging

import faust

from schemas import codec

from .. import insights as I
from ..alerts.evaluate import vital_points
from ..anomaly import watch as W
from ..topics import AGENT_EVENTS, AGENT_VITALS, APP_DEPLOYMENTS, APP_INSIGHTS, APP_METRICS, TopicSpec, table_changelog
from .failstop import fail_stop
from .offsets import applied, mark
from .outlet import Outlet

log = logging.getLogger("sophra.worker.anomalies")

BATCH = 500
BATCH_WITHIN_S = 0.05
CHANGES_KEPT = 5  # the latest deployments / events per subject, for likely causes


def _app_points(record: dict) -> list[tuple[str, float, int]]:
    return [(p["metric"], p["value"], p["timestamp"]) for p in record["points"]]


def _vital_points(record: dict) -> list[tuple[str, float, int]]:
    # tokenUsagePercent is tokenConsumption over the limit: watching both would say one thing twice
    return [p for p in vital_points(record) if p[0] != "tokenUsagePercent"]


def _deployment_change(record: dict) -> tuple[str, int] | None:
    if record["status"] != "pending":
        return None  # its later revisions are the worker's own
    return f"deployment {record['version']}", record["started_at"]


def _event_change(record: dict) -> tuple[str, int]:
    return f"event {record['event_type']}", record["recorded_at"]


# scope: (series topic, its kind, points, changes topic, its kind, change, subject field)
SCOPES = {
    "application": (APP_METRICS, "app_metric_batch", _app_points, APP_DEPLOYMENTS, "app_deployment",
                    _deployment_change, "application_id"),
    "agent": (AGENT_VITALS, "agent_vital", _vital_points, AGENT_EVENTS, "agent_event", _event_change, "agent_id"),
}


def tables(scope: str) -> tuple[str, str]:
    return f"{scope}_watch", f"{scope}_detectors"


def changelogs(worker_id: str) -> list[TopicSpec]:
    """The watch tables' changelogs, created before Faust starts (app.changelogs)."""
    return [table_changelog(worker_id, name, SCOPES[scope][0].partitions)
            for scope in SCOPES for name in tables(scope)]


def step(scope: str, lookup_watch, lookup_detectors, records):
    """Apply (key, value, (topic, partition, offset)) records of one scope: the new watch
    entries, the new detector entries and the insight records to produce ((id) -> (key, record))."""
    _, points_kind, points_of, _, change_kind, change_of, subject_field = SCOPES[scope]
    watches, detectors, found = {}, {}, []
    for key, value, source in records:
        w = watches.get(key) or lookup_watch(key)
        if applied(w, *source):
            continue  # applied before a restart
        try:
            kind, record = codec.decode(value)
        except codec.DecodeError as exc:
            log.warning("skipping undecodable record: %s", exc)
            continue
        w = w or {**W.new_minutes(), "changes": []}
        if kind == points_kind:
            closed = W.accumulate(w, points_of(record))
            if closed:
                d = detectors.get(key) or lookup_detectors(key) or W.new_series()
                found += [(key, record["tenant"], record[subject_field], ep)
                          for name, minute, mean in closed for ep in W.observe(d, name, minute, mean)]
                detectors[key] = d
        elif kind == change_kind:
            change = change_of(record)
            if change:
                w["changes"] = (w["changes"] + [list(change)])[-CHANGES_KEPT:]
        mark(w, *source)
        watches[key] = w
    # worded once the batch is in, so episodes that began together name each other
    insights = {}
    for key, tenant, subject, ep in found:
        rec = I.anomaly_insight(tenant, scope, subject, W.refresh(detectors[key], ep), {"changes": watches[key]["changes"]})
        insights[rec["id"]] = (key, rec)
    return watches, detectors, insights


def register(app: faust.App, settings, raw: dict) -> dict[str, faust.Table]:
    outlet = Outlet(app, settings, APP_INSIGHTS, raw)
    registered = {}

    def watcher(scope: str):
        series_spec, _, _, changes_spec, _, _, _ = SCOPES[scope]
        watch_name, detectors_name = tables(scope)
        watch_table = app.Table(watch_name, partitions=series_spec.partitions, key_type=bytes, use_partitioner=True)
        detector_table = app.Table(detectors_name, partitions=series_spec.partitions, key_type=bytes,
                                   use_partitioner=True)
        registered.update({watch_name: watch_table, detectors_name: detector_table})
        source = app.topic(settings.topic(series_spec.name), settings.topic(changes_spec.name),
                           partitions=series_spec.partitions, **raw)

        async def watch(stream):
            async for batch in stream.take_events(BATCH, within=BATCH_WITHIN_S):
                with fail_stop(f"{scope} anomaly watch"):
                    await _step(batch)

        async def _step(batch) -> None:
            watches, detectors, insights = step(scope, watch_table.get, detector_table.get, (
                (e.key, e.value, (e.message.topic, e.message.partition, e.message.offset)) for e in batch))
            pending = [await outlet.send(key, "app_insight", record) for key, record in insights.values()]
            if pending:
                await asyncio.gather(*pending)
            for key, d in detectors.items():
                detector_table[key] = d
            if detectors:
                await app.producer.flush()  # the detectors are on Kafka before the watch entries that follow them
            for key, w in watches.items():
                watch_table[key] = w

        watch.__name__ = f"watch_{scope}_anomalies"
        app.agent(source, name=watch.__name__)(watch)

    for scope in SCOPES:
        watcher(scope)
    return registered
