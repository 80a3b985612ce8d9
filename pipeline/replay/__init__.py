"""`sophra replay --from <ISO 8601> [--to <ISO 8601>] [--only ari|deployments|alerts]`:
after a rule or threshold change, recompute what the worker derived and replace it,
without duplicates. One module per derived thing, each running the worker's own step
functions over the retained history, so replay and the worker can't disagree:

- ari.py: ARI interventions and statuses, the worker's `agent_state` table;
- deployments.py: deployment verdicts and their insights, the `app_state` table;
- alerts.py: alert transitions and statuses, the `<scope>_alert_state` tables.

Anomaly insights (pipeline/worker/anomalies.py) are not replayed yet: their rows and
detector tables are left as they are, and the states replay writes carry no anomaly
watch, so each subject's watch starts again (docs/insights.md).

The parts run in that order (default: all; `--only` picks some); each:

1. Preconditions, once for all parts. The worker's state is rewritten, so the worker
   must be stopped: its consumer group (`SOPHRA_WORKER_ID`) must have no members, else
   replay refuses. With the embedded default (no KAFKA_BOOTSTRAP_SERVERS) `sophra up`
   must be stopped too (chdb allows one process per data folder): replay starts the
   local broker from `<data dir>/kafka` itself and stops it at the end; a running
   `sophra up` holds that folder and replay says so.
2. Read its source topics from the beginning of their retained history up to the high
   watermarks taken at its start, with a plain consumer (no group, no commits), and run
   the worker's step from a fresh state per subject. It refuses, before anything is
   deleted, when retention no longer holds the history it needs: a partition emptied
   that holds a subject with derived rows in the window, or a partition whose first
   retained record is later than --from.
3. Replace, in ClickHouse and on the derived topics. Derived records the ClickHouse
   sink has not landed yet are landed first (by the sink itself: waited for if the sink
   group has members, else run in this process until caught up), so an old record can't
   land after the replacement and win. Then the rows derived in [from, to) are deleted
   and the recomputed records produced (idempotent producer) and inserted straight into
   ClickHouse with the sink's own steps, so the rows are there when replay returns; the
   sink later inserts the same rows again, which the ReplacingMergeTree tables collapse.
4. Rewrite the worker's state: each subject's recomputed state is produced to its
   table's changelog (key = the record key, value = JSON, partition = its records'),
   applied up to the offsets replay read to (pipeline/worker/offsets.py). The restarted
   worker recovers its tables from there, skips the records replay applied (by offset)
   and derives from the new rules from then on.
5. A progress bar per part on stderr (records read / total from the watermarks,
   percentage, rate, ETA; at most ~10 redraws a second) and a summary line at the end.

Replay is idempotent: running it again with the same arguments deletes and rewrites the
same rows and appends the same states, so a failed run is fixed by running it again.
Caveats: records produced while it runs (after the watermarks) are not in the
recomputed state; the restarted worker applies them. The derived topics keep the old
records as well: re-landing those topics from their beginning after a replay would bring
old versions back (run replay again instead).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TextIO

from confluent_kafka.admin import AdminClient

from sophra.settings import Settings

from ..history import group_members, on_broker
from ..store.migrate import migrate
from ..topics import ensure_topics
from .ari import AriResult, changelog_topic, derive, replay_ari
from .common import Context, ReplayError, parse_time
from .alerts import AlertsResult, replay_alerts
from .deployments import DeploymentsResult, replay_deployments

PARTS = ("ari", "deployments", "alerts")
_RUN = {"ari": replay_ari, "deployments": replay_deployments, "alerts": replay_alerts}

__all__ = ["PARTS", "ReplayError", "ReplayResult", "changelog_topic", "derive", "parse_only", "parse_time", "replay",
           "run"]


def parse_only(values: list[str] | None) -> tuple[str, ...]:
    """`--only` values (repeated and/or comma-separated) -> the parts, in replay order."""
    if not values:
        return PARTS
    asked = {v.strip() for value in values for v in value.split(",") if v.strip()}
    unknown = sorted(asked - set(PARTS))
    if unknown or not asked:
        raise ValueError(f"--only takes {', '.join(PARTS)} (got {', '.join(unknown) or 'nothing'})")
    return tuple(p for p in PARTS if p in asked)


@dataclass
class ReplayResult:
    ari: AriResult | None = None
    deployments: DeploymentsResult | None = None
    alerts: AlertsResult | None = None
    seconds: float = 0.0
    phases: dict = field(default_factory=dict)  # phase -> seconds, in order, adding up to `seconds`

    def summary(self) -> str:
        parts = "; ".join(r.summary() for r in (self.ari, self.deployments, self.alerts) if r is not None)
        return (f"replay done: {parts}, {self.seconds:.1f}s"
                + (" (" + ", ".join(f"{k} {v:.1f}s" for k, v in self.phases.items()) + ")" if self.phases else ""))


def replay(settings: Settings, bootstrap: str, since: int, until: int | None = None, out: TextIO | None = None,
           processes: int | None = None, only: tuple[str, ...] = PARTS) -> ReplayResult:
    """Recompute and replace what the worker derived in [since, until) (epoch ms); see the
    module doc. `only`: the parts (PARTS). `out`: where the progress bars go (the CLI
    passes stderr; None = no bar). `processes`: how many processes read and derive ARI's
    partitions (None: one per core, fewer for a short history; 1: this process only)."""
    if until is not None and until <= since:
        raise ReplayError("--to must be later than --from")
    t0 = time.monotonic()
    admin = AdminClient({"bootstrap.servers": bootstrap})
    members = group_members(admin, settings.worker_id)
    if members:
        raise ReplayError(f"the worker ({settings.worker_id}) is running ({len(members)} member(s): "
                          f"{', '.join(m.client_id for m in members)}); stop it first: replay rewrites its state")
    ensure_topics(bootstrap, settings.topic_prefix)
    migrate(settings.clickhouse_dsn, settings.clickhouse_database)
    result = ReplayResult(phases={"preconditions": time.monotonic() - t0})
    ctx = Context(settings, bootstrap, admin, since, until, out, processes)
    for part in only:
        setattr(result, part, _RUN[part](ctx, result.phases))
        # the moments between a part's own phases go to its last one, so the phases add up
        result.seconds = time.monotonic() - t0
        result.phases[list(result.phases)[-1]] += result.seconds - sum(result.phases.values())
    return result


def run(settings: Settings, since: int, until: int | None = None, out: TextIO | None = None,
        only: tuple[str, ...] = PARTS) -> ReplayResult:
    """`sophra replay`: on the configured cluster, or on the local broker it starts and stops itself."""
    return on_broker(settings, lambda bootstrap: replay(settings, bootstrap, since, until, out, only=only),
                     ReplayError, "replay needs the broker and ClickHouse folder for itself, and rewrites the "
                                  "worker's state")
