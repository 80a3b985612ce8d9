"""`sophra replay` of alert transitions on real parts: the real worker derives and the real
notifier delivers a firing to a real webhook receiver; a rule changes; replay recomputes
the transitions: the one already delivered keeps its id and is not delivered again, the
one only the changed rule derives is delivered once; the worker restarted after replay
resumes from the replayed states (both rules resolve)."""
import json
import os
import subprocess
import sys
import time

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from pipeline.alerts.evaluate import transition_id
from pipeline.history import group_members
from pipeline.producer import producer_config
from pipeline.replay import ReplayError, replay
from pipeline.replay.common import partition_of
from pipeline.store.clickhouse import connect
from pipeline.store.migrate import migrate
from pipeline.topics import ALERT_RULES, APP_ALERTS, APP_METRICS, ensure_topics
from schemas import codec
from sophra.processes import terminate

from .conftest import eventually
from .receivers import HttpReceiver

pytestmark = pytest.mark.integration

MIN = 60_000
TENANT, APP = "t_alerts", "app_x"


def rule(rule_id, threshold, url, created_at, updated_at=None):
    return {"tenant": TENANT, "id": rule_id, "application_id": APP, "name": rule_id,
            "condition": json.dumps({"metric": "error_rate", "operator": ">", "threshold": threshold,
                                     "window": "15m"}),
            "actions": json.dumps([{"type": "webhook", "url": url, "secret": "s3cret"}]), "enabled": True,
            "created_at": created_at, "scope": "application", "agent_id": None, "for_ms": 0,
            "repeat_interval_ms": 4 * 3_600_000, "silenced_until": None, "updated_at": updated_at or created_at}


def produce(s, topic, key, kind, record):
    p = Producer(producer_config(s.kafka_bootstrap_servers))
    p.produce(s.topic(topic.name), key=key, value=codec.encode(kind, record))
    assert p.flush(10) == 0


def metrics(s, batch_id, at, value):
    produce(s, APP_METRICS, f"{TENANT}/{APP}".encode(), "app_metric_batch",
            {"tenant": TENANT, "application_id": APP, "id": batch_id, "received_at": int(time.time() * 1000),
             "points": [{"metric": "error_rate", "value": value, "timestamp": at}]})


def start(s, command, log, **env):
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": s.kafka_bootstrap_servers, "SOPHRA_TOPIC_PREFIX": s.topic_prefix,
           "SOPHRA_WORKER_ID": s.worker_id, "SOPHRA_NOTIFIER_GROUP": "notifier-" + s.worker_id,
           "SOPHRA_OUTBOUND_ALLOW": "127.0.0.0/8", "SOPHRA_NOTIFY_RETRY_BASE_MS": "200",
           # Faust: a stopped worker's static membership ends in 6 s, not 60 (replay waits for it)
           "BROKER_SESSION_TIMEOUT": "6", "BROKER_HEARTBEAT_INTERVAL": "1", **env}
    return subprocess.Popen([sys.executable, "-m", "sophra", command], env=env, stdout=log.open("ab"),
                            stderr=subprocess.STDOUT)


def notifier_caught_up(s) -> bool:
    """The notifier has read (and committed) every transition on app.alerts."""
    c = Consumer({"bootstrap.servers": s.kafka_bootstrap_servers, "group.id": "notifier-" + s.worker_id})
    try:
        tps = [TopicPartition(s.topic(APP_ALERTS.name), p) for p in range(APP_ALERTS.partitions)]
        return all(max(tp.offset, 0) >= c.get_watermark_offsets(tp, timeout=10)[1]
                   for tp in c.committed(tps, timeout=10))
    finally:
        c.close()


def delivered(hook):
    return [(r.json["rule"]["id"], r.json["kind"], r.json["id"]) for r in hook.requests]


def tail(path):
    return "\n".join(path.read_text().splitlines()[-30:]) if path.exists() else ""


def test_replay_delivers_only_the_transitions_a_changed_rule_adds(make_settings, tmp_path):
    s = make_settings()
    ensure_topics(s.kafka_bootstrap_servers, s.topic_prefix)
    migrate(s.clickhouse_dsn, s.clickhouse_database)
    ch = connect(s.clickhouse_dsn, s.clickhouse_database)
    now = int(time.time() * 1000)
    t0 = now - 30 * MIN  # data time of the spike
    logs = {name: tmp_path / f"{name}.log" for name in ("worker", "notifier")}
    with HttpReceiver() as hook:
        produce(s, ALERT_RULES, b"alert_a", "alert_rule", rule("alert_a", 0.05, hook.hook_url, now - 1000))
        produce(s, ALERT_RULES, b"alert_b", "alert_rule", rule("alert_b", 0.5, hook.hook_url, now - 1000))
        worker, notifier = start(s, "worker", logs["worker"]), start(s, "notifier", logs["notifier"])
        try:
            metrics(s, 1, t0, 0.1)  # mean 0.1 over 15m: over alert_a's 0.05, under alert_b's 0.5
            fired_a = transition_id("alert_a", "firing", t0, "firing")
            assert eventually(lambda: delivered(hook), 180), tail(logs["worker"]) + tail(logs["notifier"])
            assert delivered(hook) == [("alert_a", "firing", fired_a)]
            assert terminate(worker) == 0
            admin = AdminClient({"bootstrap.servers": s.kafka_bootstrap_servers})
            assert eventually(lambda: not group_members(admin, s.worker_id), 30)

            # The rule change: alert_b now fires at 0.08, so the same spike fires it too.
            produce(s, ALERT_RULES, b"alert_b", "alert_rule",
                    rule("alert_b", 0.08, hook.hook_url, now - 1000, updated_at=int(time.time() * 1000)))
            result = replay(s, s.kafka_bootstrap_servers, t0 - 10 * MIN, only=("alerts",))
            r = result.alerts
            assert (r.records, r.skipped, r.subjects, r.rules, r.transitions, r.statuses, r.deleted) == (
                1, 0, 1, 2, 2, 2, 1)  # deleted: the worker's firing of alert_a (landed first), written again
            fired_b = transition_id("alert_b", "firing", t0, "firing")
            rows = ch.query("SELECT rule_id, id, previous_state, state, notify, toUnixTimestamp64Milli(at), value "
                            "FROM alert_transitions FINAL ORDER BY rule_id").result_rows
            assert rows == [("alert_a", fired_a, "ok", "firing", "firing", t0, 0.1),
                            ("alert_b", fired_b, "ok", "firing", "firing", t0, 0.1)]
            assert ch.query("SELECT rule_id, state, value FROM alert_status FINAL ORDER BY rule_id").result_rows == [
                ("alert_a", "firing", 0.1), ("alert_b", "firing", 0.1)]

            # The notifier reads both: alert_a's firing is one it delivered (same id), alert_b's is new.
            assert eventually(lambda: len(hook.requests) >= 2 and notifier_caught_up(s), 60), tail(logs["notifier"])
            time.sleep(2)  # a second delivery of alert_a's firing would be on its way by now
            assert delivered(hook) == [("alert_a", "firing", fired_a), ("alert_b", "firing", fired_b)]

            # The restarted worker resumes from replay's states: both rules are firing there, so
            # a window without the spike resolves both, once each.
            worker = start(s, "worker", logs["worker"])
            metrics(s, 2, t0 + 16 * MIN, 0.0)
            assert eventually(lambda: len(hook.requests) >= 4, 180), tail(logs["worker"]) + tail(logs["notifier"])
            assert eventually(lambda: notifier_caught_up(s), 30)
            time.sleep(2)
            resolved_at = t0 + 16 * MIN
            assert sorted(delivered(hook)[2:]) == [
                ("alert_a", "resolved", transition_id("alert_a", "ok", resolved_at, "resolved")),
                ("alert_b", "resolved", transition_id("alert_b", "ok", resolved_at, "resolved"))]
            assert len(hook.requests) == 4
        finally:
            for proc in (worker, notifier):
                if proc.poll() is None:
                    terminate(proc)


def test_replay_refuses_when_retention_dropped_watched_history_after_from(make_settings):
    s = make_settings()
    ensure_topics(s.kafka_bootstrap_servers, s.topic_prefix)
    migrate(s.clickhouse_dsn, s.clickhouse_database)
    now = int(time.time() * 1000)
    t0 = now - 30 * MIN
    produce(s, ALERT_RULES, b"alert_a", "alert_rule", rule("alert_a", 0.05, "http://127.0.0.1:9/hook", now - 1000))
    metrics(s, 1, t0, 0.1)
    metrics(s, 2, t0 + MIN, 0.1)
    topic = s.topic(APP_METRICS.name)
    p = partition_of(f"{TENANT}/{APP}".encode(), APP_METRICS.partitions)
    admin = AdminClient({"bootstrap.servers": s.kafka_bootstrap_servers})  # kept: its futures die with it
    [done] = admin.delete_records([TopicPartition(topic, p, 1)]).values()
    done.result(10)
    # the first batch is gone, and the second was received after --from: its history can't be recomputed
    with pytest.raises(ReplayError, match=rf"{topic}\[{p}\] keeps history only from .*; choose a later --from"):
        replay(s, s.kafka_bootstrap_servers, t0 - 10 * MIN, only=("alerts",))
