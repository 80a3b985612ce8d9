"""The worker's part of the /v1 quota: sum each key's usage over all api processes.

Api processes report their running count per key and hour to `api.usage` (keyed by
key_id). A tumbling-window table of one-hour windows, keyed by key_id, keeps each
process's largest count; after every report the worker publishes the window's counts
and their sum to the compacted `quota.usage`, which every api process tails
(rules: pipeline/quota.py; numbers: docs/quota.md).

One event at a time, so the table's changelog partition is the report's own partition
(the key's). Keeping the largest running count makes a redelivered report after a
restart change nothing. The sums are sent without waiting for Kafka: a lost one is
replaced by the next report of the key, which carries the full count again.
"""
import logging
import time

import faust

from schemas import codec

from ..quota import WINDOW_MS, merge_report, total_record
from ..topics import API_USAGE, QUOTA_USAGE
from .failstop import fail_stop

log = logging.getLogger("sophra.worker.quota")

TABLE = "api_usage"


def register(app: faust.App, settings) -> faust.Table:
    raw = {"key_serializer": "raw", "value_serializer": "raw"}
    reports = app.topic(settings.topic(API_USAGE.name), partitions=API_USAGE.partitions, **raw)
    sums = app.topic(settings.topic(QUOTA_USAGE.name), **raw)
    # Windows close an hour after they end; the changelog drops them too (compact + delete).
    usage = app.Table(TABLE, default=dict, partitions=API_USAGE.partitions,
                      extra_topic_configs={"cleanup.policy": "compact,delete"}).tumbling(
        WINDOW_MS / 1000, expires=2 * WINDOW_MS / 1000)
    window = usage.table.window

    @app.agent(reports)
    async def sum_api_usage(stream):
        async for event in stream.events():
            with fail_stop("/v1 quota sums"):
                try:
                    kind, report = codec.decode(event.value)
                except codec.DecodeError as exc:
                    log.warning("skipping undecodable usage report: %s", exc)
                    continue
                if kind != "api_usage" or not report["api_node"]:
                    continue
                hour = window.current(report["window_start"] / 1000)
                counts = usage[report["key_id"]][hour]
                merged = merge_report(counts, report)
                if merged is not counts:
                    usage[report["key_id"]][hour] = merged
                if report["window_start"] + WINDOW_MS <= time.time_ns() // 1_000_000:
                    continue  # a late report of an hour that is over: no api decides on it any more, and
                    # publishing it could make it the key's last record in the compacted topic
                # force: send now instead of when the report's offset is committed
                await sums.send(key=report["key_id"].encode(),
                                value=codec.encode("api_usage", total_record(report, merged)), force=True)

    return usage.table
