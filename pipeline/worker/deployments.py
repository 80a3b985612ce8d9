"""The worker's per-application watch: each application's metrics and deployments
(co-partitioned by application) move deployments along (rules: pipeline/deployments.py)
and raise insights (pipeline/insights.py) from the same state.

Like ARI, per batch: derive, produce the new revisions and wait for Kafka, then write the
per-application state; metric batches already applied are skipped by id.
"""
import asyncio
import json
import logging

import aiohttp
import faust

from schemas import codec

from .. import deployments as D
from .. import insights as I
from ..topics import APP_DEPLOYMENTS, APP_INSIGHTS, APP_METRICS

log = logging.getLogger("sophra.worker.deployments")

PROBE_TIMEOUT_S = 5.0


async def probe(url: str | None) -> str | None:
    """None when the health check answers 2xx (or there is none), else why it failed."""
    if not url:
        return None
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=PROBE_TIMEOUT_S)) as session:
            async with session.get(url, allow_redirects=False) as res:
                return None if 200 <= res.status < 300 else f"health check GET {url} answered {res.status}"
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        return f"health check GET {url} failed: {type(exc).__name__}"


def register(app: faust.App, settings, raw: dict) -> faust.Table:
    source = app.topic(settings.topic(APP_METRICS.name), settings.topic(APP_DEPLOYMENTS.name),
                       partitions=APP_METRICS.partitions, **raw)
    outlets = {"app_deployment": app.topic(settings.topic(APP_DEPLOYMENTS.name), **raw),
               "app_insight": app.topic(settings.topic(APP_INSIGHTS.name), **raw)}
    apps = app.Table("app_state", partitions=APP_METRICS.partitions, key_type=bytes, use_partitioner=True)

    @app.agent(source)
    async def watch_deployments(stream):
        async for batch in stream.take_events(500, within=0.05):
            states: dict[bytes, dict] = {}
            outputs: list[tuple[str, bytes, dict]] = []
            for event in batch:
                try:
                    kind, record = codec.decode(event.value)
                except codec.DecodeError as exc:
                    log.warning("skipping undecodable record: %s", exc)
                    continue
                state = states.get(event.key) or apps.get(event.key) or D.new_state()
                outputs += await apply(state, kind, record)
                states[event.key] = state
            pending = [await outlets[kind].send(key=key, value=codec.encode(kind, rec), force=True)
                       for kind, key, rec in outputs]
            if pending:
                await asyncio.gather(*pending)
            for key, state in states.items():
                apps[key] = state

    return apps


async def apply(state: dict, kind: str, record: dict) -> list[tuple[str, bytes, dict]]:
    """Step one application's state by one record; the (kind, key, record)s to produce."""
    tenant = record["tenant"]
    key = f"{tenant}/{record['application_id']}".encode()
    out = []
    if kind == "app_deployment":
        if record["status"] == "pending" and record["id"] not in state["open"] and record["id"] not in state["done"]:
            started = {**record, "status": "in_progress", "revision": 1}
            state["open"][record["id"]] = started
            out.append(("app_deployment", key, started))
    elif kind == "app_metric_batch":
        if record["id"] <= state["last_batch_id"]:
            return out  # seen before a restart
        state["last_batch_id"] = record["id"]
        D.add_points(state, record["points"])
        newest = D.newest(state)
        if newest is not None:
            found = I.detect(state["minutes"], newest)
            out += [("app_insight", key, r) for r in I.raise_insights(state, tenant, record["application_id"],
                                                                      found, newest)]
    for dep_id, dep in list(state["open"].items()):
        if D.due(state, dep["started_at"]):
            healthy, reasons, measured = D.verdict(state, dep["started_at"], await probe(dep["health_url"]))
            status = "success" if healthy else "rolled_back" if dep["rollback_on_error"] else "failed"
            reason = None if healthy else "; ".join(reasons) + ("; rolled back (rollback_on_error)"
                                                                 if status == "rolled_back" else "")
            newest = D.newest(state)
            decided = {**dep, "status": status, "reason": reason, "completed_at": newest, "revision": 2}
            out.append(("app_deployment", key, decided))
            if not healthy:
                out.append(("app_insight", key, I.deployment_insight(tenant, decided, newest)))
            log.info("deployment %s: %s %s", dep_id, status, json.dumps(measured))
            del state["open"][dep_id]
            state["done"] = (state["done"] + [dep_id])[-D.DONE_KEPT:]
    return out
