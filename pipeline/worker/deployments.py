"""The worker's per-application deployment watch: each application's metrics and
deployments (co-partitioned by application) move deployments along (rules:
pipeline/deployments.py); a failed or rolled back one raises an insight
(pipeline/insights.py). The same step runs the applications' anomaly watch
(anomalies.py), its watch kept in the same state.

Like ARI, per batch: derive, produce the new revisions and wait for Kafka, then write the
per-application state; records already applied are skipped by their Kafka offset
(offsets.py), and derived records go out through outlet.py (clamped, dead-lettered when
they can't be encoded).

Health checks never run inside the batch loop. When a deployment with a health check
becomes due, `apply` records it under state["probing"]; after the batch's state is
written the loop starts the probe as a background task (through the process's Outbound
guard, bounded by its concurrency cap) and goes on. The task produces the result to
app.deployments under the same key, and this agent decides when it consumes it. A probe
lost with its process is started again: `Probes.start` runs for every state a batch
touched and for the whole table after each recovery, and launches whatever is probing
without a probe in flight here.
"""
import asyncio
import logging

import faust

from schemas import codec

from .. import deployments as D
from ..deployments import apply  # the step itself; replay runs it too (pipeline/replay/deployments.py)
from ..outbound import Outbound, OutboundBlocked, OutboundFailed
from ..topics import APP_DEPLOYMENTS, APP_INSIGHTS, APP_METRICS
from . import anomalies
from .failstop import finish
from .offsets import applied, applied_before_offsets, mark
from .outlet import Outlet

TABLE = "app_state"

log = logging.getLogger("sophra.worker.deployments")

PROBE_TIMEOUT_S = 5.0


async def probe(outbound: Outbound, url: str | None) -> str | None:
    """None when the health check answers 2xx (or there is none), else why it failed.
    Never the answer's body: the target may be something the user should not read."""
    if not url:
        return None
    try:
        res = await outbound.request("GET", url, timeout=PROBE_TIMEOUT_S)
    except OutboundBlocked as exc:
        return f"health check GET {url} refused: {exc}"
    except OutboundFailed as exc:
        return f"health check GET {url} failed: {exc}"
    return None if 200 <= res.status < 300 else f"health check GET {url} answered {res.status}"


class Probes:
    """The health checks this process has in flight, keyed (application key, deployment id)
    from launch until their result record is consumed."""

    def __init__(self, outbound: Outbound, topic):
        self.outbound, self.topic = outbound, topic
        self.in_flight: set[tuple[bytes, str]] = set()
        self._tasks: set[asyncio.Task] = set()  # strong references, or the loop may drop them

    def start(self, key: bytes, state: dict) -> None:
        for dep_id in state.get("probing", {}):
            if (key, dep_id) not in self.in_flight:
                self.in_flight.add((key, dep_id))
                task = asyncio.create_task(self._run(key, dict(state["open"][dep_id])))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    def seen(self, key: bytes, dep_id: str) -> None:
        self.in_flight.discard((key, dep_id))

    async def _run(self, key: bytes, dep: dict) -> None:
        try:
            result = D.probe_result(dep, await probe(self.outbound, dep["health_url"]))
            await (await self.topic.send(key=key, value=codec.encode("app_deployment", result), force=True))
        except Exception:  # e.g. Kafka unavailable: the next batch for this key launches it again
            log.exception("health check of deployment %s: result not produced", dep["id"])
            self.seen(key, dep["id"])


def register(app: faust.App, settings, raw: dict) -> dict[str, faust.Table]:
    source = app.topic(settings.topic(APP_METRICS.name), settings.topic(APP_DEPLOYMENTS.name),
                       partitions=APP_METRICS.partitions, **raw)
    outlets = {"app_deployment": Outlet(app, settings, APP_DEPLOYMENTS, raw),
               "app_insight": Outlet(app, settings, APP_INSIGHTS, raw)}
    apps = app.Table(TABLE, partitions=APP_METRICS.partitions, key_type=bytes, use_partitioner=True)
    detectors = anomalies.Detectors(app, "application")  # the anomaly watch runs in this step (anomalies.py)
    probes = Probes(Outbound.from_settings(settings), outlets["app_deployment"].topic)

    @app.agent(source)
    async def watch_deployments(stream):
        try:
            async for batch in stream.take_events(500, within=0.05):
                await finish("deployments and application anomalies", _step(batch))
        finally:  # the worker stops: close the guard's session (made again if the agent restarts)
            await probes.outbound.close()

    async def _step(batch) -> None:
        states: dict[bytes, dict] = {}
        outputs: list[tuple[str, bytes, dict]] = []
        watched = []  # (key, kind, record) applied here, for the anomaly watch
        for event in batch:
            source = event.message.topic, event.message.partition, event.message.offset
            state = states.get(event.key) or apps.get(event.key)
            if applied(state, *source):
                continue  # applied before a restart
            try:
                kind, record = codec.decode(event.value)
            except codec.DecodeError as exc:
                log.warning("skipping undecodable record: %s", exc)
                continue
            if applied_before_offsets(state, *source[:2], kind, record):
                continue  # held by a state saved before offsets were kept (upgrade)
            state = state or D.new_state()
            outputs += apply(state, kind, record)
            mark(state, *source)
            states[event.key] = state
            watched.append((event.key, kind, record))
            if kind == "app_deployment" and record["probed"]:
                probes.seen(event.key, record["id"])
        watches, due, insights = anomalies.step("application", lambda key: states[key].get(anomalies.WATCH),
                                                detectors.get, watched, detectors.confirmed, detectors.saving)
        for key, w in watches.items():
            states[key][anomalies.WATCH] = w
        outputs += [("app_insight", key, rec) for key, rec in insights.values()]
        pending = [await outlets[kind].send(key, kind, rec) for kind, key, rec in outputs]
        if pending:
            await asyncio.gather(*pending)
        detectors.save(due)
        for key, state in states.items():
            apps[key] = state
        # after the state write, so a result can't be consumed before its "probing"
        for key, state in states.items():
            probes.start(key, state)

    @apps.on_recover
    async def resume_probes():
        # the in-memory store keeps only this worker's active partitions after recovery
        for key, state in list(apps.items()):
            probes.start(key, state)

    return {TABLE: apps, anomalies.table_name("application"): detectors.table}
