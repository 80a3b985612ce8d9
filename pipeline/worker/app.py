"""The Faust worker: per-agent state kept in changelogged tables.

For now it counts each agent's snapshots (the number ARI waits for before it judges,
reference 003). Tables are partitioned like the vitals topic, so an agent's state lives
on the worker that owns that agent's partition, and a restarted worker rebuilds it
from the changelog topic.

Kafka delivers at least once: a worker stopped between writing its changelog and
committing its offsets sees some records again. Each agent's state therefore keeps the
id of the last vitals record it applied and skips any record at or below it (ids grow
per agent: they are time-ordered and reports are at least 10 s apart), so a record
changes the state exactly once.
"""
import logging

import faust

from schemas import codec
from sophra.settings import Settings

from ..topics import AGENT_VITALS

log = logging.getLogger("sophra.worker")


def create_app(settings: Settings, bootstrap: str) -> faust.App:
    app = faust.App(
        settings.worker_id,
        broker=f"kafka://{bootstrap}",
        store="memory://",
        topic_partitions=AGENT_VITALS.partitions,
        producer_acks=-1,
        web_enabled=False,
        table_cleanup_interval=60.0,
    )
    # Faust names changelog topics "<app id>-<table>-changelog"; the prefix keeps test
    # runs and deployments that share a cluster apart.
    vitals = app.topic(settings.topic(AGENT_VITALS.name), key_serializer="raw", value_serializer="raw",
                       partitions=AGENT_VITALS.partitions)
    agents = app.Table("agent_state", default=dict, partitions=AGENT_VITALS.partitions, key_type=bytes)

    @app.agent(vitals)
    async def track_agents(stream):
        async for key, value in stream.items():
            try:
                _, vital = codec.decode(value)
            except codec.DecodeError as exc:  # the sink dead-letters it; state ignores it
                log.warning("skipping undecodable vitals record: %s", exc)
                continue
            state = agents[key]
            if vital["id"] <= state.get("last_vital_id", 0):
                continue  # seen before this restart
            agents[key] = {"snapshots": state.get("snapshots", 0) + 1, "last_vital_id": vital["id"]}

    app.sophra_tables = {"agent_state": agents}
    return app


def run(settings: Settings, bootstrap: str, loglevel: str = "warn") -> None:
    """Run the worker in the foreground until SIGINT/SIGTERM."""
    app = create_app(settings, bootstrap)
    worker = faust.Worker(app, loglevel=loglevel, quiet=True)
    worker.execute_from_commandline()
