"""The Faust worker: per-agent state kept in changelogged tables.

For now it counts each agent's snapshots (the number ARI waits for before it judges,
reference 003). Tables are partitioned like the vitals topic, so an agent's state lives
on the worker that owns that agent's partition, and a restarted worker rebuilds it
from the changelog topic.
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
    snapshots = app.Table("agent_snapshots", default=int, partitions=AGENT_VITALS.partitions,
                          key_type=bytes, value_type=int)

    @app.agent(vitals)
    async def count_snapshots(stream):
        async for key, value in stream.items():
            try:
                codec.decode(value)
            except codec.DecodeError as exc:  # the sink dead-letters it; state ignores it
                log.warning("skipping undecodable vitals record: %s", exc)
                continue
            snapshots[key] += 1

    app.sophra_tables = {"agent_snapshots": snapshots}
    return app


def run(settings: Settings, bootstrap: str, loglevel: str = "warn") -> None:
    """Run the worker in the foreground until SIGINT/SIGTERM."""
    app = create_app(settings, bootstrap)
    worker = faust.Worker(app, loglevel=loglevel, quiet=True)
    worker.execute_from_commandline()
