"""The worker's anomaly watch: every series of every application (app.metrics) and every
agent vital (agent.vitals) through the detector, per minute, and the insight episodes it
finds (pipeline/anomaly/watch.py, pipeline/insights.py, docs/insights.md).

It runs inside the batch step of the agent that already reads those records (ARI for
agents, worker/app.py; the deployment watch for applications, worker/deployments.py), so
it costs no second stream and no second state write per record: a Faust changelog write
costs about as much as everything else the worker does for a vital. Deployments and
agent events, read by the same steps, are remembered as the changes a likely cause can
name.

Each subject has two parts. Its watch (small) lives in the host's state under WATCH,
written with it every batch (so the host's offsets say which records it holds): the open
minutes, the recent changes, and `pending`, the closed minutes fed to the detectors since they were last saved. Its
detectors (state and episode per series, a few kB each) live in the `<scope>_detectors`
table, saved when the subject is new and then once a series has SAVE_AFTER minutes
pending; in between, the table's object is fed in place. A minute leaves `pending` only
once a save that holds it is delivered (`Detectors`). So a saved watch and the saved
detectors together always hold every closed minute: after a crash the detectors are fed
the pending minutes again (the same minutes give the same states and insight versions),
and minutes fed twice are skipped by their `fed` mark. Per batch, as everywhere in the
worker: derive; produce the insights and the host's outputs and wait for Kafka; only then
write the host states.
"""

import faust

from .. import insights as I
from ..alerts.evaluate import vital_points
from ..anomaly import watch as W
from ..topics import AGENT_EVENTS, AGENT_VITALS, APP_DEPLOYMENTS, APP_METRICS, TopicSpec, table_changelog


WATCH = "anomaly_watch"  # the key of a subject's watch in its host state
CHANGES_KEPT = 5  # the latest deployments / events per subject, for likely causes
SAVE_AFTER = 15  # a subject's detectors are saved once a series has this many minutes fed since the last save


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


def table_name(scope: str) -> str:
    return f"{scope}_detectors"


def changelogs(worker_id: str) -> list[TopicSpec]:
    """The detector tables' changelogs, created before Faust starts (app.changelogs)."""
    return [table_changelog(worker_id, table_name(scope), spec[0].partitions) for scope, spec in SCOPES.items()]


class Detectors:
    """A scope's detector table, saved without waiting. Waiting for each save (a producer
    flush per batch) cost the worker a quarter of its throughput; instead a save's
    delivery callback records how far each series was fed (`confirmed`), and only then
    may later batches drop those minutes from the subject's `pending`."""

    def __init__(self, app: faust.App, scope: str):
        # use_partitioner: saved outside any one event's context, so the partition comes from the key
        self.table = app.Table(table_name(scope), partitions=SCOPES[scope][0].partitions, key_type=bytes,
                               use_partitioner=True)
        self.marks: dict[bytes, dict] = {}  # key -> {series: last minute fed} of its last delivered save
        self.in_flight: set[bytes] = set()

    def get(self, key: bytes) -> dict | None:
        return self.table.get(key)

    def confirmed(self, key: bytes) -> dict | None:
        return self.marks.get(key)

    def saving(self, key: bytes) -> bool:
        return key in self.in_flight

    def save(self, due: dict) -> None:
        for key, d in due.items():
            marks = {name: s["fed"] for name, s in d.items()}
            fut = self.table.send_changelog(self.table.partition_for_key(key), key, d)
            self.table.data[key] = d  # what Table.__setitem__ does, keeping the delivery future
            self.in_flight.add(key)
            fut.add_done_callback(lambda f, key=key, marks=marks: self._delivered(f, key, marks))

    def _delivered(self, fut, key: bytes, marks: dict) -> None:
        self.in_flight.discard(key)
        if not fut.cancelled() and fut.exception() is None:
            self.marks[key] = marks  # a value serialised after this point holds at least these


class Delivered(dict):
    """Detectors in a dict whose saves are delivered at once: for a caller that waits for
    its writes every batch anyway (the benchmark's plain consumer, the tests)."""

    def __init__(self, *args):
        super().__init__(*args)
        self.marks: dict[bytes, dict] = {}

    def confirmed(self, key: bytes) -> dict | None:
        return self.marks.get(key)

    def saving(self, key: bytes) -> bool:
        return False

    def save(self, due: dict) -> None:
        self.update(due)
        self.marks.update({key: {name: s["fed"] for name, s in d.items()} for key, d in due.items()})


def step(scope: str, lookup_watch, lookup_detectors, records, confirmed=lambda key: None,
         saving=lambda key: False) -> tuple[dict, dict, dict]:
    """Apply decoded (key, kind, record) records of one scope, each one its host has not
    applied before: the new watch per subject touched (for its host state's WATCH), the
    detectors to save and the insight records to produce ((id) -> (key, record)).
    `confirmed(key)`: how far a delivered save of the key's detectors was fed;
    `saving(key)`: a save of them is in flight (see Detectors)."""
    _, points_kind, points_of, _, change_kind, change_of, subject_field = SCOPES[scope]
    watches, live, new, found = {}, {}, set(), []

    def watch_of(key, record):
        w = lookup_watch(key)
        if w is None:
            return {**W.new_minutes(), "changes": [], "pending": {}, "who": [record["tenant"], record[subject_field]]}
        marks = confirmed(key)
        if marks:  # minutes a delivered save holds need not be fed again
            w["pending"] = {name: kept for name, fed in w["pending"].items()
                            if (kept := [m for m in fed if m[0] > marks.get(name, -1)])}
        return w

    def detectors(key, w):
        d = live.get(key)
        if d is None:
            d = live[key] = lookup_detectors(key)
            if d is None:  # saved at once, so the table always holds the object fed in place
                d = live[key] = W.new_series()
                new.add(key)
            # minutes fed since the detectors were last saved: skipped by `fed` unless those
            # detectors were lost with a crash, then fed again to the same effect
            for name, fed in w["pending"].items():
                if fed[-1][0] > W.fed_up_to(d, name):  # in time order: the last one tells
                    found.extend((key, ep) for minute, mean in fed for ep in W.observe(d, name, minute, mean))
        return d

    for key, kind, record in records:
        w = watches.get(key) or watch_of(key, record)
        if kind == points_kind:
            closed = W.accumulate(w, points_of(record))
            if closed:
                d = detectors(key, w)
                for name, minute, mean in closed:
                    found.extend((key, ep) for ep in W.observe(d, name, minute, mean))
                    w["pending"].setdefault(name, []).append([minute, mean])
        elif kind == change_kind:
            change = change_of(record)
            if change:
                w["changes"] = (w["changes"] + [list(change)])[-CHANGES_KEPT:]
        watches[key] = w
    due = {key: d for key, d in live.items() if key in new or (
        not saving(key) and max(map(len, watches[key]["pending"].values()), default=0) >= SAVE_AFTER)}
    # worded once the batch is in, so episodes that began together name each other
    insights = {}
    for key, ep in found:
        w = watches[key]
        rec = I.anomaly_insight(w["who"][0], scope, w["who"][1], W.refresh(live[key], ep), {"changes": w["changes"]})
        insights[rec["id"]] = (key, rec)
    return watches, due, insights
